"""Saving so that nothing the user made is ever half-written: atomic writes and label-mask PNGs.

Every write goes to a temporary file in the target's own folder, is flushed and fsynced, and then
replaces the target with os.replace, which is atomic on one filesystem. A crash at any moment leaves
either the old file or the new one, never a mix. The folder is fsynced too where the OS allows, so
the rename itself survives a power cut.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from segstudio.core.text import printable

_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
_MAX_TEMP_STEM = 200  # keeps ".<name>.<8 hex>.tmp" under the usual 255-character name limit


class SaveError(OSError):
    """A write that did not happen. str(e) names the file and the reason in plain words."""

    def __init__(self, path: os.PathLike | str, reason: str, error_number: int | None = None):
        if error_number is None:
            super().__init__(reason)
            self.strerror = reason
        else:
            super().__init__(error_number, reason)
        self.path = Path(path)
        self.filename = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"Cannot save {printable(self.path)}: {self.reason}"

    def __reduce__(self):
        return type(self), (self.path, self.reason, self.errno)


def save_error(path: Path, exc: OSError) -> SaveError:
    """The OSError `exc` met while writing `path`, as a SaveError with a plain reason."""
    if isinstance(exc, SaveError):
        return exc
    if exc.errno == errno.ENOENT and not path.parent.is_dir():
        reason = f"the folder {path.parent} does not exist"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        reason = "permission denied"
    elif exc.errno == errno.ENOSPC:
        reason = "the disk is full"
    elif exc.errno == errno.EROFS:
        reason = "the disk is read-only"
    else:
        reason = exc.strerror or str(exc)
    return SaveError(path, reason, exc.errno)


# --- atomic writes -------------------------------------------------------------------------------------
def _create_temp(target: Path) -> tuple[int, Path]:
    # os.open with mode 0o666 lets the umask decide permissions, as a plain open() would;
    # tempfile.mkstemp would leave every saved file private (0600).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    stem = target.name[:_MAX_TEMP_STEM]
    while True:
        temp = target.with_name(f".{stem}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue


def _fsync_folder(folder: Path) -> None:
    if os.name == "nt":  # Windows cannot open a folder as a file; NTFS journals the rename itself.
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (network, FUSE) refuse fsync on folders; the data itself is synced
    finally:
        os.close(fd)


def _keep_existing_mode(target: Path, temp: Path) -> None:
    try:
        os.chmod(temp, stat.S_IMODE(os.stat(target).st_mode))
    except OSError:
        pass  # a new file, or a filesystem without modes


@contextmanager
def atomic_open(path: os.PathLike | str, mode: str = "wb", *, encoding: str = "utf-8",
                exclusive: bool = False) -> Iterator[IO]:
    """Open a file for writing that appears at `path` only once it is complete.

    mode is "wb" or "w" (text, no newline translation). If the block raises, the target is untouched
    and the temporary file is removed. OS failures are raised as SaveError (an OSError). With
    `exclusive`, an existing target is never replaced: the finished file is hard-linked into place, which
    fails atomically if another writer got there first (FileExistsError, as a SaveError).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode must be 'wb' or 'w', not {mode!r}")
    target = Path(path)
    if target.is_dir():
        raise SaveError(target, "a folder with that name is in the way")
    try:
        fd, temp = _create_temp(target)
    except OSError as exc:
        raise save_error(target, exc) from exc
    try:
        if mode == "wb":
            handle = os.fdopen(fd, "wb")
        else:
            handle = os.fdopen(fd, "w", encoding=encoding, newline="")
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            _link_new(temp, target)
        else:
            _keep_existing_mode(target, temp)
            os.replace(temp, target)
    except BaseException as exc:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise save_error(target, exc) from exc
        raise
    _fsync_folder(target.parent)


def _link_new(temp: Path, target: Path) -> None:
    try:
        os.link(temp, target)
    except FileExistsError:
        raise SaveError(target, "another file with that name appeared while this one was written",
                        errno.EEXIST) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # A filesystem without hard links (FAT, some network shares): the check and the rename are two
        # steps there, so exclusivity rests on the caller's reservation of the name.
        if target.exists():
            raise SaveError(target, "another file with that name appeared while this one was written",
                            errno.EEXIST) from None
        os.replace(temp, target)
        return
    temp.unlink()


def atomic_write_bytes(path: os.PathLike | str, data: bytes, *, exclusive: bool = False) -> None:
    with atomic_open(path, "wb", exclusive=exclusive) as handle:
        handle.write(data)


def atomic_write_text(path: os.PathLike | str, text: str, *, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def json_text(obj: Any, *, indent: int | None = 2) -> str:
    """JSON that is always valid UTF-8: readable non-ASCII text as is, but a file name that was not UTF-8
    (held as lone surrogates) is written as \\udcXX escapes, which read back to the same name."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, indent=indent, ensure_ascii=True)
    return text


def atomic_write_json(path: os.PathLike | str, obj: Any, *, indent: int | None = 2) -> None:
    # Serialise first: an object JSON cannot express must fail before the old file is touched.
    atomic_write_text(path, json_text(obj, indent=indent) + "\n")


def remove_stale_temp_files(folder: os.PathLike | str, *, older_than_s: float = 3600.0) -> list[Path]:
    """Delete temporary files that a killed writer left behind in `folder`; return what was removed.

    Only names made by atomic_open are touched, and only old ones, so a write in progress is safe.
    """
    removed = []
    cutoff = time.time() - older_than_s
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not _TEMP_NAME.match(entry.name):
            continue
        try:
            if entry.stat().st_mtime <= cutoff:
                entry.unlink()
                removed.append(entry)
        except OSError:
            continue
    return removed


# --- label masks as PNG --------------------------------------------------------------------------------
def save_mask_png(path: os.PathLike | str, mask: np.ndarray) -> None:
    """Write a label mask as a lossless single-channel PNG (8-bit, or 16-bit for ids above 255)."""
    import cv2  # loaded on first use so that processes that only write the journal start quickly

    mask = np.asarray(mask)
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (height, width), got shape {mask.shape}")
    if mask.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"a mask PNG holds uint8 or uint16 ids, not {mask.dtype}")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(mask))
    if not ok:
        raise SaveError(path, "the PNG encoder failed")
    atomic_write_bytes(path, encoded.tobytes())


def load_mask_png(path: os.PathLike | str) -> np.ndarray:
    """Read a mask written by save_mask_png. Raises ImageReadError for anything that is not one."""
    from segstudio.core.imageio import ImageReadError, read_image

    image = read_image(path)
    meta = image.meta
    if meta.format != "png" or meta.channels != 1 or image.pixels.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(
            path,
            f"not a label mask (expected a single-channel 8- or 16-bit PNG, found a {meta.channels}-channel "
            f"{meta.dtype} {meta.format.upper()})",
        )
    return image.pixels.reshape(meta.height, meta.width)

