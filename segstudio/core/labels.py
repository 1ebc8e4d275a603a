"""Label classes: the ids written into mask pixels, with the names and colours the user sees.

Ids are what a mask stores, so they never change once given: renaming, recolouring or reordering a class
only changes how it is shown. Id 0 is the background and is always present.
"""
from __future__ import annotations

import colorsys
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BACKGROUND_ID = 0
BACKGROUND_NAME = "background"
MAX_CLASS_ID = 65535  # the largest id a uint16 mask can hold
MAX_NAME_LENGTH = 64

RGB = tuple[int, int, int]

# The nucleus colour of the bundled model, so the session's default class table and the model agree from
# the start and the colour does not change at the first Predict. Magenta stands out on grey fluorescence.
NUCLEUS_COLOR: RGB = (255, 40, 200)
# A fixed qualitative palette, ordered so the first classes after the magenta nucleus are the easiest to
# tell from it and from each other (green, yellow, blue, orange...); later classes get generated hues.
_PALETTE: tuple[RGB, ...] = (
    (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (70, 240, 240), (230, 25, 75),
    (145, 30, 180), (210, 245, 60), (0, 128, 128), (170, 110, 40), (220, 190, 255), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (250, 190, 212), (255, 250, 200),
    (240, 50, 230),
)
# Colours closer than this (CIE76 colour difference in CIELAB, where ~2.3 is just noticeable) are hard to
# tell apart on an overlay. The palette's order, not only this bar, keeps crimson (62 from the nucleus
# magenta) back to the sixth class.
_MIN_COLOR_DIFFERENCE = 50.0
_HEX_COLOR = re.compile(r"^#?([0-9a-fA-F]{6})$")


@dataclass
class LabelClass:
    """One class. Change it through ClassTable methods so names stay unique and colours valid."""

    id: int
    name: str
    color: RGB


def mask_dtype_for(max_id: int) -> np.dtype:
    """Smallest unsigned dtype that holds every id up to max_id."""
    if not 0 <= max_id <= MAX_CLASS_ID:
        raise ValueError(f"class id {max_id} is out of range (0..{MAX_CLASS_ID})")
    return np.dtype(np.uint8) if max_id <= 255 else np.dtype(np.uint16)


def parse_color(color: Any) -> RGB:
    """Accept (r, g, b) with ints 0..255 or a '#rrggbb' string; raise ValueError otherwise."""
    if isinstance(color, str):
        match = _HEX_COLOR.match(color.strip())
        if not match:
            raise ValueError(f"colour {color!r} is not of the form '#rrggbb'")
        value = int(match.group(1), 16)
        return (value >> 16) & 255, (value >> 8) & 255, value & 255
    try:
        parts = [int(c) for c in color]
        exact = all(float(c) == p for c, p in zip(color, parts))
    except (TypeError, ValueError):
        raise ValueError(f"colour {color!r} is not a sequence of three integers") from None
    if len(parts) != 3 or not exact:
        raise ValueError(f"colour {color!r} must be three integers (red, green, blue)")
    if not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"colour {color!r} has a component outside 0..255")
    return parts[0], parts[1], parts[2]


