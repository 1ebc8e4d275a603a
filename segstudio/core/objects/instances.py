"""Objects (instances) from a class mask: which pixels belong to which nucleus, not only to which class.

An instance map holds one id per object (0: background), unique across classes; the class of an object is
the class of its pixels in the mask (:func:`object_classes`). Touching objects of one class are split by a
seeded watershed (scikit-image):

* a model with a boundary output (its metadata's ``objects.boundary_channel``) seeds it from the interior,
  the mask minus the pixels the network called "border between objects" (:func:`from_boundary`), and the
  seeds grow over the mask up the boundary map, so the cut lies where the network saw the border;
* a model with an interior output seeds it from the interior channel (:func:`from_interior`):
  each patch the network called "inside an object" grows back to the object's border;
* any other model falls back to the distance transform of its mask (:func:`split_touching`): the
  centres of round objects are the peaks of the distance to the background, and a neck between two
  touching nuclei is a valley between two peaks.

Only patches that hold two seeds or more go through the watershed, each in its own box.
"""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

__all__ = [
    "ids_dtype", "object_classes", "connected_objects", "split_touching", "from_interior", "from_boundary",
    "find_instances", "boundary_target", "relabel", "DEFAULT_SEED_DEPTH",
]

# A neck must be this many pixels narrower than the two centres beside it to split them (after a 1 px
# blur of the distance map, which keeps one peak per ragged nucleus). Chosen on generated slides of a
# tuning set disjoint from scripts/eval_objects.py's: F1 at IoU 0.5 was 0.987 at 0.3 px, 0.981 at 0.5,
# 0.955 at 1 and 0.81 at 2 (deep necks are rare: touching nuclei mostly meet along a short flat side);
# 0.5 rather than 0.3 leaves room for the rougher outlines of real slides.
DEFAULT_SEED_DEPTH = 0.5
# Patches larger than this (a round object some 250 px across) are regions such as tissue, not touching
# nuclei: they stay whole. The h-maxima seeds of one such patch of a ragged mask take minutes to find.
MAX_SPLIT_AREA = 50_000


def ids_dtype(max_id: int) -> np.dtype:
    """uint16 while the ids fit (what Fiji and QuPath open fastest), else uint32."""
    if max_id >= 2**32:
        raise ValueError(f"{max_id} objects do not fit an instance map")
    return np.dtype(np.uint16 if max_id < 2**16 else np.uint32)


