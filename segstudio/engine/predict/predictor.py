"""Sliding-window inference for images of any size, with bounded memory and an out-of-memory fallback.

The image is cut into overlapping tiles (tiling.py) that run through the network in batches. Each tile's
probabilities are scaled on the device by its share of the blending weight, and only a band of rows about
one tile-row high is kept as sums; finished rows are summarised into labels, confidence and uncertainty
at once (outputs.py). Host memory therefore grows with the image only through the small per-pixel
outputs, and the device only ever holds a batch of tiles. On a GPU the band stays on the device, which
then sends only the summaries to the host.
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from segstudio.core.postprocess import apply_postprocess
from segstudio.core.text import printable
from segstudio.engine.devices import (
    amp_dtype,
    device_label,
    pick_device,
    place_model,
    uses_channels_last,
)
from segstudio.engine.hostmem import keep_host_memory
from segstudio.engine.predict.model_input import (
    DEFAULT_NORMALISATION,
    ModelInput,
    infer_in_channels,
)
from segstudio.engine.predict.outputs import Outputs, PredictResult
from segstudio.engine.predict.settings import (
    CancelCallback,
    PredictSettings,
    ProgressCallback,
)
from segstudio.engine.predict.tiling import (
    RELEASE_ROWS,
    BandBlender,
    BlendFactors,
    TilePlan,
    _axis_index,
    band_height,
    plan_tiles,
)

# Below this the network sees too little context per tile for its predictions to be worth having.
_MIN_FALLBACK_TILE = 64
# Largest band of sums kept on the device; a wider image blends on the host instead, so GPU memory never
# grows past this with the image (about 12,000 px wide for 3 classes at 512 px tiles and 25% overlap).
_DEVICE_BAND_BYTES = 128 << 20
# Rows summarised per call on the device: bigger slabs mean fewer, larger kernels.
_DEVICE_SLAB_ROWS = 512


class PredictionCancelled(Exception):
    """The caller asked to stop; nothing was produced, so it keeps its previous mask. A slide's prediction
    keeps what it finished: ``partial`` is then its SlideRunResult so far (tiles, regions for review)."""

    partial = None


class UnusableModelOutput(ValueError):
    """The model's answer for the first tile is not numbers: its weights are broken, whatever the image."""


