"""Whole-slide prediction: glass skipped, the same labels as an ordinary prediction, resume after a stop."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from segstudio.core.imageio import Slide
from segstudio.core.label_store import LabelStore
from segstudio.core.run_marks import RunMarks, StoreSink
from segstudio.core.tissue import detect_tissue
from segstudio.engine.predict import PredictionCancelled, Predictor, PredictSettings, plan_tiles
from segstudio.engine.predict import slide as slide_predict
from segstudio.synth.slides import TissuePatch, write_pyramid_ome
from tests.engine.predict.nets import RecordingNet, small_net

H, W = 2600, 3100
SETTINGS = PredictSettings(tile=256, overlap=0.25, batch=2, device="cpu", amp=False)
META = SimpleNamespace(in_channels=3, normalisation={"kind": "none"}, classes=[])
PATCHES = [TissuePatch(700, 800, 300, 420), TissuePatch(1900, 2300, 380, 300)]


@pytest.fixture(autouse=True)
def small_strips(monkeypatch):
    monkeypatch.setattr(slide_predict, "STRIP", 1024)
    monkeypatch.setattr(slide_predict, "BLOCK", 1024)


@pytest.fixture
def slide(tmp_path):
    path = write_pyramid_ome(tmp_path / "s.ome.tif", H, W, levels=3, factor=4, tile=256, patches=PATCHES)
    with Slide(path) as opened:
        yield opened


def predictor():
    net = RecordingNet(small_net(in_channels=3, classes=3, seed=1))
    return Predictor(net, META, device="cpu"), net


def tiles_run(net) -> int:
    return sum(shape[0] for _, shape in net.calls)


def test_only_tissue_tiles_run_and_labels_match_an_ordinary_prediction(slide, tmp_path):
    tissue = detect_tissue(slide, max_side=512)
    assert 0.05 < tissue.fraction < 0.6
    pred, net = predictor()
    store = LabelStore(H, W, tmp_path / "labels.zarr", pyramid=False)
    result = slide_predict.predict_slide(pred, slide, StoreSink(store), SETTINGS, tissue=tissue)

    plan = plan_tiles(H, W, SETTINGS.tile, SETTINGS.overlap, SETTINGS.align)
    with_tissue = [o for o in plan.origins if tissue.any_in(o[0], o[1], plan.tile_h, plan.tile_w)]
    assert result.tiles_skipped > 0 and tiles_run(net) == result.tiles_run
    # Strips share their border tiles; each tissue tile runs once per strip it touches, glass never.
    assert len(with_tissue) <= result.tiles_run <= len(with_tissue) * 1.35
    assert result.tiles_run < 0.8 * plan.count

    reference = Predictor(small_net(in_channels=3, classes=3, seed=1), META, device="cpu")
    expected = reference.predict(slide.read_region(0, 0, 0, W, H), SETTINGS).labels
    got = store.read(0, 0, H, W)
    ys, xs = np.mgrid[0:H, 0:W]
    inside = tissue.mask[np.minimum(ys // tissue.downsample, tissue.mask.shape[0] - 1).astype(int),
                         np.minimum(xs // tissue.downsample, tissue.mask.shape[1] - 1).astype(int)]
    assert inside.sum() > 100_000
    assert np.array_equal(got[inside], expected[inside])
    # Far from any tissue nothing was predicted.
    assert not got[:150, -150:].any()


def test_hand_painted_pixels_survive(slide, tmp_path):
    pred, _ = predictor()
    store = LabelStore(H, W, None)
    hand = LabelStore(H, W, None)
    store.paint_polygon([(700, 600), (900, 600), (900, 800), (700, 800)], 7)
    hand.paint_polygon([(700, 600), (900, 600), (900, 800), (700, 800)], 1)
    slide_predict.predict_slide(pred, slide, StoreSink(store, hand=hand), SETTINGS,
                                tissue=detect_tissue(slide, 512))
    assert (store.read(610, 710, 180, 180) == 7).all()
    assert set(np.unique(store.read(300, 500, 200, 200))) - {7}


def test_an_interrupted_run_resumes_with_only_the_rest(slide, tmp_path):
    tissue = detect_tissue(slide, max_side=512)
    fingerprint = {"model": "small", "tile": 256}
    pred, net = predictor()
    full_store = LabelStore(H, W, tmp_path / "full.zarr", pyramid=False)
    full = slide_predict.predict_slide(pred, slide, StoreSink(full_store), SETTINGS, tissue=tissue)
    full_tiles = full.tiles_run

    out = tmp_path / "resumed.zarr"
    pred, net = predictor()
    batches = []

    def stop_midway() -> bool:
        batches.append(1)
        return len(batches) > full_tiles // SETTINGS.batch // 2

    store = LabelStore(H, W, out, pyramid=False)
    with pytest.raises(PredictionCancelled):
        slide_predict.predict_slide(pred, slide, StoreSink(store, RunMarks(out, fingerprint)), SETTINGS,
                                    tissue=tissue, cancel=stop_midway)
    first = tiles_run(net)
    marks = RunMarks(out, fingerprint)
    assert marks.done, "finished blocks are marked as they are saved"

    pred, net = predictor()
    store = LabelStore(H, W, out, pyramid=False)
    second = slide_predict.predict_slide(pred, slide, StoreSink(store, RunMarks(out, fingerprint)), SETTINGS,
                                         tissue=tissue)
    assert second.blocks_resumed == len(marks.done)
    assert second.tiles_run < full_tiles - first // 2
    # Only the tiles bordering the finished blocks run twice.
    assert first + second.tiles_run - full_tiles < 0.25 * full_tiles
    assert np.array_equal(LabelStore(H, W, out).read(0, 0, H, W), full_store.read(0, 0, H, W))
    # Other settings do not trust the marks.
    assert not RunMarks(out, {"model": "other"}).done


def test_normalisation_levels_come_from_the_tissue_not_the_glass(tmp_path):
    path = write_pyramid_ome(tmp_path / "sparse.ome.tif", 4096, 4096, levels=3, factor=4, tile=256,
                             patches=[TissuePatch(2000, 2000, 300, 300)])
    norm = {"kind": "percentile", "low": 1.0, "high": 99.8}
    with Slide(path) as sparse:
        everything = slide_predict.SlideSource.for_slide(sparse, 1, norm)
        tissue = slide_predict.SlideSource.for_slide(sparse, 1, norm, tissue_only=True)
    top = lambda source: (source.levels[0] + source.levels[1]).item()  # noqa: E731
    glass_grey = float(np.mean([242, 240, 244]))
    assert top(everything) >= glass_grey - 1  # the glass sets the top: stained tissue would look dim
    assert top(tissue) < glass_grey - 15  # the tissue's own range


def test_regions_to_check_carry_the_uncertainty_of_the_tissue_only(slide):
    """The review grid of a slide run holds, per region, the mean uncertainty of the pixels whose tiles all
    ran, and those pixels' uncertainty is an ordinary prediction's; glass next to them is left out."""
    from segstudio.core.review import UncertaintyGrid

    tissue = detect_tissue(slide, max_side=512)
    pred, _net = predictor()
    result = slide_predict.predict_slide(pred, slide, StoreSink(LabelStore(H, W, pyramid=False)), SETTINGS,
                                         tissue=tissue)
    grid = result.regions
    reference = Predictor(small_net(in_channels=3, classes=3, seed=1), META, device="cpu")
    expected = reference.predict(slide.read_region(0, 0, 0, W, H), SETTINGS).uncertainty.astype(np.float32)
    # Which pixels had every tile over them run: the blend weights of the tissue tiles sum to 1 there.
    plan = plan_tiles(H, W, SETTINGS.tile, SETTINGS.overlap, SETTINGS.align)
    ran = [o for o in plan.origins if tissue.any_in(o[0], o[1], plan.tile_h, plan.tile_w)]
    everywhere = np.zeros((H, W), int)
    for y, x in plan.origins:
        everywhere[y:y + plan.tile_h, x:x + plan.tile_w] += 1
    ran_count = np.zeros((H, W), int)
    for y, x in ran:
        ran_count[y:y + plan.tile_h, x:x + plan.tile_w] += 1
    full = (ran_count == everywhere) & (ran_count > 0)
    check = UncertaintyGrid(H, W, grid.side)
    check.add(0, 0, np.where(full, expected, -1))
    # Pixels whose missing tiles weigh under 1% (their far border) count too: a few percent more.
    assert (grid.counts >= check.counts).all() and grid.counts.sum() <= 1.1 * check.counts.sum()
    assert 0 < grid.counts.sum() < H * W // 2
    seen = check.counts > 0
    got, want = grid.sums[seen] / grid.counts[seen], check.sums[seen] / check.counts[seen]
    # Pixels next to glass tiles left out have probabilities that do not sum to 1; counted, they read as
    # doubt (a region mean of 0.02 where the ordinary prediction's is 0.0005).
    assert np.allclose(got, want, atol=0.002)


def test_slab_summary_is_the_same_from_device_tensors_and_host_arrays():
    """On a GPU the blended slab is a tensor: labels and the uncertainty (with -1 where a glass tile was
    left out) come out as from the host's arrays."""
    import torch

    rng = np.random.default_rng(3)
    probs = rng.dirichlet((1.0, 1.0, 1.0), size=(40, 60)).astype(np.float32).transpose(2, 0, 1).copy()
    probs[:, :, :10] *= 0.5  # next to a left-out tile: weights sum to a half
    probs[:, :5] = 0  # no tile ran
    pred, _net = predictor()
    host = slide_predict._summarise(pred, probs)
    device = slide_predict._summarise(pred, torch.from_numpy(probs))
    assert np.array_equal(host[0], device[0])
    assert np.allclose(host[1], device[1], atol=2e-3)
    assert (host[1][:5] == -1).all() and (host[1][5:, :10] == -1).all() and (host[1][5:, 10:] >= 0).all()
    assert (host[0][:5] == 0).all() and host[0][5:, :10].any()  # labels still where a tile ran


