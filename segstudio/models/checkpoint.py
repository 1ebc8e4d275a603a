"""Model files: safetensors weights with the model's description (ModelMeta, JSON) in the file header.

Loading never unpickles. `.safetensors` files are plain tensors plus text; weights from elsewhere come in
through `import_pt`, which uses torch.load(weights_only=True) and refuses files that would run code.

Before a network is built, its metadata is checked against the schema (metadata.py), and the network is
first built on the "meta" device, which allocates nothing: its parameter count is held against
MAX_PARAMETERS and its tensor shapes against the ones the file header lists. Loaded weights must be
finite (and BatchNorm variances not negative), or the model would predict garbage without a word.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import struct
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn as nn

from segstudio.core.storage import atomic_write_bytes
from segstudio.core.text import printable
from segstudio.models.metadata import MAX_PARAMETERS, MetadataError, check_config, check_meta, parse_json
from segstudio.models.registry import UnknownModelError, build_model

FORMAT = "segstudio-model"
FORMAT_VERSION = 1
_META_KEY = "segstudio_meta"
_MAX_HEADER_BYTES = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A model file that cannot be used; names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot load model {printable(self.path)}: {printable(reason)}")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _default_normalisation() -> dict:
    return {"kind": "percentile", "low": 1.0, "high": 99.8}


@dataclass
class ModelMeta:
    name: str  # model family, e.g. "nuclei-unet"
    version: int
    arch: str
    config: dict = field(default_factory=dict)
    classes: list[dict] = field(default_factory=list)  # [{"id", "name", "color"}]
    in_channels: int = 1
    normalisation: dict = field(default_factory=_default_normalisation)
    created: str = field(default_factory=_now_iso)
    parent: str | None = None  # "name/vN" this version was fine-tuned from
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    description: str = ""
    # Clean-up of predicted masks (segstudio.core.postprocess), e.g. {"fill_holes_px": 256, "min_object_px": 8}
    postprocess: dict = field(default_factory=dict)
    # The images it was trained on, e.g. {"kind": "fluorescence", "stain": "nuclear"} (segstudio.core.model_fit)
    expects: dict = field(default_factory=dict)
    # How an image becomes the network's input (metadata.check_input): {} means "the channels as they are";
    # {"kind": "he", "stain_vectors": [...]} derives the hematoxylin channel of an H&E slide by colour
    # deconvolution; {"kind": "channels", "channels": [0, 2]} picks image channels.
    input: dict = field(default_factory=dict)
    # What the network gives for objects besides the classes: {"boundary_channel": k} names its last output
    # as the probability of a border between objects (engine.predict, core.objects.instances.from_boundary).
    objects: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.name}/v{self.version}"

    @property
    def num_classes(self) -> int:
        """The network's outputs: its classes, and a border output after them when `objects` declares one."""
        return int(self.config.get("num_classes", len(self.classes)))

    @property
    def class_count(self) -> int:
        """How many outputs are classes (ids 0..class_count-1): all but a declared border output."""
        objects = self.objects if isinstance(self.objects, dict) else {}
        return self.num_classes - (objects.get("boundary_channel") is not None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelMeta:
        """Metadata checked against the schema (MetadataError, a ValueError, says which field is wrong)."""
        known = {f.name for f in fields(cls)}
        checked = check_meta(data)
        # Keys written by a newer segstudio are ignored rather than fatal.
        return cls(**{k: v for k, v in checked.items() if k in known})


def classes_within_outputs(classes: list[dict], outputs: int) -> list[dict]:
    """The class list a model with `outputs` output channels can honour: never more entries than outputs.

    Fine-tuned models predict class id i on output i, so when a list is too long the entries with ids below
    `outputs` are the ones that name real outputs; the others (a class the user removed, say) are dropped.
    """
    if len(classes) <= outputs:
        return classes
    kept = [c for c in classes if isinstance(c, dict) and isinstance(c.get("id"), int) and 0 <= c["id"] < outputs]
    return sorted(kept, key=lambda c: c["id"])


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel and torch.compile wrap the network; the file must hold the plain one.
    while not hasattr(model, "arch") and hasattr(model, "module"):
        model = model.module
    return getattr(model, "_orig_mod", model)


def _finite(value):
    """JSON data with NaN and infinities replaced by null: the reader refuses them (a metric can be NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def save_checkpoint(path, model: nn.Module, meta: ModelMeta, *, exclusive: bool = False) -> ModelMeta:
    """Write `model` and `meta` to one .safetensors file, atomically. Returns the metadata as stored.

    Architecture, config and input channels are taken from the model itself, so the file always describes
    how to rebuild the network it holds. The metadata is checked against the schema first, so a file is
    never written that the reader would refuse. With `exclusive`, an existing file is never replaced.
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"Model files are .safetensors; refusing to write {path}")
    model = _unwrap(model)
    arch = getattr(model, "arch", None)
    config = getattr(model, "config", None)
    if not arch or config is None:
        raise TypeError(f"{type(model).__name__} was not built by segstudio.models.build_model")
    if meta.arch and meta.arch != arch:
        raise ValueError(f"metadata says architecture {meta.arch!r} but the model is {arch!r}")
    outputs = int(config.get("num_classes", len(meta.classes)))
    if len(meta.classes) > outputs:
        raise ValueError(f"metadata lists {len(meta.classes)} classes but the model has {outputs} outputs")
    stored = replace(meta, arch=arch, config=json.loads(json.dumps(config)), in_channels=int(config["in_channels"]),
                     training=_finite(meta.training), metrics=_finite(meta.metrics))
    check_meta(stored.to_dict())
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": str(FORMAT_VERSION), _META_KEY: json.dumps(stored.to_dict())}
    path.parent.mkdir(parents=True, exist_ok=True)
    # a crash leaves the old file or the new one
    atomic_write_bytes(path, save(tensors, metadata=metadata), exclusive=exclusive)
    reservation_path(path).unlink(missing_ok=True)  # the name is taken now; the reservation has done its job
    return stored


