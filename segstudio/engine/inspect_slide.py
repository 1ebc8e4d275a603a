"""Looking inside the network on a whole slide: the model-input-sized tile at the centre of the view.

A slide is never whole in memory, so the tile is read from the file, at level 0: Predict on a slide runs the
model on level-0 pixels (a model records no pixel size of its own to pick another level by), and the
inspector shows what Predict computes. The tile is normalised with the slide-wide levels Predict uses
(engine.predict.slide.SlideSource), so a tile of glass is not stretched into noise and the maps of
neighbouring tiles compare.

The window's inspector names the slide by its path, and the looks read it through a handle of their own
(slide_for_inspection), opened and closed on the one thread that runs them: the window's handle closes with
the window, possibly while a look is still reading from it.
"""
from __future__ import annotations

import dataclasses
import math
import weakref
from collections import OrderedDict
from collections.abc import Callable

from segstudio.core.imageio import Slide
from segstudio.engine.inspect import Inspection, Region, plan_region, region_input
from segstudio.engine.inspect_why import EXPLAIN_SIDE, Explanation, explain_in_region

# Each open slide's normalisation levels per model input (measured on a low level: a few hundred ms).
_SOURCES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The inspector's own handles, newest last; used by the model host's one thread only.
_HANDLES: OrderedDict = OrderedDict()
KEEP_OPEN = 2


def slide_for_inspection(path) -> Slide:
    """An open handle on the slide at `path` for the looks at it, kept for the next look; the oldest of more
    than KEEP_OPEN is closed. Call from one thread only (the model host's)."""
    key = str(path)
    slide = _HANDLES.pop(key, None) or Slide(path)
    _HANDLES[key] = slide
    while len(_HANDLES) > KEEP_OPEN:
        _HANDLES.popitem(last=False)[1].close()
    return slide


def view_centre_region(slide_shape: tuple[int, int], centre: tuple[float, float], side: int, *,
                       preview_side: int | None = None, align: int = 1) -> Region:
    """The `side` x `side` tile (level-0 pixels) centred on `centre` (x, y), moved inside the slide.

    With `preview_side`, the same tile averaged over pixel blocks down to at most that side: a first look
    that costs a fraction of the full pass.
    """
    height, width = int(slide_shape[0]), int(slide_shape[1])
    side = max(1, int(side))
    w, h = min(side, width), min(side, height)
    x = max(0, min(int(math.floor(centre[0] - w / 2)), width - w))
    y = max(0, min(int(math.floor(centre[1] - h / 2)), height - h))
    if preview_side is not None and preview_side < side:
        region = plan_region(slide_shape, (x, y, w, h), max_side=preview_side, mode="downsample", align=align)
    else:
        region = plan_region(slide_shape, (x, y, w, h), max_side=side, align=align)
    return dataclasses.replace(region, how="view centre")


def slide_source(inspector, slide, model_input: dict | None = None):
    """The slide as the network sees it, normalised as Predict normalises it (kept per slide and model input).
    ``model_input``: the definition Predict was given for this slide (PredictSettings.model_input); None:
    the model's own."""
    from segstudio.engine.predict.slide import SlideSource

    definition = model_input if model_input is not None else getattr(inspector.meta, "input", None)
    key = (inspector.in_channels, repr(sorted(inspector.normalisation.items())), repr(definition))
    per_slide = _SOURCES.setdefault(slide, {})
    if key not in per_slide:
        # tissue_only as Predict on a slide does it (it always finds the tissue first).
        per_slide[key] = SlideSource.for_slide(slide, inspector.in_channels, inspector.normalisation,
                                               tissue_only=True, definition=definition)
    return per_slide[key]


def inspect_slide(inspector, slide, centre: tuple[float, float], side: int, *, preview_side: int | None = None,
                  cancel: Callable[[], bool] | None = None, model_input: dict | None = None) -> Inspection:
    """One pass with taps over the tile at `centre`; PredictionCancelled when `cancel()` turns true before
    the pass (reading the tile is the other half of the time)."""
    from segstudio.engine.predict import PredictionCancelled

    region = view_centre_region(slide.shape, centre, side, preview_side=preview_side, align=inspector.stride)
    network_input = region_input(slide_source(inspector, slide, model_input), region)
    if cancel is not None and cancel():
        raise PredictionCancelled()
    return inspector.inspect_input(network_input, region)


def explain_slide_pixel(inspector, slide, x: float, y: float, *, class_index: int | None = None,
                        side: int = EXPLAIN_SIDE, cancel: Callable[[], bool] | None = None,
                        model_input: dict | None = None) -> Explanation:
    """Why level-0 pixel (x, y) of the slide got its class, on a `side` window around it read from the file."""
    from segstudio.engine.predict import PredictionCancelled

    region = plan_region(slide.shape, point=(x, y), max_side=side, align=inspector.stride)
    network_input = region_input(slide_source(inspector, slide, model_input), region)
    if cancel is not None and cancel():
        raise PredictionCancelled()
    return explain_in_region(inspector, network_input, region, x, y, class_index=class_index)
