"""Counts in words for messages: "1 image", "3 images", never "1 images" or "image(s)"."""
from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` followed by `noun`, in the plural unless n is exactly one ("1 image", "0 images", "2 classes")."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def duration(seconds: float) -> str:
    """A time left or taken in words a person reads at a glance: "40 s", "3 min", "1 h 05 min"."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{int(round(seconds))} s"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def time_left(done: int, total: int, elapsed: float) -> str | None:
    """Estimated time to finish from the pace so far, or None before there is a pace to go by."""
    if done <= 0 or total <= done or elapsed <= 0:
        return None
    return duration(elapsed / done * (total - done))
