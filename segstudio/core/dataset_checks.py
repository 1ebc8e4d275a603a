"""Checks that keep a dataset folder from reaching outside itself.

A dataset folder travels between people, so its manifest is input like any other file: an entry id of
"../../victim" would make export delete or overwrite a file elsewhere, an absolute "image" path would make
training read (and nnU-Net export copy) any file, and a symlinked masks/ would make export write into its
target. Here every entry is checked before any of its fields is used, and every path is resolved and must
stay inside the dataset folder. A file that is not a regular file (a FIFO or device named like an image)
is refused from its type, before anything opens it, because opening it blocks.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from segstudio.core.text import printable

ENTRY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# The file fields of an entry: "<folder>/<name>" with one of the dataset's own folders and a plain name.
_FILE_FIELD = {"image": "images", "mask": "masks", "hand": "hand"}
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class UnsafeDataset(ValueError):
    """Raised by the checks; dataset.py reports it as a DatasetError naming the file."""


def check_entry(position: int, entry: Any) -> None:
    """Refuse an entry whose id or file fields could name anything outside the dataset, or whose fields
    the readers rely on have the wrong type."""
    if not isinstance(entry, dict):
        raise UnsafeDataset(f"entry {position} is not a JSON object")
    entry_id = entry.get("id")
    if not isinstance(entry_id, str) or not ENTRY_ID.match(entry_id):
        raise UnsafeDataset(f"entry {position} has an unsafe id {printable(repr(entry_id))[:80]} "
                            "(ids are letters, digits, '_' and '-')")
    for field, folder in _FILE_FIELD.items():
        value = entry.get(field)
        parts = value.split("/") if isinstance(value, str) else []
        if len(parts) != 2 or parts[0] != folder or not _FILE_NAME.match(parts[1]):
            raise UnsafeDataset(f"entry {entry_id}: {field} {printable(repr(value))[:80]} is not a file name "
                                f"inside the dataset's {folder}/ folder")
    if not isinstance(entry.get("sha256"), str) or not _SHA256.match(entry["sha256"]):
        raise UnsafeDataset(f"entry {entry_id}: sha256 is not a SHA-256 hex digest")
    if entry.get("split") not in ("train", "val"):
        raise UnsafeDataset(f"entry {entry_id}: split must be 'train' or 'val'")
    for field in ("height", "width", "channels"):
        value = entry.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31:
            raise UnsafeDataset(f"entry {entry_id}: {field} must be a positive whole number")
    for field in ("mask_sha256", "hand_sha256"):
        if entry.get(field) is not None and not (isinstance(entry[field], str) and _SHA256.match(entry[field])):
            raise UnsafeDataset(f"entry {entry_id}: {field} is not a SHA-256 hex digest")


def inside(root: Path, relative: str) -> Path:
    """root/relative resolved (symlinks followed); refused if it ends up outside the resolved root."""
    real_root = root.resolve()
    real = (root / relative).resolve()
    if real != real_root and not real.is_relative_to(real_root):
        raise UnsafeDataset(f"{printable(root / relative)} leads outside the dataset folder (to "
                            f"{printable(real)}); links out of a dataset are refused")
    return real


def regular_file(root: Path, relative: str) -> Path:
    """inside(), and the file must exist and be a regular file (checked without opening it)."""
    path = inside(root, relative)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UnsafeDataset(f"{printable(root / relative)} is missing") from None
    except OSError as exc:
        raise UnsafeDataset(f"{printable(root / relative)} cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise UnsafeDataset(f"{printable(root / relative)} is not a regular file (a pipe, socket, device or "
                            "folder); skipped")
    return path
