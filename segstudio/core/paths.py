"""Where segstudio reads its bundled resources and keeps the user's own files.

The user data folder holds autosaves, the user's model versions and settings. It is never the folder of
an image being labelled, so nothing is written next to (or over) a user's source data.

The folders are created on first use, but a read-only or full disk must not stop the program from
starting: creation failures are logged (folder_problem() gives the reason) and the path is returned
anyway; whatever later writes there fails with a SaveError that names the folder.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def resources_dir() -> Path:
    """Bundled read-only resources: sample images, the default model, icons."""
    override = os.environ.get("SEGSTUDIO_RESOURCES")
    if override:
        return Path(override)
    frozen = getattr(sys, "_MEIPASS", None)  # PyInstaller one-folder build
    if frozen:
        return Path(frozen) / "resources"
    return _PACKAGE_ROOT.parent / "resources"


def samples_dir() -> Path:
    return resources_dir() / "samples"


def bundled_models_dir() -> Path:
    return resources_dir() / "models"


def user_data_dir() -> Path:
    """Per-user writable folder; SEGSTUDIO_DATA_DIR overrides (tests use it)."""
    override = os.environ.get("SEGSTUDIO_DATA_DIR")
    if override:
        base = Path(override)
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "segstudio"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support" / "segstudio"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "segstudio"
    return _created(base)


def user_models_dir() -> Path:
    return _created(user_data_dir() / "models")


def autosave_dir() -> Path:
    return _created(user_data_dir() / "autosave")


def folder_problem(path: Path) -> str | None:
    """Why `path` cannot hold the user's files (missing and not creatable, not writable), or None."""
    if not path.is_dir():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"the folder {path} cannot be created ({exc.strerror or exc})"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"the folder {path} is read-only"
    return None


def _created(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("Cannot create %s (%s); continuing without it", path, exc.strerror or exc)
    return path
