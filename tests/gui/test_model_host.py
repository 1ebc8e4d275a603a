"""The model host: one thread, one warm model shared by Predict and the inspector, cancel, and errors."""
from __future__ import annotations

import time

import numpy as np
import pytest

from segstudio.gui.model_host import ModelDescription, ModelHost

WAIT_MS = 60_000

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture
def host(qtbot):
    host = ModelHost()
    yield host
    host.shutdown()


@pytest.fixture
def pixels():
    rng = np.random.default_rng(3)
    image = (rng.random((40, 56, 1)) * 300 + 100).astype(np.uint16)
    image[10:30, 20:40] += 2000
    return image


def run(qtbot, host, kind, **job):
    """Submit a job and wait for its outcome; returns (signal name, payload)."""
    outcome = {}
    host.finished.connect(lambda j, result: outcome.setdefault(j.job_id, ("finished", result)))
    host.failed.connect(lambda j, message: outcome.setdefault(j.job_id, ("failed", message)))
    host.cancelled.connect(lambda j: outcome.setdefault(j.job_id, ("cancelled", None)))
    submitted = host.submit(kind, **job)
    qtbot.waitUntil(lambda: submitted.job_id in outcome, timeout=WAIT_MS)
    return outcome[submitted.job_id]


def predict_settings():
    from segstudio.engine.predict import PredictSettings

    return PredictSettings(tile=64, overlap=0.25, device="cpu")


def test_predict_then_inspect_use_the_one_loaded_model(qtbot, host, counted_library, pixels):
    host.select(counted_library["ids"][0], "cpu")
    assert counted_library["loaded"] == []  # selecting loads nothing; the first job does

    signal, predicted = run(qtbot, host, "predict", pixels=pixels, settings=predict_settings())
    assert signal == "finished" and predicted.labels.shape == (40, 56)
    signal, described = run(qtbot, host, "describe")
    assert signal == "finished" and isinstance(described, ModelDescription) and described.specs
    signal, inspection = run(qtbot, host, "inspect", pixels=pixels, request={"view": (0, 0, 56, 40)})
    assert signal == "finished" and inspection.taps

    (model,) = counted_library["loaded"]  # read from disk once, for both features
    assert host.worker.loads == 1
    # Every forward pass, Predict's and the inspector's, ran that one module.
    assert counted_library["ran"] and set(counted_library["ran"]) == {id(model)}
    # The inspector's hooks lived only during its job: a prediction after it runs an unhooked model.
    assert all(not m._forward_hooks for m in model.modules())
    signal, _ = run(qtbot, host, "predict", pixels=pixels, settings=predict_settings())
    assert signal == "finished" and host.worker.loads == 1 and set(counted_library["ran"]) == {id(model)}


def test_a_new_selection_releases_the_warm_model_and_the_next_job_loads_it(qtbot, host, counted_library, pixels):
    first, second = counted_library["ids"]
    host.select(first, "cpu")
    run(qtbot, host, "describe")
    host.select(second, "cpu")
    qtbot.waitUntil(lambda: host.worker._warm is None, timeout=WAIT_MS)
    signal, described = run(qtbot, host, "describe")
    assert signal == "finished" and described.model_id == second
    assert host.worker.loads == 2 and counted_library["loaded"][0] is not counted_library["loaded"][1]


def test_cancel_stops_the_running_prediction_and_the_queued_one(qtbot, host, counted_library, pixels, monkeypatch):
    from segstudio.engine import predict as predict_module

    def slow_predict(self, pixels, settings=None, progress=None, cancel=None):
        deadline = time.monotonic() + 30
        while not cancel():  # a long prediction polling cancel between tiles
            if time.monotonic() > deadline:
                raise AssertionError("cancel never reached the worker")
            time.sleep(0.01)
        raise predict_module.PredictionCancelled()

    monkeypatch.setattr(predict_module.Predictor, "predict", slow_predict)
    host.select(counted_library["ids"][0], "cpu")
    cancelled = []
    host.cancelled.connect(lambda job: cancelled.append(job.job_id))
    running = host.submit("predict", pixels=pixels, settings=predict_settings())
    queued = host.submit("predict", pixels=pixels, settings=predict_settings())
    assert host.busy("predict")
    host.cancel()
    qtbot.waitUntil(lambda: len(cancelled) == 2, timeout=WAIT_MS)
    assert cancelled == [running.job_id, queued.job_id] and not host.busy()


