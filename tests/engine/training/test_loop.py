"""Fine-tuning: a new version that is really better, lineage, the promotion gate, and no trace of failures.

The datasets are written directly in the dataset-folder layout (bright blobs on a dark noisy background,
48 px images) and the networks are 2-level U-Nets with 4 base channels, so every run takes seconds on a CPU.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2")
tifffile = pytest.importorskip("tifffile")

from segstudio.engine.training import events  # noqa: E402
from segstudio.engine.training.config import TrainConfig  # noqa: E402
from segstudio.engine.training.errors import TrainingError  # noqa: E402
from segstudio.engine.training.loop import fine_tune  # noqa: E402

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]
TINY_UNET = {"depth": 2, "base_channels": 4}


# --- fixtures: data and models -------------------------------------------------------------------
def blob_image(rng: np.random.Generator, size: int = 48, *, invert: bool = False):
    """uint16 image with 2-4 bright disks on dark noise, and its exact mask (inverted on request)."""
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.integers(6, size - 6, size=2)
        r = rng.uniform(4, 8)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    pixels = rng.normal(300, 60, (size, size)) + mask * rng.uniform(900, 1400)
    pixels = np.clip(pixels, 0, 65535).astype(np.uint16)
    return pixels, (1 - mask if invert else mask).astype(np.uint8)


def write_dataset(root: Path, n: int = 12, *, seed: int = 0, size: int = 48, val_every: int | None = 4,
                  invert_train: bool = False, hand_fraction: float = 0.0, extra_label: int | None = None) -> Path:
    """A dataset folder in the segstudio layout. Entry i is "val" when i % val_every == 0 (the manifest's
    split field is what training honours); val_every=None puts everything in "train"."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "masks", "hand"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n):
        split = "val" if val_every and i % val_every == 0 else "train"
        pixels, mask = blob_image(rng, size, invert=invert_train and split == "train")
        if extra_label is not None and i == n - 1:
            mask[0, 0] = extra_label
        sha = hashlib.sha256(pixels.tobytes() + str(pixels.shape).encode() + b"uint16").hexdigest()
        eid = sha[:16]
        hand = (rng.random(mask.shape) < hand_fraction).astype(np.uint8)
        tifffile.imwrite(root / "images" / f"{eid}.tif", pixels)
        cv2.imwrite(str(root / "masks" / f"{eid}.png"), mask)
        cv2.imwrite(str(root / "hand" / f"{eid}.png"), hand)
        entries.append({
            "id": eid, "image": f"images/{eid}.tif", "mask": f"masks/{eid}.png", "hand": f"hand/{eid}.png",
            "source": f"/data/blob{i}.tif", "sha256": sha, "model_version": None,
            "hand_fraction": float(hand.mean()), "split": split, "height": size, "width": size,
            "channels": 1, "dtype": "uint16", "updated": "2026-01-01T00:00:00+00:00",
        })
    manifest = {"format": "segstudio-dataset", "version": 1, "classes": CLASSES, "entries": entries}
    (root / "dataset.json").write_text(json.dumps(manifest))
    return root


def save_base_model(name: str = "blobs", version: int = 1, *, seed: int = 0, activate: bool = True) -> str:
    """A randomly initialised tiny U-Net saved into the user library; returns its id."""
    from segstudio.core.paths import user_models_dir
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.library import ModelLibrary
    from segstudio.models.registry import build_model

    torch.manual_seed(seed)
    model = build_model("unet", in_channels=1, num_classes=2, **TINY_UNET)
    meta = ModelMeta(name=name, version=version, arch="unet", config=dict(model.config), classes=CLASSES,
                     in_channels=1, normalisation={"kind": "percentile", "low": 1.0, "high": 99.8})
    path = user_models_dir() / name / f"v{version}.safetensors"
    save_checkpoint(path, model, meta)
    if activate:
        ModelLibrary().set_active(meta.id)
    return meta.id


def library_snapshot() -> dict[str, str]:
    """Every file under the user data folder (models, settings) with its content hash."""
    from segstudio.core.paths import user_data_dir

    root = user_data_dir()
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_library_unchanged(before: dict[str, str]) -> None:
    after = library_snapshot()
    assert after == before, f"library changed: {sorted(set(after) ^ set(before)) or 'contents differ'}"


