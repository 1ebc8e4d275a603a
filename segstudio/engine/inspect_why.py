"""Why did the network draw this pixel: which levels and skip connections pushed its class score.

Two measurements on a window around the pixel (the pixel's class score depends on a neighbourhood of the
network's reach, not on the whole slide, so a bounded window keeps this under a second on a laptop CPU):

- push per tap: gradient x activation summed over the tap's tensor, for the chosen class's score at the
  pixel (one backward pass). For networks made of ReLUs and convolutions this splits the score between the
  paths it flowed through: a skip and the upsampled maps it meets share the score of the level they form.
- effect per skip: the score with the skip as computed, minus the score with that skip's tensor set to
  zero by a forward hook (one forward pass per skip). Positive: the skip raised the score.

Both come with one plain sentence each, biggest effect first. Torch is imported inside the functions, so
the window can import the data types before torch has loaded.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

# Side of the window around the pixel that is run through the network. U-Nets of depth 4 reach about
# 100 px from a pixel; 256 covers that and runs in about 0.1 s per pass on a two-core laptop CPU.
EXPLAIN_SIDE = 256


@dataclass(frozen=True)
class TapPush:
    name: str
    kind: str
    level: int | None
    push: float  # gradient x activation summed over the tap: its share of the score


@dataclass(frozen=True)
class SkipEffect:
    name: str
    level: int | None
    with_skip: float
    without_skip: float

    @property
    def delta(self) -> float:
        return self.with_skip - self.without_skip


@dataclass
class Explanation:
    """Why pixel (x, y) of the image got its class."""

    x: int
    y: int
    class_index: int
    class_name: str
    score: float  # the class's raw score (before softmax) at the pixel
    probability: float
    pushes: list[TapPush]
    skips: list[SkipEffect]
    window: tuple[int, int, int, int] = (0, 0, 0, 0)  # (x, y, w, h) of the image window that was run
    sentences: list[str] = field(default_factory=list)


def short_name(name: str) -> str:
    """A tap's name without its parenthesised note: "skip1 (from enc1)" -> "skip1"."""
    return name.split(" (")[0]


def level_size(level: int | None) -> str:
    if level is None:
        return "unknown size"
    return "full size" if level == 0 else f"1/{2 ** level} size"


def _zeroing_hook(_module, _inputs, output):
    import torch

    if isinstance(output, torch.Tensor):
        return torch.zeros_like(output)
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return (torch.zeros_like(output[0]), *output[1:])
    return output


def score_without(model: nn.Module, x: torch.Tensor, module_path: str, class_index: int, row: int, col: int
                  ) -> float:
    """The class score at (row, col) with the output of `module_path` replaced by zeros."""
    import torch

    handle = model.get_submodule(module_path).register_forward_hook(_zeroing_hook)
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    return float(logits[0, class_index, row, col])


def tap_pushes(model: nn.Module, x: torch.Tensor, row: int, col: int, class_index: int | None = None,
               classes: int | None = None) -> tuple[int, float, float, list[TapPush]]:
    """(class, score, probability, push per tap) for pixel (row, col) of input x (1, C, H, W).

    ``classes``: how many leading outputs are classes (a border output after them is left out); all if None.
    """
    import torch

    from segstudio.models.taps import list_taps, run_with_taps

    specs = list_taps(model)
    x = x.detach().clone().requires_grad_(True)  # a graph even when every weight is frozen
    with torch.enable_grad():
        logits, captured = run_with_taps(model, x, detach=False)
        scores = logits[0, :classes, row, col]
        if class_index is None:
            class_index = int(scores.argmax())
        score = logits[0, class_index, row, col]
        probability = float(torch.softmax(scores.detach().float(), dim=0)[class_index])
        names = [n for n, t in captured.items() if t.requires_grad]
        grads = torch.autograd.grad(score, [captured[n] for n in names], allow_unused=True)
    by_name = dict(zip(names, grads))
    pushes = []
    for spec in specs:
        grad, tensor = by_name.get(spec.name), captured.get(spec.name)
        value = 0.0 if grad is None or tensor is None else float((grad * tensor.detach()).sum())
        pushes.append(TapPush(spec.name, spec.kind, spec.level, value))
    return class_index, float(score.detach()), probability, pushes


def explain_input(model: nn.Module, x: torch.Tensor, row: int, col: int, *, class_index: int | None = None,
                  class_names: Sequence[str] | None = None, classes: int | None = None) -> Explanation:
    """Explain pixel (row, col) of the network input x: pushes per tap, and the effect of each skip."""
    from segstudio.models.taps import list_taps

    was_training = model.training
    model.eval()
    try:
        k, score, probability, pushes = tap_pushes(model, x, row, col, class_index, classes)
        skips = [SkipEffect(s.name, s.level, score, score_without(model, x, s.module, k, row, col))
                 for s in list_taps(model) if s.kind == "skip"]
    finally:
        model.train(was_training)
    names = list(class_names or [])
    name = names[k] if k < len(names) else f"class {k}"
    result = Explanation(col, row, k, name, score, probability, pushes, skips)
    result.sentences = sentences(result)
    return result


