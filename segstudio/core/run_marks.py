"""Done-markers that let a long prediction resume: which blocks of a slide (or which slides) are finished.

A run writes its marks next to its output, atomically, after the output they vouch for is on disk; a
rerun with the same settings skips what is marked, and one with other settings starts over (its marks
would vouch for labels made differently). The sink that writes a slide's labels into a LabelStore lives
here too, so the command line, the window and tests share the rule: chunks first, then the mark.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from segstudio.core.label_store import LabelStore
from segstudio.core.storage import atomic_write_json

MARKS_FILE = "segstudio-progress.json"


class RunMarks:
    """The finished blocks of one output, kept in ``folder/segstudio-progress.json``."""

    def __init__(self, folder: os.PathLike | str, fingerprint: dict) -> None:
        self.path = Path(folder) / MARKS_FILE
        self.fingerprint = dict(fingerprint)
        self.done: set[str] = set()
        self.restarted = False
        self.complete = False
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            saved = {}
        if isinstance(saved, dict) and saved.get("fingerprint") == self.fingerprint:
            self.done = {str(key) for key in saved.get("done", [])}
            self.complete = bool(saved.get("complete"))
        else:
            self.restarted = True

    def is_done(self, key: str) -> bool:
        return key in self.done

    def mark(self, key: str) -> None:
        self.done.add(key)
        self._write()

    def finish(self) -> None:
        self.complete = True
        self._write()

    def _write(self) -> None:
        atomic_write_json(self.path, {"fingerprint": self.fingerprint, "done": sorted(self.done),
                                      "complete": self.complete})


def is_complete(folder: os.PathLike | str, fingerprint: dict) -> bool:
    """Whether a run with this fingerprint finished writing into ``folder``."""
    try:
        saved = json.loads((Path(folder) / MARKS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and saved.get("fingerprint") == dict(fingerprint) and bool(saved.get("complete"))


class StoreSink:
    """Writes predicted labels into a LabelStore, keeping hand-painted pixels; saves and marks each block.

    ``hand``: a LabelStore of the same size whose non-zero pixels were painted by hand and stay as they are.
    ``marks``: RunMarks for resuming; with marks, each finished block is saved to disk, marked, and its
    chunks dropped from memory, so memory stays flat in the slide's size.
    """

    def __init__(self, store: LabelStore, marks: RunMarks | None = None, hand: LabelStore | None = None) -> None:
        self.store, self.marks, self.hand = store, marks, hand
        self.written_blocks = 0

    def is_done(self, key: str) -> bool:
        return self.marks is not None and self.marks.is_done(key)

    def write(self, y0: int, x0: int, labels: np.ndarray) -> None:
        keep = None
        if self.hand is not None:
            keep = self.hand.read(y0, x0, *labels.shape) != 0
        self.store.put(y0, x0, labels.astype(self.store.dtype, copy=False), keep)

    def block_done(self, key: str, box, uncertainty: float | None) -> None:
        self.written_blocks += 1
        if self.marks is None:
            return
        self.store.save()
        self.marks.mark(key)
        self.store.forget_saved()
