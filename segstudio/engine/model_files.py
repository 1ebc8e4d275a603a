"""Models that travel between labs: export a version as files, import files as a version of your library.

Export writes the pair `<name>-v<N>.safetensors` (weights, with the metadata in its header) and
`<name>-v<N>.json` (the same metadata, readable: network, classes, input, training record), and on request
an ONNX file for other tools. Import takes a segstudio .safetensors, or weights from elsewhere (.pt/.pth,
read with torch.load(weights_only=True), or plain .safetensors) with the metadata .json beside them; the
weights are checked against the network the metadata describes before anything is saved, and the model
becomes version 1 of its name in the user library (another name when that one is taken), never replacing
a model in use.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from segstudio.core.storage import atomic_write_bytes
from segstudio.models.checkpoint import CheckpointError, ModelMeta, import_pt, load_checkpoint, read_meta
from segstudio.models.metadata import MetadataError, parse_json

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


class ModelFileError(ValueError):
    """A model file that cannot be imported or exported; the message names the file and the reason."""


def exported_stem(meta: ModelMeta) -> str:
    return f"{meta.name}-v{meta.version}"


def export_model(key, folder, *, library=None, onnx: bool = False) -> list[Path]:
    """Write the pair (and an ONNX file when asked) for the library model `key` into `folder`."""
    from segstudio.models.library import ModelLibrary

    library = library or ModelLibrary()
    entry = library.find(key)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = exported_stem(entry.meta)
    weights = folder / f"{stem}.safetensors"
    written = []
    if entry.path.resolve() != weights.resolve():
        tmp = weights.with_name(weights.name + ".part")
        shutil.copyfile(entry.path, tmp)
        tmp.replace(weights)
    written.append(weights)
    text = json.dumps(entry.meta.to_dict(), indent=2) + "\n"
    atomic_write_bytes(folder / f"{stem}.json", text.encode("utf-8"))
    written.append(folder / f"{stem}.json")
    if onnx:
        model, meta = load_checkpoint(entry.path)
        written.append(export_onnx(model, meta, folder / f"{stem}.onnx"))
    return written


def export_onnx(model, meta: ModelMeta, path, *, tile: int = 512) -> Path:
    """The network as ONNX: input "image" (N, C, H, W) float in 0..1 after the model's normalisation, output
    "logits" (N, classes, H, W). Height and width must be multiples of the network's stride; a network that
    pools onto grids which need not divide its maps (PSPNet) takes `tile` x `tile` only. The file's metadata
    ("input_size") says which."""
    import torch

    try:
        import onnx
    except ImportError:
        raise ModelFileError("ONNX export needs the optional 'onnx' package (pip install onnx)") from None
    path = Path(path)
    stride = int(getattr(model, "stride", 32) or 32)
    side = max(stride, tile // stride * stride)
    example = torch.zeros(1, int(meta.in_channels), side, side)
    model, fixed = _exportable(model.to("cpu").eval())
    axes = {0: "batch"} if fixed else {0: "batch", 2: "height", 3: "width"}
    tmp = path.with_name(path.name + ".part")
    try:
        with torch.no_grad():
            torch.onnx.export(model, (example,), str(tmp), input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": axes, "logits": axes}, opset_version=17, dynamo=False)
        written = onnx.load(str(tmp))
        size = f"{side}x{side}" if fixed else f"multiples of {stride}"
        onnx.helper.set_model_props(written, {"segstudio_model": meta.id, "input_size": size})
        onnx.save(written, str(tmp))
    except Exception as err:  # noqa: BLE001 - the exporter's many failures, said in one sentence naming the file
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"{path}: {meta.arch} could not be written as ONNX ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})") from None
    tmp.replace(path)
    return path


def _exportable(model):
    """(a copy the ONNX exporter can trace, whether its input size is fixed). Adaptive average pools onto grids
    that need not divide the map (PSPNet's 2x2, 3x3, 6x6) become means over the same regions, which the
    exporter records at the traced size."""
    import copy

    import torch
    from torch import nn

    class RegionMeans(nn.Module):
        """nn.AdaptiveAvgPool2d's regions: row i spans floor(i*H/b) to ceil((i+1)*H/b), columns alike."""

        def __init__(self, bins):
            super().__init__()
            self.bins = (bins, bins) if isinstance(bins, int) else tuple(bins)

        def forward(self, x):
            (h, w), (bh, bw) = (int(v) for v in x.shape[-2:]), self.bins
            rows = [torch.stack([x[..., i * h // bh:-(-(i + 1) * h // bh), j * w // bw:-(-(j + 1) * w // bw)]
                                 .mean(dim=(-2, -1)) for j in range(bw)], dim=-1) for i in range(bh)]
            return torch.stack(rows, dim=-2)

    pools = [name for name, m in model.named_modules()
             if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size not in (1, (1, 1))]
    if not pools:
        return model, False
    model = copy.deepcopy(model)
    for name in pools:
        model.set_submodule(name, RegionMeans(model.get_submodule(name).output_size))
    return model, True


def _sidecar(path: Path) -> ModelMeta:
    side = path.with_suffix(".json")
    if not side.is_file():
        raise ModelFileError(f"{path} holds weights only; its metadata ({side.name}, written by Export) must lie "
                             "beside it to say which network and classes they belong to")
    try:
        return ModelMeta.from_dict(parse_json(side.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, MetadataError, TypeError, ValueError) as err:
        raise ModelFileError(f"{side}: not usable model metadata ({err})") from None


def read_import(path) -> tuple[object, ModelMeta]:
    """(model, metadata) from a file to import, checked: shapes, finite weights, the metadata's schema."""
    path = Path(path)
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise ModelFileError(f"{path}: import .safetensors, .pt or .pth files")
    if path.suffix.lower() == ".safetensors":
        try:
            read_meta(path)
        except CheckpointError:
            pass  # plain weights: the metadata comes from the .json beside them
        else:
            return load_checkpoint(path)
    meta = _sidecar(path)
    config = {k: v for k, v in meta.config.items() if k not in ("in_channels", "num_classes")}
    config["pretrained_backbone"] = False
    model = import_pt(path, meta.arch, in_channels=meta.in_channels, num_classes=meta.num_classes, **config)
    return model, meta


def import_model(path, *, name: str | None = None, library=None):
    """Save the file as version 1 of `name` (default: its own name, or the next free variant of it)."""
    from segstudio.models.library import ModelLibrary

    library = library or ModelLibrary()
    model, meta = read_import(path)
    taken = {e.meta.name for e in library.entries()}
    stem = name or meta.name
    chosen, n = stem, 1
    while chosen in taken:
        n += 1
        chosen = f"{stem}-{n}"
    note = f"Imported from {Path(path).name}" + (f" (was {meta.id})" if meta.id else "")
    meta = dataclasses.replace(meta, parent=None, description=f"{meta.description} {note}".strip(),
                               training={**meta.training, "imported_from": str(Path(path).name),
                                         "original_id": meta.id})
    return library.save_version(chosen, model, meta)