def test_a_slide_reaches_an_h_and_e_model_as_its_hematoxylin_as_an_image_would(tmp_path):
    """A model whose input is H&E's hematoxylin gets that channel from a slide too, scaled with the slide's
    levels of that channel, not a grey average of the colours."""
    from segstudio.core.model_fit import HE_STAIN_VECTORS
    from segstudio.engine.predict.model_input import ModelInput

    path = write_pyramid_ome(tmp_path / "he.ome.tif", 1024, 1024, levels=2, factor=4, tile=256,
                             patches=[TissuePatch(300, 300, 400, 400)])
    he = {"kind": "he", "stain_vectors": [list(v) for v in HE_STAIN_VECTORS]}
    norm = {"kind": "percentile", "low": 1.0, "high": 99.8}
    with Slide(path) as rgb:
        source = slide_predict.SlideSource.for_slide(rgb, 1, norm, tissue_only=True, definition=he)
        grey = slide_predict.SlideSource.for_slide(rgb, 1, norm, tissue_only=True)
        rows, cols = slice(250, 506), slice(250, 506)
        block = rgb.read_region(0, 250, 250, 256, 256)
        expected = ModelInput(block, 1, norm, he, levels=source.levels).region(slice(None), slice(None))
        np.testing.assert_allclose(source.region(rows, cols), expected, atol=1e-6)
        assert not np.allclose(source.region(rows, cols), grey.region(rows, cols), atol=0.05)