def test_a_failing_load_is_reported_and_the_host_keeps_serving(qtbot, host, counted_library, pixels, monkeypatch):
    from segstudio.models import library as library_module

    working_load = library_module.ModelLibrary.load

    def broken(self, ref, device="cpu"):
        raise ValueError("Cannot load model tiny.safetensors: file is truncated")

    monkeypatch.setattr(library_module.ModelLibrary, "load", broken)
    host.select(counted_library["ids"][0], "cpu")
    signal, message = run(qtbot, host, "predict", pixels=pixels, settings=predict_settings())
    assert signal == "failed" and "truncated" in message and "ValueError" in message
    signal, message = run(qtbot, host, "describe")
    assert signal == "failed" and "truncated" in message

    monkeypatch.setattr(library_module.ModelLibrary, "load", working_load)  # the file is fixed
    signal, predicted = run(qtbot, host, "predict", pixels=pixels, settings=predict_settings())
    assert signal == "finished" and predicted.labels.shape == (40, 56)
    assert not host.busy()


def hold_predictions(monkeypatch):
    """Predictions wait for the returned event before they run, so jobs queued meanwhile stay queued."""
    import threading

    from segstudio.engine import predict as predict_module

    release = threading.Event()
    real_predict = predict_module.Predictor.predict
    monkeypatch.setattr(predict_module.Predictor, "predict",
                        lambda self, *a, **k: release.wait(30) and real_predict(self, *a, **k))
    return release


def test_looks_replaced_before_they_started_are_dropped(qtbot, host, counted_library, pixels, monkeypatch):
    release = hold_predictions(monkeypatch)
    host.select(counted_library["ids"][0], "cpu")
    finished = []
    host.finished.connect(lambda job, _result: finished.append(job))
    busy = host.submit("predict", pixels=pixels, settings=predict_settings())  # holds the thread meanwhile
    looks = [host.submit("inspect", pixels=pixels, request={"point": (10, 10), "max_side": 32}) for _ in range(3)]
    release.set()
    qtbot.waitUntil(lambda: not host.busy(), timeout=WAIT_MS)
    assert finished == [busy, looks[-1]]  # clicking around never builds up a queue of stale passes


def test_warm_ups_load_the_model_once_report_nothing_and_only_the_newest_runs(qtbot, host, counted_library, pixels,
                                                                              monkeypatch):
    """A warm-up (queued when a GPU model is chosen) is the host's own business: the features' signals
    never carry it, a failing one stays quiet, an older one still queued is dropped, and the Predict that
    follows uses the model it loaded."""
    from segstudio.engine.predict import PredictSettings

    seen, dropped = [], []
    for signal in (host.finished, host.failed, host.cancelled):
        signal.connect(lambda job, *rest: seen.append(job.kind))
    host.worker.dropped.connect(dropped.append)
    host.select(counted_library["ids"][0], "cpu")
    release = hold_predictions(monkeypatch)
    busy = host.submit("predict", pixels=pixels, settings=predict_settings())  # holds the thread meanwhile
    older = host.submit("warm_up", settings=PredictSettings(device="cpu"))
    host.submit("warm_up", model="no-such-model", settings=PredictSettings(device="cpu"))  # fails, quietly
    release.set()
    qtbot.waitUntil(lambda: not host.busy(), timeout=WAIT_MS)
    assert seen == ["predict"] and busy.kind == "predict" and dropped == [older.job_id]
    signal, _ = run(qtbot, host, "predict", pixels=pixels, settings=predict_settings())
    assert signal == "finished" and seen == ["predict", "predict"]
    assert host.worker.loads == 1 and len(counted_library["loaded"]) == 1


def test_a_look_from_another_window_never_drops_this_windows_look(qtbot, host, counted_library, pixels, monkeypatch):
    """The main window's inspector and a slide window's each keep their newest look (their own lanes)."""
    release = hold_predictions(monkeypatch)
    host.select(counted_library["ids"][0], "cpu")
    finished = []
    host.finished.connect(lambda job, _result: finished.append(job))
    busy = host.submit("predict", pixels=pixels, settings=predict_settings())
    request = {"point": (10, 10), "max_side": 32}
    main = [host.submit("inspect", pixels=pixels, request=request) for _ in range(2)]
    slide = [host.submit("inspect", pixels=pixels, request=request, lane="slide") for _ in range(2)]
    assert host.busy("inspect", lane="slide") and host.busy("inspect", lane="")
    release.set()
    qtbot.waitUntil(lambda: not host.busy(), timeout=WAIT_MS)
    assert finished == [busy, main[-1], slide[-1]]