def active_id() -> str | None:
    from segstudio.models.library import ModelLibrary

    return ModelLibrary().active_id()


def quick_config(base: str, data: Path, **overrides) -> TrainConfig:
    settings = dict(base=base, data=[data], steps=30, lr=1e-2, batch_size=4, crop=48, device="cpu", seed=0,
                    num_workers=0, progress_interval_s=0.0, hand_weight=1.0)
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture
def blobs(tmp_path):
    data = write_dataset(tmp_path / "blobs-data")
    base = save_base_model()
    return base, data


# --- the fine-tune -------------------------------------------------------------------------------
def test_fine_tune_beats_random_parent_and_records_lineage(blobs):
    from segstudio.core.dataset import manifest_hash
    from segstudio.models.checkpoint import read_meta
    from segstudio.models.library import ModelLibrary

    base, data = blobs
    parent_path = ModelLibrary().find(base).path
    parent_bytes = parent_path.read_bytes()
    progress = []
    result = fine_tune(quick_config(base, data, steps=60), progress=progress.append)

    assert result.status == "done" and result.version == "blobs/v2"
    parent_iou = result.parent_metrics["mean_iou"]
    child_iou = result.child_metrics["mean_iou"]
    assert child_iou > parent_iou + 0.2, (parent_iou, child_iou)
    assert child_iou > 0.6
    assert result.promoted and active_id() == "blobs/v2"
    assert parent_path.read_bytes() == parent_bytes  # the parent is never touched

    meta = read_meta(result.path)
    assert meta.parent == base and meta.version == 2 and meta.name == "blobs"
    assert meta.training["datasets"][0]["manifest_hash"] == manifest_hash(data)
    assert meta.training["settings"]["lr"] == 1e-2 and meta.training["steps"] == 60
    assert meta.metrics["val"]["mean_iou"] == pytest.approx(child_iou)
    assert meta.metrics["parent_val"]["mean_iou"] == pytest.approx(parent_iou)
    assert ModelLibrary().lineage("blobs/v2") == ["blobs/v2", "blobs/v1"]

    kinds = [e.kind for e in progress]
    assert kinds[0] == "start" and kinds[1] == "evaluated" and kinds[-1] == "done"
    assert "step" in kinds and "epoch" in kinds
    steps = [e for e in progress if isinstance(e, events.StepProgress)]
    assert [s.step for s in steps] == list(range(1, 61))  # interval 0: every step reported
    assert all(s.steps == 60 and s.eta_s >= 0 and s.lr > 0 for s in steps)
    epoch = [e for e in progress if isinstance(e, events.EpochProgress)][-1]
    assert set(epoch.val["iou"]) == {"background", "nucleus"}
    assert progress[-1].child_metrics["mean_iou"] == pytest.approx(child_iou)
    for event in progress:  # every event is plain JSON data and reads back as itself
        assert events.from_json(event.to_json()) == event
    json.dumps([e.to_dict() for e in progress])


def test_weaker_child_is_saved_but_not_promoted_unless_forced(tmp_path):
    good_data = write_dataset(tmp_path / "good")
    base = save_base_model()
    first = fine_tune(quick_config(base, good_data, steps=40))
    assert first.promoted and active_id() == first.version
    # Training masks inverted, validation masks right: the child learns the wrong thing.
    misleading = write_dataset(tmp_path / "misleading", seed=1, invert_train=True)

    child = fine_tune(quick_config(first.version, misleading, steps=20))
    assert child.status == "done" and child.version == "blobs/v3"
    assert child.child_metrics["mean_iou"] < child.parent_metrics["mean_iou"]
    assert not child.promoted and active_id() == first.version
    assert child.path.is_file()

    forced = fine_tune(quick_config(first.version, misleading, steps=10, force_promote=True))
    assert forced.child_metrics["mean_iou"] < forced.parent_metrics["mean_iou"]
    assert forced.promoted and active_id() == forced.version == "blobs/v4"


