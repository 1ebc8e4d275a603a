"""What a prediction gives back: per pixel the label, its probability and the normalised entropy, and for a
model with a boundary output (its metadata's ``objects.boundary_channel``) the probability that a pixel
lies on the border between objects, which seeds the watershed that splits touching ones.

Blended probabilities arrive slab by slab and are summarised at once, on the host (numpy) or on the
device where they were blended, so the image-sized outputs are the only per-pixel arrays that grow with
the image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class PredictResult:
    labels: np.ndarray  # (H, W) uint8, or uint16 when a class id exceeds 255
    confidence: np.ndarray  # (H, W) float16: probability of the chosen class
    uncertainty: np.ndarray  # (H, W) float16: entropy of the class probabilities / log(num classes), in [0, 1]
    notes: list[str] = field(default_factory=list)
    device: str = "cpu"
    tiles: int = 0
    boundary: np.ndarray | None = None  # (H, W) float16: probability of an object border, for boundary models


class Outputs:
    """The image-sized labels, confidence and uncertainty, filled slab by slab.

    Device slabs are summarised on the device; on CUDA their (small) results come back asynchronously, so
    the GPU keeps computing while earlier rows travel to the host.
    """

    def __init__(self, height: int, width: int, lut: np.ndarray | None, extra: int = 0):
        """``extra``: channels after the classes (a boundary probability), kept as a map, not summarised."""
        largest_id = int(lut.max()) if lut is not None else None
        self.extra = extra
        self.boundary = None
        self._lut_ids = lut
        self._largest = largest_id
        self.labels = self.confidence = self.uncertainty = None
        self.height, self.width = height, width
        self._lut = None  # lut in the labels' dtype (host) or on the device
        self._in_transit: list = []

    def _make(self, classes: int) -> None:
        largest = self._largest if self._largest is not None else classes - 1
        dtype = np.uint8 if largest <= 255 else np.uint16
        self.labels = np.zeros((self.height, self.width), dtype)
        self.confidence = np.zeros((self.height, self.width), np.float16)
        self.uncertainty = np.zeros((self.height, self.width), np.float16)
        if self.extra:
            self.boundary = np.zeros((self.height, self.width), np.float16)
        self._lut = self._lut_ids.astype(dtype) if self._lut_ids is not None else None

    def add(self, row: int, probs) -> None:
        extra = probs[probs.shape[0] - self.extra:] if self.extra else None
        probs = probs[:probs.shape[0] - self.extra]
        if self.labels is None:
            self._make(probs.shape[0])
        rows = slice(row, row + probs.shape[1])
        if not isinstance(probs, torch.Tensor):
            _summarise_into(probs, self._lut, self.labels[rows], self.confidence[rows], self.uncertainty[rows])
            if extra is not None:
                _store_half(self.boundary[rows], np.ascontiguousarray(extra[0]))
            return
        if self._lut is not None and not isinstance(self._lut, torch.Tensor):
            # uint8 ids stay uint8 on the device; larger ids travel as int32
            ids = self._lut.astype(np.uint8 if self.labels.dtype == np.uint8 else np.int32)
            self._lut = torch.from_numpy(ids).to(probs.device)
        with torch.inference_mode():
            summary = _summarise_tensor(probs, self._lut)
            if extra is not None:
                summary = (*summary, extra[0].half())
            if probs.device.type == "cuda":
                host = [t.to("cpu", non_blocking=True) for t in summary]
                ready = torch.cuda.Event()
                ready.record()
                self._in_transit.append((rows, host, ready))
                while self._in_transit and self._in_transit[0][2].query():
                    self._store(*self._in_transit.pop(0)[:2])
                return
            self._store(rows, [t.cpu() for t in summary])

    def _store(self, rows: slice, host) -> None:
        labels, confidence, uncertainty, *boundary = (t.numpy() for t in host)
        self.labels[rows] = labels  # int32 ids (more than 255) fit the uint16 labels
        self.confidence[rows] = confidence
        self.uncertainty[rows] = uncertainty
        if boundary:
            self.boundary[rows] = boundary[0]

    def finish(self) -> None:
        for rows, host, ready in self._in_transit:
            ready.synchronize()
            self._store(rows, host)
        self._in_transit.clear()


def _summarise_into(probs: np.ndarray, lut: np.ndarray | None, labels, confidence, uncertainty) -> None:
    """Labels, max probability and normalised entropy of (classes, rows, width) probabilities.

    One pass per class plane with a few cheap ufuncs each: for the usual few classes this is several times
    faster than argmax over axis 0 or a masked copy. Ties keep the lower class, as argmax does.
    `lut` maps output index to class id and has the labels' dtype.
    """
    classes = probs.shape[0]
    index_type = np.uint8 if classes <= 256 else np.uint16 if classes <= 65536 else np.int64
    best = np.zeros(probs.shape[1:], index_type)
    candidate = np.empty_like(best)
    best_value = probs[0].copy()
    entropy = np.zeros(probs.shape[1:], np.float32)
    scratch = np.empty_like(best_value)
    better = np.empty(probs.shape[1:], bool)
    for c in range(classes):
        plane = probs[c]
        if c:
            np.greater(plane, best_value, out=better)  # strict: ties keep the lower class
            # Planes come in increasing class order, so where this one wins, c exceeds every label chosen so
            # far: max(best, better * c) is where(better, c, best).
            np.multiply(better, index_type(c), out=candidate)
            np.maximum(best, candidate, out=best)
            np.maximum(best_value, plane, out=best_value)
        np.maximum(plane, 1e-12, out=scratch)
        np.log(scratch, out=scratch)
        scratch *= plane
        entropy -= scratch
    if lut is not None:
        np.take(lut, best, out=labels, mode="clip")  # indices are in range; "clip" avoids a buffered copy
    else:
        labels[...] = best
    _store_half(confidence, best_value)
    if classes < 2:
        uncertainty[...] = 0.0
        return
    entropy *= 1.0 / math.log(classes)
    np.clip(entropy, 0.0, 1.0, out=entropy)
    _store_half(uncertainty, entropy)


def _store_half(target: np.ndarray, values: np.ndarray) -> None:
    """float32 into a float16 array. torch converts with the CPU's conversion instructions; numpy's cast is
    about 50 times slower, which made it the largest cost of summarising."""
    torch.from_numpy(target).copy_(torch.from_numpy(values))


def _summarise_tensor(probs: torch.Tensor, lut: torch.Tensor | None):
    """Device-side twin of _summarise_into: (labels, confidence float16, uncertainty float16) tensors.

    Labels come as uint8 when the lut is uint8 (or there are at most 256 classes without one), else int32.
    """
    classes = probs.shape[0]
    best_value, best = probs.max(dim=0)  # the first maximum on ties, as argmax
    if lut is not None:
        labels = lut[best]
    else:
        labels = best.to(torch.uint8 if classes <= 256 else torch.int32)
    if classes < 2:
        uncertainty = torch.zeros_like(best_value)
    else:
        # entr(p) = -p log p, and 0 at p = 0, as the host path's log(max(p, 1e-12)) gives
        uncertainty = torch.special.entr(probs).sum(dim=0).mul_(1.0 / math.log(classes)).clamp_(0.0, 1.0)
    return labels, best_value.half(), uncertainty.half()