def reservation_path(path) -> Path:
    """The marker that reserves a model file's name (created exclusively by the library before a save)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.reserved")


def _read_header(path: Path) -> dict:
    if path.suffix != ".safetensors":
        raise CheckpointError(path, "not a .safetensors model file (import other weight files with import_pt)")
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            size = os.fstat(handle.fileno()).st_size
            if len(prefix) < 8:
                raise CheckpointError(path, "file is too short to be a safetensors file")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(_MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(path, "not a safetensors file (invalid header length)")
            raw = handle.read(header_len)
    except OSError as exc:
        raise CheckpointError(path, exc.strerror or str(exc)) from exc
    try:
        header = parse_json(raw.decode("utf-8"), max_chars=_MAX_HEADER_BYTES)
    except UnicodeDecodeError as exc:
        raise CheckpointError(path, "not a safetensors file (header is not JSON)") from exc
    except MetadataError as exc:
        raise CheckpointError(path, f"not a usable safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise CheckpointError(path, "not a safetensors file (header is not a JSON object)")
    return header


def read_meta(path) -> ModelMeta:
    """The model's metadata from the file header, without reading the weights."""
    return _meta_from_header(Path(path), _read_header(Path(path)))


def _meta_from_header(path: Path, header: dict) -> ModelMeta:
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or _META_KEY not in metadata:
        raise CheckpointError(path, "safetensors file without segstudio model metadata "
                                    "(plain weights can be brought in with import_pt)")
    if not isinstance(metadata[_META_KEY], str):
        raise CheckpointError(path, "damaged model metadata (not JSON text)")
    try:
        meta = ModelMeta.from_dict(parse_json(metadata[_META_KEY]))
    except (TypeError, ValueError) as exc:  # MetadataError is a ValueError
        raise CheckpointError(path, f"damaged model metadata ({exc})") from exc
    # Files written before the count was checked may list a removed class beyond the outputs.
    return replace(meta, classes=classes_within_outputs(meta.classes, meta.num_classes))


def _fit_problems(own: dict[str, tuple], given: dict[str, tuple]) -> list[str]:
    missing = [k for k in own if k not in given]
    unexpected = [k for k in given if k not in own]
    mismatched = [f"{k} {given[k]} vs {own[k]}" for k in own if k in given and given[k] != own[k]]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if items:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            parts.append(f"{label}: {shown}")
    return parts


def _shapes(model: nn.Module) -> dict[str, tuple]:
    return {k: tuple(int(d) for d in v.shape) for k, v in model.state_dict().items()}


