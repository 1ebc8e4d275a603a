"""Saving so that nothing the user made is ever half-written, and the autosave journal.

Every write goes to a temporary file in the target's own folder, is flushed and fsynced, and then
replaces the target with os.replace, which is atomic on one filesystem. A crash at any moment leaves
either the old file or the new one, never a mix. The folder is fsynced too where the OS allows, so
the rename itself survives a power cut.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import socket
import stat
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from segstudio.core import paths
from segstudio.core.labels import ClassTable

if os.name == "nt":
    import msvcrt
else:
    import fcntl

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
        return f"Cannot save {self.path}: {self.reason}"

    def __reduce__(self):
        return type(self), (self.path, self.reason, self.errno)


def _save_error(path: Path, exc: OSError) -> SaveError:
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
def atomic_open(path: os.PathLike | str, mode: str = "wb", *, encoding: str = "utf-8") -> Iterator[IO]:
    """Open a file for writing that appears at `path` only once it is complete.

    mode is "wb" or "w" (text, no newline translation). If the block raises, the target is untouched
    and the temporary file is removed. OS failures are raised as SaveError (an OSError).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode must be 'wb' or 'w', not {mode!r}")
    target = Path(path)
    if target.is_dir():
        raise SaveError(target, "a folder with that name is in the way")
    try:
        fd, temp = _create_temp(target)
    except OSError as exc:
        raise _save_error(target, exc) from exc
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
        _keep_existing_mode(target, temp)
        os.replace(temp, target)
    except BaseException as exc:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise _save_error(target, exc) from exc
        raise
    _fsync_folder(target.parent)


def atomic_write_bytes(path: os.PathLike | str, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: os.PathLike | str, text: str, *, encoding: str = "utf-8") -> None:
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: os.PathLike | str, obj: Any, *, indent: int | None = 2) -> None:
    # Serialise first: an object JSON cannot express must fail before the old file is touched.
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


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


# --- session lock --------------------------------------------------------------------------------------
def _try_lock(fd: int) -> bool:
    try:
        if os.name == "nt":
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    try:
        if os.name == "nt":
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass


# --- autosave journal ----------------------------------------------------------------------------------
@dataclass
class AutosaveRecord:
    mask: np.ndarray
    classes: ClassTable
    hand: np.ndarray
    extra: dict = field(default_factory=dict)
    saved_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    image_path: Path | None = None