def _generated_colors(count: int) -> list[RGB]:
    """Saturated colours; golden-ratio hue steps keep neighbours far apart on the hue circle."""
    golden = 0.618033988749895
    colors = []
    for step in range(count):
        value = (1.0, 0.75, 0.55)[(step // 7) % 3]
        saturation = (0.85, 0.6)[(step // 21) % 2]
        r, g, b = colorsys.hsv_to_rgb((0.11 + step * golden) % 1.0, saturation, value)
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return colors


def rgb_to_lab(rgb: Any) -> np.ndarray:
    """sRGB (..., 3) with values 0..255 to CIELAB (D65), where distances follow perceived differences."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def color_difference(a: Any, b: Any) -> float:
    """Perceived difference of two sRGB colours (CIE76 delta E)."""
    return float(np.linalg.norm(rgb_to_lab(a) - rgb_to_lab(b)))


_CANDIDATE_RGB = np.array(list(_PALETTE) + _generated_colors(1024), dtype=np.float64)
_CANDIDATE_LAB = rgb_to_lab(_CANDIDATE_RGB)


def distinct_color(used: Iterable[RGB]) -> RGB:
    """The first palette colour that looks clearly different from every colour in `used` and from black
    (the background); with many classes the bar is lowered step by step, and a colour is never repeated."""
    used_list = [tuple(int(v) for v in c) for c in used] + [(0, 0, 0)]
    used_lab = rgb_to_lab(np.array(used_list, dtype=np.float64))
    # perceived difference from each candidate to its nearest used colour
    nearest = np.linalg.norm(_CANDIDATE_LAB[:, None, :] - used_lab[None, :, :], axis=2).min(axis=1)
    taken = set(used_list)
    threshold = _MIN_COLOR_DIFFERENCE
    # With many classes nothing is that far from everything: settle for less, never a duplicate.
    while threshold >= 1:
        for index in np.flatnonzero(nearest >= threshold):
            r, g, b = (int(v) for v in _CANDIDATE_RGB[index])
            if (r, g, b) not in taken:
                return r, g, b
        threshold /= 2
    rng = np.random.default_rng(len(taken))
    while True:
        candidate = tuple(int(v) for v in rng.integers(0, 256, 3))
        if candidate not in taken:
            return candidate


class ClassTable:
    """The ordered set of label classes of one project. Background (id 0) is always first."""

    def __init__(self, classes: Iterable[LabelClass] | None = None):
        self._classes: list[LabelClass] = []
        given = list(classes) if classes is not None else [LabelClass(BACKGROUND_ID, BACKGROUND_NAME, (0, 0, 0))]
        if len(given) > MAX_CLASS_ID + 1:
            raise ValueError(f"a class table holds at most {MAX_CLASS_ID + 1} classes, not {len(given)}")
        # Sets of the ids and names seen so far keep building linear: a file with 60,000 classes must not
        # take minutes (checking each new class against the list would be quadratic).
        ids: set[int] = set()
        names: dict[str, int] = {}
        for cls in given:
            self._append_checked(cls, ids, names)
        if BACKGROUND_ID not in ids:
            raise ValueError(f"a class table needs the background class (id {BACKGROUND_ID})")
        background = self.get(BACKGROUND_ID)
        self._classes.remove(background)
        self._classes.insert(0, background)

    @classmethod
    def default(cls) -> ClassTable:
        table = cls()
        table.add("nucleus", NUCLEUS_COLOR)
        return table

    # --- reading -------------------------------------------------------------------------------------
    @property
    def classes(self) -> list[LabelClass]:
        """Classes in display order (a new list; the LabelClass objects are the table's own)."""
        return list(self._classes)

    def get(self, class_id: int) -> LabelClass:
        for cls in self._classes:
            if cls.id == class_id:
                return cls
        known = ", ".join(str(i) for i in self.ids())
        raise ValueError(f"there is no class with id {class_id} (ids in use: {known})")

    def ids(self) -> list[int]:
        return [cls.id for cls in self._classes]

    def names(self) -> list[str]:
        return [cls.name for cls in self._classes]

    def __len__(self) -> int:
        return len(self._classes)

    def __iter__(self) -> Iterator[LabelClass]:
        return iter(list(self._classes))

    def __contains__(self, class_id: object) -> bool:
        return any(cls.id == class_id for cls in self._classes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassTable):
            return NotImplemented
        return self.to_list() == other.to_list()

    def __repr__(self) -> str:
        inner = ", ".join(f"{c.id}:{c.name}" for c in self._classes)
        return f"ClassTable([{inner}])"

    @property
    def max_id(self) -> int:
        return max(cls.id for cls in self._classes)

    @property
    def mask_dtype(self) -> np.dtype:
        return mask_dtype_for(self.max_id)

    def lut_rgba(self, opacity: float = 1.0) -> np.ndarray:
        """Colour lookup table indexed by class id: lut[mask] gives an RGBA overlay.

        Background and ids without a class are fully transparent.
        """
        if not 0.0 <= opacity <= 1.0:
            raise ValueError(f"opacity {opacity} is outside 0..1")
        lut = np.zeros((self.max_id + 1, 4), dtype=np.uint8)
        alpha = round(255 * opacity)
        for cls in self._classes:
            lut[cls.id, :3] = cls.color
            lut[cls.id, 3] = 0 if cls.id == BACKGROUND_ID else alpha
        return lut

    # --- changing ------------------------------------------------------------------------------------
    def add(self, name: str, color: Any = None) -> LabelClass:
        """Add a class with the next id above all ids in use, so no existing pixel changes meaning."""
        new_id = self.max_id + 1
        if new_id > MAX_CLASS_ID:
            raise ValueError(f"cannot add {name!r}: ids are used up to {MAX_CLASS_ID}")
        rgb = parse_color(color) if color is not None else distinct_color(c.color for c in self._classes)
        cls = LabelClass(new_id, self._checked_name(name), rgb)
        self._classes.append(cls)
        return cls

    def rename(self, class_id: int, name: str) -> None:
        cls = self.get(class_id)
        if class_id == BACKGROUND_ID:
            if name.strip() == cls.name:
                return
            raise ValueError(f"the background class (id {BACKGROUND_ID}) cannot be renamed")
        cls.name = self._checked_name(name, ignore_id=class_id)

    def recolor(self, class_id: int, color: Any) -> None:
        self.get(class_id).color = parse_color(color)

    def move(self, class_id: int, new_index: int) -> None:
        """Change display order only. Background stays first."""
        cls = self.get(class_id)
        if class_id == BACKGROUND_ID:
            raise ValueError("the background class always comes first and cannot be moved")
        if not 1 <= new_index < len(self._classes):
            raise ValueError(f"position {new_index} is out of range (1..{len(self._classes) - 1})")
        self._classes.remove(cls)
        self._classes.insert(new_index, cls)

    def remove(self, class_id: int) -> LabelClass:
        """Remove a class. Pixels that still carry its id are the caller's to clear."""
        if class_id == BACKGROUND_ID:
            raise ValueError(f"the background class (id {BACKGROUND_ID}) cannot be removed")
        cls = self.get(class_id)
        self._classes.remove(cls)
        return cls

    def copy(self) -> ClassTable:
        return ClassTable(LabelClass(c.id, c.name, c.color) for c in self._classes)

    # --- serialising ---------------------------------------------------------------------------------
    def to_list(self) -> list[dict[str, Any]]:
        return [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self._classes]

    @classmethod
    def from_list(cls, entries: Sequence[dict[str, Any]]) -> ClassTable:
        classes = []
        for position, entry in enumerate(entries):
            try:
                class_id, name, color = entry["id"], entry["name"], entry["color"]
            except (KeyError, TypeError):
                raise ValueError(f"class entry {position} needs 'id', 'name' and 'color': {entry!r}") from None
            if isinstance(class_id, bool) or not isinstance(class_id, int):
                raise ValueError(f"class entry {position} has a non-integer id {class_id!r}")
            if not isinstance(name, str):
                raise ValueError(f"class entry {position} has a non-text name {name!r}")
            try:
                rgb = parse_color(color)
            except ValueError as exc:
                raise ValueError(f"class entry {position} ({name!r}): {exc}") from None
            classes.append(LabelClass(class_id, name, rgb))
        return cls(classes)

    # --- validation ----------------------------------------------------------------------------------
    def _append_checked(self, cls: LabelClass, ids: set[int], names: dict[str, int]) -> None:
        if isinstance(cls.id, bool) or not isinstance(cls.id, (int, np.integer)):
            raise ValueError(f"class id {cls.id!r} is not an integer")
        if not 0 <= cls.id <= MAX_CLASS_ID:
            raise ValueError(f"class id {cls.id} is out of range (0..{MAX_CLASS_ID})")
        if int(cls.id) in ids:
            raise ValueError(f"class id {cls.id} is used twice")
        name = _plain_name(cls.name)
        folded = name.casefold()
        if folded in names:
            raise ValueError(f"a class named {name!r} already exists (id {names[folded]})")
        ids.add(int(cls.id))
        names[folded] = int(cls.id)
        self._classes.append(LabelClass(int(cls.id), name, parse_color(cls.color)))

    def _checked_name(self, name: str, ignore_id: int | None = None) -> str:
        name = _plain_name(name)
        for cls in self._classes:
            if cls.id != ignore_id and cls.name.casefold() == name.casefold():
                raise ValueError(f"a class named {cls.name!r} already exists (id {cls.id})")
        return name


def _plain_name(name: object) -> str:
    """A class name stripped of surrounding space; refused when empty, too long or not text."""
    if not isinstance(name, str):
        raise ValueError(f"class name {name!r} is not text")
    name = name.strip()
    if not name:
        raise ValueError("a class name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"class name {name[:20]!r}... is longer than {MAX_NAME_LENGTH} characters")
    return name


def new_mask(shape_hw: Sequence[int], classes_or_n: ClassTable | int) -> np.ndarray:
    """An all-background mask whose dtype fits the classes: a ClassTable, or a class count (ids 0..n-1)."""
    if len(shape_hw) != 2 or any(int(s) <= 0 for s in shape_hw):
        raise ValueError(f"mask shape {tuple(shape_hw)} is not a positive (height, width)")
    if isinstance(classes_or_n, ClassTable):
        dtype = classes_or_n.mask_dtype
    else:
        count = int(classes_or_n)
        if count < 1:
            raise ValueError(f"a mask needs at least one class (background), got {count}")
        dtype = mask_dtype_for(count - 1)
    return np.zeros((int(shape_hw[0]), int(shape_hw[1])), dtype=dtype)
