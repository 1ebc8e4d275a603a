"""The H&E path: hematoxylin separated from the colours feeds a fluorescence nuclei model the way it learnt."""
import cv2
import numpy as np
import pytest

from segstudio.core import paths
from segstudio.core.model_fit import HE_STAIN_VECTORS
from segstudio.engine.predict import ModelInput, Predictor, PredictSettings
from segstudio.engine.predict.stains import hematoxylin, separation_matrix
from segstudio.synth import iou
from segstudio.synth.he import generate_he_image

HE = {"kind": "he", "stain_vectors": [list(v) for v in HE_STAIN_VECTORS]}


def test_hematoxylin_is_bright_on_nuclei_and_dark_on_the_background():
    rgb, mask, _ = generate_he_image(5, height=96, width=96)
    h = hematoxylin(rgb, separation_matrix(HE["stain_vectors"]))
    assert h[mask > 0].mean() > 2 * h[mask == 0].mean()
    network_input = ModelInput(rgb, 1, {"kind": "percentile", "low": 1.0, "high": 99.8}, HE).region(
        slice(None), slice(None))
    assert network_input.shape == (1, 96, 96) and network_input.max() <= 1.0
    assert network_input[0][mask > 0].mean() > network_input[0][mask == 0].mean() + 0.2


def test_the_h_and_e_path_refuses_grey_images_and_dependent_vectors():
    with pytest.raises(ValueError, match="needs a colour|H&E colour images"):
        ModelInput(np.zeros((8, 8), np.uint8), 1, None, HE)
    with pytest.raises(ValueError, match="not independent"):
        separation_matrix([[1, 0, 0], [1, 0, 0], [0, 0, 1]])


@pytest.mark.usefixtures("single_torch_thread")
def test_bundled_nuclei_model_finds_the_nuclei_of_the_h_and_e_sample():
    """The fluorescence-trained model on the generated H&E sample, through the H&E path and without it."""
    from segstudio.models.library import ModelLibrary

    sample = paths.samples_dir() / "he_nuclei.png"
    rgb = cv2.cvtColor(cv2.imread(str(sample)), cv2.COLOR_BGR2RGB)
    truth = cv2.imread(str(sample.parent / "truth" / "he_nuclei.png"), cv2.IMREAD_UNCHANGED) > 0
    model, meta = ModelLibrary().load("nuclei-unet")
    predictor = Predictor(model, meta, device="cpu")
    he = predictor.predict(rgb, PredictSettings(tile=384, model_input=HE))
    grey = predictor.predict(rgb, PredictSettings(tile=384))
    assert iou(he.labels > 0, truth) > 0.5
    assert iou(grey.labels > 0, truth) < 0.3  # averaging the colours to grey finds the background instead
