"""The progress of a fine-tune as typed events, and the exit codes of `segstudio train`.

The training loop emits these; `segstudio train --progress jsonl` writes one per line as a JSON object whose
"event" key names the kind ({"event": "step", "step": 3, ...}); the window reads them back with
`from_json`. One module on both sides of the process boundary, no torch, so the two cannot drift apart.

Every field has a default so that a line from an older or newer child with a field missing still reads;
a field of the wrong type, an unknown kind or a line that is not JSON raises ValueError.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar


class ExitCode(enum.IntEnum):
    """Exit status of `segstudio train`."""

    OK = 0            # trained and saved
    FAILED = 1        # the message is on stderr and in the Failed event
    CANCELLED = 130   # stopped on request (SIGINT/SIGTERM); nothing was written (128 + SIGINT, as shells do)


@dataclass
class TrainingEvent:
    kind: ClassVar[str] = ""

    def to_dict(self) -> dict:
        return {"event": self.kind, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def to_json(self) -> str:
        """One line of JSON. JSON has no NaN/Infinity: they are written as null so every line parses."""
        return json.dumps(_finite(self.to_dict()), default=str)


@dataclass
class Started(TrainingEvent):
    kind: ClassVar[str] = "start"
    base: str | None = None                 # id of the parent version
    name: str | None = None                 # family of the new version
    device: str | None = None
    world_size: int = 1
    backend: str | None = None              # "nccl" or "gloo" under torchrun, None in a single process
    train_images: int | None = None
    val_images: int | None = None
    val_source: str | None = None           # "dataset", "holdout" or "strip" (see data.load_training_data)
    steps: int | None = None                # planned; changes after an out-of-memory retry
    epochs: int | None = None               # None when the length is given in steps
    batch: int | None = None
    crop: int | None = None
    amp: str | None = None                  # "float16", "bfloat16" or None (full precision)
    frozen_parameters: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Evaluated(TrainingEvent):
    """The parent measured on the validation split, before training."""

    kind: ClassVar[str] = "evaluated"
    model: str = "parent"
    val: dict | None = None                 # metrics, see evaluate.metrics_from_confusion


@dataclass
class StepProgress(TrainingEvent):
    kind: ClassVar[str] = "step"
    step: int | None = None
    steps: int | None = None
    epoch: int | None = None
    loss: float | None = None               # mean training loss since the last StepProgress
    lr: float | None = None
    eta_s: float | None = None
    images_per_s: float | None = None


@dataclass
class EpochProgress(TrainingEvent):
    """An epoch ended; `val` measures the model as it is now."""

    kind: ClassVar[str] = "epoch"
    epoch: int | None = None
    epochs: int | None = None
    step: int | None = None
    train_loss: float | None = None
    val: dict | None = None


@dataclass
class OutOfMemory(TrainingEvent):
    kind: ClassVar[str] = "oom"
    action: str = ""                        # what happens next, e.g. "retrying with batch 4 (was 8)"
    batch: int | None = None
    crop: int | None = None


@dataclass
class Finished(TrainingEvent):
    kind: ClassVar[str] = "done"
    version: str | None = None
    path: str | None = None
    promoted: bool = False
    parent: str | None = None
    parent_metrics: dict | None = None
    child_metrics: dict | None = None
    steps: int | None = None
    epochs: int | None = None
    replicas_identical: bool | None = None
    world_size: int = 1
    timing: dict = field(default_factory=dict)


@dataclass
class Cancelled(TrainingEvent):
    kind: ClassVar[str] = "cancelled"


@dataclass
class Failed(TrainingEvent):
    kind: ClassVar[str] = "error"
    message: str = ""


EVENT_TYPES: dict[str, type[TrainingEvent]] = {
    cls.kind: cls
    for cls in (Started, Evaluated, StepProgress, EpochProgress, OutOfMemory, Finished, Cancelled, Failed)
}


def from_dict(data: Any) -> TrainingEvent:
    """The event a decoded JSON object describes; unknown keys are ignored, wrong types refused."""
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise ValueError("not an event: a JSON object with an \"event\" name is expected")
    cls = EVENT_TYPES.get(data["event"])
    if cls is None:
        raise ValueError(f"unknown event {data['event']!r}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            if not _fits(value, hints[f.name]):
                raise ValueError(f"{cls.kind} event: {f.name}={value!r} is not {hints[f.name]}")
            values[f.name] = value
    return cls(**values)


def from_json(line: str | bytes) -> TrainingEvent:
    """The event on one line of the jsonl stream (ValueError if it is not one)."""
    return from_dict(json.loads(line))


def _fits(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is not None:  # list[str] and the like: the container is what matters here
        hint = origin
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
