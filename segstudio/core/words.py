"""Counts in words for messages: "1 image", "3 images", never "1 images" or "image(s)"."""
from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` followed by `noun`, in the plural unless n is exactly one ("1 image", "0 images", "2 classes")."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
