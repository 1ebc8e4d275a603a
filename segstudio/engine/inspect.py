"""Look inside the network on the part of the slide the user is looking at.

One forward pass with feature taps over a bounded region of the image (never the whole of a large image),
then what the inspector shows: per-channel statistics, channel orderings, channel means and maxima, the
skip connections worth comparing side by side, the activations under one pixel, and tap export.

Geometry, used everywhere below: the region is a rectangle of the image; the network input is that region,
optionally averaged over `step` x `step` pixel blocks so a large view still fits the size cap. The model
pads its input up to a multiple of its stride at the bottom and right, so a tap whose grid is `h` cells high
covers `h * scale` input rows starting at the region's top edge, and input row r is image row
`region.y + r * step`.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the window imports this module for its data types before torch has loaded
    import torch
    import torch.nn as nn

    from segstudio.models.taps import TapSpec

MAX_REGION_SIDE = 512
# Above this the captured taps are kept at half precision; statistics are always computed in float32.
TAP_MEMORY_BUDGET = 384 * 2**20
# Input rows are read and block-averaged in bands so a downsampled large view never exists at full size.
_INPUT_BAND_BYTES = 64 * 2**20

SORT_KEYS = ("mean", "variance", "index")

_MODES = ("crop", "downsample")


# --- regions ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """The image rectangle a set of taps was computed for.

    x, y, w, h: image pixels covered; step: block size the pixels were averaged over (1 = full resolution);
    how: "view" (the whole view), "centre crop", "downsampled", "around point" or "view centre" (a whole slide's
    tile at the centre of the view); view: the rectangle asked for.
    """

    x: int
    y: int
    w: int
    h: int
    step: int = 1
    how: str = "view"
    view: tuple[int, int, int, int] | None = None

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.h // self.step, self.w // self.step

    @property
    def rect(self) -> tuple[int, int, int, int]:
        return self.x, self.y, self.w, self.h

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h

    def describe(self) -> str:
        """One line for the user saying which pixels were used and how."""
        span = f"x {self.x}-{self.x + self.w - 1}, y {self.y}-{self.y + self.h - 1}"
        ih, iw = self.input_shape
        if self.how == "downsampled":
            vw, vh = self.view[2], self.view[3]
            return (f"{span}: the {vw} x {vh} view, downsampled x{self.step} to {iw} x {ih} px; objects look "
                    f"{self.step}x smaller to the network than when it predicts")
        if self.how == "centre crop":
            vw, vh = self.view[2], self.view[3]
            return f"{span}: centre {self.w} x {self.h} px of the {vw} x {vh} view, full resolution"
        if self.how == "view centre":  # a whole slide: the tile at the centre of the view
            how = f"averaged over {self.step} x {self.step} px blocks" if self.step > 1 else "full resolution"
            return f"{span}: {self.w} x {self.h} px at the centre of the view, {how}"
        if self.how == "around point":
            return f"{span}: {self.w} x {self.h} px window around the clicked point, full resolution"
        return f"{span}: the whole view, {self.w} x {self.h} px at full resolution"


def _fit(size: int, align: int, limit: int) -> int:
    """`size` rounded to a multiple of `align`: up when that stays within `limit`, else down.

    Rounding up covers the whole view (plus a rim); a size below one stride stays (the model pads it).
    """
    up = math.ceil(size / align) * align
    if up <= limit:
        return up
    return size if size < align else max(align, min(size, limit) // align * align)


def _place(centre: float, size: int, length: int) -> int:
    """Start of a window of `size` centred on `centre`, moved inside [0, length)."""
    return max(0, min(int(math.floor(centre - size / 2)), length - size))


def plan_region(
    image_shape: tuple[int, int],
    view: tuple[int, int, int, int] | None = None,
    *,
    point: tuple[float, float] | None = None,
    max_side: int = MAX_REGION_SIDE,
    mode: str = "crop",
    align: int = 1,
) -> Region:
    """The region to compute taps for: the view (x, y, w, h) or a window centred on `point` (x, y).

    A view larger than `max_side` is centre-cropped (mode "crop", full resolution) or averaged over
    blocks until it fits (mode "downsample"). Sides become multiples of `align` (the model's stride) so
    every tap cell covers whole input pixels and no padding enters the maps; the region never leaves
    the image.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    height, width = int(image_shape[0]), int(image_shape[1])
    if height < 1 or width < 1:
        raise ValueError(f"empty image of shape {image_shape}")
    max_side = max(1, int(max_side))
    align = max(1, int(align))
    if point is not None:
        px, py = point
        w = _fit(min(max_side, width), align, min(max_side, width))
        h = _fit(min(max_side, height), align, min(max_side, height))
        return Region(_place(px, w, width), _place(py, h, height), w, h, 1, "around point", view)
    if view is None:
        view = (0, 0, width, height)
    vx, vy, vw, vh = (int(v) for v in view)
    x1, y1 = min(width, vx + vw), min(height, vy + vh)
    vx, vy = max(0, vx), max(0, vy)
    vw, vh = x1 - vx, y1 - vy
    if vw < 1 or vh < 1:
        raise ValueError(f"the view {view} does not overlap the {width} x {height} image")
    if max(vw, vh) <= max_side:
        how, step = "view", 1
    elif mode == "crop":
        how, step = "centre crop", 1
    else:
        how, step = "downsampled", math.ceil(max(vw, vh) / max_side)
    in_w = _fit(max(1, min(vw, max_side * step) // step), align, min(max_side, width // step))
    in_h = _fit(max(1, min(vh, max_side * step) // step), align, min(max_side, height // step))
    w, h = in_w * step, in_h * step
    return Region(_place(vx + vw / 2, w, width), _place(vy + vh / 2, h, height), w, h, step, how,
                  (vx, vy, vw, vh))


def region_input(source, region: Region) -> np.ndarray:
    """float32 (C, h, w) network input for the region; `source` is an engine.predict.ModelInput.

    The source fixes channel mapping and normalisation levels for the whole image, so the region is scaled
    exactly as prediction scales it. Downsampling averages step x step blocks, read in bounded row bands.
    """
    step = region.step
    in_h, in_w = region.input_shape
    cols = slice(region.x, region.x + in_w * step)
    if step == 1:
        return np.ascontiguousarray(source.region(slice(region.y, region.y + in_h), cols), dtype=np.float32)
    channels = int(source.in_channels)
    out = np.empty((channels, in_h, in_w), np.float32)
    rows_per_band = max(1, _INPUT_BAND_BYTES // max(1, 4 * channels * in_w * step * step))
    for start in range(0, in_h, rows_per_band):
        stop = min(in_h, start + rows_per_band)
        block = source.region(slice(region.y + start * step, region.y + stop * step), cols)
        out[:, start:stop] = block.reshape(channels, stop - start, step, in_w, step).mean(axis=(2, 4))
    return out


# --- results --------------------------------------------------------------------------------------------
@dataclass
class ChannelStats:
    """Per-channel statistics of one tap over the cells that cover the region (arrays of length C)."""

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @property
    def variance(self) -> np.ndarray:
        return self.std.astype(np.float64) ** 2


@dataclass
class TapResult:
    spec: TapSpec
    tensor: np.ndarray  # (C, h, w), float32 or float16 (see Inspection.notes)
    scale: tuple[float, float]  # input pixels per tap cell (rows, columns)
    valid: tuple[int, int]  # cells that cover the region input (the rest covers the model's padding)
    stats: ChannelStats
    mean_map: np.ndarray  # (h, w) float32, mean over channels
    max_map: np.ndarray  # (h, w) float32, max over channels

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.tensor.shape)

    @property
    def channels(self) -> int:
        return int(self.tensor.shape[0])

    @property
    def stride(self) -> float:
        return max(self.scale)

    def channel(self, index: int) -> np.ndarray:
        return self.tensor[int(index)].astype(np.float32)

    def describe_shape(self) -> str:
        c, h, w = self.shape
        return f"{c} x {h} x {w}"


@dataclass
class Inspection:
    """Everything one forward pass over a region produced."""

    region: Region
    arch: str
    specs: list[TapSpec]
    taps: dict[str, TapResult]  # in network order
    probabilities: np.ndarray  # (K, h, w) float32 on the input grid
    class_names: list[str]
    num_classes: int
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.region.input_shape

    @property
    def nbytes(self) -> int:
        return sum(t.tensor.nbytes for t in self.taps.values()) + self.probabilities.nbytes

    def tap(self, name: str) -> TapResult:
        try:
            return self.taps[name]
        except KeyError:
            raise KeyError(f"no tap {name!r}; this inspection has: {', '.join(self.taps)}") from None

    def is_class_score(self, name: str) -> bool:
        """Taps whose channels are one score per class (FCN score maps, logits)."""
        tap = self.tap(name)
        if tap.spec.kind == "logits":
            return True
        # A feature tap may have as many channels as there are classes by chance; score maps say so by name.
        return tap.channels == self.num_classes and "score" in name.lower()

    def image_to_input(self, x: float, y: float) -> tuple[int, int]:
        """(row, column) of the network input pixel under image pixel (x, y)."""
        step = self.region.step
        return int((y - self.region.y) // step), int((x - self.region.x) // step)


def tap_scale(tap_hw: tuple[int, int], input_hw: tuple[int, int], model_stride: int) -> tuple[float, float]:
    """Input pixels per tap cell along rows and columns.

    A tap as large as the input (the cropped logits, stride-1 layers) maps 1:1. Other taps come from the
    input padded up to a multiple of the model's stride, so their cells divide the padded size.
    """
    th, tw = tap_hw
    ih, iw = input_hw
    if (th, tw) == (ih, iw):
        return 1.0, 1.0
    stride = max(1, int(model_stride))
    ph, pw = math.ceil(ih / stride) * stride, math.ceil(iw / stride) * stride
    return ph / max(1, th), pw / max(1, tw)


def channel_stats(tensor: np.ndarray, valid: tuple[int, int] | None = None) -> ChannelStats:
    """mean, std, min and max of each channel of a (C, h, w) array over its top-left `valid` cells."""
    data = np.asarray(tensor)
    if valid is not None:
        data = data[:, : valid[0], : valid[1]]
    flat = data.reshape(data.shape[0], -1).astype(np.float32)
    if flat.shape[1] == 0:
        zeros = np.zeros(data.shape[0], np.float32)
        return ChannelStats(zeros, zeros.copy(), zeros.copy(), zeros.copy())
    return ChannelStats(flat.mean(axis=1), flat.std(axis=1), flat.min(axis=1), flat.max(axis=1))


def sort_channels(stats: ChannelStats, by: str = "mean") -> np.ndarray:
    """Channel indices, strongest first for "mean" (mean activation) and "variance", in order for "index".

    Ties keep channel order, so the grid does not shuffle between runs.
    """
    if by not in SORT_KEYS:
        raise ValueError(f"sort key must be one of {', '.join(SORT_KEYS)}, got {by!r}")
    count = len(stats.mean)
    if by == "index":
        return np.arange(count)
    key = stats.mean if by == "mean" else stats.variance
    return np.argsort(-np.asarray(key, np.float64), kind="stable")


def _class_names(meta, count: int) -> list[str]:
    classes = list(getattr(meta, "classes", None) or [])
    names = [str(c.get("name", f"class {i}")) for i, c in enumerate(classes[:count])]
    return names + [f"class {i}" for i in range(len(names), count)]


class TapInspector:
    """A model kept on its device for repeated looks inside it (the inspector's counterpart of Predictor)."""

    def __init__(self, model: nn.Module, meta=None, device: str | torch.device = "cpu"):
        from segstudio.engine.devices import pick_device
        from segstudio.models.taps import list_taps

        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.meta = meta
        self.arch = str(getattr(model, "arch", "") or getattr(meta, "arch", "") or type(model).__name__)
        self.specs: list[TapSpec] = list_taps(model)
        config = getattr(model, "config", None) or {}
        self.in_channels = int(getattr(meta, "in_channels", 0) or config.get("in_channels") or _first_conv_in(model))
        self.normalisation = dict(getattr(meta, "normalisation", None) or {"kind": "percentile", "low": 1.0,
                                                                             "high": 99.8})
        self.stride = int(getattr(model, "stride", 1) or 1)
        self.border = (getattr(meta, "objects", None) or {}).get("boundary_channel")  # an output, not a class
        # How the image becomes the network's input when it is not the model's own definition: the H&E path
        # chosen for this image, as Predict's PredictSettings.model_input (set per request by run_request).
        self.model_input: dict | None = None
        self._source_key = None
        self._source = None

    def source(self, pixels: np.ndarray):
        """The whole image as the network sees it; normalisation levels are computed once per image."""
        from segstudio.engine.predict import ModelInput

        definition = self.model_input if self.model_input is not None else getattr(self.meta, "input", None)
        key = (id(pixels), pixels.shape, str(pixels.dtype), repr(definition))
        if key != self._source_key:
            self._source = None
            self._source = ModelInput(pixels, self.in_channels, self.normalisation, definition)
            self._source_key = key
        return self._source

    def plan(self, image_shape, view=None, *, point=None, max_side=MAX_REGION_SIDE, mode="crop") -> Region:
        return plan_region(image_shape, view, point=point, max_side=max_side, mode=mode, align=self.stride)

    def inspect(self, pixels: np.ndarray, region: Region, names: Sequence[str] | None = None) -> Inspection:
        """One forward pass over the region, capturing the taps (all by default)."""
        network_input = region_input(self.source(pixels), region)
        return self.inspect_input(network_input, region, names)

    def inspect_input(self, network_input: np.ndarray, region: Region, names: Sequence[str] | None = None
                      ) -> Inspection:
        from segstudio.engine.devices import threads_for_input

        with threads_for_input(self.device, network_input.shape[-2] * network_input.shape[-1]):
            return self._inspect_input(network_input, region, names)

    def _inspect_input(self, network_input: np.ndarray, region: Region, names: Sequence[str] | None) -> Inspection:
        import torch
        import torch.nn.functional as F

        from segstudio.models.taps import run_with_taps

        x = torch.from_numpy(np.ascontiguousarray(network_input, dtype=np.float32))[None].to(self.device)
        with torch.inference_mode():
            logits, captured = run_with_taps(self.model, x, names)
            probabilities = F.softmax(logits[:, :self.border].float(), dim=1)[0].cpu().numpy()
        input_hw = tuple(network_input.shape[-2:])
        notes: list[str] = []
        total = sum(t[0].numel() * 4 for t in captured.values())
        half = total > TAP_MEMORY_BUDGET
        if half:
            notes.append(f"Feature maps kept at half precision ({total / 2**20:.0f} MB at full precision).")
        taps: dict[str, TapResult] = {}
        specs = {s.name: s for s in self.specs}
        for name in list(captured):
            tensor = captured.pop(name)[0].float()
            scale = tap_scale(tuple(tensor.shape[-2:]), input_hw, self.stride)
            valid = (min(tensor.shape[-2], math.ceil(input_hw[0] / scale[0])),
                     min(tensor.shape[-1], math.ceil(input_hw[1] / scale[1])))
            mean_map = tensor.mean(dim=0).cpu().numpy()
            max_map = tensor.amax(dim=0).cpu().numpy()
            array = tensor.cpu().numpy()
            stats = channel_stats(array, valid)
            del tensor
            taps[name] = TapResult(specs[name], array.astype(np.float16) if half else array, scale, valid,
                                   stats, mean_map, max_map)
        num_classes = int(probabilities.shape[0])
        from segstudio.engine.devices import device_label

        return Inspection(region, self.arch, list(self.specs), taps, probabilities.astype(np.float32),
                          _class_names(self.meta, num_classes), num_classes, device_label(self.device), notes)


def _first_conv_in(model: nn.Module) -> int:
    import torch.nn as nn

    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return int(module.in_channels)
    raise ValueError("cannot tell how many input channels the model takes; pass its metadata")


# --- maps on the image -------------------------------------------------------------------------------------
def to_input_grid(values: np.ndarray, scale: tuple[float, float], input_hw: tuple[int, int]) -> np.ndarray:
    """A tap-grid map (h, w) resampled onto the network input grid (input_hw), aligned cell by cell.

    Cell i covers input pixels [i * s, (i + 1) * s); resampling is bilinear between cell centres, and the
    part of the map that covers the model's padding is cut off.
    """
    import cv2

    values = np.asarray(values, np.float32)
    th, tw = values.shape
    out_h, out_w = max(1, int(round(th * scale[0]))), max(1, int(round(tw * scale[1])))
    if (out_h, out_w) != (th, tw):
        values = cv2.resize(values, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    ih, iw = input_hw
    if values.shape[0] < ih or values.shape[1] < iw:
        values = np.pad(values, ((0, max(0, ih - values.shape[0])), (0, max(0, iw - values.shape[1]))), mode="edge")
    return np.ascontiguousarray(values[:ih, :iw])


def class_score_map(inspection: Inspection, name: str, class_index: int | None = None) -> np.ndarray:
    """A class-score tap as one map: the chosen class's score, or (class_index None) the argmax label."""
    tap = inspection.tap(name)
    data = tap.tensor.astype(np.float32)
    if class_index is None:
        return data.argmax(axis=0).astype(np.float32)
    return data[int(class_index)]


def foreground_class(inspection: Inspection) -> int:
    """The class shown by default in class-score maps: the first class after background."""
    return 1 if inspection.num_classes > 1 else 0


# --- pixel probe ---------------------------------------------------------------------------------------
@dataclass
class ProbeRow:
    name: str
    kind: str
    cell: tuple[int, int]  # (row, column) in the tap's grid
    mean: float
    max: float


@dataclass
class PixelProbe:
    x: int
    y: int
    rows: list[ProbeRow]
    probabilities: list[tuple[str, float]]


def probe_pixel(inspection: Inspection, x: float, y: float) -> PixelProbe:
    """Mean and max over channels of every tap at image pixel (x, y), and its class probabilities."""
    if not inspection.region.contains(x, y):
        raise ValueError(f"pixel ({x}, {y}) lies outside the inspected region {inspection.region.rect}")
    ih, iw = inspection.input_shape
    row, col = inspection.image_to_input(x, y)
    row, col = min(max(row, 0), ih - 1), min(max(col, 0), iw - 1)
    rows = []
    for tap in inspection.taps.values():
        th, tw = tap.mean_map.shape
        cy = min(th - 1, int(row // tap.scale[0]))
        cx = min(tw - 1, int(col // tap.scale[1]))
        rows.append(ProbeRow(tap.name, tap.spec.kind, (cy, cx), float(tap.mean_map[cy, cx]),
                             float(tap.max_map[cy, cx])))
    probs = [(inspection.class_names[k], float(inspection.probabilities[k, row, col]))
             for k in range(inspection.num_classes)]
    return PixelProbe(int(x), int(y), rows, probs)


# --- side-by-side comparisons ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """Taps worth seeing next to each other. mode "features": mean over channels plus the strongest
    channels; mode "scores": class-score maps (one class, or the argmax label)."""

    title: str
    taps: tuple[str, ...]
    mode: str
    note: str = ""


def comparisons(inspection: Inspection) -> list[Comparison]:
    """What to put side by side for this network, found from the structure its taps declare.

    - Class scores at each resolution next to the final prediction (FCN-32s/16s/8s): the gain of skip fusion.
    - Every skip: the skip, the tensor it is joined to (its `pairs_with`), and the fusion and decoder taps
      that follow at the skip's resolution level (U-Net merge and dec, FCN score_16s, DeepLabv3+ decoder).
    - Context branches (ASPP, pyramid pooling, bottleneck, fc6/fc7): the features they read, every branch
      and the tensor that combines them.
    """
    specs = [s for s in inspection.specs if s.name in inspection.taps]
    index = {s.name: i for i, s in enumerate(specs)}
    found: list[Comparison] = []

    scores = [s for s in specs if s.kind != "logits" and inspection.is_class_score(s.name)]
    if scores:
        by_stride: dict[float, str] = {}
        for spec in scores:  # the last score map at each resolution is the fused one
            by_stride[inspection.tap(spec.name).stride] = spec.name
        chain = [by_stride[s] for s in sorted(by_stride, reverse=True)]
        logits = [s.name for s in specs if s.kind == "logits"]
        found.append(Comparison("Class scores, coarse to fine", tuple(chain + logits), "scores",
                                "Each step adds a finer skip; compare the outlines with the final prediction."))

    for skip in (s for s in specs if s.kind == "skip"):
        group = _skip_group(specs, index, skip)
        found.append(Comparison(f"Skip at {_level_size(skip.level)}: {skip.name}", tuple(group),
                                _mode(inspection, group),
                                "What the skip carries across, what it meets, and what the level makes of both."))

    context = [s for s in specs if s.kind == "context"]
    if context:
        first = index[context[0].name]
        group = []
        feed = next((s for s in reversed(specs[:first]) if s.kind == "encoder"), None)
        if feed is not None:
            group.append(feed.name)
        group += [s.name for s in context]
        last = index[context[-1].name]
        if last + 1 < len(specs) and specs[last + 1].kind == "fusion":
            group.append(specs[last + 1].name)
        title = f"Context: {context[0].name}" if len(context) == 1 else f"Context: {len(context)} branches"
        found.append(Comparison(title, tuple(group), "features",
                                "How much of the surroundings each branch takes in, and what is combined."))
    return found


def _mode(inspection: Inspection, names: Sequence[str]) -> str:
    return "scores" if all(inspection.is_class_score(n) for n in names) else "features"


def _skip_group(specs: Sequence[TapSpec], index: Mapping[str, int], skip: TapSpec) -> list[str]:
    """The skip, the tap it pairs with, then the fusion and decoder taps that follow at the skip's level."""
    group = [skip.name]
    last = index[skip.name]
    if skip.pairs_with in index:
        group.append(skip.pairs_with)
        last = max(last, index[skip.pairs_with])
    for spec in specs[last + 1:]:
        if spec.kind not in ("decoder", "fusion") or skip.level is None or spec.level != skip.level:
            break
        group.append(spec.name)
    return group


def _level_size(level: int | None) -> str:
    if level is None:
        return "an unknown size"
    return "full size" if level == 0 else f"1/{2 ** level} size"


# --- export --------------------------------------------------------------------------------------------
TAP_EXPORT_SUFFIXES = (".npy", ".tif", ".tiff")


def save_tap(path, inspection: Inspection, name: str) -> Path:
    """Write one tap as float32 (C, h, w): .npy (the array alone) or .tif/.tiff (with the region and the
    tap's scale in the TIFF description, so the maps can be put back on the image). Atomic."""
    from segstudio.core.storage import atomic_open

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TAP_EXPORT_SUFFIXES:
        raise ValueError(f"Cannot save a tap as {path.name}: use one of {', '.join(TAP_EXPORT_SUFFIXES)}")
    tap = inspection.tap(name)
    array = np.ascontiguousarray(tap.tensor, dtype=np.float32)
    with atomic_open(path, "wb") as handle:
        if suffix == ".npy":
            np.save(handle, array, allow_pickle=False)
        else:
            import tifffile

            region = inspection.region
            info = {"axes": "CYX", "tap": name, "kind": tap.spec.kind, "arch": inspection.arch,
                    "region_xywh": list(region.rect), "region_step": region.step,
                    "input_pixels_per_cell": list(tap.scale)}
            encoded = io.BytesIO()  # tifffile wants a named file or a seekable buffer, not a bare descriptor
            tifffile.imwrite(encoded, array, photometric="minisblack", metadata=info)
            handle.write(encoded.getvalue())
    return path


def read_tap_tiff_info(path) -> Mapping:
    """The metadata save_tap wrote into a TIFF (for scripts that put exported maps back on the image)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        return json.loads(tif.pages[0].description)
