"""Fine-tuning a model with a boundary output: its classes learn from the masks, its border output learns the
borders of the instance maps exported with the images (drawn on the crop after augmentation, so they lie on
the moved objects' edges), and it is left alone where the dataset has no objects beyond the mask's patches.
Models without a border output train exactly as before, whatever objects the dataset holds."""
from __future__ import annotations

import json
import re

import numpy as np
import torch

from segstudio import synth
from segstudio.core.objects.instances import boundary_target
from segstudio.engine.training.config import TrainConfig
from segstudio.engine.training.data import CropDataset, LabelledImage, load_training_data
from segstudio.engine.training.loop import fine_tune
from segstudio.synth.nuclei import SynthParams
from tests.engine.training.test_loop import CLASSES, TINY_UNET, quick_config, save_base_model, write_dataset

# Small crowded nuclei: every 64^2 image has several that touch, so its objects split patches of the mask.
CROWDED = SynthParams(radius=(5.0, 7.0), coverage=(0.35, 0.42), cluster_fraction=(0.6, 0.85), touching=(0.75, 0.85))
NORMALISATION = {"kind": "percentile", "low": 1.0, "high": 99.8}
LEARNS = re.compile(r"learns where touching objects meet from (\d+) of (\d+) training images")


def save_boundary_base() -> str:
    from segstudio.core.paths import user_models_dir
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.library import ModelLibrary
    from segstudio.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=3, **TINY_UNET)
    meta = ModelMeta(name="borders", version=1, arch="unet", config=dict(model.config), classes=CLASSES,
                     in_channels=1, normalisation=NORMALISATION, objects={"boundary_channel": 2})
    save_checkpoint(user_models_dir() / "borders" / "v1.safetensors", model, meta)
    ModelLibrary().set_active(meta.id)
    return meta.id


def export_nuclei(root, n: int = 6, size: int = 64, *, objects: bool = True):
    """Generated nuclei written by Export to Dataset's own code: with their instance maps (as after View >
    Object View), or without (the export then keeps the mask's connected patches as the objects)."""
    from segstudio.core.dataset import ExportItem, export_many
    from segstudio.core.labels import ClassTable

    items = []
    for seed in range(n):
        image, mask, ids = synth.generate_nuclei_image(seed, height=size, width=size, params=CROWDED)
        items.append(ExportItem(pixels=image, mask=mask, source=f"synthetic:crowded-{seed}",
                                objects=ids if objects else None))
    export_many(root, items, ClassTable.from_list(CLASSES))
    return root


