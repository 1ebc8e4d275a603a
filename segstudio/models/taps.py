"""Named feature taps: look inside a network (encoder stages, skip tensors, decoder stages, logits).

Each architecture declares its taps in network order (the order the tensors are produced in a forward pass).
A tap names a submodule by its dotted path; `run_with_taps` hooks those submodules for one forward pass and
hands back their outputs, so the inspector sees exactly the tensors the prediction was computed from.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

log = logging.getLogger(__name__)

TAP_KINDS = ("encoder", "skip", "decoder", "fusion", "context", "logits")


@dataclass(frozen=True)
class TapSpec:
    """One hookable tensor of a network, with the structure tools need to relate it to the others.

    `level` is the resolution level of the tensor: it is 1/2**level of the (padded) input's height and
    width, so 0 is full resolution, 3 is 1/8. Taps at the same level can be laid over each other.
    `pairs_with`, on a "skip" tap, names the "decoder" or "fusion" tap the skip is joined to (concatenated,
    added, or - in DeconvNet - unpooled into): the tensor it meets at its level.
    """

    name: str  # shown to the user, e.g. "skip3 (from enc3)"
    kind: str  # one of TAP_KINDS
    module: str  # dotted path of the hooked submodule, e.g. "dec3.skip"
    description: str  # plain words for someone who labels slides, not for someone who writes networks
    level: int | None = None
    pairs_with: str | None = None

    def __post_init__(self):
        if self.kind not in TAP_KINDS:
            raise ValueError(f"Tap {self.name!r} has unknown kind {self.kind!r}; kinds: {', '.join(TAP_KINDS)}")
        if self.level is not None and self.level < 0:
            raise ValueError(f"Tap {self.name!r} has a negative level {self.level}")
        if self.pairs_with is not None and self.kind != "skip":
            raise ValueError(f"Tap {self.name!r} of kind {self.kind!r} pairs with {self.pairs_with!r}; "
                             "only skip taps pair with another tap")


def list_taps(model: nn.Module) -> list[TapSpec]:
    """The model's taps in network order."""
    declare = getattr(model, "tap_specs", None)
    if declare is None:
        raise TypeError(f"{type(model).__name__} declares no feature taps")
    return list(declare())


def _first_tensor(output):
    # Max-pooling with indices and a few torchvision blocks return tuples; the feature map comes first.
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    return None


def run_with_taps(
    model: nn.Module,
    x: torch.Tensor,
    names: Sequence[str] | None = None,
    *,
    detach: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass returning (logits, {tap name: tensor}) for the chosen taps (all when `names` is None).

    The returned dict follows the declared network order. Hooks are removed before returning, also when the
    forward pass raises. With `detach` (the default) the captured tensors are copies cut from the graph:
    later in-place operations (ReLU(inplace=True) in torchvision blocks) cannot change what was captured.
    """
    specs = list_taps(model)
    by_name = {spec.name: spec for spec in specs}
    if names is None:
        chosen = specs
    else:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(
                f"Unknown tap(s) {', '.join(map(repr, unknown))}; this model has: {', '.join(by_name)}"
            )
        wanted = set(names)
        chosen = [spec for spec in specs if spec.name in wanted]

    captured: dict[str, torch.Tensor] = {}

    def make_hook(tap_names: Iterable[str]):
        tap_names = tuple(tap_names)

        def hook(_module, _inputs, output):
            tensor = _first_tensor(output)
            if tensor is None:
                return
            if detach:
                tensor = tensor.detach().clone()
            for tap in tap_names:
                captured[tap] = tensor

        return hook

    # Group by module so one submodule serving two taps gets one hook.
    per_module: dict[str, list[str]] = {}
    for spec in chosen:
        per_module.setdefault(spec.module, []).append(spec.name)

    handles = []
    try:
        for module_path, tap_names in per_module.items():
            handles.append(model.get_submodule(module_path).register_forward_hook(make_hook(tap_names)))
        logits = model(x)
    finally:
        for handle in handles:
            handle.remove()

    missing = [spec.name for spec in chosen if spec.name not in captured]
    if missing:
        log.warning("Taps not produced by this forward pass: %s", ", ".join(missing))
    return logits, {spec.name: captured[spec.name] for spec in chosen if spec.name in captured}
