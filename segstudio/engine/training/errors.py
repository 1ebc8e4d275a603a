"""Why a fine-tune stopped early (no torch: the command line and the window read these too)."""
from __future__ import annotations


class TrainingError(RuntimeError):
    """Training stopped for a reason the user can act on; the message says which."""


class TrainingCancelled(Exception):
    """The user asked to stop; raised at the next check so nothing half-done is written."""
