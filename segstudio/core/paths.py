"""Where segstudio reads its bundled resources and keeps the user's own files.

The user data folder holds autosaves, the user's model versions and settings. It is never the folder of
an image being labelled, so nothing is written next to (or over) a user's source data.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

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
    base.mkdir(parents=True, exist_ok=True)
    return base


def user_models_dir() -> Path:
    path = user_data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def autosave_dir() -> Path:
    path = user_data_dir() / "autosave"
    path.mkdir(parents=True, exist_ok=True)
    return path
