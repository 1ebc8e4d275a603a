"""A whole slide's inspected tile: model-sized, centred on the view, inside the slide, read at level 0 and
normalised as Predict normalises it."""
import numpy as np
import pytest
import torch

from segstudio.core.imageio import Slide
from segstudio.engine.inspect import TapInspector
from segstudio.engine.inspect_slide import inspect_slide, slide_source, view_centre_region
from segstudio.engine.predict import PredictionCancelled
from segstudio.models.registry import build_model
from segstudio.synth.slides import TissuePatch, write_pyramid_ome


@pytest.mark.parametrize(("centre", "origin"), [((1000, 700), (744, 444)), ((10, 10), (0, 0)),
                                                ((3070, 2040), (3072 - 512, 2048 - 512))])
def test_the_tile_is_centred_on_the_view_and_stays_inside_the_slide(centre, origin):
    region = view_centre_region((2048, 3072), centre, 512, align=16)
    assert (region.x, region.y) == origin and (region.w, region.h, region.step) == (512, 512, 1)
    assert "centre of the view" in region.describe() and "full resolution" in region.describe()


def test_the_first_look_averages_the_same_tile_down():
    region = view_centre_region((2048, 3072), (1000, 700), 512, preview_side=192, align=16)
    assert region.step == 3 and max(region.input_shape) <= 192
    assert abs(region.x + region.w / 2 - 1000) <= 16 and abs(region.y + region.h / 2 - 700) <= 16


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    path = write_pyramid_ome(tmp_path_factory.mktemp("slide") / "s.ome.tif", 1024, 1536, levels=2,
                             patches=[TissuePatch(500, 700, 300, 500)])
    with Slide(path) as opened:
        yield opened


def test_the_maps_are_those_of_the_level_0_pixels_as_predict_scales_them(slide, single_torch_thread):
    torch.manual_seed(0)
    model = build_model("unet", in_channels=3, num_classes=2, depth=2, base_channels=4)
    inspector = TapInspector(model, None)
    inspection = inspect_slide(inspector, slide, (700, 500), 256)
    x, y, w, h = inspection.region.rect
    expected = slide_source(inspector, slide).region(slice(y, y + h), slice(x, x + w))
    with torch.inference_mode():
        logits = model(torch.from_numpy(np.ascontiguousarray(expected))[None])
    np.testing.assert_allclose(inspection.taps["logits"].tensor, logits[0].numpy(), rtol=1e-4, atol=1e-4)
    with pytest.raises(PredictionCancelled):
        inspect_slide(inspector, slide, (700, 500), 256, cancel=lambda: True)
