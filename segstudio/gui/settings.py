"""Every QSettings key the window stores between sessions, in one place.

Features that share a remembered value (the export dialog writes the dataset folder that the fine-tune
dialog offers next) import the key from here instead of from each other.
"""
from __future__ import annotations

LAST_FOLDER_KEY = "last_folder"  # where File > Open last looked
RECENT_FILES_KEY = "recent/files"  # File > Open Recent, newest first
PROJECT_FOLDER_KEY = "project/last_folder"  # where Save Project / Open Project last looked
WINDOW_GEOMETRY_KEY = "window/geometry"  # size and position, restored at start
WINDOW_STATE_KEY = "window/state"  # docks and toolbars
LAST_DATASET_KEY = "dataset/last_folder"  # written by Export to Dataset, offered by Fine-tune
NNUNET_KEY = "dataset/nnunet"
NNUNET_FOLDER_KEY = "dataset/nnunet_folder"
UNDO_BUDGET_KEY = "editing/undo_budget_mib"  # memory the undo steps of one image may hold
TILE_SECONDS_PREFIX = "models/tile_seconds/"  # + network: its time per 512 x 512 tile measured on this computer