class AutosaveStore:
    """Autosaved masks, one entry per image, and which of them a crashed session left behind.

    Each image is keyed by a hash of its resolved path. An entry is one .npz (mask, hand map and a JSON
    header with classes and extra fields, written atomically, so it is always self-consistent) plus a
    small .json index naming the image and the session that saved it.

    A running session holds an OS lock on its marker file in sessions/. end_session() deletes the
    marker. A marker that still exists but whose lock can be taken belongs to a session that died,
    and its autosaves are what recoverable() lists. The OS drops the lock of a killed process, so
    this needs no process ids and cannot mistake a second running instance for a crashed one.
    """

    FORMAT = "segstudio-autosave"
    VERSION = 1

    def __init__(self, root: os.PathLike | str | None = None):
        self.root = Path(root) if root is not None else paths.autosave_dir()
        self._session_id: str | None = None
        self._session_fd: int | None = None

    # --- keys and files ----------------------------------------------------------------------------
    @staticmethod
    def resolved(image_path: os.PathLike | str) -> Path:
        """The spelling of an image path used as its identity (normcase folds case on Windows)."""
        return Path(os.path.normcase(Path(image_path).expanduser().resolve()))

    @classmethod
    def key(cls, image_path: os.PathLike | str) -> str:
        return hashlib.sha256(str(cls.resolved(image_path)).encode("utf-8")).hexdigest()[:24]

    def data_path(self, image_path: os.PathLike | str) -> Path:
        return self.root / f"{self.key(image_path)}.npz"

    def _index_path(self, image_path: os.PathLike | str) -> Path:
        return self.root / f"{self.key(image_path)}.json"

    @property
    def _sessions_dir(self) -> Path:
        return self.root / "sessions"

    def _marker(self, session_id: str) -> Path:
        return self._sessions_dir / f"{session_id}.session"

    # --- sessions ----------------------------------------------------------------------------------
    @property
    def session_id(self) -> str | None:
        return self._session_id

    def begin_session(self) -> str:
        """Mark this process as working; idempotent. Also clears temp files that crashed writers left."""
        if self._session_id is not None:
            return self._session_id
        session_id = uuid.uuid4().hex
        marker = self._marker(session_id)
        try:
            self._sessions_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(marker, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            raise _save_error(marker, exc) from exc
        if not _try_lock(fd):
            os.close(fd)
            raise SaveError(marker, "the session marker is locked by another process")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now().isoformat()}
        os.write(fd, json.dumps(info).encode("utf-8"))
        self._session_id, self._session_fd = session_id, fd
        remove_stale_temp_files(self.root)
        return session_id

    def end_session(self) -> None:
        """Clean exit: this session's autosaves are no longer offered for recovery."""
        if self._session_id is None:
            return
        marker = self._marker(self._session_id)
        fd = self._session_fd
        self._session_id = self._session_fd = None
        if fd is not None:
            _unlock(fd)
            os.close(fd)
        marker.unlink(missing_ok=True)

    def _session_died(self, session_id: str) -> bool:
        """True when the session's marker is still there but no live process holds its lock."""
        if session_id == self._session_id:
            return False
        try:
            fd = os.open(self._marker(session_id), os.O_RDWR)
        except OSError:
            return False  # no marker: the session ended cleanly
        try:
            if not _try_lock(fd):
                return False  # still running, maybe in another window
            _unlock(fd)
            return True
        finally:
            os.close(fd)

    # --- entries -----------------------------------------------------------------------------------
    def save(
        self,
        image_path: os.PathLike | str,
        mask: np.ndarray,
        classes: ClassTable,
        hand: np.ndarray | None,
        *,
        extra: dict | None = None,
    ) -> Path:
        """Autosave one image's work atomically; return the data file. Raises SaveError on failure."""
        mask = np.asarray(mask)
        if mask.ndim != 2 or mask.dtype.kind not in "ui":
            raise ValueError(f"an autosaved mask must be a 2-D integer array, got {mask.dtype} {mask.shape}")
        hand = np.zeros(mask.shape, bool) if hand is None else np.asarray(hand, dtype=bool)
        if hand.shape != mask.shape:
            raise ValueError(f"hand map shape {hand.shape} differs from mask shape {mask.shape}")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _save_error(self.root, exc) from exc
        self.begin_session()
        saved_at = _now()
        image = str(self.resolved(image_path))
        header = {
            "format": self.FORMAT,
            "version": self.VERSION,
            "image": image,
            "saved_at": saved_at.isoformat(),
            "session": self._session_id,
            "classes": classes.to_list(),
            "extra": dict(extra or {}),
        }
        try:
            header_bytes = json.dumps(header, ensure_ascii=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"autosave extra fields must be JSON data: {exc}") from None

        data_path = self.data_path(image_path)
        with atomic_open(data_path, "wb") as handle:
            np.savez_compressed(handle, mask=mask, hand=hand, header=np.frombuffer(header_bytes, np.uint8))
        atomic_write_json(
            self._index_path(image_path), {"image": image, "saved_at": header["saved_at"], "session": header["session"]}
        )
        return data_path

    def load(self, image_path: os.PathLike | str) -> AutosaveRecord | None:
        """The autosaved work for an image, or None when there is none."""
        data_path = self.data_path(image_path)
        if not data_path.exists():
            return None
        try:
            with np.load(data_path, allow_pickle=False) as archive:
                mask, hand = archive["mask"], archive["hand"]
                header = json.loads(archive["header"].tobytes().decode("utf-8"))
            if header.get("format") != self.FORMAT:
                raise ValueError("not a segstudio autosave")
            if header["image"] != str(self.resolved(image_path)):
                return None  # a different image with the same key: not ours to offer
            classes = ClassTable.from_list(header["classes"])
            saved_at = datetime.fromisoformat(header["saved_at"])
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"Cannot read autosave {data_path} of {image_path}: {exc}") from exc
        if mask.ndim != 2 or hand.shape != mask.shape:
            raise ValueError(f"Cannot read autosave {data_path} of {image_path}: mask and hand map do not match")
        return AutosaveRecord(mask, classes, hand.astype(bool), header.get("extra", {}), saved_at, Path(header["image"]))

    def discard(self, image_path: os.PathLike | str) -> None:
        for path in (self.data_path(image_path), self._index_path(image_path)):
            path.unlink(missing_ok=True)

    def recoverable(self) -> list[Path]:
        """Images whose latest autosave was made by a session that did not end cleanly, newest first."""
        found: list[tuple[str, Path]] = []
        died: dict[str, bool] = {}
        for index_path in self.root.glob("*.json"):
            try:
                info = json.loads(index_path.read_text(encoding="utf-8"))
                session, image, saved_at = info["session"], info["image"], info["saved_at"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not index_path.with_suffix(".npz").exists():
                continue
            if session not in died:
                died[session] = self._session_died(session)
            if died[session]:
                found.append((saved_at, Path(image)))
        self._forget_dead_sessions_without_work(died)
        return [image for _, image in sorted(found, key=lambda item: item[0], reverse=True)]

    def _forget_dead_sessions_without_work(self, seen: dict[str, bool]) -> None:
        """Drop markers of crashed sessions once nothing of theirs is left to recover."""
        try:
            markers = list(self._sessions_dir.glob("*.session"))
        except OSError:
            return
        for marker in markers:
            session = marker.stem
            if session in seen or not self._session_died(session):
                continue
            marker.unlink(missing_ok=True)


def _now() -> datetime:
    return datetime.now(timezone.utc)
