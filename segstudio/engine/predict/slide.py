"""Prediction of a whole slide (or a box of it) straight into chunked labels, resumable, skipping the glass.

The slide is cut into vertical strips (STRIP pixels wide) and each strip into blocks (BLOCK rows). A strip
runs through the same tiling, band blending and batching as an ordinary image (predictor._TiledRun), over
the tiles of the global tile grid that touch it, so every pixel is blended from exactly the tiles an
ordinary prediction of the whole slide would use: the labels are the same. Tiles with no tissue in them
(core.tissue, from a low level) are never run; a pixel of tissue lies in every tile that covers it, so
skipping never changes a tissue pixel's label.

Nothing slide-sized is held: tiles are read from the slide by worker threads a few batches ahead of the
network (so reading and preparing overlap the forward pass), the band is one strip wide, and finished
rows go to a sink (a label store on disk, or the window) on a writer thread. When a block's rows are all
written the sink marks it done; a later run over the same output skips done blocks, so an interrupted
run resumes where it stopped.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from segstudio.core.review import SLIDE_REGION, UncertaintyGrid
from segstudio.core.tissue import MASK_SIDE, TissueMap, tissue_mask
from segstudio.core.tissue import overview as tissue_overview
from segstudio.engine.hostmem import keep_host_memory
from segstudio.engine.predict.model_input import ModelInput
from segstudio.engine.predict.outputs import Outputs
from segstudio.engine.predict.predictor import PredictionCancelled, Predictor, _launch, _TiledRun
from segstudio.engine.predict.settings import CancelCallback, PredictSettings, ProgressCallback
from segstudio.engine.predict.tiling import TilePlan, band_height, plan_tiles

# Strips and blocks are whole label chunks (512 px), so a block's chunks are complete when it is done.
STRIP = 8192  # tiles on a strip's border run for both strips: about 6% more tiles at 512 px
BLOCK = 2048
# Batches read and prepared ahead of the one the network runs.
PREFETCH_BATCHES = 4
READ_THREADS = 3
# The normalisation levels come from the coarsest level with at least this many pixels a side: the one the
# tissue map is made from, so a run reads that overview once.
_LEVELS_SIDE = MASK_SIDE

Box = tuple[int, int, int, int]  # y0, x0, height, width in level-0 pixels


class LabelSink(Protocol):
    """Where finished labels go. Called from one writer thread, in order."""

    def is_done(self, key: str) -> bool: ...

    def write(self, y0: int, x0: int, labels: np.ndarray) -> None: ...

    def block_done(self, key: str, box: Box, uncertainty: float | None) -> None: ...


@dataclass
class SlideRunResult:
    tiles_run: int = 0  # tiles through the network in this run
    tiles_skipped: int = 0  # tiles of glass, never run
    blocks_done: int = 0  # blocks finished in this run
    blocks_resumed: int = 0  # blocks found done from an earlier run
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # Mean uncertainty (0-1) of the tissue in each finished block, for choosing where to look first.
    uncertainty: dict[str, float] = field(default_factory=dict)
    # Uncertainty summed per review region (core.review): the queue of regions to check after the run.
    regions: UncertaintyGrid | None = None


class SlideSource:
    """Level-0 pixels of a slide as network input, read region by region, normalised with fixed levels."""

    def __init__(self, slide, in_channels: int, normalisation, levels, definition=None) -> None:
        self.slide, self.in_channels, self.normalisation, self.levels = slide, in_channels, normalisation, levels
        # The model's input definition (H&E's hematoxylin, picked channels), as for an ordinary image.
        self.definition = definition
        self.height, self.width = slide.height, slide.width

    @classmethod
    def for_slide(cls, slide, in_channels: int, normalisation, tissue_only: bool = False,
                  definition=None, overview: np.ndarray | None = None) -> SlideSource:
        """Normalisation levels measured once on a low level, over the tissue alone when asked (on a slide
        that is mostly glass, percentiles of every pixel would be the glass's): every tile is scaled alike.
        ``overview``: that low level when already read (the tissue map's)."""
        if overview is None:
            overview = tissue_overview(slide, _LEVELS_SIDE)
        if tissue_only:
            inside = tissue_mask(overview, dilate=0)
            if inside.any():
                overview = overview[inside][:, None, :]
        levels = ModelInput(overview, in_channels, normalisation, definition).levels
        return cls(slide, in_channels, normalisation, levels, definition)

    def region(self, rows, cols) -> np.ndarray:
        r0, r1 = _span(rows)
        c0, c1 = _span(cols)
        block = self.slide.read_region(0, c0, r0, c1 - c0, r1 - r0)
        source = ModelInput(block, self.in_channels, self.normalisation, self.definition, levels=self.levels)
        return source.region(_shift(rows, -r0), _shift(cols, -c0))


class _Offset:
    """A source seen from (oy, ox): a strip's sub-plan indexes it in its own coordinates."""

    def __init__(self, source, oy: int, ox: int) -> None:
        self.source, self.oy, self.ox = source, oy, ox

    def region(self, rows, cols) -> np.ndarray:
        return self.source.region(_shift(rows, self.oy), _shift(cols, self.ox))


def _span(index) -> tuple[int, int]:
    if isinstance(index, slice):
        return index.start, index.stop
    return int(index.min()), int(index.max()) + 1


def _shift(index, by: int):
    if isinstance(index, slice):
        return slice(index.start + by, index.stop + by)
    return index + by


def sub_plan(plan: TilePlan, box: Box) -> tuple[TilePlan, int, int]:
    """The tiles of `plan` that touch `box`, as a plan of their own with its origin at (oy, ox).

    Blending factors computed over this plan equal the whole plan's inside `box`, since every tile that
    covers a pixel of the box is in it; past the slide's edge it mirrors as the whole plan does.
    """
    y0, x0, h, w = box
    rows = [r for r in plan.rows if r < y0 + h and r + plan.tile_h > y0]
    cols = [c for c in plan.cols if c < x0 + w and c + plan.tile_w > x0]
    oy, ox = rows[0], cols[0]
    padded_h, padded_w = rows[-1] + plan.tile_h - oy, cols[-1] + plan.tile_w - ox
    return TilePlan(min(plan.height - oy, padded_h), min(plan.width - ox, padded_w), plan.tile_h, plan.tile_w,
                    padded_h, padded_w, tuple(r - oy for r in rows), tuple(c - ox for c in cols)), oy, ox


class _SlideRun(_TiledRun):
    """A strip's tiles, glass left out, prepared by worker threads a few batches ahead of the network."""

    def __init__(self, model, source, plan, batch_size, device, settings, origins, pool: ThreadPoolExecutor,
                 extra: int = 0):
        super().__init__(model, source, plan, batch_size, device, settings, extra=extra)
        self.batches = [origins[i : i + batch_size] for i in range(0, len(origins), batch_size)]
        self.band_h = band_height(plan, self.batches) if self.batches else plan.tile_h
        self._pool = pool
        self._queued: deque[Future] = deque()
        self._next = 0

    def _prepare(self, batch) -> np.ndarray:
        return np.stack([self.source.region(*self.plan.source_index(y, x)) for y, x in batch])

    def _launch(self, batch):
        while len(self._queued) <= PREFETCH_BATCHES and self._next < len(self.batches):
            self._queued.append(self._pool.submit(self._prepare, self.batches[self._next]))
            self._next += 1
        tiles = self._queued.popleft().result()
        return _launch(self.model, tiles, self.device, self.factors.for_batch(batch), self.precision,
                       to_host=bool(self.to_host), extra=self.extra)

    def _make_blender(self, classes: int) -> None:
        super()._make_blender(classes)
        # The band starts at the first tile that runs: the glass rows above it have nothing to blend.
        self.blender.top = self.batches[0][0][0]

    def close(self) -> None:
        for future in self._queued:
            future.cancel()
        self._queued.clear()


@dataclass
class _Strip:
    index: int
    box: Box  # the output still to do
    blocks: list[tuple[str, Box]]  # (key, box) still to do, top to bottom
    plan: TilePlan
    oy: int
    ox: int
    origins: list[tuple[int, int]]  # tiles with tissue, sub-plan coordinates
    skipped: int


def plan_strips(plan: TilePlan, box: Box, tissue: TissueMap, sink: LabelSink,
                result: SlideRunResult) -> list[_Strip]:
    """The strips of `box` with work left, each from its first block not yet done."""
    y0, x0, h, w = box
    strips = []
    for i in range(x0 // STRIP, -(-(x0 + w) // STRIP)):
        xa, xb = max(x0, i * STRIP), min(x0 + w, (i + 1) * STRIP)
        blocks = []
        for j in range(y0 // BLOCK, -(-(y0 + h) // BLOCK)):
            ya, yb = max(y0, j * BLOCK), min(y0 + h, (j + 1) * BLOCK)
            key = f"{i},{j}"
            if blocks or not sink.is_done(key):
                blocks.append((key, (ya, xa, yb - ya, xb - xa)))
            else:
                result.blocks_resumed += 1
        if not blocks:
            continue
        top = blocks[0][1][0]
        strip_box = (top, xa, y0 + h - top, xb - xa)
        sub, oy, ox = sub_plan(plan, strip_box)
        tiles = np.asarray(sub.origins, np.int64).reshape(-1, 2)
        inside = tissue.any_in_boxes(tiles[:, 0] + oy, tiles[:, 1] + ox, sub.tile_h, sub.tile_w)
        origins = [origin for origin, keep in zip(sub.origins, inside.tolist()) if keep]
        strips.append(_Strip(i, strip_box, blocks, sub, oy, ox, origins, len(sub.origins) - len(origins)))
    return strips


def predict_slide(predictor: Predictor, slide, sink: LabelSink, settings: PredictSettings | None = None, *,
                  box: Box | None = None, tissue: TissueMap | None = None,
                  progress: ProgressCallback | None = None, cancel: CancelCallback | None = None,
                  source=None) -> SlideRunResult:
    """Predict `box` (default: the whole slide) of a core.imageio.Slide at level 0 into `sink`.

    progress(done_tiles, total_tiles) after each batch; cancel() before each batch, True raises
    PredictionCancelled after the rows already finished have reached the sink (so a rerun resumes).
    """
    settings = settings or PredictSettings()
    settings.validate()
    predictor._follow_device_setting(settings)
    start = time.perf_counter()
    result = SlideRunResult(regions=UncertaintyGrid(slide.height, slide.width, SLIDE_REGION))
    box = box or (0, 0, slide.height, slide.width)
    tissue = tissue or TissueMap.everywhere(slide.height, slide.width)
    definition = settings.model_input if settings.model_input is not None else getattr(predictor.meta, "input", None)
    source = source or SlideSource.for_slide(slide, predictor.in_channels, predictor.normalisation,
                                             tissue_only=tissue.mask.size > 1, definition=definition,
                                             overview=tissue.overview)
    plan = plan_tiles(slide.height, slide.width, settings.tile, settings.overlap, settings.align)
    strips = plan_strips(plan, box, tissue, sink, result)
    total = sum(len(s.origins) for s in strips)
    result.tiles_skipped = sum(s.skipped for s in strips)
    counter = _Counter(total, progress)
    try:
        with ThreadPoolExecutor(READ_THREADS, "slide-read") as pool, \
                ThreadPoolExecutor(1, "slide-write") as writer:
            writes: deque[Future] = deque()
            try:
                for strip in strips:
                    _run_strip(predictor, source, strip, settings, sink, pool, writer, writes, counter, cancel,
                               result)
            finally:
                for future in writes:
                    future.result()  # blocks already finished reach the sink, and a failed write is raised
    except PredictionCancelled as stop:
        # What was finished stays (in the sink, and its regions for review): the exception carries it.
        result.tiles_run, result.seconds = counter.done, time.perf_counter() - start
        stop.partial = result
        raise
    result.tiles_run = counter.done
    result.seconds = time.perf_counter() - start
    return result


class _Counter:
    def __init__(self, total: int, progress: ProgressCallback | None) -> None:
        self.total, self.progress, self.done, self._base = total, progress, 0, 0

    def strip_progress(self, done: int, _total: int) -> None:
        self.done = self._base + done
        if self.progress is not None:
            self.progress(self.done, self.total)

    def next_strip(self) -> None:
        self._base = self.done


def _run_strip(predictor, source, strip: _Strip, settings, sink, pool, writer, writes, counter, cancel,
               result: SlideRunResult) -> None:
    counter.next_strip()
    blocks = deque(strip.blocks)
    pending: dict[str, list[float]] = {}

    def finished(until: int) -> None:
        while blocks and blocks[0][1][0] + blocks[0][1][2] <= until:
            key, block = blocks.popleft()
            sums = pending.pop(key, [0.0, 0.0])
            mean = sums[0] / sums[1] if sums[1] else None
            if mean is not None:
                result.uncertainty[key] = mean
            writes.append(writer.submit(sink.block_done, key, block, mean))
            result.blocks_done += 1
        while len(writes) > 8:
            writes.popleft().result()

    if not strip.origins:
        finished(strip.box[0] + strip.box[2])
        return
    for gy, labels, uncertainty in _strip_rows(predictor, source, strip, settings, pool, counter, cancel):
        key = blocks[0][0] if blocks else None
        covered = uncertainty >= 0
        if key is not None and covered.any():
            sums = pending.setdefault(key, [0.0, 0.0])
            sums[0] += float(uncertainty[covered].sum())
            sums[1] += int(covered.sum())
        if result.regions is not None:
            result.regions.add(gy, strip.box[1], uncertainty)
        writes.append(writer.submit(sink.write, gy, strip.box[1], labels))
        finished(gy + labels.shape[0])
    finished(strip.box[0] + strip.box[2])


def _strip_rows(predictor, source, strip: _Strip, settings, pool, counter, cancel) -> Iterator[
        tuple[int, np.ndarray, np.ndarray]]:
    """(first level-0 row, labels, uncertainty or -1 where no tile ran) of the strip, in slabs of rows."""
    y0, x0, h, w = strip.box
    c0 = x0 - strip.ox
    device = predictor.device
    with keep_host_memory():
        run = _SlideRun(predictor.model, _Offset(source, strip.oy, strip.ox), strip.plan,
                        settings.batch_for(device.type), device, settings, strip.origins, pool,
                        extra=predictor.extra)
        try:
            for row, probs in run.bands(counter.strip_progress, cancel):
                gy = strip.oy + row
                r0, r1 = max(0, y0 - gy), min(probs.shape[1], y0 + h - gy)
                if r1 <= r0:
                    continue
                part = probs[:, r0:r1, c0 : c0 + w]
                yield (gy + r0, *_summarise(predictor, part))
        finally:
            run.close()


# Blending weights sum to 1 where every tile over a pixel ran; less next to glass tiles that were left out.
_FULL_WEIGHT = 0.99


def _summarise(predictor: Predictor, probs) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0 where no tile ran) and uncertainty of a slab of blended probabilities; the uncertainty is
    -1 where some tile over the pixel was left out (glass), since its probabilities there do not sum to 1
    and their entropy would read as doubt. Only the columns some tile reached are summarised: a strip is
    wider than the tissue in it."""
    probs = probs[: probs.shape[0] - predictor.extra]  # a boundary channel is not a class
    total = probs.sum(0)
    if isinstance(total, torch.Tensor):
        covered, full = (total > 0).cpu().numpy(), (total >= _FULL_WEIGHT).cpu().numpy()
    else:
        covered, full = total > 0, total >= _FULL_WEIGHT
    lut = predictor._label_lut(probs.shape[0], [])
    largest = int(lut.max()) if lut is not None else probs.shape[0] - 1
    labels = np.zeros(covered.shape, np.uint8 if largest <= 255 else np.uint16)
    uncertainty = np.full(covered.shape, -1.0, np.float32)
    reached = np.flatnonzero(covered.any(0))
    if reached.size:
        c0, c1 = int(reached[0]), int(reached[-1]) + 1
        out = Outputs(probs.shape[1], c1 - c0, lut)
        out.add(0, probs[:, :, c0:c1])
        out.finish()
        labels[:, c0:c1] = np.where(covered[:, c0:c1], out.labels, 0)
        uncertainty[:, c0:c1] = np.where(full[:, c0:c1], out.uncertainty.astype(np.float32), -1.0)
    return labels, uncertainty
