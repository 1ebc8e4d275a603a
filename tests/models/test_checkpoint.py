import json
import os
import pickle

import pytest
import torch

from segstudio.models import checkpoint
from segstudio.models.checkpoint import (
    CheckpointError,
    ModelMeta,
    import_pt,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]},
           {"id": 2, "name": "membrane", "color": [0, 255, 0]}]


def _meta(**overrides):
    values = dict(name="nuclei-unet", version=3, arch="unet", classes=CLASSES, parent="nuclei-unet/v2",
                  training={"epochs": 4, "dataset": "abc123"}, metrics={"val_dice": 0.81},
                  description="fine-tuned on March slides")
    values.update(overrides)
    return ModelMeta(**values)


def test_metadata_round_trips_through_the_file_header(build_tiny, tmp_path):
    model = build_tiny("unet", in_channels=2, num_classes=3)
    path = tmp_path / "m.safetensors"
    stored = save_checkpoint(path, model, _meta())
    assert stored.config == model.config and stored.in_channels == 2
    meta = read_meta(path)
    assert meta == stored
    assert meta.id == "nuclei-unet/v3"
    assert meta.parent == "nuclei-unet/v2" and meta.metrics == {"val_dice": 0.81}
    assert meta.normalisation == {"kind": "percentile", "low": 1.0, "high": 99.8}
    assert meta.num_classes == 3
    # Plain safetensors: any safetensors reader sees the tensors and the JSON text.
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
        assert set(handle.keys()) == set(model.state_dict())
    assert json.loads(header["segstudio_meta"])["arch"] == "unet"


def test_loaded_model_is_in_eval_mode_on_the_requested_device(build_tiny, tmp_path):
    model = build_tiny("fcn16s")
    path = tmp_path / "fcn.safetensors"
    save_checkpoint(path, model, _meta(arch="fcn16s"))
    loaded, meta = load_checkpoint(path, device="cpu")
    assert not loaded.training and meta.arch == "fcn16s" and loaded.arch == "fcn16s"
    assert next(loaded.parameters()).device.type == "cpu"


def test_metadata_must_match_the_model(build_tiny, tmp_path):
    with pytest.raises(ValueError, match="deconvnet"):
        save_checkpoint(tmp_path / "x.safetensors", build_tiny("unet"), _meta(arch="deconvnet"))
    with pytest.raises(ValueError, match=".safetensors"):
        save_checkpoint(tmp_path / "x.pt", build_tiny("unet"), _meta())


def test_failed_write_leaves_the_previous_file_intact(build_tiny, tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, build_tiny("unet", seed=1), _meta(version=1))
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", broken_replace)
    with pytest.raises(OSError):
        save_checkpoint(path, build_tiny("unet", seed=2), _meta(version=2))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]  # no temporary file left behind


def test_non_safetensors_files_are_refused_with_the_file_name(tmp_path, build_tiny):
    pt = tmp_path / "weights.pt"
    torch.save(build_tiny("unet").state_dict(), pt)
    with pytest.raises(CheckpointError, match="weights.pt") as info:
        load_checkpoint(pt)
    assert "safetensors" in info.value.reason
    fake = tmp_path / "notes.safetensors"
    fake.write_text("these are my notes, not a model")
    with pytest.raises(CheckpointError, match="notes.safetensors.*not a safetensors file"):
        read_meta(fake)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.safetensors"):
        load_checkpoint(empty)


def test_plain_safetensors_without_metadata_is_explained(tmp_path, build_tiny):
    from safetensors.torch import save_file

    model = build_tiny("unet")
    path = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match="without segstudio model metadata"):
        load_checkpoint(path)
    imported = import_pt(path, "unet", in_channels=1, num_classes=3, base_channels=4, depth=3)
    x = torch.randn(1, 1, 24, 24)
    with torch.no_grad():
        assert torch.equal(imported(x), model.eval()(x))


