"""The progress events and exit codes shared by the training loop, `segstudio train` and the window."""
from __future__ import annotations

import json
import math

import pytest

from segstudio.engine.training import events
from segstudio.engine.training.events import ExitCode

METRICS = {"loss": 0.25, "iou": {"background": 0.9, "nucleus": None}, "dice": {"background": 0.95},
           "mean_iou": 0.5, "mean_dice": 0.6, "images": 3}

ONE_OF_EACH = [
    events.Started(base="blobs/v1", name="blobs", device="CPU", world_size=2, train_images=6, val_images=2,
                   val_source="holdout", steps=60, epochs=None, batch=4, crop=48, amp="bfloat16",
                   frozen_parameters=120, notes=["held out 2 of 8 images"]),
    events.Evaluated(model="parent", val=METRICS),
    events.StepProgress(step=3, steps=60, epoch=1, loss=0.75, lr=1e-3, eta_s=12.5, images_per_s=80.0),
    events.EpochProgress(epoch=1, epochs=20, step=15, train_loss=0.5, val=METRICS),
    events.OutOfMemory(action="retrying with batch 2 (was 4)", batch=2, crop=48),
    events.Finished(version="blobs/v2", path="/lib/blobs/v2.safetensors", promoted=True, parent="blobs/v1",
                    parent_metrics=METRICS, child_metrics=METRICS, steps=60, epochs=4, replicas_identical=True,
                    world_size=2, timing={"train_s": 1.5, "total_s": 2.0}),
    events.Cancelled(),
    events.Failed(message="Cannot read dataset /d: no dataset.json"),
]


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=lambda e: e.kind)
def test_every_event_reads_back_as_itself(event):
    line = event.to_json()
    assert "\n" not in line
    assert json.loads(line)["event"] == event.kind  # the wire format: the kind under "event"
    assert events.from_json(line) == event
    assert events.from_dict(event.to_dict()) == event


def test_every_kind_has_one_type():
    assert sorted(events.EVENT_TYPES) == sorted(e.kind for e in ONE_OF_EACH)
    assert events.EVENT_TYPES["start"] is events.Started and events.EVENT_TYPES["error"] is events.Failed


def test_non_finite_numbers_are_written_as_null():
    line = events.StepProgress(step=1, steps=2, loss=math.nan, eta_s=math.inf).to_json()
    assert json.loads(line)["loss"] is None and json.loads(line)["eta_s"] is None
    assert events.from_json(line) == events.StepProgress(step=1, steps=2)


def test_missing_fields_take_defaults_and_unknown_keys_are_ignored():
    assert events.from_json('{"event": "step", "step": 2, "from_a_newer_child": 1}') == events.StepProgress(step=2)
    assert events.from_json('{"event": "oom", "batch": 4}').action == ""


@pytest.mark.parametrize("line", [
    "not json", "[1, 2]", '{"no_event": true}', '{"event": 3}', '{"event": "launch"}',
    '{"event": "step", "step": "three"}', '{"event": "step", "step": true}', '{"event": "step", "loss": "low"}',
    '{"event": "start", "notes": "one note"}', '{"event": "done", "promoted": 1}',
])
def test_lines_that_are_not_events_are_refused(line):
    with pytest.raises(ValueError):
        events.from_json(line)


def test_integers_are_accepted_where_a_number_is_expected():
    assert events.from_json('{"event": "step", "loss": 1, "eta_s": 0}').loss == 1


def test_exit_codes():
    assert (ExitCode.OK, ExitCode.FAILED, ExitCode.CANCELLED) == (0, 1, 130)
    assert ExitCode(130) is ExitCode.CANCELLED
