"""The autosave journal, and the session lock that tells a crashed session's work from a live one's.

Each open image's work is saved atomically in the user data folder, never next to the source image.
A running session holds an OS lock on a marker file; see AutosaveStore for why that, not process ids,
tells a crashed session from a live one.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from segstudio.core import paths
from segstudio.core.labels import ClassTable
from segstudio.core.storage import (
    SaveError,
    atomic_open,
    atomic_write_json,
    json_text,
    remove_stale_temp_files,
    save_error,
)

if os.name == "nt":
    import msvcrt
else:
    import fcntl


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


def _open_locked(path: Path) -> int | None:
    """The file at ``path`` (made if missing, with its folder) opened and locked; None when another
    process holds the lock. A file that cannot be made at all raises SaveError naming it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise save_error(path, exc) from exc
    if not _try_lock(fd):
        os.close(fd)
        return None
    return fd


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
    objects: np.ndarray | None = None  # the instance map (object ids), when objects had been found


class AutosaveStore:
    """Autosaved masks, one entry per image, and which of them a crashed session left behind.

    Each image is keyed by a hash of its resolved path and, for the second and later pages of a
    multi-page file, the page number: every page keeps its own mask. Page 0's key is the path's alone,
    as in autosaves written before pages had their own. An entry is one .npz (mask, hand map, the
    instance map once objects were found and edited, and a JSON header with classes and extra fields,
    written atomically, so it is always self-consistent) plus a small .json index naming the image and
    the session that saved it.

    A running session holds an OS lock on its marker file in sessions/. end_session() deletes the
    marker. A marker that still exists but whose lock can be taken belongs to a session that died,
    and its autosaves are what recoverable() lists. The OS drops the lock of a killed process, so
    this needs no process ids and cannot mistake a second running instance for a crashed one.

    The same kind of lock guards each image page while a window has it open (claim_image): two
    windows, in one process or two, saving the same entry would each overwrite the other's strokes
    without a word. The lock is per open file, so a second window of the same process is refused too,
    and a killed window's claim ends with its process.
    """

    FORMAT = "segstudio-autosave"
    VERSION = 1

    def __init__(self, root: os.PathLike | str | None = None):
        self.root = Path(root) if root is not None else paths.autosave_dir()
        self._session_id: str | None = None
        self._session_fd: int | None = None
        self._image_fds: dict[str, int] = {}  # image key -> the descriptor holding its lock

    # --- keys and files ----------------------------------------------------------------------------
    @staticmethod
    def resolved(image_path: os.PathLike | str) -> Path:
        """The spelling of an image path used as its identity (normcase folds case on Windows)."""
        return Path(os.path.normcase(Path(image_path).expanduser().resolve()))

    @classmethod
    def key(cls, image_path: os.PathLike | str, page: int = 0) -> str:
        # os.fsencode gives the name's own bytes, also for names that are not UTF-8 (Linux allows them);
        # for UTF-8 names these are the same bytes as .encode("utf-8"), so existing keys stay valid.
        identity = os.fsencode(str(cls.resolved(image_path))) + (f"#page={int(page)}".encode() if page else b"")
        return hashlib.sha256(identity).hexdigest()[:24]

    def data_path(self, image_path: os.PathLike | str, page: int = 0) -> Path:
        return self.root / f"{self.key(image_path, page)}.npz"

    def _index_path(self, image_path: os.PathLike | str, page: int = 0) -> Path:
        return self.root / f"{self.key(image_path, page)}.json"

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
        fd = _open_locked(marker)
        if fd is None:
            raise SaveError(marker, "the session marker is locked by another process")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now().isoformat()}
        os.write(fd, json.dumps(info).encode("utf-8"))
        self._session_id, self._session_fd = session_id, fd
        remove_stale_temp_files(self.root)
        return session_id

    def end_session(self) -> None:
        """Clean exit: this session's autosaves are no longer offered for recovery; its images are free."""
        for key in list(self._image_fds):
            fd = self._image_fds.pop(key)
            if os.name != "nt":
                self._image_lock_path(key).unlink(missing_ok=True)
            _unlock(fd)
            os.close(fd)
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

    # --- one window per image page ------------------------------------------------------------------
    def _image_lock_path(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def claim_image(self, image_path: os.PathLike | str, page: int = 0) -> bool:
        """Hold the image page's lock while it is open here; False when another window holds it.

        Idempotent for this store. Raises SaveError when the lock file cannot be made at all.
        """
        key = self.key(image_path, page)
        if key in self._image_fds:
            return True
        path = self._image_lock_path(key)
        for _attempt in range(3):
            fd = _open_locked(path)
            if fd is None:
                return False
            # The holder before us may have removed the file between our open and our lock: then this
            # lock is on a name nobody else sees, and we try again on the file that is there now.
            if os.name == "nt" or _same_file(fd, path):
                self._image_fds[key] = fd
                return True
            _unlock(fd)
            os.close(fd)
        return False

    def release_image(self, image_path: os.PathLike | str, page: int = 0) -> None:
        """Let another window edit the image page (closed here, its last save written)."""
        fd = self._image_fds.pop(self.key(image_path, page), None)
        if fd is None:
            return
        if os.name != "nt":  # removed while still locked, so no one locks a file about to vanish
            self._image_lock_path(self.key(image_path, page)).unlink(missing_ok=True)
        _unlock(fd)
        os.close(fd)

    def holds_image(self, image_path: os.PathLike | str, page: int = 0) -> bool:
        return self.key(image_path, page) in self._image_fds

    # --- entries -----------------------------------------------------------------------------------
    def save(
        self,
        image_path: os.PathLike | str,
        mask: np.ndarray,
        classes: ClassTable,
        hand: np.ndarray | None,
        *,
        extra: dict | None = None,
        page: int = 0,
        objects: np.ndarray | None = None,
    ) -> Path:
        """Autosave one image page's work atomically; return the data file. Raises SaveError on failure.

        ``objects``, the instance map, is kept with the mask when given, so object edits (split, merge,
        delete one, new object) come back as they were rather than found afresh from the mask."""
        mask = np.asarray(mask)
        if mask.ndim != 2 or mask.dtype.kind not in "ui":
            raise ValueError(f"an autosaved mask must be a 2-D integer array, got {mask.dtype} {mask.shape}")
        hand = np.zeros(mask.shape, bool) if hand is None else np.asarray(hand, dtype=bool)
        if hand.shape != mask.shape:
            raise ValueError(f"hand map shape {hand.shape} differs from mask shape {mask.shape}")
        arrays = {"mask": mask, "hand": hand}
        if objects is not None:
            objects = np.asarray(objects)
            if objects.shape != mask.shape or objects.dtype.kind != "u":
                raise ValueError(f"an instance map must be unsigned ids of the mask's shape {mask.shape}, "
                                 f"got {objects.dtype} {objects.shape}")
            arrays["objects"] = objects
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise save_error(self.root, exc) from exc
        self.begin_session()
        saved_at = _now()
        image = str(self.resolved(image_path))
        header = {
            "format": self.FORMAT,
            "version": self.VERSION,
            "image": image,
            "saved_at": saved_at.isoformat(),
            "session": self._session_id,
            "page": int(page),
            "classes": classes.to_list(),
            "extra": dict(extra or {}),
        }
        try:
            header_bytes = json_text(header, indent=None).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"autosave extra fields must be JSON data: {exc}") from None

        data_path = self.data_path(image_path, page)
        with atomic_open(data_path, "wb") as handle:
            np.savez_compressed(handle, **arrays, header=np.frombuffer(header_bytes, np.uint8))
        atomic_write_json(
            self._index_path(image_path, page),
            {"image": image, "page": int(page), "saved_at": header["saved_at"], "session": header["session"]},
        )
        return data_path

    def load(self, image_path: os.PathLike | str, page: int = 0) -> AutosaveRecord | None:
        """The autosaved work for one page of an image, or None when there is none."""
        data_path = self.data_path(image_path, page)
        if not data_path.exists():
            return None
        try:
            with np.load(data_path, allow_pickle=False) as archive:
                mask, hand = archive["mask"], archive["hand"]
                objects = archive["objects"] if "objects" in archive.files else None
                header = json.loads(archive["header"].tobytes().decode("utf-8"))
            if header.get("format") != self.FORMAT:
                raise ValueError("not a segstudio autosave")
            if header["image"] != str(self.resolved(image_path)) or header.get("page", 0) != page:
                return None  # a different image with the same key: not ours to offer
            classes = ClassTable.from_list(header["classes"])
            saved_at = datetime.fromisoformat(header["saved_at"])
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"Cannot read autosave {data_path} of {image_path}: {exc}") from exc
        if mask.ndim != 2 or hand.shape != mask.shape:
            raise ValueError(f"Cannot read autosave {data_path} of {image_path}: mask and hand map do not match")
        if objects is not None and (objects.shape != mask.shape or objects.dtype.kind != "u"):
            raise ValueError(f"Cannot read autosave {data_path} of {image_path}: the objects do not fit the mask")
        return AutosaveRecord(mask, classes, hand.astype(bool), header.get("extra", {}), saved_at,
                              Path(header["image"]), objects)

    def discard(self, image_path: os.PathLike | str) -> None:
        """Forget the autosaved work on every page of an image."""
        image = str(self.resolved(image_path))
        pages = {0}
        for index_path in self.root.glob("*.json"):
            try:
                info = json.loads(index_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(info, dict) and info.get("image") == image and isinstance(info.get("page"), int):
                pages.add(info["page"])
        for page in pages:
            for path in (self.data_path(image_path, page), self._index_path(image_path, page)):
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
        # One line per image, however many of its pages hold work.
        ordered = [image for _, image in sorted(found, key=lambda item: item[0], reverse=True)]
        return list(dict.fromkeys(ordered))

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


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _now() -> datetime:
    return datetime.now(timezone.utc)
