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


def test_a_model_made_for_chosen_channels_gets_them_and_says_so():
    two = ModelExpectation(2)
    plan = plan_input(4, None, two, {"kind": "channels", "channels": [0, 2]})
    chosen = plan.choices[plan.default]
    assert chosen.channels == (0, 2) and chosen.label == "Channel 1, Channel 3"
    assert plan.reason == "the model was made to read Channel 1, Channel 3" and not plan.mismatch
    assert (0, 1) not in [c.channels for c in plan.choices] and plan.choices[0].channels is None  # the first two
    one = plan_input(3, ("R", "G", "B"), ModelExpectation(1), {"kind": "channels", "channels": [1]})
    assert one.choices[one.default].channels == (1,) and "made to read G" in one.reason
    pixels = np.zeros((8, 8, 3), np.uint8)
    assert input_advice(pixels, ("R", "G", "B"), one.choices[one.default], ModelExpectation(1), one) == []


def test_an_image_without_the_model_channels_is_told_and_can_pick_others():
    plan = plan_input(3, None, ModelExpectation(2), {"kind": "channels", "channels": [0, 3]})
    assert plan.choices[plan.default].channels is None and plan.can_pick and not plan.stops
    assert "made to read image channels 1 and 4, but this image has 3: Channel 1 and Channel 2 are fed" in plan.mismatch
    pixels = np.zeros((8, 8, 3), np.uint16)
    (advice,) = input_advice(pixels, None, plan.choices[plan.default], ModelExpectation(2), plan)
    assert advice.fix == "Pick channels" and advice.choice is None
    picked = next(c for c in plan.choices if c.channels == (0, 2))
    assert input_advice(pixels, None, picked, ModelExpectation(2), plan) == []  # the user's pick silences it
    single = plan_input(2, None, ModelExpectation(1), {"kind": "channels", "channels": [2]})
    assert "made to read image channel 3, but this image has 2 channels: Channel 1 is fed" in single.mismatch


def test_more_channels_than_the_model_reads_are_offered_as_sets():
    plan = plan_input(5, ("DAPI", "GFP", "RFP", "Cy5", "BF"), ModelExpectation(3))
    assert len(plan.choices) == 10 and plan.can_pick  # every three of five, in their order
    assert "This image has 5 channels and the model reads 3: DAPI, GFP and RFP are fed" in plan.mismatch
    assert not plan_input(4, ("R", "G", "B", "A"), ModelExpectation(3)).mismatch  # RGBA into a colour model
    many = plan_input(20, None, ModelExpectation(3))
    assert [c.channels for c in many.choices][:2] == [None, (1, 2, 3)] and len(many.choices) == 18


def test_an_h_and_e_model_says_before_predict_that_a_grey_image_cannot_be_fed():
    plan = plan_input(1, None, ModelExpectation(1, BRIGHTFIELD, True), {"kind": "he"})
    assert plan.stops and "hematoxylin of H&E colour images, but this image has 1 channel" in plan.mismatch
    (advice,) = input_advice(np.zeros((8, 8), np.uint8), None, plan.choices[0], ModelExpectation(1, BRIGHTFIELD,
                                                                                                  True), plan)
    assert advice.fix == "" and "Predict will stop" in advice.text


def test_the_channels_a_choice_picked_are_not_picked_again():
    from segstudio.core.model_fit import HE_STAIN_VECTORS, fed_definition

    assert fed_definition({"kind": "channels", "channels": [0, 2]}, "") == {}
    assert fed_definition({"kind": "he", "stain_vectors": [[0.6, 0.7, 0.3]] * 3}, "he") is None  # its own vectors
    assert fed_definition({}, "he") == {"kind": "he", "stain_vectors": [list(v) for v in HE_STAIN_VECTORS]}
    assert fed_definition({"kind": "grey"}, "") is None
