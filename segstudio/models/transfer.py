"""Weights carried from one model into another of the same network family, where their shapes allow.

Making a model with more classes, another input, or a new class table should not throw away what an
existing model learnt. `transfer_weights` copies every tensor whose shape is unchanged (the encoder, the
decoder), copies the head rows of the classes both models share (a class is found by its name), and
leaves fresh rows for new classes; when the number of input channels changes, the first layer's filters
are spread over the new channels so that an image whose channels are all alike gives the same response.

Which dimensions hold classes and which hold input channels is not guessed from names: the destination
network is built twice more on the "meta" device (no memory) with one more class and one more input
channel, and the dimensions that change are the ones that scale with each.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from segstudio.models.registry import build_model


@dataclass
class TransferReport:
    """What `transfer_weights` kept, in counts and in words."""

    kept: list[str] = field(default_factory=list)           # tensors copied whole
    class_rows: list[str] = field(default_factory=list)     # tensors with some class rows copied
    input_adapted: list[str] = field(default_factory=list)  # first-layer filters spread over new channels
    fresh: list[str] = field(default_factory=list)          # tensors left as initialised
    shared_classes: list[str] = field(default_factory=list)
    new_classes: list[str] = field(default_factory=list)
    dropped_classes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.kept) + len(self.class_rows) + len(self.input_adapted) + len(self.fresh)

    def lines(self) -> list[str]:
        out = [f"Kept {len(self.kept)} of {self.total} weight tensors unchanged."]
        if self.class_rows:
            shared = ", ".join(self.shared_classes) or "none"
            out.append(f"Class layers ({len(self.class_rows)}): kept the rows of {shared}.")
        if self.new_classes:
            out.append("New classes start untrained: " + ", ".join(self.new_classes) + ".")
        if self.dropped_classes:
            out.append("Classes left out: " + ", ".join(self.dropped_classes) + ".")
        if self.input_adapted:
            out.append("The input layer was spread over the new number of channels.")
        if self.fresh:
            out.append(f"{len(self.fresh)} tensors did not fit and start untrained.")
        return out

    def to_dict(self) -> dict:
        return {"kept": len(self.kept), "class_rows": len(self.class_rows), "input_adapted": len(self.input_adapted),
                "fresh": len(self.fresh), "shared_classes": self.shared_classes, "new_classes": self.new_classes,
                "dropped_classes": self.dropped_classes}


def class_map_by_name(src_classes: list[dict], dst_classes: list[dict]) -> dict[int, int]:
    """{destination class id: source class id} for classes with the same name (case-insensitive)."""
    by_name = {str(c["name"]).strip().lower(): int(c["id"]) for c in src_classes}
    found = {}
    for c in dst_classes:
        source = by_name.get(str(c["name"]).strip().lower())
        if source is not None:
            found[int(c["id"])] = source
    return found


def _shapes(arch: str, config: dict, in_channels: int, num_classes: int) -> dict[str, tuple]:
    options = {k: v for k, v in config.items() if k not in ("in_channels", "num_classes")}
    options["pretrained_backbone"] = False
    with torch.device("meta"):
        model = build_model(arch, in_channels=in_channels, num_classes=num_classes, **options)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def scaling_dims(arch: str, config: dict) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """({tensor: dims that scale with the class count}, {tensor: dims that scale with input channels})."""
    c, k = int(config["in_channels"]), int(config["num_classes"])
    base = _shapes(arch, config, c, k)
    more_classes = _shapes(arch, config, c, k + 1)
    more_inputs = _shapes(arch, config, c + 1, k)

    def changed(other):
        return {name: tuple(d for d, (a, b) in enumerate(zip(base[name], other[name])) if a != b)
                for name in base if other.get(name) != base[name]}

    return changed(more_classes), changed(more_inputs)


def _copy_class_rows(src: torch.Tensor, dst: torch.Tensor, dims: tuple[int, ...], pairs: list[tuple[int, int]]):
    """dst[.., i, ..] = src[.., j, ..] along every class dim, for (i, j) in pairs; other rows stay."""
    out = dst.clone()
    if len(dims) == 1:
        d = dims[0]
        for i, j in pairs:
            out.select(d, i).copy_(src.select(d, j))
        return out
    d0, d1 = dims[:2]  # a per-class upsampler: class x class
    for i, j in pairs:
        for i2, j2 in pairs:
            out.select(d0, i).select(d1 - 1, i2).copy_(src.select(d0, j).select(d1 - 1, j2))
    return out


def _spread_inputs(src: torch.Tensor, dst: torch.Tensor, dim: int) -> torch.Tensor:
    """First-layer filters for another channel count: the summed response shared out evenly."""
    total = src.sum(dim=dim, keepdim=True)
    repeats = [1] * src.ndim
    repeats[dim] = dst.shape[dim]
    return (total / dst.shape[dim]).repeat(*repeats).to(dst.dtype)


def transfer_weights(src_model: nn.Module, dst_model: nn.Module, class_map: Mapping[int, int],
                     src_classes: list[dict] | None = None, dst_classes: list[dict] | None = None) -> TransferReport:
    """Copy into `dst_model` every weight of `src_model` that fits; `class_map` is {dst class: src class}.

    Both must be the same architecture (the same layer names). Tensors of the same shape are copied
    whole unless they hold classes and the classes moved; class layers get the mapped rows; the input
    layer is spread when the channel count differs. Returns what was kept (names in `src_classes` /
    `dst_classes`, when given, make the report readable).
    """
    if getattr(src_model, "arch", None) != getattr(dst_model, "arch", None):
        raise ValueError(f"weights can only be carried between the same network: {getattr(src_model, 'arch', '?')} "
                         f"vs {getattr(dst_model, 'arch', '?')}")
    class_dims, input_dims = scaling_dims(dst_model.arch, dst_model.config)
    src_state, dst_state = src_model.state_dict(), dst_model.state_dict()
    src_k, dst_k = int(src_model.config["num_classes"]), int(dst_model.config["num_classes"])
    pairs = [(int(i), int(j)) for i, j in class_map.items() if 0 <= int(i) < dst_k and 0 <= int(j) < src_k]
    identity = src_k == dst_k and sorted(pairs) == [(i, i) for i in range(dst_k)]
    report = TransferReport()
    new_state = {}
    for name, dst in dst_state.items():
        src = src_state.get(name)
        if src is None or src.ndim != dst.ndim:
            report.fresh.append(name)
            continue
        if name in class_dims:
            if src.shape == dst.shape and identity:
                new_state[name] = src.clone()
                report.kept.append(name)
            elif pairs and _fits_except(src, dst, class_dims[name]):
                new_state[name] = _copy_class_rows(src, dst, class_dims[name], pairs)
                report.class_rows.append(name)
            else:
                report.fresh.append(name)
        elif src.shape == dst.shape:
            new_state[name] = src.clone()
            report.kept.append(name)
        elif name in input_dims and _fits_except(src, dst, input_dims[name]):
            new_state[name] = _spread_inputs(src, dst, input_dims[name][0])
            report.input_adapted.append(name)
        else:
            report.fresh.append(name)
    dst_model.load_state_dict({**dst_state, **new_state}, strict=True)
    _name_classes(report, class_map, src_classes, dst_classes)
    return report


def _fits_except(src: torch.Tensor, dst: torch.Tensor, dims: tuple[int, ...]) -> bool:
    return all(a == b for d, (a, b) in enumerate(zip(src.shape, dst.shape)) if d not in dims)


def _name_classes(report: TransferReport, class_map, src_classes, dst_classes) -> None:
    if dst_classes is None:
        return
    src_names = {int(c["id"]): str(c["name"]) for c in (src_classes or [])}
    mapped = {int(i) for i in class_map}
    report.shared_classes = [str(c["name"]) for c in dst_classes if int(c["id"]) in mapped]
    report.new_classes = [str(c["name"]) for c in dst_classes if int(c["id"]) not in mapped]
    used = {int(j) for j in class_map.values()}
    report.dropped_classes = [name for cid, name in src_names.items() if cid not in used]