def explain_pixel(inspector, pixels: np.ndarray, x: float, y: float, *, class_index: int | None = None,
                  side: int = EXPLAIN_SIDE) -> Explanation:
    """Explain image pixel (x, y) with a TapInspector: a `side` window around it, scaled as Predict scales it."""
    from segstudio.engine.inspect import plan_region, region_input

    region = plan_region(pixels.shape[:2], point=(x, y), max_side=side, align=inspector.stride)
    network_input = region_input(inspector.source(pixels), region)
    return explain_in_region(inspector, network_input, region, x, y, class_index=class_index)


def explain_in_region(inspector, network_input: np.ndarray, region, x: float, y: float, *,
                      class_index: int | None = None) -> Explanation:
    """Explain image pixel (x, y) inside `region` (full resolution), given as the network sees it."""
    import torch

    from segstudio.engine.inspect import _class_names

    tensor = torch.from_numpy(np.ascontiguousarray(network_input))[None].to(inspector.device)
    row, col = int(y) - region.y, int(x) - region.x
    result = explain_input(inspector.model, tensor, row, col, class_index=class_index,
                           classes=inspector.border)  # a border output after the classes is left out
    result.class_name = _class_names(inspector.meta, result.class_index + 1)[result.class_index]
    result.x, result.y = int(x), int(y)
    result.window = region.rect
    result.sentences = sentences(result)
    return result


def sentences(result: Explanation) -> list[str]:
    """Plain words for the numbers, the largest effects first."""
    cls = result.class_name
    lines = [f"This pixel is drawn as {cls} (probability {result.probability:.2f}, {cls} score "
             f"{result.score:.2f})."]
    effects = sorted((s for s in result.skips if math.isfinite(s.delta)), key=lambda s: -abs(s.delta))
    for rank, skip in enumerate(effects):
        verb = "raised" if skip.delta >= 0 else "lowered"
        most = " most" if rank == 0 and len(effects) > 1 else ""
        lines.append(f"The detail carried across by {short_name(skip.name)} ({level_size(skip.level)}) {verb} "
                     f"the {cls} score{most}: {skip.delta:+.2f} (without it: {skip.without_skip:.2f}).")
    inner = [p for p in result.pushes if p.kind not in ("logits", "skip") and math.isfinite(p.push)]
    if inner:
        top = max(inner, key=lambda p: abs(p.push))
        verb = "for" if top.push >= 0 else "against"
        lines.append(f"Of the network's layers, {short_name(top.name)} ({level_size(top.level)}) weighed most {verb} "
                     f"{cls}: {top.push:+.2f}.")
    return lines


def pushes_by_level(result: Explanation) -> dict[int, float]:
    """The largest push (by size, with its sign) among the taps at each level."""
    best: dict[int, float] = {}
    for push in result.pushes:
        if push.level is None or push.kind == "logits" or not math.isfinite(push.push):
            continue
        if abs(push.push) > abs(best.get(push.level, 0.0)):
            best[push.level] = push.push
    return dict(sorted(best.items()))


def run_request(inspector, pixels: np.ndarray | None, request: dict, cancel=None):
    """What an inspect job asks for: {"explain": (x, y)} (optionally "class_index") explains one pixel and
    returns an Explanation; {"slide": Slide, "centre": (x, y), "side": n, "preview_side": m} looks at a
    whole slide's tile (engine.inspect_slide), and {"slide": Slide, "explain": (x, y)} explains a pixel of
    it ("slide_path": the file instead, read through engine.inspect_slide's own handle); otherwise the
    keywords plan a region (view, point, max_side, mode) and one pass with taps over it returns an Inspection.
    "model_input" (any request) feeds the image as Predict's PredictSettings.model_input would (the H&E path)."""
    request = dict(request)
    inspector.model_input = request.pop("model_input", None)
    if "slide" in request or "slide_path" in request:
        from segstudio.engine.inspect_slide import explain_slide_pixel, inspect_slide, slide_for_inspection

        slide = request.pop("slide", None) or slide_for_inspection(request.pop("slide_path"))
        if "explain" in request:
            x, y = request.pop("explain")
            return explain_slide_pixel(inspector, slide, x, y, cancel=cancel, model_input=inspector.model_input,
                                       **request)
        return inspect_slide(inspector, slide, request.pop("centre"), request.pop("side"), cancel=cancel,
                             model_input=inspector.model_input, **request)
    if "explain" in request:
        x, y = request.pop("explain")
        return explain_pixel(inspector, pixels, x, y, **request)
    return inspector.inspect(pixels, inspector.plan(pixels.shape[:2], **request))