def test_a_boundary_output_never_enters_a_slides_class_probabilities(slide, tmp_path, monkeypatch):
    """A model whose last channel is a border map predicts a slide with the same labels as the same pixels
    held whole: the border channel is a sigmoid beside the classes' softmax, never a class."""
    from segstudio.models.checkpoint import ModelMeta

    class WithBorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = small_net(in_channels=3, classes=3, seed=1)
            self.config = {"in_channels": 3, "num_classes": 3}

        def forward(self, x):
            logits = self.net(x)
            loud = logits[:, :2].amax(dim=1, keepdim=True) + 8.0  # a border map louder than any class
            return torch.cat([logits[:, :2], loud], dim=1)

    classes = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [9, 9, 9]}]
    meta = ModelMeta(name="b", version=1, arch="unet", classes=classes, in_channels=3,
                     normalisation={"kind": "none"}, objects={"boundary_channel": 2})
    tissue = detect_tissue(slide, max_side=512)
    store = LabelStore(H, W, tmp_path / "labels.zarr", pyramid=False)
    sums = []
    real_summarise = slide_predict._summarise

    def summarise(predictor, probs):
        classes = np.asarray(probs[:2]).sum(axis=0)
        sums.append(classes[classes > 0.5])  # where every tile over the pixel ran
        return real_summarise(predictor, probs)

    monkeypatch.setattr(slide_predict, "_summarise", summarise)
    slide_predict.predict_slide(Predictor(WithBorder(), meta, device="cpu"), slide, StoreSink(store), SETTINGS,
                                tissue=tissue)
    full = np.concatenate(sums)
    # Where every tile ran the classes share all of the probability (the blend's weights sum to about
    # one); a border channel in their softmax would have taken nearly all of it.
    assert full.size > 100_000 and np.median(full) > 0.98
    got = store.read(0, 0, H, W)
    expected = Predictor(WithBorder(), meta, device="cpu").predict(slide.read_region(0, 0, 0, W, H), SETTINGS).labels
    assert set(np.unique(got)) <= {0, 1}
    inside = got > 0
    assert inside.sum() > 1000 and np.array_equal(got[inside], expected[inside])