class Predictor:
    """A model kept on its device between calls, predicting masks for whole images."""

    def __init__(self, model: nn.Module, meta: Any = None, device: str | torch.device = "auto"):
        self.device = pick_device(device)
        self.model = place_model(model, self.device)
        self.meta = meta
        self.in_channels = int(getattr(meta, "in_channels", 0) or infer_in_channels(model))
        self.normalisation = dict(getattr(meta, "normalisation", None) or DEFAULT_NORMALISATION)
        classes = getattr(meta, "classes", None) or []
        self.class_ids = [int(c["id"]) for c in classes] or None
        # Output channels after the classes: a boundary probability (sigmoid), not a class (softmax).
        self.extra = 1 if boundary_channel(meta) is not None else 0

    @property
    def device_label(self) -> str:
        return device_label(self.device)

    def to(self, device: str | torch.device) -> None:
        """Move the model to another device and keep it there for later calls."""
        self.device = pick_device(device)
        self.model = place_model(self.model, self.device)

    def predict(
        self,
        pixels: np.ndarray,
        settings: PredictSettings | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> PredictResult:
        """Labels, confidence and uncertainty for an (H, W, C) image.

        progress(done_tiles, total_tiles) is called after each batch; cancel() is asked before each batch
        and returning True raises PredictionCancelled. When the device runs out of memory the image is
        run again with half the batch, then smaller tiles, then on the CPU; result.notes says what happened.
        """
        settings = settings or PredictSettings()
        settings.validate()
        self._follow_device_setting(settings)
        definition = settings.model_input if settings.model_input is not None else getattr(self.meta, "input", None)
        source = ModelInput(pixels, self.in_channels, self.normalisation, definition)
        notes: list[str] = []
        tile, batch, device = settings.aligned_tile(), settings.batch_for(self.device.type), self.device
        if tile != settings.tile:
            notes.append(f"Tile size {settings.tile} rounded to {tile}, a multiple of {settings.align}.")
        while True:
            plan = plan_tiles(source.height, source.width, tile, settings.overlap, settings.align)
            try:
                result = self._predict_once(source, plan, batch, device, settings, progress, cancel, notes)
                apply_postprocess(result.labels, getattr(self.meta, "postprocess", None))
                return result
            except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one
                if not _is_out_of_memory(error):
                    raise
                fallback = _fallback(plan, batch, device, settings)
                if fallback is None:
                    raise
                notes.append(
                    f"Out of memory on {device} with {tile} px tiles in batches of {batch}; "
                    f"retried with {fallback[0]} px tiles in batches of {fallback[1]} on {fallback[2]}."
                )
                tile, batch, device = fallback
            # Out of the except block the failed attempt's tensors are unreachable and can be freed.
            _release_cached_memory(self.device)

    def warm_up(self, settings: PredictSettings | None = None) -> None:
        """Run the network once on blank tiles of the size and batches a prediction with `settings` uses,
        so that the device's one-off costs (CUDA context, cuDNN's choice of algorithms for each shape,
        the memory pool) are paid now rather than at the user's first Predict. Nothing on a CPU."""
        settings = settings or PredictSettings()
        self._follow_device_setting(settings)
        if self.device.type == "cpu":
            return
        tile = settings.aligned_tile()
        precision = amp_dtype(self.device) if settings.amp else None
        autocast = (torch.autocast(self.device.type, dtype=precision) if precision is not None
                    else contextlib.nullcontext())
        for batch in sorted({settings.batch_for(self.device.type), 1}):
            x = torch.zeros(batch, self.in_channels, tile, tile, device=self.device)
            if uses_channels_last(self.device):
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode(), autocast:
                self.model(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def iter_probabilities(
        self,
        pixels: np.ndarray,
        settings: PredictSettings | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Blended class probabilities band by band: yields (first_row, float32 (classes, rows, W)); a model
        with a boundary output adds its border probability as the last channel.

        Bands come top to bottom and cover the image once, so a caller can stream per-class probability
        maps of a huge image to disk. There is no out-of-memory fallback here; predict() has one.
        """
        settings = settings or PredictSettings()
        settings.validate()
        self._follow_device_setting(settings)
        definition = settings.model_input if settings.model_input is not None else getattr(self.meta, "input", None)
        source = ModelInput(pixels, self.in_channels, self.normalisation, definition)
        plan = plan_tiles(source.height, source.width, settings.tile, settings.overlap, settings.align)
        with keep_host_memory():
            run = _TiledRun(self.model, source, plan, settings.batch_for(self.device.type), self.device, settings,
                            extra=self.extra)
            for row, probs in run.bands(progress, cancel):
                # The slab is a view into the blending band, which moves on: give the caller its own copy.
                if isinstance(probs, torch.Tensor):
                    yield row, probs.to("cpu", copy=True).numpy()
                else:
                    yield row, probs.copy()

    # --- internals --------------------------------------------------------------------------------
    def _follow_device_setting(self, settings: PredictSettings) -> None:
        if settings.device and str(settings.device).lower() != "auto":
            wanted = pick_device(settings.device)
            if wanted != self.device:
                self.to(wanted)

    def _predict_once(self, source, plan, batch, device, settings, progress, cancel, notes) -> PredictResult:
        model = self.model
        if device != self.device:
            model = place_model(self.model, device)
        out = None
        try:
            with keep_host_memory():
                run = _TiledRun(model, source, plan, batch, device, settings, extra=self.extra)
                for row, probs in run.bands(progress, cancel):
                    if out is None:
                        lut = self._label_lut(probs.shape[0] - self.extra, notes)
                        out = Outputs(source.height, source.width, lut, self.extra)
                    out.add(row, probs)
                out.finish()
        finally:
            if device != self.device:
                place_model(self.model, self.device)
        return PredictResult(out.labels, out.confidence, out.uncertainty, notes, str(device), plan.count,
                             out.boundary)

    def _label_lut(self, classes: int, notes: list[str]) -> np.ndarray | None:
        """Output channel -> class id, when the model's metadata names the classes."""
        if not self.class_ids:
            return None
        if len(self.class_ids) != classes:
            notes.append(
                f"The model has {classes} outputs but its metadata lists {len(self.class_ids)} classes; "
                "labels are output indices."
            )
            return None
        return np.asarray(self.class_ids, dtype=np.int64)


class _TiledRun:
    """One pass of a model over an image's tiles, yielding blended probabilities top to bottom."""

    def __init__(self, model, source: ModelInput, plan: TilePlan, batch_size: int, device: torch.device,
                 settings: PredictSettings, *, extra: int = 0):
        self.model, self.source, self.plan, self.device = model, source, plan, device
        self.extra = extra  # output channels after the classes, each a sigmoid probability
        self.factors = BlendFactors(plan, settings.sigma_scale, device)
        origins = plan.origins
        self.batches = [origins[i : i + batch_size] for i in range(0, len(origins), batch_size)]
        self.band_h = band_height(plan, self.batches)
        self.precision = amp_dtype(device) if settings.amp else None
        # None until the first batch shows the class count: results stay on the device until then.
        self.to_host = None if _blend_on_device(device) else True
        self._rows: dict[int, torch.Tensor] = {}  # rows of tiles on the device (see _row_on_device)
        self.blender: BandBlender | None = None
        self.slab_rows = RELEASE_ROWS

    def bands(self, progress: ProgressCallback | None, cancel: CancelCallback | None) -> Iterator[tuple[int, Any]]:
        """(first_row, (classes, rows, width) numpy array or tensor), top to bottom.

        On a GPU the band of sums stays on the device (while it fits in _DEVICE_BAND_BYTES) and slabs are
        tensors there; otherwise they are numpy arrays. A slab is only valid until the generator resumes.
        """
        total, done = len(self.plan.origins), 0
        # One batch stays in flight: on a GPU the host prepares batch k+1 while batch k computes.
        in_flight = None
        for batch in self.batches + [None]:
            launched = None
            if batch is not None:
                if cancel is not None and cancel():
                    raise PredictionCancelled()
                launched = (batch, self._launch(batch))
            if in_flight is not None:
                finished_batch, pending = in_flight
                yield from self._blend(finished_batch, pending())
                done += len(finished_batch)
                if progress is not None:
                    progress(done, total)
            in_flight = launched
        if self.blender is not None:
            yield from self.blender.release_until(self.plan.padded_h, self.slab_rows)

    def _launch(self, batch: list[tuple[int, int]]) -> Callable[[], Any]:
        if _cut_on_device(self.device) and getattr(self.source, "scales_on_device", False):
            # Each row of tiles travels to the GPU once, as stored pixels, and is scaled there; its tiles are
            # cut out on the device, so the host does one copy per row instead of work per tile.
            w = self.plan.tile_w
            tiles = torch.stack([self._row_on_device(y)[:, :, x : x + w] for y, x in batch])
            if uses_channels_last(self.device):
                tiles = tiles.contiguous(memory_format=torch.channels_last)
        else:
            tiles = np.stack([self.source.region(*self.plan.source_index(y, x)) for y, x in batch])
        return _launch(self.model, tiles, self.device, self.factors.for_batch(batch), self.precision,
                       to_host=bool(self.to_host), extra=self.extra)

    def _row_on_device(self, y: int) -> torch.Tensor:
        """Network input for the row of tiles at y across the padded width, (C, tile_h, padded_w) on the device."""
        row = self._rows.get(y)
        if row is None:
            for done in [top for top in self._rows if top < y]:
                del self._rows[done]  # rows of tiles run top to bottom: an earlier one is never needed again
            rows = _axis_index(y, self.plan.tile_h, self.plan.height)
            cols = _axis_index(0, self.plan.padded_w, self.plan.width)
            row = _scaled_on_device(self.source, self.source.raw_region(rows, cols)[None], self.device)[0]
            self._rows[y] = row
        return row

    def _blend(self, batch: list[tuple[int, int]], shares) -> Iterator[tuple[int, Any]]:
        """Release the rows no tile of `batch` reaches, then add the batch's shares to the band."""
        if self.blender is None:
            # The first batch shows whether the weights compute anything at all (once: no sync per batch).
            if not _all_finite(shares):
                name = getattr(self.model, "source_file", None) or "the model"
                raise UnusableModelOutput(
                    f"{printable(name)}: the model's answer for the first tile is not a number (NaN or "
                    "infinite class scores), so its mask would be empty or all one class whatever the image. "
                    "Its weights are broken: use another model or version.")
            self._make_blender(classes=shares.shape[1])
        if self.to_host and isinstance(shares, torch.Tensor):
            shares = shares.cpu().numpy()  # launched before the blending place was known
        yield from self.blender.release_until(batch[0][0], self.slab_rows)
        for (y, x), share in zip(batch, shares):
            self.blender.add(y, x, share)

    def _make_blender(self, classes: int) -> None:
        band_bytes = classes * self.band_h * self.plan.padded_w * 4
        on_device = not self.to_host and band_bytes <= _DEVICE_BAND_BYTES
        self.to_host = not on_device
        self.blender = BandBlender(self.plan, self.band_h, self.device if on_device else None)
        self.slab_rows = _DEVICE_SLAB_ROWS if on_device else RELEASE_ROWS


def _cut_on_device(device: torch.device) -> bool:
    """Whether tiles are cut and scaled where the network runs (a GPU) rather than on the host."""
    return device.type == "cuda"


def _scaled_on_device(source: ModelInput, raw: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(raw)
    if device.type == "cuda":
        # From pinned memory the upload is truly asynchronous (see _upload).
        x = x.pin_memory().to(device, non_blocking=True)
    else:
        x = x.to(device)
    with torch.inference_mode():
        return source.scale_tensor(x)


def _launch(model, tiles, device, factors, precision, to_host: bool, extra: int = 0) -> Callable[[], Any]:
    """Start a batch (a numpy array, or a tensor already on the device); the returned callable waits for
    it and gives each tile's share of the blend.

    The shares come as a numpy array when `to_host`, else as a tensor left on the device.
    """
    x = tiles if isinstance(tiles, torch.Tensor) else _upload(tiles, device)
    autocast = (torch.autocast(device.type, dtype=precision) if precision is not None
                else contextlib.nullcontext())
    with torch.inference_mode(), autocast:
        logits = model(x)
    if logits.ndim != 4 or logits.shape[0] != x.shape[0] or logits.shape[-2:] != x.shape[-2:]:
        raise ValueError(
            f"the model returned {tuple(logits.shape)} for tiles of {tuple(x.shape)}; expected "
            "(N, classes, H, W) at the input size"
        )
    with torch.inference_mode():
        probs = _probabilities(logits.float(), extra)
        probs *= factors
        return _hand_over(probs, device, to_host)


def _all_finite(shares) -> bool:
    if isinstance(shares, torch.Tensor):
        return bool(torch.isfinite(shares).all())
    return bool(np.isfinite(shares).all())


def _upload(tiles: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(tiles)
    if device.type == "cuda":
        # From pinned memory the upload is truly asynchronous; from pageable memory CUDA first waits for
        # all queued work, which would stop the host preparing tiles while the GPU computes.
        x = x.pin_memory().to(device, non_blocking=True)
    elif device.type != "cpu":
        x = x.to(device)
    if uses_channels_last(device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _probabilities(logits: torch.Tensor, extra: int = 0) -> torch.Tensor:
    """Class probabilities (softmax; a single logit is a foreground score), then the ``extra`` channels
    after the classes each through a sigmoid (a boundary probability)."""
    if extra:
        if logits.shape[1] <= extra:
            raise ValueError(f"the model returned {logits.shape[1]} channels; its metadata declares {extra} "
                             "boundary channel(s) after the classes")
        classes = _probabilities(logits[:, :-extra])
        return torch.cat([classes, torch.sigmoid(logits[:, -extra:])], dim=1)
    if logits.shape[1] == 1:  # a single logit is a foreground score
        foreground = torch.sigmoid(logits)
        return torch.cat([1.0 - foreground, foreground], dim=1)
    return torch.softmax(logits, dim=1)


def boundary_channel(meta: Any) -> int | None:
    """The output channel a model's metadata declares as its object-boundary map (after the classes)."""
    objects = getattr(meta, "objects", None) or {}
    channel = objects.get("boundary_channel") if isinstance(objects, dict) else None
    return int(channel) if channel is not None else None


def _hand_over(probs: torch.Tensor, device: torch.device, to_host: bool) -> Callable[[], Any]:
    """A callable that waits for `probs` and returns them: a device tensor, or numpy when `to_host`."""
    if not to_host:
        if device.type == "cuda":
            # Waiting for batch k while batch k+1 computes keeps at most two batches queued.
            done = torch.cuda.Event()
            done.record()

            def finished() -> torch.Tensor:
                done.synchronize()
                return probs

            return finished
        return lambda: probs
    if device.type == "cuda":
        host = probs.to("cpu", non_blocking=True)  # lands in pinned memory, asynchronously
        ready = torch.cuda.Event()
        ready.record()

        def wait() -> np.ndarray:
            ready.synchronize()
            return host.numpy()

        return wait
    host = probs.cpu().numpy()
    return lambda: host


def _fallback(plan: TilePlan, batch: int, device: torch.device, settings: PredictSettings):
    """Next (tile, batch, device) to try after running out of memory, or None when nothing is left."""
    tile = max(plan.tile_h, plan.tile_w)
    if batch > 1:
        return tile, batch // 2, device
    smaller = tile // 2 // settings.align * settings.align
    if smaller >= max(_MIN_FALLBACK_TILE, settings.align):
        return smaller, 1, device
    if device.type != "cpu":
        # Host memory is plentiful next to a GPU's: go back to the sizes the caller asked for.
        return settings.aligned_tile(), settings.batch_for("cpu"), torch.device("cpu")
    return None


def _blend_on_device(device: torch.device) -> bool:
    """Whether to blend and summarise where the network runs (GPUs) rather than on the host (CPU)."""
    return device.type in ("cuda", "mps")


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _release_cached_memory(device: torch.device) -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    mps = getattr(torch, "mps", None)
    if device.type == "mps" and mps is not None:
        mps.empty_cache()
