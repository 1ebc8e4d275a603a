"""The labels of a whole slide: a chunked store on disk (zarr, one chunk a tile) and a label pyramid for display.

A 100,000 x 100,000 slide's mask would take 10 GB as one array; most of it is never painted. Here the
full-resolution labels are chunks of CHUNK x CHUNK pixels: a chunk is read from disk the first time it
is needed, painted in memory, and written back by save() only if it changed (each chunk file is written
atomically by zarr's local store: a new file renamed over the old one). Chunks nobody painted exist
nowhere, not even in memory, and saved chunks beyond KEEP_CLEAN_BYTES leave it again, least recently
used first, so looking over a whole labelled slide keeps memory bounded. The label pyramid (every
PYRAMID_FACTOR-th pixel of the level below, sparse in the same way) is kept up to date by every write, so
the canvas shows labels at overview zoom without reading full-resolution chunks. Labels saved earlier
enter the pyramid when the store opens, or, for a window, on another thread (build_pyramid), since that
reads every saved chunk once: a slide predicted whole has thousands.

Painting is per chunk too: a brush, eraser or polygon is drawn with OpenCV into each chunk it touches, so
a stroke at overview zoom that covers millions of full-resolution pixels never allocates a box of them.
Each paint returns a ChunkDiff (the old and new pixels of the part of each chunk that changed): undo
restores exactly, and costs what changed.

Threads: every change and read takes ``lock`` (per chunk, so a long paint never holds it for long). A
save can run on another thread: ``snapshot()`` takes the changed chunks as they are and ``write()`` puts
them on disk; a chunk painted meanwhile is copied first (copy on write), so what is written is exactly
what was there at the snapshot. A stroke painted on another thread records each chunk's pixels before
its first change (``record``), and ``diff_since`` makes the stroke's exact undo step from them.
"""
from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segstudio.core.label_disk import open_array, runs, stored_chunks
from segstudio.core.label_shapes import Box, Shape, clip, polygon, segment

CHUNK = 512
PYRAMID_FACTOR = 4
# The label pyramid stops once a level fits in this many pixels a side.
PYRAMID_SMALLEST = 1024
# Saved, unchanged full-resolution chunks kept in memory (the least recently used beyond this are dropped
# and read again from disk when needed): 1,024 chunks of 8-bit labels, a few screens at several zooms.
KEEP_CLEAN_BYTES = 256 * 2**20
# Saved chunks put into the pyramid per step of build_pyramid (about a millisecond each, read from disk).
PYRAMID_BUILD_STEP = 16

Mark = Callable[[int, int, np.ndarray], None]  # told a box's changed pixels: y0, x0, boolean array
_clock = time.monotonic  # when chunks changed (a test may stand in its own)


@dataclass
class ChunkPiece:
    cy: int
    cx: int
    y0: int  # within the chunk
    x0: int
    old: np.ndarray
    new: np.ndarray


@dataclass
class ChunkDiff:
    """What one edit changed, chunk by chunk; merge() folds a stroke's segments into one undo step."""

    pieces: list[ChunkPiece] = field(default_factory=list)
    changed: bool = False

    @property
    def nbytes(self) -> int:
        return sum(p.old.nbytes + p.new.nbytes for p in self.pieces)

    def box(self, chunk: int = CHUNK) -> Box:
        ys = [p.cy * chunk + p.y0 for p in self.pieces]
        xs = [p.cx * chunk + p.x0 for p in self.pieces]
        y1 = max(p.cy * chunk + p.y0 + p.old.shape[0] for p in self.pieces)
        x1 = max(p.cx * chunk + p.x0 + p.old.shape[1] for p in self.pieces)
        return min(ys), min(xs), y1 - min(ys), x1 - min(xs)