def train_as_the_window_does(base: str, data, capsys, steps: int = 30) -> list[dict]:
    """`segstudio train` with the arguments the Fine-tune dialog's config turns into; its JSON-lines events."""
    from segstudio.cli import main

    config = TrainConfig(base=base, data=[str(data)], steps=steps, lr=1e-2, batch_size=4, crop=48, device="cpu",
                         seed=0, num_workers=0, hand_weight=1.0)
    capsys.readouterr()
    assert main(["train", *config.to_argv(), "--progress", "jsonl"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def _border_row(model_id: str) -> torch.Tensor:
    from segstudio.models.library import ModelLibrary

    model, _meta = ModelLibrary().load(model_id)
    return model.head.weight[2].detach().clone()


# --- fine-tunes ----------------------------------------------------------------------------------------
def test_the_border_output_learns_the_borders_of_the_objects_exported_with_the_images(tmp_path, capsys):
    from segstudio.engine.training.objective import boundary_loss
    from segstudio.models.library import ModelLibrary

    base = save_boundary_base()
    data = export_nuclei(tmp_path / "nuclei")
    found = train_as_the_window_does(base, data, capsys)
    start, done = found[0], found[-1]
    (learning, images), = [LEARNS.search(n).groups() for n in start["notes"] if LEARNS.search(n)]
    assert int(learning) == int(images) == start["train_images"]
    child, meta = ModelLibrary().load(done["version"])
    assert meta.objects == {"boundary_channel": 2}
    # The border row of the last layer moved by far more than weight decay moves it...
    assert not torch.allclose(child.head.weight[2], _border_row(base), rtol=0.05, atol=1e-3)
    # ...and towards the borders: on the training images, the new version's border loss is the lower.
    loaded = load_training_data([data], in_channels=1, normalisation=NORMALISATION, num_classes=2,
                                val_whole_max_pixels=1 << 20, borders=True)
    parent, _ = ModelLibrary().load(base)

    def loss_of(model) -> float:
        with torch.no_grad():
            logits = model(torch.stack([item.image for item in loaded.train]))[:, 2]
        targets = torch.stack([torch.from_numpy(boundary_target(item.objects)).float() for item in loaded.train])
        return float(boundary_loss(logits, targets))

    assert loss_of(child) < loss_of(parent) - 0.05, (loss_of(child), loss_of(parent))
    # The images set aside to check it have objects too: both versions' borders are scored on them.
    for metrics in (done["parent_metrics"], done["child_metrics"]):
        assert metrics["border_images"] == start["val_images"] and 0 <= metrics["border_dice"] <= 1


def test_objects_that_are_only_the_masks_patches_leave_the_border_output_alone(tmp_path, capsys):
    """Exported without found objects, a dataset's instance maps are the mask's connected patches: touching
    nuclei painted as one patch are one object there, and learning that would undo the border output."""
    base = save_boundary_base()
    data = export_nuclei(tmp_path / "patches", objects=False)
    found = train_as_the_window_does(base, data, capsys)
    assert any(n.startswith("No training image has objects that split touching ones") for n in found[0]["notes"])
    child = _border_row(found[-1]["version"])
    assert "border_dice" not in found[-1]["child_metrics"]
    # No border loss: the row moved by weight decay alone, while the classes' rows learnt.
    assert torch.allclose(child, _border_row(base), rtol=0.05, atol=1e-3)


def test_the_new_version_keeps_its_border_output_and_two_classes(tmp_path):
    from segstudio.engine.predict import Predictor, PredictSettings
    from segstudio.models.library import ModelLibrary

    base = save_boundary_base()
    parent, _ = ModelLibrary().load(base)
    data = write_dataset(tmp_path / "blobs")  # entries exported before objects were kept: no instance maps
    result = fine_tune(quick_config(base, data, steps=40))
    assert result.status == "done", result
    child, meta = ModelLibrary().load(result.version)
    assert meta.objects == {"boundary_channel": 2}
    assert [c["name"] for c in meta.classes] == ["background", "nucleus"]  # no "class 2" for the border output
    # The border output had no loss: its row of the last layer moved by weight decay alone, nothing learnt.
    before, after = parent.head.weight[2], child.head.weight[2]
    assert torch.allclose(after, before, rtol=0.05, atol=1e-3)
    assert not torch.allclose(child.head.weight[1], parent.head.weight[1], rtol=0.05, atol=1e-3)
    image = (np.random.default_rng(0).random((48, 48)) * 4000).astype(np.uint16)
    found = Predictor(child, meta, device="cpu").predict(image, PredictSettings(tile=48))
    assert set(np.unique(found.labels)) <= {0, 1} and found.boundary is not None


def test_a_mask_using_the_border_outputs_number_is_refused_naming_its_image(tmp_path):
    """Output 2 is the border map, not a third class: a mask painting class 2 names its image instead of
    failing somewhere inside the loss."""
    import pytest

    from segstudio.engine.training.errors import TrainingError

    base = save_boundary_base()
    data = write_dataset(tmp_path / "class2", extra_label=2)
    with pytest.raises(TrainingError, match=r"blob11\.tif.*class id 2.*only 2 classes"):
        fine_tune(quick_config(base, data, steps=2))


def test_a_model_without_a_border_output_trains_the_same_with_or_without_objects(tmp_path):
    from segstudio.models.library import ModelLibrary

    base = save_base_model()
    results = [fine_tune(quick_config(base, export_nuclei(tmp_path / name, objects=objects), steps=12))
               for name, objects in (("with", True), ("without", False))]
    assert not any("border" in note for result in results for note in result.notes)
    (a, _), (b, _) = (ModelLibrary().load(result.version) for result in results)
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(wa, wb, rtol=0, atol=1e-6), name


# --- crops ---------------------------------------------------------------------------------------------
def _touching_objects(size: int = 40) -> np.ndarray:
    """Three objects: two squares side by side (they touch along a line), one apart."""
    ids = np.zeros((size, size), np.int32)
    ids[8:24, 6:18] = 1
    ids[8:24, 18:30] = 2
    ids[28:36, 28:36] = 3
    return ids


def test_border_targets_lie_on_the_edges_of_the_moved_objects():
    """Each object has its own class here, so the class ids that come out of the augmentation are the moved
    instance map itself: the border target must be exactly the border drawn on them, wherever it counts."""
    ids = _touching_objects()
    item = LabelledImage("test:touching", torch.from_numpy(ids.astype(np.float32))[None], ids.astype(np.uint8),
                         np.zeros(ids.shape, bool), objects=ids)
    crops = CropDataset([item], 48, augment=True, strength=1.0, hand_weight=1.0, seed=0, borders=True)
    rotated = 0
    for k in range(40):
        _image, label, weight, border, border_weight = crops[k]
        counted = border_weight > 0
        valid = (weight > 0).numpy()
        assert torch.equal(border[counted], torch.from_numpy(boundary_target(label.numpy())).float()[counted])
        assert torch.all(border[label == 0] == 0)  # borders lie on objects, never on the background
        # A pixel next to padding or a rotated-in corner does not count: there an edge of the crop looks
        # like an edge of an object.
        near_invalid = np.zeros_like(valid)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                near_invalid |= ~np.roll(np.pad(valid, 1), (dy, dx), axis=(0, 1))[1:-1, 1:-1]
        assert not counted.numpy()[near_invalid].any()
        # The line where the two squares meet (two pixels wide) is a border wherever it is counted.
        meet = (label == 1) & ((torch.roll(label, 1, 0) == 2) | (torch.roll(label, -1, 1) == 2) |
                               (torch.roll(label, 1, 1) == 2) | (torch.roll(label, -1, 0) == 2))
        assert torch.all(border[meet & counted] == 1) and bool((meet & counted).any())
        rotated += int(valid.sum()) < ids.size  # a small-angle rotation lost some pixels of the image
    assert rotated > 5


def test_crops_of_images_without_objects_carry_no_border_weight():
    labels = (_touching_objects() > 0).astype(np.uint8)
    item = LabelledImage("test:plain", torch.from_numpy(labels.astype(np.float32))[None], labels,
                         np.zeros(labels.shape, bool))
    _image, _label, weight, border, border_weight = CropDataset(
        [item], 48, augment=True, strength=1.0, hand_weight=1.0, seed=0, borders=True)[0]
    assert weight.sum() > 0 and border.sum() == 0 and border_weight.sum() == 0
    assert len(CropDataset([item], 48, augment=True, strength=1.0, hand_weight=1.0, seed=0)[0]) == 3


def test_chunked_copies_give_the_same_border_targets_as_images_in_memory(tmp_path):
    import zarr

    data = export_nuclei(tmp_path / "nuclei", n=4)
    export_nuclei(data, n=1, objects=False)  # one entry whose objects are only the mask's patches
    kwargs = dict(in_channels=1, normalisation=NORMALISATION, num_classes=2, val_whole_max_pixels=1 << 20,
                  chunk_dir=tmp_path / "chunks", borders=True)
    whole = load_training_data([data], **kwargs)
    chunked = load_training_data([data], in_memory_max_pixels=0, **kwargs)
    items = whole.train + whole.val
    assert sum(item.has_objects for item in items) == 3  # entry 0 is in both exports: its objects are patches now
    assert [i.has_objects for i in chunked.train + chunked.val] == [i.has_objects for i in items]
    copies = {path.name: "objects" in zarr.open_group(path, mode="r") for path in (tmp_path / "chunks").iterdir()}
    assert sorted(copies.values()) == [False, True, True, True]
    for held, in_memory in zip(chunked.val, whole.val):  # the images set aside to check: read whole
        objects = held.loaded(keep_raw_above=1 << 20).objects
        assert (objects is None) if in_memory.objects is None else np.array_equal(objects, in_memory.objects)
    a = CropDataset(whole.train, 40, augment=True, strength=1.0, hand_weight=2.0, seed=3, borders=True)
    b = CropDataset(chunked.train, 40, augment=True, strength=1.0, hand_weight=2.0, seed=3, borders=True)
    assert len(a) == len(b)
    for k in range(len(a)):
        for ta, tb in zip(a[k], b[k]):
            assert torch.allclose(ta, tb) if ta.is_floating_point() else torch.equal(ta, tb)
    assert any(a[k][4].sum() > 0 for k in range(len(a)))


def test_the_border_score_is_the_same_for_images_checked_whole_or_tile_by_tile(tmp_path):
    """Images too large for one pass are checked through the Predictor; their borders count the same way."""
    from segstudio.engine.predict import prepare_input
    from segstudio.engine.training.evaluate import Evaluator
    from segstudio.models.library import ModelLibrary

    model, meta = ModelLibrary().load(save_boundary_base())
    with torch.no_grad():
        model.head.bias[2] = 20.0  # a border everywhere: the score is then known, 2 |borders| / (pixels + |borders|)
    image, mask, ids = synth.generate_nuclei_image(3, height=64, width=64, params=CROWDED)
    tensor = torch.from_numpy(prepare_input(image, 1, NORMALISATION).astype(np.float32))
    hand = np.zeros(mask.shape, bool)
    evaluator = Evaluator(meta, CLASSES, 3, torch.device("cpu"), None, 1 << 20, amp=False)
    whole, tiled, plain = (evaluator(model, [LabelledImage("test:n", tensor, mask, hand, raw, objects)])
                           for raw, objects in ((None, ids), (image, ids), (None, None)))
    borders = int(boundary_target(ids).sum())
    expected = 2 * borders / (ids.size + borders)
    assert whole["border_dice"] == tiled["border_dice"] == expected and whole["border_images"] == 1
    assert "border_dice" not in plain  # an image without objects has no border score


def test_objects_numbered_past_16_million_keep_their_borders():
    """A whole slide's instance map numbers its objects into the millions; neighbours 2**24 and 2**24 + 1 are
    the same number in float32, where boundary_target compares them."""
    from segstudio.engine.training.borders import border_targets

    ids = _touching_objects()
    big = torch.from_numpy(np.where(ids > 0, ids + 2**24 - 1, 0).astype(np.int64))
    target, counted = border_targets(big, torch.ones(ids.shape))
    assert torch.equal(target, torch.from_numpy(boundary_target(ids)).float())
    assert counted[1:-1, 1:-1].all() and not counted[0].any()  # the crop's own edge never counts