def object_classes(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The class of each object, indexed by object id (entry 0 is 0): the class of its pixels in the mask."""
    if ids.shape != mask.shape:
        raise ValueError(f"instance map {ids.shape} and mask {mask.shape} differ in shape")
    flat_ids = ids.ravel()
    inside = np.flatnonzero(flat_ids)
    classes = np.zeros(int(flat_ids.max(initial=0)) + 1, np.int64)
    # Objects are made per class, so all pixels agree; where edits mixed them, the last pixel decides.
    classes[flat_ids[inside]] = mask.ravel()[inside]
    return classes


def relabel(ids: np.ndarray) -> np.ndarray:
    """The same objects numbered 1..n in order of first appearance, in the smallest dtype that holds them."""
    present = np.unique(ids)
    present = present[present != 0]
    lut = np.zeros(int(ids.max(initial=0)) + 1, np.int64)
    lut[present] = np.arange(1, present.size + 1)
    return lut[ids].astype(ids_dtype(present.size))


def _components(binary: np.ndarray) -> tuple[int, np.ndarray]:
    count, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return count - 1, labels


def connected_objects(mask: np.ndarray) -> np.ndarray:
    """One object per connected patch of each class (no splitting): for masks drawn object by object."""
    return _per_class(mask, lambda region: _components(region)[::-1])


def _split_patches(binary: np.ndarray, relief: np.ndarray, seeds_in) -> tuple[np.ndarray, int]:
    """Objects of one binary map: each connected patch whose ``seeds_in(box, inside)`` holds two seeds or
    more is split by a watershed of ``relief`` (low in the middle of objects) from them; the others stay
    whole. Seeds are looked for patch by patch: on a whole 4096^2 slide the h-maxima transform takes half a
    minute, on the patches' own boxes a second. Returns (ids, count)."""
    count, patches = _components(binary)
    out = np.zeros(binary.shape, np.int64)
    next_id = 0
    for patch_id, box in enumerate(ndimage.find_objects(patches), start=1):
        if box is None:
            continue
        inside = patches[box] == patch_id
        if np.count_nonzero(inside) > MAX_SPLIT_AREA:
            next_id += 1
            out[box][inside] = next_id
            continue
        seed_count, markers = _components(seeds_in(box, inside) & inside)
        if seed_count < 2:
            next_id += 1
            out[box][inside] = next_id
            continue
        grown = watershed(relief[box], markers=markers, mask=inside)
        present = np.unique(grown[grown > 0])
        lut = np.zeros(int(grown.max()) + 1, np.int64)
        lut[present] = np.arange(next_id + 1, next_id + 1 + present.size)
        out[box][inside] = lut[grown[inside]]
        next_id += present.size
    return out, next_id


def h_maxima(image: np.ndarray, depth: float) -> np.ndarray:
    """The tops of the domes of ``image`` that rise at least ``depth`` above every path to a higher one:
    morphological reconstruction by dilation of ``image - depth`` under ``image`` (OpenCV, on one patch's
    box). scikit-image's h_maxima does the same, but crashed the interpreter on some noisy masks."""
    image = np.ascontiguousarray(image, np.float32)
    if not np.isfinite(image).all():
        raise ValueError("h_maxima needs finite heights; the relief holds infinities or NaN")
    marker = image - np.float32(depth)
    kernel = np.ones((3, 3), np.uint8)
    while True:
        grown = np.minimum(cv2.dilate(marker, kernel), image)
        if np.array_equal(grown, marker):
            break
        marker = grown
    return (image - marker) >= np.float32(depth) - np.float32(1e-4)


def _per_class(mask: np.ndarray, split_one) -> np.ndarray:
    ids = np.zeros(mask.shape, np.int64)
    offset = 0
    for class_id in np.unique(mask):
        if class_id == 0:
            continue
        local, count = split_one(mask == class_id)
        ids[local > 0] = local[local > 0] + offset
        offset += count
    return ids.astype(ids_dtype(offset))


def _distance_to_background(binary: np.ndarray) -> np.ndarray:
    """Each pixel's distance to the nearest background pixel. A class that covers the whole image has none:
    OpenCV then answers FLT_MAX, which the blur turns into infinities (and the seed search into NaN), so
    there the distance is to the image's edge instead."""
    binary = binary.astype(np.uint8)
    if binary.all():
        padded = cv2.copyMakeBorder(binary, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
        return np.ascontiguousarray(cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1])
    return cv2.distanceTransform(binary, cv2.DIST_L2, 5)


def split_touching(mask: np.ndarray, *, seed_depth: float = DEFAULT_SEED_DEPTH) -> np.ndarray:
    """Objects of a class mask, touching ones split by a distance-transform watershed (the fallback for
    models without a boundary output)."""
    def split_one(binary: np.ndarray):
        distance = _distance_to_background(binary)
        # Smoothing keeps one seed per nucleus whose outline is ragged.
        distance = cv2.GaussianBlur(distance, (0, 0), 1.0)
        seeds_in = lambda box, inside: h_maxima(np.where(inside, distance[box], 0), seed_depth)
        return _split_patches(binary, -distance, seeds_in)

    return _per_class(np.asarray(mask), split_one)


def from_interior(mask: np.ndarray, interior: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Objects of a class mask seeded from a model's interior map (probability that a pixel lies inside an
    object, away from its boundary): each interior patch is one object, grown over the mask."""
    if interior.shape != mask.shape:
        raise ValueError(f"interior map {interior.shape} and mask {mask.shape} differ in shape")
    interior = np.asarray(interior, np.float32)
    seeds_in = lambda box, inside: interior[box] > threshold
    return _per_class(np.asarray(mask), lambda binary: _split_patches(binary, -interior, seeds_in))


# Interior patches smaller than this are specks of a noisy boundary map, not the core of an object.
MIN_SEED_PX = 4


def from_boundary(mask: np.ndarray, boundary: np.ndarray, *, threshold: float = 0.5,
                  min_seed_px: int = MIN_SEED_PX) -> np.ndarray:
    """Objects of a class mask split where a model's boundary map (probability that a pixel lies on the
    border between two objects) says: the seeds are the mask's pixels below ``threshold`` (the interiors),
    one per interior patch of ``min_seed_px`` pixels or more, and each grows over the mask climbing the
    boundary map, so neighbours meet on the border line. A patch with fewer than two seeds stays whole."""
    if boundary.shape != mask.shape:
        raise ValueError(f"boundary map {boundary.shape} and mask {mask.shape} differ in shape")
    boundary = np.nan_to_num(np.asarray(boundary, np.float32), nan=1.0)

    def seeds_in(box, inside):
        interior = (boundary[box] < threshold) & inside
        count, labels = _components(interior)
        if count < 2 or min_seed_px <= 1:
            return interior
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        return interior & (sizes[labels] >= min_seed_px)

    return _per_class(np.asarray(mask), lambda binary: _split_patches(binary, boundary, seeds_in))


def find_instances(mask: np.ndarray, boundary: np.ndarray | None = None) -> np.ndarray:
    """The objects of a class mask: split along the model's boundary map when the prediction gave one (and it
    fits the mask), else by the distance-transform watershed."""
    if boundary is not None and np.shape(boundary) == np.shape(mask):
        return from_boundary(mask, boundary)
    return split_touching(mask)


def boundary_target(ids: np.ndarray) -> np.ndarray:
    """What a boundary output learns from an instance map: the object pixels that touch another object or the
    background (8-neighbourhood), i.e. a one-pixel rim round each object and a two-pixel line where two
    objects meet. The mask minus this is each object's interior, the seed of ``from_boundary``."""
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"an instance map is 2-D, not {ids.shape}")
    work = ids.astype(np.float32)  # exact for ids below 2**24; OpenCV's min/max filters need floats
    kernel = np.ones((3, 3), np.uint8)
    highest = cv2.dilate(work, kernel, borderType=cv2.BORDER_REPLICATE)
    lowest = cv2.erode(work, kernel, borderType=cv2.BORDER_REPLICATE)
    return (ids > 0) & (highest != lowest)