def _load_into(path: Path, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    parts = _fit_problems(_shapes(model), {k: tuple(int(d) for d in v.shape) for k, v in state.items()})
    if parts:
        raise CheckpointError(path, "weights do not fit the architecture (" + "; ".join(parts) + ")")
    model.load_state_dict(state, strict=True)


def check_weights(path, state: dict[str, torch.Tensor]) -> None:
    """Refuse weights a model would compute garbage with: NaN or infinite values, negative variances."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(path, f"the weights hold NaN or infinite values (in {name})")
        if name.endswith("running_var") and bool((tensor < 0).any()):
            raise CheckpointError(path, f"a BatchNorm variance is negative (in {name})")


def _build(path: Path, arch: str, in_channels: int, num_classes: int, config: dict) -> nn.Module:
    try:
        return build_model(arch, in_channels=in_channels, num_classes=num_classes, **config)
    except UnknownModelError as exc:
        raise CheckpointError(path, str(exc)) from exc
    except (TypeError, ValueError) as exc:
        raise CheckpointError(path, f"configuration not understood by {arch} ({exc})") from exc


def _rebuild(path: Path, arch: str, config: dict, file_shapes: dict[str, tuple] | None = None) -> nn.Module:
    """Build the network a file describes, after checking that it is a sane size and fits the file.

    The first build runs on the "meta" device: modules get shapes but no memory, so a config asking for
    68 GB of weights is refused in milliseconds, and the file's tensor shapes are compared before a byte of
    weights is read.
    """
    try:
        config = dict(check_config(config))
    except MetadataError as exc:
        raise CheckpointError(path, f"architecture config refused ({exc})") from exc
    in_channels = int(config.pop("in_channels", 1))
    num_classes = int(config.pop("num_classes", 2))
    if "pretrained_backbone" in config:
        # The file holds every weight; the ImageNet file named at training time may not exist here.
        config["pretrained_backbone"] = False
    with torch.device("meta"):
        skeleton = _build(path, arch, in_channels, num_classes, config)
    count = sum(p.numel() for p in skeleton.parameters())
    if count > MAX_PARAMETERS:
        raise CheckpointError(path, f"the architecture config implies {count / 1e6:,.0f} M parameters, over the "
                                    f"limit of {MAX_PARAMETERS / 1e6:,.0f} M")
    if file_shapes is not None:
        parts = _fit_problems(_shapes(skeleton), file_shapes)
        if parts:
            raise CheckpointError(path, "weights do not fit the architecture (" + "; ".join(parts) + ")")
    return _build(path, arch, in_channels, num_classes, config)


def _header_shapes(path: Path, header: dict) -> dict[str, tuple]:
    shapes = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        shape = info.get("shape") if isinstance(info, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise CheckpointError(path, f"damaged safetensors header (tensor {name[:60]!r} has no valid shape)")
        shapes[name] = tuple(shape)
    return shapes


def load_checkpoint(path, *, device="cpu") -> tuple[nn.Module, ModelMeta]:
    """Rebuild the network from the file's metadata and load its weights; the model is in eval mode."""
    from safetensors.torch import load_file

    path = Path(path)
    header = _read_header(path)
    meta = _meta_from_header(path, header)
    model = _rebuild(path, meta.arch, meta.config, _header_shapes(path, header))
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise CheckpointError(path, f"damaged weights ({exc})") from exc
    check_weights(path, state)
    _load_into(path, model, state)
    model.source_file = path  # so a later refusal (e.g. of its predictions) can name the file
    return model.to(device).eval(), meta


def _read_foreign_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise CheckpointError(path, f"not a readable safetensors file ({exc})") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(path, "refused: the file holds Python objects besides tensors, and loading it would "
                                    "run code from the file") from exc
    except FileNotFoundError as exc:
        raise CheckpointError(path, "file not found") from exc
    except Exception as exc:
        raise CheckpointError(path, f"not a PyTorch weights file ({type(exc).__name__}: {exc})") from exc
    # Training scripts often save {"state_dict": ...} or {"model": ...} around the weights.
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "the file does not hold a dictionary of weight tensors")
    return state


def import_pt(path, arch: str, *, in_channels: int, num_classes: int, **config) -> nn.Module:
    """Weights saved elsewhere (.pt/.pth via torch.load(weights_only=True), or plain .safetensors) loaded into
    a freshly built `arch`. Returns the model in eval mode; save it with save_checkpoint to add metadata."""
    path = Path(path)
    state = _read_foreign_weights(path)
    cleaned = {}
    for key, tensor in state.items():
        for prefix in ("module.", "_orig_mod."):  # DistributedDataParallel / torch.compile wrappers
            if key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = tensor
    model = _rebuild(path, arch, dict(config, in_channels=in_channels, num_classes=num_classes))
    check_weights(path, cleaned)
    _load_into(path, model, cleaned)
    return model.eval()