class _Grid:
    """A sparse 2-D grid of square chunks: missing chunks are zeros (or come from ``load``).

    With ``keep`` (a chunk count) and ``evictable``, chunks are kept in the order they were last used and
    ``trim()`` drops the least recently used of those ``evictable`` says may go (saved, unchanged chunks,
    read again from disk when needed), so memory stays bounded however much of the slide is looked at.
    """

    def __init__(self, height: int, width: int, chunk: int, dtype, load=None, keep: int | None = None,
                 evictable: Callable[[tuple[int, int]], bool] | None = None) -> None:
        self.height, self.width, self.chunk, self.dtype = height, width, chunk, np.dtype(dtype)
        self.chunks: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._load, self.keep, self._evictable = load, keep, evictable

    def get(self, cy: int, cx: int, create: bool = False) -> np.ndarray | None:
        key = (cy, cx)
        found = self.chunks.get(key)
        if found is not None:
            if self.keep is not None:
                self.chunks.move_to_end(key)
            return found
        if self._load is not None:
            found = self._load(cy, cx)
            if found is not None:
                self.chunks[key] = found
                self.trim(protect=key)
        if found is None and create:
            found = self.chunks[key] = np.zeros((self.chunk, self.chunk), self.dtype)
        return found

    def trim(self, protect: tuple[int, int] | None = None) -> int:
        """Drop the least recently used evictable chunks beyond ``keep`` (never ``protect``, the chunk a
        caller is about to use); returns how many went."""
        if self.keep is None or len(self.chunks) <= self.keep or self._evictable is None:
            return 0
        excess = len(self.chunks) - self.keep
        going = []
        for key in self.chunks:  # oldest first
            if key != protect and self._evictable(key):
                going.append(key)
                if len(going) == excess:
                    break
        for key in going:
            del self.chunks[key]
        return len(going)

    def covering(self, y0: int, x0: int, h: int, w: int) -> Iterator[tuple[int, int]]:
        c = self.chunk
        for cy in range(max(0, y0 // c), min(math.ceil(self.height / c), math.ceil((y0 + h) / c))):
            for cx in range(max(0, x0 // c), min(math.ceil(self.width / c), math.ceil((x0 + w) / c))):
                yield cy, cx

    def read(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        out = np.zeros((h, w), self.dtype)
        c = self.chunk
        for cy, cx in self.covering(y0, x0, h, w):
            chunk = self.get(cy, cx)
            if chunk is None:
                continue
            ya, xa = max(y0, cy * c), max(x0, cx * c)
            yb, xb = min(y0 + h, (cy + 1) * c), min(x0 + w, (cx + 1) * c)
            out[ya - y0:yb - y0, xa - x0:xb - x0] = chunk[ya - cy * c:yb - cy * c, xa - cx * c:xb - cx * c]
        return out

    def write(self, y0: int, x0: int, values: np.ndarray) -> None:
        h, w = values.shape
        c = self.chunk
        for cy, cx in self.covering(y0, x0, h, w):
            ya, xa = max(y0, cy * c), max(x0, cx * c)
            yb, xb = min(y0 + h, (cy + 1) * c), min(x0 + w, (cx + 1) * c)
            part = values[ya - y0:yb - y0, xa - x0:xb - x0]
            chunk = self.get(cy, cx, create=bool(part.any()))
            if chunk is not None:
                chunk[ya - cy * c:yb - cy * c, xa - cx * c:xb - cx * c] = part


class LabelStore:
    """Full-resolution labels of one slide in chunks, with a label pyramid; saved to a zarr folder."""

    def __init__(self, height: int, width: int, folder: Path | None = None, *, dtype=np.uint8,
                 chunk: int = CHUNK, pyramid: bool = True, keep_clean_bytes: int = KEEP_CLEAN_BYTES,
                 build_pyramid: bool = True) -> None:
        """``build_pyramid``: False leaves filling the pyramid from saved chunks to build_pyramid()."""
        self.height, self.width, self.chunk = int(height), int(width), int(chunk)
        self.dtype = np.dtype(dtype)
        self.folder = None if folder is None else Path(folder)
        self._array = None if self.folder is None else open_array(self.folder, self.height, self.width,
                                                                   self.chunk, self.dtype)
        self._saved = set() if self._array is None else stored_chunks(self._array)
        keep = max(1, keep_clean_bytes // (self.chunk * self.chunk * self.dtype.itemsize))
        self.full = _Grid(self.height, self.width, self.chunk, self.dtype, load=self._load, keep=keep,
                          evictable=self._evictable)
        self.levels = [self.full]  # level k shows every PYRAMID_FACTOR**k-th pixel
        # Without a pyramid (a headless prediction writing straight to disk) nothing grows with the slide.
        while pyramid and max(self.levels[-1].height, self.levels[-1].width) > PYRAMID_SMALLEST:
            ds = PYRAMID_FACTOR ** len(self.levels)
            self.levels.append(_Grid(math.ceil(self.height / ds), math.ceil(self.width / ds), self.chunk, self.dtype))
        self.dirty: set[tuple[int, int]] = set()
        self._touched: dict[tuple[int, int], tuple[float, float]] = {}  # dirty chunks: first and last change
        self.lock = threading.RLock()
        self._frozen: set[tuple[int, int]] = set()  # chunks a save is writing: copied before they change
        self._unbuilt = deque(sorted(self._saved) if pyramid else [])  # saved chunks not in the pyramid yet
        if build_pyramid and self._unbuilt:
            self.build_pyramid()

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def downsample(self, level: int) -> int:
        return PYRAMID_FACTOR ** level

    def best_level(self, downsample: float) -> int:
        """The coarsest label level with at least the screen's resolution."""
        best = 0
        for k in range(len(self.levels)):
            if self.downsample(k) <= downsample * 1.01:
                best = k
        return best

    # --- reading --------------------------------------------------------------------------------------
    def read(self, y0: int, x0: int, h: int, w: int, level: int = 0) -> np.ndarray:
        """Labels of a box in ``level``'s own pixels (zeros past the edges and where nothing is painted)."""
        with self.lock:
            return self.levels[level].read(y0, x0, h, w)

    def any_in(self, y0: int, x0: int, h: int, w: int, level: int = 0) -> bool:
        """Whether any chunk of ``level`` under the box exists (painted or saved); cheap, reads nothing."""
        grid = self.levels[level]
        return any((key in grid.chunks or (level == 0 and key in self._saved))
                   for key in grid.covering(y0, x0, h, w))

    def _mutable(self, cy: int, cx: int, create: bool) -> np.ndarray | None:
        """The full-resolution chunk to change in place (a copy if a save is writing it); call under lock."""
        chunk = self.full.get(cy, cx, create=create)
        if chunk is not None and (cy, cx) in self._frozen:
            chunk = self.full.chunks[(cy, cx)] = chunk.copy()
            self._frozen.discard((cy, cx))
        return chunk

    def _evictable(self, key: tuple[int, int]) -> bool:
        """A chunk that is on disk as it is in memory (call under lock)."""
        return self._array is not None and key not in self.dirty and key not in self._frozen

    def _load(self, cy: int, cx: int) -> np.ndarray | None:
        if (cy, cx) not in self._saved:
            return None
        c = self.chunk
        block = np.asarray(self._array[cy * c:(cy + 1) * c, cx * c:(cx + 1) * c])
        chunk = np.zeros((c, c), self.dtype)
        chunk[: block.shape[0], : block.shape[1]] = block
        return chunk

    # --- painting -------------------------------------------------------------------------------------
    def paint(self, box: Box, draw: Shape, value: int, record: dict | None = None,
              pyramid_below: int | None = None, mark: Mark | None = None) -> ChunkDiff | None:
        """Set ``value`` wherever ``draw`` marks inside ``box`` (full-resolution pixels); None if nothing changed.

        ``draw(buffer, oy, ox)`` marks 1s into a chunk-sized uint8 buffer whose pixel (0, 0) is full-resolution
        pixel (oy, ox); it is called once per chunk the box touches. With ``record`` (a stroke's dict), each
        chunk's pixels before its first change go there instead of into a returned diff (see diff_since);
        ``pyramid_below`` leaves the label levels from that one up alone (a preview is painted there);
        ``mark(y0, x0, changed)`` is told the pixels each chunk's paint changed (the hand map follows them).
        """
        y0, x0, h, w = clip(box, self.height, self.width)
        if h <= 0 or w <= 0:
            return None
        diff = ChunkDiff()
        c = self.chunk
        buffer = np.zeros((c, c), np.uint8)
        for cy, cx in self.full.covering(y0, x0, h, w):
            buffer[:] = 0
            draw(buffer, cy * c, cx * c)
            rows, cols = np.flatnonzero(buffer.any(axis=1)), np.flatnonzero(buffer.any(axis=0))
            if rows.size == 0:
                continue
            sl = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
            marked = buffer[sl].astype(bool)
            with self.lock:
                self._paint_chunk(cy, cx, sl, marked, value, diff, (record, pyramid_below, mark))
            if record is not None:
                time.sleep(0)  # painting in the background: let the GUI thread have the interpreter
        return diff if diff.pieces or (record is not None and diff.changed) else None

    def _paint_chunk(self, cy, cx, sl, marked, value, diff, how) -> bool:
        record, pyramid_below, mark = how
        chunk = self.full.get(cy, cx)
        if chunk is None and value == 0:
            return False  # erasing where nothing was painted
        if chunk is not None and np.all(chunk[sl][marked] == value):
            return False
        if record is not None and (cy, cx) not in record:
            record[(cy, cx)] = None if chunk is None else chunk.copy()
        chunk = self._mutable(cy, cx, create=True)
        old = None if record is not None else chunk[sl].copy()
        if mark is not None:
            mark(cy * self.chunk + sl[0].start, cx * self.chunk + sl[1].start, marked & (chunk[sl] != value))
        chunk[sl][marked] = value
        if record is None:
            diff.pieces.append(ChunkPiece(cy, cx, sl[0].start, sl[1].start, old, chunk[sl].copy()))
        diff.changed = True
        self._changed(cy, cx, sl, pyramid_below)
        return True

    def paint_segment(self, p0: tuple[float, float], p1: tuple[float, float], radius: float,
                      value: int) -> ChunkDiff | None:
        """A brush (or eraser, value 0) stroke segment from p0 to p1 (x, y in full-resolution pixels)."""
        box, draw = segment(p0, p1, radius)
        return self.paint(box, draw, value)

    def paint_segment_recorded(self, p0: tuple[float, float], p1: tuple[float, float], radius: float,
                               value: int, record: dict, pyramid_below: int | None = None,
                               mark: Mark | None = None) -> None:
        """paint_segment for a stroke whose undo step diff_since(record) makes at its end."""
        box, draw = segment(p0, p1, radius)
        self.paint(box, draw, value, record=record, pyramid_below=pyramid_below, mark=mark)

    def preview_segment(self, p0: tuple[float, float], p1: tuple[float, float], radius: float, value: int,
                        level: int) -> Box:
        """Paint a segment into label levels ``level`` and coarser only (what the screen shows at that zoom);
        the full-resolution chunks are painted separately and refresh_pyramid() makes the levels exact."""
        (xa, ya), (xb, yb) = p0, p1
        return self.preview(lambda ds: segment((xa / ds, ya / ds), (xb / ds, yb / ds), radius / ds), value, level)

    def preview_polygon(self, points: list[tuple[float, float]], value: int, level: int) -> Box:
        """preview_segment for a filled polygon (x, y vertices in full-resolution pixels)."""
        return self.preview(lambda ds: polygon([(x / ds, y / ds) for x, y in points]), value, level)

    def preview(self, shape_at: Callable[[int], tuple[Box, Shape]], value: int, level: int) -> Box:
        """Paint ``shape_at(downsample)`` into label levels ``level`` and up; returns the level-0 box shown."""
        shown = [shape_at(1)[0]]
        with self.lock:
            for k in range(max(1, level), len(self.levels)):
                ds, grid = self.downsample(k), self.levels[k]
                box, draw = shape_at(ds)
                y0, x0, h, w = clip(box, grid.height, grid.width)
                if h <= 0 or w <= 0:
                    continue
                marked = np.zeros((h, w), np.uint8)
                draw(marked, y0, x0)
                region = grid.read(y0, x0, h, w)
                region[marked.astype(bool)] = value
                grid.write(y0, x0, region)
                shown.append((y0 * ds, x0 * ds, h * ds, w * ds))
        y0, x0 = min(b[0] for b in shown), min(b[1] for b in shown)
        return (y0, x0, max(b[0] + b[2] for b in shown) - y0, max(b[1] + b[3] for b in shown) - x0)

    @property
    def pyramid_built(self) -> bool:
        """Whether every chunk saved before this store was opened is in the label pyramid."""
        with self.lock:
            return not self._unbuilt

    def build_pyramid(self, built: Callable[[Box], None] | None = None, stop: Callable[[], bool] | None = None,
                      step: int = PYRAMID_BUILD_STEP) -> bool:
        """Put the labels saved before this store was opened into its pyramid, ``step`` chunks at a time
        under the lock; ``built(box)`` after each step (the level-0 box it covered), ``stop()`` asked
        between steps. True when complete. Painting meanwhile is safe: levels are sampled from level 0."""
        c = self.chunk
        while True:
            with self.lock:
                keys = [self._unbuilt.popleft() for _ in range(min(step, len(self._unbuilt)))]
                for cy, cx in keys:
                    self._update_pyramid(cy * c, cx * c, c, c)
            if not keys:
                return True
            if built is not None:
                y0, x0 = min(k[0] for k in keys) * c, min(k[1] for k in keys) * c
                built((y0, x0, (max(k[0] for k in keys) + 1) * c - y0, (max(k[1] for k in keys) + 1) * c - x0))
            if stop is not None and stop():
                return False

    def refresh_pyramid(self, box: Box, from_level: int = 1) -> None:
        """Make label levels ``from_level`` and coarser exact over a full-resolution box."""
        y0, x0, h, w = clip(box, self.height, self.width)
        if h > 0 and w > 0:
            with self.lock:
                self._update_pyramid(y0, x0, h, w, from_level)

    def diff_since(self, record: dict) -> ChunkDiff:
        """The undo step of a recorded stroke: per chunk, the box of pixels that differ from before it."""
        diff = ChunkDiff()
        with self.lock:
            for (cy, cx), before in sorted(record.items()):
                now = self.full.get(cy, cx, create=True)
                old = np.zeros_like(now) if before is None else before
                changed = old != now
                rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
                if rows.size:
                    sl = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
                    diff.pieces.append(ChunkPiece(cy, cx, int(rows[0]), int(cols[0]), old[sl].copy(),
                                                  now[sl].copy()))
        return diff

    def paint_polygon(self, points: list[tuple[float, float]], value: int) -> ChunkDiff | None:
        """Fill a polygon (x, y vertices in full-resolution pixels)."""
        if len(points) < 3:
            return None
        return self.paint(*polygon(points), value)

    def paint_polygon_recorded(self, points: list[tuple[float, float]], value: int, record: dict,
                               pyramid_below: int | None = None, mark: Mark | None = None) -> None:
        """paint_polygon for a shape whose undo step diff_since(record) makes (painted on another thread)."""
        if len(points) >= 3:
            self.paint(*polygon(points), value, record=record, pyramid_below=pyramid_below, mark=mark)

    def put(self, y0: int, x0: int, values: np.ndarray, keep: np.ndarray | None = None) -> bool:
        """Write a box of labels (a prediction), leaving the pixels where ``keep`` is true as they are.

        No undo step is made: a slide's prediction can be far larger than any undo budget; what the user
        painted by hand is protected by ``keep`` instead. Returns whether anything changed.
        """
        h, w = values.shape
        c = self.chunk
        changed = False
        for cy, cx in self.full.covering(y0, x0, h, w):
            ya, xa = max(y0, cy * c), max(x0, cx * c)
            yb, xb = min(y0 + h, (cy + 1) * c), min(x0 + w, (cx + 1) * c)
            part = values[ya - y0:yb - y0, xa - x0:xb - x0]
            sl = slice(ya - cy * c, yb - cy * c), slice(xa - cx * c, xb - cx * c)
            with self.lock:  # a save may be writing this chunk on another thread: _mutable copies it first
                chunk = self.full.get(cy, cx)
                if chunk is None and not part.any():
                    continue
                chunk = self.full.get(cy, cx, create=True)
                new = part if keep is None else np.where(keep[ya - y0:yb - y0, xa - x0:xb - x0], chunk[sl], part)
                if np.array_equal(chunk[sl], new):
                    continue
                self._mutable(cy, cx, create=True)[sl] = new
                self._changed(cy, cx, sl)
            changed = True
        return changed

    def forget_saved(self) -> int:
        """Drop saved, unchanged chunks from memory (they are read again when needed); returns how many."""
        if self._array is None:
            return 0
        with self.lock:
            clean = [key for key in self.full.chunks if self._evictable(key)]
            for key in clean:
                del self.full.chunks[key]
        return len(clean)

    def chunk_keys(self) -> set[tuple[int, int]]:
        """Every chunk that holds labels, in memory or on disk."""
        with self.lock:
            return set(self.full.chunks) | self._saved

    def take_from(self, other: LabelStore) -> None:
        """Make these labels ``other``'s (a store of the same size), chunk by chunk, keeping no undo step."""
        c = self.chunk
        for cy, cx in sorted(self.chunk_keys() | other.chunk_keys()):
            h, w = min(c, self.height - cy * c), min(c, self.width - cx * c)
            self.put(cy * c, cx * c, other.read(cy * c, cx * c, h, w).astype(self.dtype, copy=False))

    def diff_to(self, other: LabelStore) -> ChunkDiff:
        """The edit that turns these labels into ``other``'s (a store of the same size): per chunk either
        holds, the box of pixels that differ. Applied, it makes them equal; reverted, it takes them back."""
        c = self.chunk
        diff = ChunkDiff()
        for cy, cx in sorted(self.chunk_keys() | other.chunk_keys()):
            old = self.read(cy * c, cx * c, c, c)
            new = other.read(cy * c, cx * c, c, c).astype(self.dtype, copy=False)
            changed = old != new
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            if rows.size:
                sl = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
                diff.pieces.append(ChunkPiece(cy, cx, int(rows[0]), int(cols[0]), old[sl].copy(), new[sl].copy()))
        return diff

    # --- undo -----------------------------------------------------------------------------------------
    def apply(self, diff: ChunkDiff) -> Box:
        return self._put(diff, new=True)

    def revert(self, diff: ChunkDiff) -> Box:
        return self._put(diff, new=False)

    def _put(self, diff: ChunkDiff, new: bool) -> Box:
        if not diff.pieces:
            return 0, 0, 0, 0
        for piece in diff.pieces:
            with self.lock:
                chunk = self._mutable(piece.cy, piece.cx, create=True)
                values = piece.new if new else piece.old
                sl = slice(piece.y0, piece.y0 + values.shape[0]), slice(piece.x0, piece.x0 + values.shape[1])
                chunk[sl] = values
                self._changed(piece.cy, piece.cx, sl)
        return diff.box(self.chunk)

    def merge(self, diff: ChunkDiff, later: ChunkDiff) -> None:
        """Fold ``later`` (the edit just made) into ``diff``: one piece per chunk, earliest old, latest new.

        The merged piece covers both boxes; pixels in it that neither touched take the chunk's current value
        for both old and new, so undo leaves them as they are. Call right after ``later`` was painted.
        """
        by_chunk = {(p.cy, p.cx): i for i, p in enumerate(diff.pieces)}
        for piece in later.pieces:
            index = by_chunk.get((piece.cy, piece.cx))
            if index is None:
                by_chunk[(piece.cy, piece.cx)] = len(diff.pieces)
                diff.pieces.append(piece)
                continue
            first = diff.pieces[index]
            y0, x0 = min(first.y0, piece.y0), min(first.x0, piece.x0)
            y1 = max(first.y0 + first.old.shape[0], piece.y0 + piece.old.shape[0])
            x1 = max(first.x0 + first.old.shape[1], piece.x0 + piece.old.shape[1])
            with self.lock:
                new = self.full.get(piece.cy, piece.cx, create=True)[y0:y1, x0:x1].copy()
            old = new.copy()
            for part in (piece, first):  # first last: its old pixels are the earliest
                h, w = part.old.shape
                old[part.y0 - y0:part.y0 - y0 + h, part.x0 - x0:part.x0 - x0 + w] = part.old
            diff.pieces[index] = ChunkPiece(piece.cy, piece.cx, y0, x0, old, new)

    # --- pyramid and saving ---------------------------------------------------------------------------
    def _changed(self, cy: int, cx: int, sl: tuple[slice, slice], pyramid_below: int | None = None) -> None:
        self.dirty.add((cy, cx))
        now = _clock()
        self._touched[(cy, cx)] = (self._touched.get((cy, cx), (now, now))[0], now)
        c = self.chunk
        self._update_pyramid(cy * c + sl[0].start, cx * c + sl[1].start, sl[0].stop - sl[0].start,
                             sl[1].stop - sl[1].start, 1, pyramid_below)

    def _update_pyramid(self, y0: int, x0: int, h: int, w: int, first: int = 1, below: int | None = None) -> None:
        """Level k pixel (Y, X) is full-resolution pixel (Y * ds, X * ds): refresh those in the box."""
        for k in range(first, len(self.levels) if below is None else min(below, len(self.levels))):
            ds = PYRAMID_FACTOR ** k
            ya, xa = math.ceil(y0 / ds), math.ceil(x0 / ds)
            yb, xb = math.ceil(min(y0 + h, self.height) / ds), math.ceil(min(x0 + w, self.width) / ds)
            if yb <= ya or xb <= xa:
                continue
            self.levels[k].write(ya, xa, self._sample(ya, xa, yb - ya, xb - xa, ds))

    def _sample(self, ya: int, xa: int, h: int, w: int, ds: int) -> np.ndarray:
        c = self.chunk
        cy, cx = ya * ds // c, xa * ds // c
        if (ya + h - 1) * ds // c == cy and (xa + w - 1) * ds // c == cx:  # one chunk (every paint): a strided view
            chunk = self.full.get(cy, cx)
            if chunk is None:
                return np.zeros((h, w), self.dtype)
            y, x = ya * ds - cy * c, xa * ds - cx * c
            return chunk[y:y + (h - 1) * ds + 1:ds, x:x + (w - 1) * ds + 1:ds]
        out = np.zeros((h, w), self.dtype)
        ys, xs = (np.arange(h) + ya) * ds, (np.arange(w) + xa) * ds
        for cy in np.unique(ys // c):
            rows = np.flatnonzero(ys // c == cy)
            for cx in np.unique(xs // c):
                chunk = self.full.get(int(cy), int(cx))
                if chunk is None:
                    continue
                cols = np.flatnonzero(xs // c == cx)
                out[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = chunk[np.ix_(ys[rows] - cy * c, xs[cols] - cx * c)]
        return out

    @property
    def unsaved(self) -> bool:
        return bool(self.dirty)

    def save(self, folder: Path | None = None) -> int:
        """Write the chunks changed since the last save (each atomically); returns how many were written."""
        return self.write(self.snapshot(folder))

    def snapshot(self, folder: Path | None = None, quiet: float | None = None, at_most: float = 2.0
                 ) -> list[tuple[int, int, np.ndarray | None]]:
        """The chunks changed since the last save, as they are now (cheap: no pixels are copied).

        With ``quiet`` (seconds), only the chunks unchanged for that long, or changing for over ``at_most``:
        while a stroke is still being painted, those behind it are done, and the ones under it would only be
        written again (unless it stays there).
        """
        with self.lock:
            if folder is not None and (self.folder is None or Path(folder) != self.folder):
                self.folder = Path(folder)
                self._array = open_array(self.folder, self.height, self.width, self.chunk, self.dtype)
                self.dirty |= set(self.full.chunks)  # a new folder gets everything painted so far
            if self._array is None:
                raise ValueError("the label store has no folder to save into")
            keys = set(self.dirty)
            if quiet is not None:
                now = _clock()
                keys = {key for key in keys if key not in self._touched or self._touched[key][1] <= now - quiet
                        or self._touched[key][0] <= now - at_most}
            taken = [(cy, cx, self.full.chunks.get((cy, cx))) for cy, cx in sorted(keys)]
            self._frozen = {(cy, cx) for cy, cx, chunk in taken if chunk is not None}
            self.dirty -= keys
            for key in keys:
                self._touched.pop(key, None)
            return taken

    def write(self, taken: list[tuple[int, int, np.ndarray | None]]) -> int:
        """Put a snapshot on disk (each chunk atomically); any thread. Returns how many chunks were written.

        Neighbouring chunks of a row go to zarr in one call (WRITE_RUN at most), which writes their files
        concurrently: about half the time per chunk of one call each (core.label_disk).
        """
        c = self.chunk
        written = 0
        try:
            for run in runs(taken):
                cy, cx = run[0][0], run[0][1]
                h = min(c, self.height - cy * c)
                values = np.zeros((h, min(len(run) * c, self.width - cx * c)), self.dtype)
                for _cy, ccx, chunk in run:
                    if chunk is not None:
                        part = values[:, (ccx - cx) * c:(ccx - cx + 1) * c]
                        part[:] = chunk[:h, :part.shape[1]]
                self._array[cy * c:cy * c + h, cx * c:cx * c + values.shape[1]] = values
                with self.lock:
                    for _cy, ccx, _chunk in run:
                        filled = values[:, (ccx - cx) * c:(ccx - cx + 1) * c].any()
                        (self._saved.add if filled else self._saved.discard)((cy, ccx))
                written += len(run)
        finally:
            with self.lock:
                self.dirty.update((cy, cx) for cy, cx, _chunk in taken[written:])  # not written: next time
                self._frozen.clear()
                self.full.trim()  # what was written may leave memory now
        return written