def test_import_pt_loads_wrapped_and_prefixed_state_dicts(tmp_path, build_tiny):
    model = build_tiny("deeplabv3plus").eval()
    path = tmp_path / "trained.pth"
    # As saved by a DistributedDataParallel training script.
    torch.save({"epoch": 12, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    imported = import_pt(path, "deeplabv3plus", in_channels=1, num_classes=3, backbone="resnet18", width=1 / 16)
    assert not imported.training
    x = torch.randn(1, 1, 40, 40)
    with torch.no_grad():
        assert torch.equal(imported(x), model(x))


def test_import_pt_names_the_file_when_weights_do_not_fit(tmp_path, build_tiny):
    path = tmp_path / "other.pt"
    torch.save(build_tiny("unet").state_dict(), path)
    with pytest.raises(CheckpointError, match="other.pt.*do not fit"):
        import_pt(path, "unet", in_channels=1, num_classes=3, base_channels=8, depth=3)


class CreatesMarkerWhenUnpickled:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        # Unpickling calls open(marker, "w"): stand-in for arbitrary code in a downloaded .pt file.
        return (open, (self.marker, "w"))


def test_import_pt_refuses_files_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"enc1.block1.conv.weight": CreatesMarkerWhenUnpickled(marker)}, path)

    # The payload is live: an ordinary unpickle would run it.
    control_marker = tmp_path / "control"
    control = tmp_path / "control.pt"
    torch.save({"x": CreatesMarkerWhenUnpickled(control_marker)}, control)
    torch.load(control, weights_only=False)
    assert control_marker.exists()

    with pytest.raises(CheckpointError, match="evil.pt.*refused") as info:
        import_pt(path, "unet", in_channels=1, num_classes=2)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    assert not marker.exists()


def test_import_pt_rejects_garbage_with_the_file_name(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"\x00\x01 not a torch file")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        import_pt(path, "unet", in_channels=1, num_classes=2)
    with pytest.raises(CheckpointError, match="missing.pth.*not found"):
        import_pt(tmp_path / "missing.pth", "unet", in_channels=1, num_classes=2)


def test_unknown_architecture_in_a_file_is_a_clear_error(tmp_path, build_tiny):
    path = tmp_path / "future.safetensors"
    save_checkpoint(path, build_tiny("unet"), _meta())
    # Rewrite the header as a newer program might have: same weights, an architecture we do not know.
    from safetensors.torch import load_file, save_file

    meta = read_meta(path).to_dict()
    meta["arch"] = "swin-unetr"
    save_file(load_file(str(path)), str(path), metadata={"format": "segstudio-model", "format_version": "1",
                                                         "segstudio_meta": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="future.safetensors.*swin-unetr.*unet"):
        load_checkpoint(path)


def test_checkpoint_ignores_the_training_time_imagenet_file(tmp_path, build_tiny):
    # The weights file named at training time need not exist where the model is used later.
    model = build_tiny("pspnet")
    model.config["pretrained_backbone"] = str(tmp_path / "gone" / "resnet18.pth")
    path = tmp_path / "psp.safetensors"
    save_checkpoint(path, model, _meta(arch="pspnet"))
    loaded, _ = load_checkpoint(path)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_metadata_never_lists_more_classes_than_the_model_has_outputs(build_tiny, tmp_path):
    three = [{"id": i, "name": n, "color": [i, i, i]} for i, n in enumerate(("background", "nucleus", "gone"))]
    with pytest.raises(ValueError, match="3 classes but the model has 2 outputs"):
        save_checkpoint(tmp_path / "x.safetensors", build_tiny("unet", num_classes=2), _meta(classes=three))
    assert not (tmp_path / "x.safetensors").exists()
    # A file written before the check (a 2-output model whose metadata lists 3 classes, out of order):
    # reading it lists only the classes of its outputs, in output order.
    from safetensors.torch import save

    model = build_tiny("unet", num_classes=2)
    stale = _meta(classes=three[::-1], config=dict(model.config), arch="unet", in_channels=1)
    metadata = {"format": checkpoint.FORMAT, "format_version": str(checkpoint.FORMAT_VERSION),
                "segstudio_meta": json.dumps(stale.to_dict())}
    path = tmp_path / "old.safetensors"
    path.write_bytes(save(model.state_dict(), metadata=metadata))
    assert [c["name"] for c in read_meta(path).classes] == ["background", "nucleus"]
    _loaded, meta = load_checkpoint(path)
    assert len(meta.classes) == meta.num_classes == 2