def test_new_family_name_and_no_val_split_holds_out_by_hash(tmp_path):
    data = write_dataset(tmp_path / "all-train", n=10, val_every=None)
    base = save_base_model()
    progress = []
    result = fine_tune(quick_config(base, data, steps=4, name="blobs-lab2"), progress=progress.append)
    assert result.version == "blobs-lab2/v1"
    start = progress[0]
    assert isinstance(start, events.Started)
    assert start.val_source == "holdout" and start.val_images >= 1
    assert start.val_images + start.train_images == 10
    assert any("8 train the new model, 2 are set aside to check it" in n for n in start.notes)
    assert result.child_metrics["images"] == start.val_images


def test_large_validation_images_go_through_the_predictor_with_the_same_scores(blobs):
    base, data = blobs
    direct = fine_tune(quick_config(base, data, steps=20))
    tiled = fine_tune(quick_config(base, data, steps=20, val_whole_max_pixels=0))  # every image "large"
    assert tiled.child_metrics["loss"] is None and direct.child_metrics["loss"] is not None
    assert tiled.child_metrics["images"] == direct.child_metrics["images"] > 0
    for which in ("parent_metrics", "child_metrics"):
        a, b = getattr(direct, which), getattr(tiled, which)
        assert a["mean_iou"] == pytest.approx(b["mean_iou"], abs=0.02), which


# --- failures leave nothing behind -----------------------------------------------------------------
def test_cancel_stops_cleanly_and_writes_nothing(blobs):
    base, data = blobs
    before = library_snapshot()
    progress = []
    result = fine_tune(quick_config(base, data, steps=500), progress=progress.append,
                       cancel=lambda: sum(e.kind == "step" for e in progress) >= 3)
    assert result.status == "cancelled" and result.version is None
    assert progress[-1] == events.Cancelled()
    assert sum(e.kind == "step" for e in progress) == 3
    assert_library_unchanged(before)
    assert active_id() == base


def test_non_finite_loss_stops_with_a_message_and_writes_nothing(blobs):
    base, data = blobs
    before = library_snapshot()
    progress = []
    with pytest.raises(TrainingError, match="NaN or infinite"):
        fine_tune(quick_config(base, data, steps=200, lr=1e12), progress=progress.append)
    assert isinstance(progress[-1], events.Failed) and "nothing was saved" in progress[-1].message
    assert_library_unchanged(before)
    assert active_id() == base


class _OomWhenBatchAbove:
    """Library wrapper whose models raise the CUDA out-of-memory error for training batches above a limit."""

    def __init__(self, limit: int):
        from segstudio.models.library import ModelLibrary

        self.inner = ModelLibrary()
        self.limit = limit
        self.batches: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def load(self, key, device="cpu"):
        model, meta = self.inner.load(key, device=device)

        def hook(module, inputs):
            if module.training:
                self.batches.append(inputs[0].shape[0])
                if inputs[0].shape[0] > self.limit:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        model.register_forward_pre_hook(hook)
        return model, meta


def test_out_of_memory_retries_with_half_the_batch(blobs):
    base, data = blobs
    progress = []
    library = _OomWhenBatchAbove(limit=2)
    result = fine_tune(quick_config(base, data, steps=6, batch_size=8), progress=progress.append, library=library)
    ooms = [e for e in progress if isinstance(e, events.OutOfMemory)]
    assert [e.batch for e in ooms] == [4, 2]
    assert "batch 4" in ooms[0].action
    assert result.status == "done" and result.batch_size == 2 and result.steps == 6
    assert max(library.batches[-6:]) <= 2


def test_out_of_memory_at_every_size_fails_and_writes_nothing(blobs):
    base, data = blobs
    before = library_snapshot()
    progress = []
    with pytest.raises(TrainingError, match="Out of memory"):
        fine_tune(quick_config(base, data, steps=6, batch_size=2), progress=progress.append,
                  library=_OomWhenBatchAbove(limit=0))
    actions = [e.action for e in progress if isinstance(e, events.OutOfMemory)]
    assert any("batch 1" in a for a in actions) and any("crop" in a for a in actions)
    assert isinstance(progress[-1], events.Failed)
    assert_library_unchanged(before)


def test_bad_mask_label_is_reported_by_entry(tmp_path):
    data = write_dataset(tmp_path / "bad", extra_label=5)
    base = save_base_model()
    before = library_snapshot()
    with pytest.raises(TrainingError, match="class id 5.*only 2 classes"):
        fine_tune(quick_config(base, data, steps=2))
    assert_library_unchanged(before)


