"""Which channels feed a model, and the warnings for images unlike the model's training images."""
import numpy as np
import pytest

from segstudio.core.model_fit import (
    BRIGHTFIELD,
    FLUORESCENCE,
    ModelExpectation,
    bright_background,
    expectation_of,
    input_advice,
    input_warnings,
    model_pixels,
    plan_input,
)
from segstudio.synth.nuclei import generate_nuclei_image

NUCLEI = ModelExpectation(1, FLUORESCENCE, nuclear=True)


def test_the_metadata_statement_wins_over_the_description():
    said = expectation_of(1, {"kind": "brightfield", "stain": "none"}, "fluorescence nuclei (DAPI)", ["nucleus"])
    assert said == ModelExpectation(1, BRIGHTFIELD, nuclear=False)


def test_older_models_are_read_from_their_description_and_classes():
    words = "U-Net for fluorescence nuclei (DAPI/Hoechst-like stains)"
    bundled = expectation_of(1, {}, words, ["background", "nucleus"])
    assert bundled == NUCLEI
    assert expectation_of(3, {}, "tissue on H&E slides", ["tumour"]) == ModelExpectation(3, BRIGHTFIELD, False)
    assert expectation_of(1, {}, "", ["background", "cell"]) == ModelExpectation(1, "", False)


def test_a_nuclear_model_gets_the_channel_named_as_a_nuclear_stain():
    plan = plan_input(3, ("GFP", "Hoechst 33342", "Actin"), NUCLEI)
    assert [c.label for c in plan.choices] == ["GFP", "Hoechst 33342", "Actin"]
    assert plan.default == 1 and plan.choices[1].channels == (1,) and "nuclear stain" in plan.reason


def test_without_names_the_first_channel_is_used_and_the_user_is_told():
    plan = plan_input(3, None, NUCLEI)
    assert plan.default == 0 and plan.choices[0].channels == (0,) and plan.choices[0].label == "Channel 1"
    assert "first" in plan.reason and "DAPI" in plan.reason


def test_a_colour_image_becomes_grey_by_default_and_each_colour_can_be_chosen():
    plan = plan_input(3, ("R", "G", "B"), NUCLEI)
    assert plan.choices[plan.default].channels is None
    assert [c.channels for c in plan.choices if c.channels] == [(0,), (1,), (2,)]
    assert [c.stain for c in plan.choices] == ["", "he", "", "", ""]  # the H&E path is offered, not forced


def test_a_bright_colour_slide_gets_the_h_and_e_path_as_its_one_click_fix():
    image, _, _ = generate_nuclei_image(3, height=128, width=128, bit_depth=8)
    he_like = 255 - np.repeat(image[..., None], 3, axis=2)
    plan = plan_input(3, ("R", "G", "B"), NUCLEI)
    advice = input_advice(he_like, ("R", "G", "B"), plan.choices[0], NUCLEI, plan)
    assert {(a.fix, a.choice) for a in advice} == {("Use the H&E path", 1)}
    assert plan.choices[1].stain == "he"
    assert input_advice(he_like, ("R", "G", "B"), plan.choices[1], NUCLEI, plan) == []
    dark = 255 - he_like  # a fluorescence-like colour image: pick a colour instead
    (only,) = input_advice(dark, ("R", "G", "B"), plan.choices[0], NUCLEI, plan)
    assert only.fix == "Pick a channel" and only.choice is None


def test_a_model_that_reads_hematoxylin_is_offered_only_that_for_colour_images():
    plan = plan_input(3, ("R", "G", "B"), NUCLEI, {"kind": "he"})
    assert [c.stain for c in plan.choices] == ["he"] and "hematoxylin" in plan.reason


def test_model_pixels_keeps_only_the_chosen_channels():
    pixels = np.arange(2 * 2 * 3).reshape(2, 2, 3)
    np.testing.assert_array_equal(model_pixels(pixels, (2,))[..., 0], pixels[..., 2])
    assert model_pixels(pixels, None) is pixels
    with pytest.raises(ValueError, match="channel 4 does not exist"):
        model_pixels(pixels, (3,))


def test_fluorescence_slides_are_not_taken_for_brightfield_but_inverted_ones_are():
    for seed in range(12):
        image, _, _ = generate_nuclei_image(seed, height=128, width=128, bit_depth=8)
        assert not bright_background(image), seed
        assert bright_background(255 - image), seed


def test_warnings_name_the_colour_and_the_bright_background_mismatch():
    image, _, _ = generate_nuclei_image(3, height=128, width=128, bit_depth=8)
    colour = np.repeat(image[..., None], 3, axis=2)
    grey_choice = plan_input(3, ("R", "G", "B"), NUCLEI).choices[0]
    (warning,) = input_warnings(colour, ("R", "G", "B"), grey_choice, NUCLEI)
    assert "colour image" in warning and "averaged to grey" in warning
    he_like = 255 - colour
    warnings = input_warnings(he_like, ("R", "G", "B"), grey_choice, NUCLEI)
    assert any("background of this image is bright" in w for w in warnings)
    single = plan_input(1, None, NUCLEI).choices[0]
    assert input_warnings(image[..., None], None, single, NUCLEI) == []


def test_a_lab_writes_its_stain_vectors_as_rows_of_numbers_or_a_file(tmp_path):
    from segstudio.core.model_fit import read_stain_vectors

    lab = [[0.6, 0.75, 0.28], [0.1, 0.95, 0.2], [0.3, 0.5, 0.8]]
    assert read_stain_vectors("0.6,0.75,0.28; 0.1,0.95,0.2; 0.3,0.5,0.8") == lab
    written = tmp_path / "our-stains.txt"
    written.write_text("0.6 0.75 0.28\n0.1 0.95 0.2\n0.3 0.5 0.8\n")
    assert read_stain_vectors(str(written)) == lab
    written.write_text("[[0.6, 0.75, 0.28], [0.1, 0.95, 0.2], [0.3, 0.5, 0.8]]")
    assert read_stain_vectors(str(written)) == lab


@pytest.mark.parametrize("text, says", [
    ("0.6,0.75; 0.1,0.95,0.2; 0.3,0.5,0.8", "three rows of r,g,b"),
    ("0.6,0.75,0.28; 0.1,0.95,0.2", "three rows of r,g,b"),
    ("0.6,0.75,1.5; 0.1,0.95,0.2; 0.3,0.5,0.8", "hematoxylin vector [0.6, 0.75, 1.5] must hold numbers between 0"),
    ("0.6,0.75,0.28; 0,0,0; 0.3,0.5,0.8", "eosin vector is all zero"),
    ("0.6,0.75,0.28; 0.6,0.75,0.28; 0.3,0.5,0.8", "the same colour"),
    ("0.6,0.75,0.28; 0.1,0.95,0.2; 0.3,0.5,nan", "residual vector"),
    ("our-stains.txt", "our-stains.txt: no such file"),
])
def test_stain_vectors_that_cannot_be_used_are_refused_saying_why(text, says):
    from segstudio.core.model_fit import read_stain_vectors

    with pytest.raises(ValueError) as info:
        read_stain_vectors(text)
    assert says in str(info.value)


def test_a_stain_vector_file_that_does_not_parse_is_named(tmp_path):
    from segstudio.core.model_fit import read_stain_vectors

    written = tmp_path / "stains.json"
    written.write_text("[[0.6, 0.75, 0.28], [0.1, 0.95")
    with pytest.raises(ValueError, match=r"stains\.json: the stain vectors are not a readable JSON list"):
        read_stain_vectors(str(written))
