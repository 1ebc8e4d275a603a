"""The network inspector's forward passes, off the GUI thread, with the model kept loaded between looks.

Same pattern as gui/workers.py: one QThread owns the model; jobs go in through a signal and results come
back through signals delivered on the GUI thread. A request that a newer one has replaced before it started
is dropped, so clicking around the slide never builds up a queue of stale passes.
"""
from __future__ import annotations

import itertools
import traceback
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot


@dataclass
class ModelDescription:
    """What the inspector lists before any region is computed."""

    model_id: str
    arch: str
    specs: list  # list[TapSpec], network order
    stride: int
    in_channels: int
    device: str


@dataclass
class InspectJob:
    job_id: int
    kind: str  # "describe" or "inspect"
    model: object  # a library id / name / path, or a ready (nn.Module, ModelMeta | None) pair
    device: str
    pixels: np.ndarray | None = None
    request: dict = field(default_factory=dict)  # plan_region keywords: view, point, max_side, mode
    tag: object = None


def _model_key(source, device: str):
    if isinstance(source, tuple):
        return ("object", id(source[0]), device)
    return ("library", str(source), device)


class _InspectorWorker(QObject):
    described = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, str)
    dropped = Signal(int)

    def __init__(self, latest: list[int]) -> None:
        super().__init__()
        self._latest = latest  # [id of the newest inspect job]; written on the GUI thread, read here
        self._inspector = None
        self._key = None
        self._model_id = ""

    def _inspector_for(self, source, device: str):
        from segstudio.engine.inspect import TapInspector

        if isinstance(source, tuple):
            key = _model_key(source, device)
            if key != self._key:
                self._inspector = None
                model, meta = source
                self._inspector = TapInspector(model, meta, device=device)
                self._model_id = getattr(meta, "id", None) or self._inspector.arch
                self._key = key
            return self._inspector
        from segstudio.models.library import ModelLibrary

        library = ModelLibrary()
        entry = library.find(source)
        key = ("library", entry.id + "@" + str(entry.path), device)
        if key != self._key:
            self._inspector = None  # release the old model before loading the next
            model, meta = library.load(source, device="cpu")
            self._inspector = TapInspector(model, meta, device=device)
            self._model_id = meta.id
            self._key = key
        return self._inspector

    @Slot(object)
    def run(self, job: InspectJob) -> None:
        from segstudio.engine.devices import device_label

        if job.kind == "inspect" and job.job_id < self._latest[0]:
            self.dropped.emit(job.job_id)
            return
        try:
            inspector = self._inspector_for(job.model, job.device)
            if job.kind == "describe":
                result = ModelDescription(self._model_id, inspector.arch, list(inspector.specs), inspector.stride,
                                          inspector.in_channels, device_label(inspector.device))
                self.described.emit(job.job_id, result)
                return
            region = inspector.plan(job.pixels.shape[:2], **job.request)
            result = inspector.inspect(job.pixels, region)
        except Exception as err:  # reported to the user; the window keeps running
            traceback.print_exc()
            self.failed.emit(job.job_id, f"{type(err).__name__}: {err}")
        else:
            self.finished.emit(job.job_id, result)


class InspectorService(QObject):
    """Owns the inspector's thread. describe() lists a model's taps; inspect() computes them for a region."""

    described = Signal(object, object)  # job, ModelDescription
    finished = Signal(object, object)  # job, engine.inspect.Inspection
    failed = Signal(object, str)
    _submit = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._latest = [0]
        self.jobs: dict[int, InspectJob] = {}
        self._thread = QThread(self)
        self._thread.setObjectName("inspector")
        self._worker = _InspectorWorker(self._latest)
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._worker.described.connect(lambda i, r: self._relay(self.described, i, r))
        self._worker.finished.connect(lambda i, r: self._relay(self.finished, i, r))
        self._worker.failed.connect(lambda i, m: self._relay(self.failed, i, m))
        self._worker.dropped.connect(lambda i: self.jobs.pop(i, None))
        self._thread.start()
        self._running = True

    def _relay(self, signal, job_id: int, *args) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None:
            signal.emit(job, *args)

    def _queue(self, job: InspectJob) -> InspectJob:
        if not self._running:
            # A close the user then cancelled stopped the thread; the window is still in use.
            self._thread.start()
            self._running = True
        self.jobs[job.job_id] = job
        self._submit.emit(job)
        return job

    def describe(self, model, device: str = "auto", tag=None) -> InspectJob:
        return self._queue(InspectJob(next(self._ids), "describe", model, device, tag=tag))

    def inspect(self, model, device: str, pixels: np.ndarray, *, tag=None, **request) -> InspectJob:
        job = InspectJob(next(self._ids), "inspect", model, device, pixels, request, tag)
        self._latest[0] = job.job_id
        return self._queue(job)

    def busy(self) -> bool:
        return any(job.kind == "inspect" for job in self.jobs.values())

    def shutdown(self) -> None:
        if not self._running:
            return
        self._running = False
        self._latest[0] = next(self._ids)  # queued passes are dropped rather than run on the way out
        self._thread.quit()
        self._thread.wait(10000)