def test_unknown_base_model_lists_the_choices(blobs):
    _, data = blobs
    with pytest.raises(TrainingError, match="blobs/v1"):
        fine_tune(quick_config("no-such-model", data, steps=2))


# --- frozen encoder --------------------------------------------------------------------------------
def test_frozen_encoder_keeps_weights_and_running_stats(blobs):
    from segstudio.models.library import ModelLibrary

    base, data = blobs
    parent, _ = ModelLibrary().load(base)
    result = fine_tune(quick_config(base, data, steps=8, freeze_encoder=True, force_promote=True))
    child, _ = ModelLibrary().load(result.version)
    enc_names = {name for name, _ in parent.encoder_modules()}
    assert enc_names == {"enc1", "enc2"}
    p_state, c_state = parent.state_dict(), child.state_dict()
    enc_keys = [k for k in p_state if k.split(".")[0] in enc_names]
    assert any(k.endswith("running_mean") for k in enc_keys)
    for key in enc_keys:
        assert torch.equal(p_state[key], c_state[key]), key
    changed = [k for k in p_state if k.split(".")[0] not in enc_names and not torch.equal(p_state[k], c_state[k])]
    assert any(k.startswith("dec1") for k in changed) and any(k.startswith("head") for k in changed)


def test_freezing_a_model_that_declares_no_encoder_is_refused_before_training(blobs, monkeypatch):
    from segstudio.models.unet import UNet

    base, data = blobs  # a U-Net, here made to declare an empty encoder
    monkeypatch.setattr(UNet, "encoder_modules", lambda self: [])
    before = library_snapshot()
    with pytest.raises(TrainingError, match="has no encoder to freeze"):
        fine_tune(quick_config(base, data, steps=2, freeze_encoder=True))
    assert_library_unchanged(before)


@pytest.mark.parametrize("val_every", [None, 1], ids=["one-train-image", "one-val-image"])
def test_a_single_labelled_image_trains_and_validates_on_a_held_out_strip(tmp_path, val_every):
    """A first fine-tune often has one corrected image; its last fifth checks the new model."""
    from segstudio.engine.training.data import load_training_data

    data = write_dataset(tmp_path / "one", n=1, size=64, val_every=val_every)
    loaded = load_training_data([data], in_channels=1, normalisation={"kind": "percentile", "low": 1.0, "high": 99.8},
                                num_classes=2, val_whole_max_pixels=1 << 20)
    assert loaded.val_source == "strip" and len(loaded.train) == len(loaded.val) == 1
    (train,), (val,) = loaded.train, loaded.val
    assert train.hw == (64, 51) and val.hw == (64, 13)  # disjoint columns covering the image
    full_labels = np.concatenate([train.labels, val.labels], axis=1)
    from segstudio.core.dataset import load_entry, load_manifest

    _, mask, _ = load_entry(data, load_manifest(data)["entries"][0])
    np.testing.assert_array_equal(full_labels, mask)

    base = save_base_model()
    progress = []
    result = fine_tune(quick_config(base, data, steps=3), progress=progress.append)
    assert result.version == "blobs/v2"
    assert progress[0].val_source == "strip" and any("checked on the other 20%" in n for n in progress[0].notes)


def test_a_dataset_listing_a_class_the_model_lacks_gives_a_version_listing_only_its_outputs(tmp_path):
    """A dataset exported before a class was removed still names it; the new version must not."""
    from segstudio.models.library import ModelLibrary

    data = write_dataset(tmp_path / "stale", n=4)
    manifest = json.loads((data / "dataset.json").read_text())
    manifest["classes"] = [CLASSES[1], {"id": 2, "name": "removed", "color": [0, 255, 0]}, CLASSES[0]]
    (data / "dataset.json").write_text(json.dumps(manifest))
    base = save_base_model("stale")
    result = fine_tune(quick_config(base, data, steps=2, force_promote=True))
    meta = ModelLibrary().find(result.version).meta
    assert [c["name"] for c in meta.classes] == ["background", "nucleus"]  # output order, no "removed"
