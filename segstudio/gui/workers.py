"""Prediction off the GUI thread, with the model kept loaded between images.

One QThread owns the model; jobs are queued to it through a signal, progress and results come back
through signals (delivered on the GUI thread). Cancel is a threading.Event the engine polls.
"""
from __future__ import annotations

import dataclasses
import itertools
import threading
import traceback
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot


@dataclass
class PredictJob:
    job_id: int
    model_ref: str
    device: str
    pixels: np.ndarray
    settings: object  # engine.predict.PredictSettings
    tag: object = None  # whatever the caller needs back (the document)
    extra: dict = field(default_factory=dict)


class _PredictWorker(QObject):
    progress = Signal(int, int, int)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    model_ready = Signal(str, str, str)  # model id, device label, notes

    def __init__(self, cancel_event: threading.Event) -> None:
        super().__init__()
        self._cancel = cancel_event
        self._predictor = None
        self._key: tuple[str, str] | None = None

    def _predictor_for(self, model_ref: str, device: str):
        from segstudio.engine.devices import device_label
        from segstudio.engine.predict import Predictor
        from segstudio.models.library import ModelLibrary

        library = ModelLibrary()
        entry = library.find(model_ref)
        key = (entry.id + "@" + str(entry.path), device)
        if key != self._key:
            self._predictor = None  # release the old model before loading the next
            model, meta = library.load(model_ref, device="cpu")
            self._predictor = Predictor(model, meta, device=device)
            self._key = key
            self.model_ready.emit(meta.id, device_label(self._predictor.device), "")
        return self._predictor

    @Slot(object)
    def run(self, job: PredictJob) -> None:
        from segstudio.engine.predict import PredictionCancelled

        try:
            predictor = self._predictor_for(job.model_ref, job.device)
            job.extra["model_classes"] = list(getattr(predictor.meta, "classes", None) or [])
            if self._cancel.is_set():
                raise PredictionCancelled()
            settings = job.settings
            if predictor.device.type == "cpu":
                # Cancel is checked between batches; on a CPU one tile takes about a second and batching
                # gains little, so one tile per batch keeps Cancel prompt.
                settings = dataclasses.replace(settings, batch=1)
            result = predictor.predict(
                job.pixels,
                settings,
                progress=lambda done, total: self.progress.emit(job.job_id, done, total),
                cancel=self._cancel.is_set,
            )
        except PredictionCancelled:
            self.cancelled.emit(job.job_id)
        except Exception as err:  # reported to the user; the window keeps running
            traceback.print_exc()
            self.failed.emit(job.job_id, f"{type(err).__name__}: {err}")
        else:
            self.finished.emit(job.job_id, result)


class PredictionService(QObject):
    """Owns the worker thread. submit() returns the job; the result signals carry the job back."""

    progress = Signal(object, int, int)  # job, done, total
    finished = Signal(object, object)  # job, PredictResult
    failed = Signal(object, str)
    cancelled = Signal(object)
    model_ready = Signal(str, str, str)
    _submit = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cancel = threading.Event()
        self._ids = itertools.count(1)
        self.jobs: dict[int, PredictJob] = {}
        self._thread = QThread(self)
        self._thread.setObjectName("prediction")
        self._worker = _PredictWorker(self._cancel)
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._worker.progress.connect(lambda i, d, t: self._relay(self.progress, i, False, d, t))
        self._worker.finished.connect(lambda i, r: self._relay(self.finished, i, True, r))
        self._worker.failed.connect(lambda i, m: self._relay(self.failed, i, True, m))
        self._worker.cancelled.connect(lambda i: self._relay(self.cancelled, i, True))
        self._worker.model_ready.connect(self.model_ready)
        self._thread.start()

    def _relay(self, signal, job_id: int, done: bool, *args) -> None:
        job = self.jobs.pop(job_id, None) if done else self.jobs.get(job_id)
        if job is not None:
            signal.emit(job, *args)

    def submit(self, model_ref: str, device: str, pixels: np.ndarray, settings, tag=None, **extra) -> PredictJob:
        job = PredictJob(next(self._ids), model_ref, device, pixels, settings, tag, extra)
        self.jobs[job.job_id] = job
        self._cancel.clear()
        self._submit.emit(job)
        return job

    def busy(self) -> bool:
        return bool(self.jobs)

    def cancel(self) -> None:
        self._cancel.set()

    def shutdown(self) -> None:
        self._cancel.set()
        self._thread.quit()
        self._thread.wait(10000)
