"""The model library: bundled read-only models plus the user's own fine-tuned versions, with lineage.

Bundled models live in resources/models/*.safetensors and are never written. Each fine-tune writes a new file
user_models_dir()/<name>/v<N>.safetensors next to the previous ones, so the model in use is never overwritten
and every version can be traced back to the one it was trained from.

Model files come from anywhere, so one bad file never hides the others: listing skips it and records a
ModelProblem (the file and the reason) in `problems`, for the CLI and the window to show. Version numbers
are reserved with an exclusive create of a marker file (.v<N>.reserved, removed when the model is saved),
so two fine-tunes finishing at the same moment never get the same number.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from segstudio.core import paths
from segstudio.core.storage import atomic_write_bytes, remove_stale_temp_files, save_error
from segstudio.core.text import printable
from segstudio.models.checkpoint import (
    CheckpointError,
    ModelMeta,
    load_checkpoint,
    read_meta,
    reservation_path,
    save_checkpoint,
)

log = logging.getLogger(__name__)

ACTIVE_KEY = "active_model"
# The model a new user starts with; the other bundled models (nuclei-fcn8s, nuclei-deeplabv3plus) are there
# to compare with it.
DEFAULT_MODEL = "nuclei-unet"
_VERSION_FILE = re.compile(r"^v(\d{1,9})\.safetensors$")
_RESERVED_FILE = re.compile(r"^\.v(\d{1,9})\.reserved$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# A reservation older than this whose model file never appeared belongs to a writer that was killed.
_STALE_RESERVATION_S = 3600.0


class ModelProblem(str):
    """One model file the library could not use: reads as "<file>: <reason>", with both as attributes."""

    path: Path
    reason: str

    def __new__(cls, path, reason: str) -> ModelProblem:
        self = super().__new__(cls, printable(f"{path}: {reason}"))
        self.path, self.reason = Path(path), reason
        return self


@dataclass(frozen=True)
class ModelEntry:
    id: str
    meta: ModelMeta
    path: Path
    bundled: bool


class ModelLibrary:
    def __init__(self, bundled_dir=None, user_dir=None, *, settings_path=None):
        self.bundled_dir = Path(bundled_dir) if bundled_dir is not None else paths.bundled_models_dir()
        self.user_dir = Path(user_dir) if user_dir is not None else paths.user_models_dir()
        self._settings_path = Path(settings_path) if settings_path is not None else None
        # Files that were skipped on the last scan, with the reason (shown by `segstudio models list`).
        self.problems: list[str] = []

    @property
    def settings_path(self) -> Path:
        return self._settings_path or paths.user_data_dir() / "settings.json"

    # --- listing -----------------------------------------------------------------------------------------
    def _scan(self, files, bundled: bool, found: dict[str, ModelEntry]) -> None:
        for path in files:
            try:
                meta = read_meta(path)
            except CheckpointError as exc:
                self.problems.append(ModelProblem(path, exc.reason))
                continue
            except Exception as exc:  # noqa: BLE001 - whatever one file trips must not hide the others
                self.problems.append(ModelProblem(path, f"unreadable ({type(exc).__name__}: {exc})"))
                continue
            if meta.id in found:
                self.problems.append(ModelProblem(path, f"model id {meta.id} already provided by "
                                                        f"{found[meta.id].path}"))
                continue
            found[meta.id] = ModelEntry(meta.id, meta, path, bundled)

    def _listed(self, folder: Path, pick) -> list:
        """pick(entry) over a folder's entries; an unreadable folder is a problem, not a crash."""
        try:
            return [item for entry in sorted(folder.iterdir()) if (item := pick(entry)) is not None]
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.problems.append(ModelProblem(folder, f"folder cannot be read ({exc.strerror or exc})"))
            return []

    def entries(self) -> list[ModelEntry]:
        """Bundled models first, then user versions by family name and version (headers only; fast)."""
        self.problems = []
        found: dict[str, ModelEntry] = {}
        bundled_files = self._listed(self.bundled_dir, lambda p: p if p.suffix == ".safetensors" else None)
        self._scan(bundled_files, True, found)
        user_files = []
        for family in self._listed(self.user_dir, lambda p: p if p.is_dir() else None):
            versions = self._listed(family, lambda f: (int(m.group(1)), f) if (m := _VERSION_FILE.match(f.name))
                                    else None)
            user_files += [f for _, f in sorted(versions)]
        self._scan(user_files, False, found)
        bundled = [e for e in found.values() if e.bundled]
        user = sorted((e for e in found.values() if not e.bundled), key=lambda e: (e.meta.name, e.meta.version))
        return bundled + user

    def find(self, key) -> ModelEntry:
        """A model by id ("name/vN"), family name (its newest version) or file path."""
        entries = self.entries()
        text = str(key)
        for entry in entries:
            if entry.id == text:
                return entry
        family = [e for e in entries if e.meta.name == text]
        if family:
            return max(family, key=lambda e: e.meta.version)
        candidate = Path(text).expanduser()
        if candidate.is_file():
            resolved = candidate.resolve()
            for entry in entries:
                if entry.path.resolve() == resolved:
                    return entry
            meta = read_meta(candidate)
            return ModelEntry(meta.id, meta, candidate, False)
        valid = ", ".join(e.id for e in entries) or "none installed"
        raise ValueError(f"Unknown model {text!r}; available models: {valid}")

    def load(self, key, device="cpu"):
        """(model in eval mode, ModelMeta) for an id, family name or file."""
        return load_checkpoint(self.find(key).path, device=device)

    def next_version_path(self, name: str) -> tuple[Path, int]:
        """Where the next version of family `name` goes, reserved for the caller.

        The number is one above every version that exists anywhere (unreadable files and other writers'
        reservations included), and it is taken by creating .v<N>.reserved exclusively: of several
        processes asking at once, each gets its own number. Temp files of killed writers are cleared here.
        """
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise ValueError(f"Model name {printable(name)!r} must be letters, digits, '.', '_' or '-' "
                             "(and start with a letter or digit)")
        folder = self.user_dir / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise save_error(folder, exc) from exc
        remove_stale_temp_files(folder)
        taken = [e.meta.version for e in self.entries() if e.meta.name == name]
        taken += self._versions_on_disk(folder)
        version = max(taken, default=0) + 1
        while True:
            marker = reservation_path(folder / f"v{version}.safetensors")
            try:
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                version += 1
                continue
            except OSError as exc:
                raise save_error(marker, exc) from exc
            path = folder / f"v{version}.safetensors"
            if path.exists():  # written between the listing and the reservation
                version += 1
                continue
            return path, version

    def _versions_on_disk(self, folder: Path) -> list[int]:
        """Version numbers of files and live reservations; stale or fulfilled reservations are removed."""
        versions = []
        now = time.time()
        for entry in self._listed(folder, lambda f: f):
            if m := _VERSION_FILE.match(entry.name):
                versions.append(int(m.group(1)))
            elif m := _RESERVED_FILE.match(entry.name):
                try:
                    fulfilled = (folder / f"v{m.group(1)}.safetensors").exists()
                    if fulfilled or now - entry.stat().st_mtime > _STALE_RESERVATION_S:
                        entry.unlink()
                        if fulfilled:
                            versions.append(int(m.group(1)))
                    else:
                        versions.append(int(m.group(1)))
                except OSError:
                    versions.append(int(m.group(1)))
        return versions

    def save_version(self, name: str, model, meta: ModelMeta) -> tuple[Path, ModelMeta]:
        """Save `model` as the next version of family `name`; never replaces an existing file."""
        path, version = self.next_version_path(name)
        try:
            stored = save_checkpoint(path, model, replace(meta, name=name, version=version), exclusive=True)
        finally:
            reservation_path(path).unlink(missing_ok=True)
        return path, stored

    def lineage(self, key) -> list[str]:
        """[id, parent id, grandparent id, ...]; a parent missing from the library ends the chain."""
        entry = self.find(key)
        return lineage_chain(entry, {e.id: e for e in self.entries()})

    # --- active model ------------------------------------------------------------------------------------
    def _read_settings(self) -> dict:
        try:
            data = json.loads(self.settings_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("Ignoring unreadable settings file %s: %s", self.settings_path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def default_id(self) -> str | None:
        """The bundled default model: DEFAULT_MODEL when it is bundled, else the first bundled file by name;
        None when nothing is bundled."""
        bundled = [e for e in self.entries() if e.bundled]
        preferred = [e for e in bundled if e.meta.name == DEFAULT_MODEL]
        return (preferred or bundled)[0].id if bundled else None

    def active_id(self) -> str | None:
        """The model chosen with set_active if it still exists, else the bundled default.

        A model file outside the library is remembered (and returned) by its path.
        """
        chosen = self._read_settings().get(ACTIVE_KEY)
        if chosen:
            try:
                entry = self.find(chosen)
            except ValueError:
                log.warning("Active model %s is no longer available; using the default", chosen)
            else:
                return self._remembered_as(entry)
        return self.default_id()

    def set_active(self, key) -> str:
        """Remember the model to use (an id, a family name meaning its newest version, or a file)."""
        value = self._remembered_as(self.find(key))
        settings = self._read_settings()
        settings[ACTIVE_KEY] = value
        atomic_write_bytes(self.settings_path, (json.dumps(settings, indent=2) + "\n").encode("utf-8"))
        return value

    def _remembered_as(self, entry: ModelEntry) -> str:
        in_library = any(e.path.resolve() == entry.path.resolve() for e in self.entries())
        return entry.id if in_library else str(entry.path.resolve())


def lineage_chain(entry: ModelEntry, by_id: dict[str, ModelEntry]) -> list[str]:
    """[id, parent id, ...] of `entry` among the entries `by_id`; a parent missing from it ends the chain."""
    chain = [entry.id]
    parent = entry.meta.parent
    while parent and parent not in chain:  # a hand-edited cycle must not loop forever
        chain.append(parent)
        known = by_id.get(parent)
        parent = known.meta.parent if known else None
    return chain
