"""Generated whole-slide images: pyramidal OME-TIFF and an SVS-like file, with tissue in patches.

Real slides are mostly glass: a few patches of stained tissue on a white background. The generator
writes the same, tile by tile, so a 100,000 x 100,000 pyramid stays a few megabytes on disk (every glass
tile compresses to almost nothing) and is never whole in memory. Tissue is pink eosin texture with
darker haematoxylin nuclei, enough for a viewer or a brush to have something to look at.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

GLASS = np.array([242, 240, 244], np.uint8)


@dataclass(frozen=True)
class TissuePatch:
    """An elliptical patch of tissue: centre and radii in level-0 pixels."""

    cy: float
    cx: float
    ry: float
    rx: float


def tissue_patches(height: int, width: int, count: int = 5, seed: int = 0) -> list[TissuePatch]:
    rng = np.random.default_rng(seed)
    patches = []
    for _ in range(count):
        ry, rx = rng.uniform(0.06, 0.16, 2) * min(height, width)
        patches.append(TissuePatch(float(rng.uniform(ry, height - ry)), float(rng.uniform(rx, width - rx)), ry, rx))
    return patches


class _TissueTiles:
    """Tiles of one level: glass, or tissue texture cut to the patches' outlines."""

    def __init__(self, patches: list[TissuePatch], downsample: float, tile: int, seed: int) -> None:
        self.patches, self.downsample, self.tile = patches, downsample, tile
        rng = np.random.default_rng(seed)
        self._textures = [_texture(rng, tile) for _ in range(4)]
        self._glass = np.broadcast_to(GLASS, (tile, tile, 3))

    def tile_at(self, ty: int, tx: int) -> np.ndarray:
        t, ds = self.tile, self.downsample
        y = (ty * t + np.arange(t) + 0.5) * ds
        x = (tx * t + np.arange(t) + 0.5) * ds
        inside = None
        for p in self.patches:
            if y[-1] < p.cy - p.ry or y[0] > p.cy + p.ry or x[-1] < p.cx - p.rx or x[0] > p.cx + p.rx:
                continue
            d = ((y[:, None] - p.cy) / p.ry) ** 2 + ((x[None, :] - p.cx) / p.rx) ** 2 < 1.0
            inside = d if inside is None else inside | d
        if inside is None or not inside.any():
            return self._glass
        texture = self._textures[(ty * 7 + tx * 13) % len(self._textures)]
        return np.where(inside[..., None], texture, GLASS)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    base = np.empty((size, size, 3), np.float32)
    base[:] = (226, 150, 190)  # eosin pink
    base += rng.normal(0, 10, (size, size, 1))
    yy, xx = np.mgrid[:size, :size]
    for cy, cx, r in zip(rng.uniform(0, size, 60), rng.uniform(0, size, 60), rng.uniform(3, 7, 60)):
        nucleus = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        base[nucleus] = (95, 60, 150)  # haematoxylin purple
    return np.clip(base, 0, 255).astype(np.uint8)


def _level_sizes(height: int, width: int, levels: int, factor: int) -> list[tuple[int, int]]:
    return [(max(1, height // factor**k), max(1, width // factor**k)) for k in range(levels)]


def _tiles(maker: _TissueTiles, height: int, width: int) -> Iterator[np.ndarray]:
    t = maker.tile
    for ty in range(math.ceil(height / t)):
        for tx in range(math.ceil(width / t)):
            yield maker.tile_at(ty, tx)


def write_pyramid_ome(path: Path | str, height: int, width: int, *, levels: int = 4, factor: int = 4,
                      tile: int = 256, mpp: float = 0.25, compression: str = "zlib", seed: int = 0,
                      patches: list[TissuePatch] | None = None) -> Path:
    """A tiled, compressed pyramidal OME-TIFF (levels in SubIFDs), written tile by tile."""
    path = Path(path)
    patches = tissue_patches(height, width, seed=seed) if patches is None else patches
    sizes = _level_sizes(height, width, levels, factor)
    sizes = [s for s in sizes if min(s) >= 16] or sizes[:1]
    resolution = (1e4 / mpp, 1e4 / mpp)  # pixels per centimetre
    metadata = {"axes": "YXS", "PhysicalSizeX": mpp, "PhysicalSizeY": mpp,
                "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        for index, (h, w) in enumerate(sizes):
            maker = _TissueTiles(patches, width / w, tile, seed + index)
            options = dict(shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                           compression=compression, resolution=resolution if index == 0 else
                           (resolution[0] * w / width, resolution[1] * h / height), resolutionunit="CENTIMETER")
            if index == 0:
                tif.write(_tiles(maker, h, w), subifds=len(sizes) - 1, metadata=metadata, **options)
            else:
                tif.write(_tiles(maker, h, w), subfiletype=1, metadata=None, **options)
    return path


def write_svs_like(path: Path | str, height: int, width: int, *, levels: int = 3, factor: int = 4,
                   tile: int = 256, mpp: float = 0.5, magnification: int = 20, seed: int = 0) -> Path:
    """A file laid out like an Aperio SVS: tiled levels, a thumbnail, a label and a macro image.

    The page order is the one tifffile and OpenSlide expect: level 0 (its description starts "Aperio"),
    the thumbnail (stripped), the lower levels, then the label (subfile type 1) and the macro (type 9).
    """
    path = Path(path)
    patches = tissue_patches(height, width, seed=seed)
    sizes = _level_sizes(height, width, levels, factor)
    description = (f"Aperio Image Library v12.0.15\r\n{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) "
                   f"JPEG/RGB Q=70|AppMag = {magnification}|MPP = {mpp}|Filename = generated")
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        def level(index: int, desc: str) -> None:
            h, w = sizes[index]
            maker = _TissueTiles(patches, width / w, tile, seed + index)
            tif.write(_tiles(maker, h, w), shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                      compression="zlib", description=desc, metadata=None)

        level(0, description)
        thumb = _TissueTiles(patches, width / 256, 256, seed).tile_at(0, 0)[: max(1, 256 * height // width)]
        tif.write(thumb, photometric="rgb", description=f"Aperio Image Library v12.0.15\r\n{width}x{height} -> "
                  f"{thumb.shape[1]}x{thumb.shape[0]}", metadata=None)
        for index in range(1, len(sizes)):
            level(index, f"Aperio Image Library v12.0.15\r\n{width}x{height} -> {sizes[index][1]}x{sizes[index][0]}")
        label = np.full((120, 300, 3), 250, np.uint8)
        label[40:80, 20:280] = 30  # a bar where the barcode would be
        tif.write(label, photometric="rgb", subfiletype=1, description="Aperio Image Library v12.0.15\r\nlabel "
                  "300x120", metadata=None)
        macro = np.full((200, 600, 3), 200, np.uint8)
        tif.write(macro, photometric="rgb", subfiletype=9, description="Aperio Image Library v12.0.15\r\nmacro "
                  "600x200", metadata=None)
    return path
