"""The one thread that owns the warm model and runs everything that needs it: Predict and the inspector.

A model is loaded once, kept on its device between jobs, and shared by every feature: predicting a slide
and then looking inside the network use the very same module, so a GPU holds one copy, not one per feature.
It is loaded when the first job needs it (never just because a dock exists) and released as soon as the
selection moves to another model.

Jobs are queued to one worker QObject living on one QThread, so they run one after another: the
inspector's forward hooks exist only inside an inspect job (models.taps.run_with_taps removes them in
`finally`) and can never touch a prediction. Results, progress, cancellation and errors come back as
signals delivered on the GUI thread, each carrying the job it belongs to.
"""
from __future__ import annotations

import dataclasses
import itertools
import threading
import traceback
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

# Where the model may run: (label shown to the user, value given to engine.devices.pick_device).
DEVICE_CHOICES = [
    ("Automatic (GPU if present)", "auto"), ("CPU", "cpu"), ("CUDA GPU", "cuda"), ("Apple GPU (MPS)", "mps"),
]

JOB_KINDS = ("predict", "describe", "inspect", "predict_slide", "warm_up")
# Kinds of which only the newest queued job (per lane) is worth running.
_NEWEST_ONLY = ("inspect", "warm_up")


@dataclass
class ModelDescription:
    """What the inspector lists before any region is computed."""

    model_id: str
    arch: str
    specs: list  # list[TapSpec], network order
    stride: int
    in_channels: int
    device: str
    model_input: dict | None = None  # the model's own input definition (metadata "input"), e.g. the H&E path


@dataclass
class ModelJob:
    """One piece of work for the warm model.

    kind: "predict" (settings: engine PredictSettings; result PredictResult), "warm_up" (settings: the
    PredictSettings a Predict would use; places the model and runs it once on blank tiles so the first
    real Predict does not wait for the GPU's start-up; result None), "describe" (result
    ModelDescription) or "inspect" (request: plan_region keywords view/point/max_side/mode; result
    engine.inspect.Inspection; or {"explain": (x, y)}: result engine.inspect_why.Explanation). model: a
    library id / name / path, or a ready (nn.Module, meta) pair.
    """

    job_id: int
    kind: str
    model: object
    device: str
    pixels: np.ndarray | None = None
    settings: object = None
    request: dict = field(default_factory=dict)
    tag: object = None  # whatever the caller needs back (the document, the source it asked about)
    # Inspect jobs in one lane replace each other (each window's inspector has its own), never another's.
    lane: str = ""
    extra: dict = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)


class _WarmModel:
    """A loaded model and the engine objects built around it, all sharing the one nn.Module."""

    def __init__(self, source, key, model, meta, model_id: str, device: str) -> None:
        self.source = source
        self.key = key
        self.model = model
        self.meta = meta
        self.model_id = model_id
        self.device = device
        self._predictor = None
        self._inspector = None

    def predictor(self):
        from segstudio.engine.predict import Predictor

        if self._predictor is None:
            self._predictor = Predictor(self.model, self.meta, device=self.device)
        return self._predictor

    def inspector(self):
        from segstudio.engine.inspect import TapInspector

        where = _parameter_device(self.model)
        if self._inspector is None or (where is not None and not _same_device(where, self._inspector.device)):
            # Follow the model to wherever Predict left it (it may have fallen back to the CPU).
            target = where if self._predictor is not None and where is not None else self.device
            self._inspector = TapInspector(self.model, self.meta, device=target)
        return self._inspector


def _parameter_device(model):
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else None


def _same_device(a, b) -> bool:
    # torch.device("mps") and a parameter's device("mps", 0) name the same device.
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def _pair_key(source, device: str):
    return ("object", id(source[0]), device)


class _ModelWorker(QObject):
    progress = Signal(int, int, int)
    finished = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    dropped = Signal(int)
    model_ready = Signal(str, str)  # model id, device label

    def __init__(self, latest: dict) -> None:
        super().__init__()
        # (kind, lane) -> id of the newest inspect or warm-up job of that lane ("*": drop every such job
        # below it); written on the GUI thread
        self._latest = latest
        self._warm: _WarmModel | None = None
        self.loads = 0  # how many times a model was read and placed (tests check it stays at one)

    # --- the warm model ------------------------------------------------------------------------
    def _warm_for(self, source, device: str) -> _WarmModel:
        if isinstance(source, tuple):
            key = _pair_key(source, device)
            if self._warm is None or self._warm.key != key:
                self._warm = None
                model, meta = source
                model_id = getattr(meta, "id", None) or str(getattr(model, "arch", "") or type(model).__name__)
                self._warm = _WarmModel(source, key, model, meta, model_id, device)
            return self._warm
        from segstudio.models.library import ModelLibrary

        library = ModelLibrary()
        entry = library.find(source)
        key = ("library", entry.id + "@" + str(entry.path), device)
        if self._warm is None or self._warm.key != key:
            self._warm = None  # release the old model before loading the next
            model, meta = library.load(source, device="cpu")
            self.loads += 1
            self._warm = _WarmModel(source, key, model, meta, meta.id, device)
        return self._warm

    @Slot(object, str)
    def release_unless(self, source, device: str) -> None:
        """Drop the warm model unless it is `source` on `device` (the selection moved on)."""
        warm = self._warm
        if warm is not None and (warm.device != device or not (warm.source is source or warm.source == source)):
            self._warm = None

    # --- jobs ----------------------------------------------------------------------------------
    @Slot(object)
    def run(self, job: ModelJob) -> None:
        if job.kind in _NEWEST_ONLY:
            newest = max(self._latest.get((job.kind, job.lane), 0), self._latest.get("*", 0))
            if job.job_id < newest:
                self.dropped.emit(job.job_id)  # a newer look (or warm-up) replaced it before it started
                return
        from segstudio.engine.predict import PredictionCancelled

        try:
            if job.cancel.is_set():
                raise PredictionCancelled()
            warm = self._warm_for(job.model, job.device)
            result = getattr(self, "_" + job.kind)(job, warm)
        except PredictionCancelled as stop:
            job.extra["partial"] = stop.partial  # what a slide's prediction finished before it stopped
            self.cancelled.emit(job.job_id)
        except Exception as err:  # reported to the user; the host keeps serving the next job
            ours = type(err).__module__.startswith("segstudio.")  # our errors say what went wrong in words
            if not ours:
                traceback.print_exc()
            self.failed.emit(job.job_id, str(err) if ours else f"{type(err).__name__}: {err}")
        else:
            self.finished.emit(job.job_id, result)

    def _predict(self, job: ModelJob, warm: _WarmModel):
        from segstudio.engine.devices import device_label
        from segstudio.engine.predict import PredictionCancelled

        fresh = warm._predictor is None
        predictor = warm.predictor()
        if fresh:
            self.model_ready.emit(warm.model_id, device_label(predictor.device))
        job.extra["model_classes"] = list(getattr(predictor.meta, "classes", None) or [])
        if job.cancel.is_set():
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
            cancel=job.cancel.is_set,
        )
        if result.boundary is not None and not job.extra.get("compare"):
            # Predict's summary counts objects split along the borders: found here, off the window's thread.
            from segstudio.core.mask_summary import object_counts
            from segstudio.core.objects.instances import find_instances

            job.extra["object_counts"] = object_counts(result.labels, find_instances(result.labels, result.boundary))
        return result

    def _warm_up(self, job: ModelJob, warm: _WarmModel) -> None:
        from segstudio.engine.devices import device_label

        fresh = warm._predictor is None
        predictor = warm.predictor()
        if fresh:
            self.model_ready.emit(warm.model_id, device_label(predictor.device))
        predictor.warm_up(job.settings)

    def _predict_slide(self, job: ModelJob, warm: _WarmModel):
        """request: slide (core Slide), box (y0, x0, h, w) or None for all tissue, sink (engine LabelSink)."""
        from segstudio.core.tissue import detect_tissue
        from segstudio.engine.predict.slide import predict_slide

        predictor = warm.predictor()
        settings = job.settings
        if predictor.device.type == "cpu":
            settings = dataclasses.replace(settings, batch=1)  # as _predict: Cancel stays prompt
        slide, box = job.request["slide"], job.request.get("box")
        tissue = detect_tissue(slide)
        return predict_slide(predictor, slide, job.request["sink"], settings, box=box, tissue=tissue,
                             progress=lambda done, total: self.progress.emit(job.job_id, done, total),
                             cancel=job.cancel.is_set)

    def _describe(self, job: ModelJob, warm: _WarmModel) -> ModelDescription:
        from segstudio.engine.devices import device_label

        inspector = warm.inspector()
        return ModelDescription(warm.model_id, inspector.arch, list(inspector.specs), inspector.stride,
                                inspector.in_channels, device_label(inspector.device),
                                dict(getattr(inspector.meta, "input", None) or {}) or None)

    def _inspect(self, job: ModelJob, warm: _WarmModel):
        from segstudio.engine.inspect_why import run_request

        return run_request(warm.inspector(), job.pixels, job.request, cancel=job.cancel.is_set)


class ModelHost(QObject):
    """Owns the model thread and the selection. submit() queues a job; the signals carry it back.

    The selection (select(), selection_changed, selected_model(), device()) is the one place features ask
    which model version and device are in use, so none has to read another feature's widgets.
    """

    progress = Signal(object, int, int)  # job, done, total (predict jobs)
    finished = Signal(object, object)  # job, result (PredictResult, ModelDescription or Inspection)
    failed = Signal(object, str)  # job, "ErrorType: message"
    cancelled = Signal(object)  # job
    model_ready = Signal(str, str)  # model id, device label: a model was placed on its device
    selection_changed = Signal(object)  # the selected model (library id) or None
    _submit = Signal(object)
    _release = Signal(object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        # Only the newest inspect job of each lane, and the newest warm-up, run: older ones are dropped.
        self._latest: dict = {}
        self.jobs: dict[int, ModelJob] = {}
        self._selected = None
        self._device = "auto"
        self._thread = QThread(self)
        self._thread.setObjectName("model-host")
        self.worker = _ModelWorker(self._latest)
        self.worker.moveToThread(self._thread)
        self._submit.connect(self.worker.run)
        self._release.connect(self.worker.release_unless)
        self.worker.progress.connect(lambda i, d, t: self._relay(self.progress, i, False, d, t))
        self.worker.finished.connect(lambda i, r: self._relay(self.finished, i, True, r))
        self.worker.failed.connect(lambda i, m: self._relay(self.failed, i, True, m))
        self.worker.cancelled.connect(lambda i: self._relay(self.cancelled, i, True))
        self.worker.dropped.connect(lambda i: self.jobs.pop(i, None))
        self.worker.model_ready.connect(self.model_ready)
        self._thread.start()
        self._running = True

    # --- selection -----------------------------------------------------------------------------
    def select(self, model, device: str | None = None) -> None:
        """The model version (and device) the user has chosen; the warm model follows it."""
        device = device or self._device
        if model == self._selected and device == self._device:
            return
        self._selected, self._device = model, device
        if self._running:
            self._release.emit(model, device)
        self.selection_changed.emit(model)

    def selected_model(self):
        return self._selected

    def device(self) -> str:
        return self._device

    # --- jobs ----------------------------------------------------------------------------------
    def _relay(self, signal, job_id: int, done: bool, *args) -> None:
        job = self.jobs.pop(job_id, None) if done else self.jobs.get(job_id)
        # A warm-up is the host's own business: no feature waits for it, and a failed one is retried by the
        # Predict that follows, which reports the error then.
        if job is not None and job.kind != "warm_up":
            signal.emit(job, *args)

    def submit(self, kind: str, model=None, *, device: str | None = None, pixels=None, settings=None,
               request: dict | None = None, tag=None, lane: str = "", **extra) -> ModelJob:
        """Queue a job for `model` (default: the selection) on `device` (default: the selection's).

        A queued inspect job is dropped when a newer one of the same `lane` arrives before it starts."""
        if kind not in JOB_KINDS:
            raise ValueError(f"kind must be one of {', '.join(JOB_KINDS)}, got {kind!r}")
        model = self._selected if model is None else model
        job = ModelJob(next(self._ids), kind, model, device or self._device, pixels, settings, dict(request or {}),
                       tag, lane, extra)
        if kind in _NEWEST_ONLY:
            self._latest[(kind, lane)] = job.job_id
        if not self._running:
            # A close the user then called off stopped the thread; the window is still in use.
            self._thread.start()
            self._running = True
        self.jobs[job.job_id] = job
        self._submit.emit(job)
        return job

    def busy(self, *kinds: str, lane: str | None = None) -> bool:
        """Whether jobs (of these kinds, default any; of this lane, default any) are queued or running."""
        return any((not kinds or job.kind in kinds) and (lane is None or job.lane == lane)
                   for job in self.jobs.values())

    def cancel(self, kind: str = "predict") -> None:
        """Stop the running and queued jobs of this kind; their `cancelled` signal follows."""
        for job in list(self.jobs.values()):
            if job.kind == kind:
                job.cancel.set()

    def shutdown(self) -> None:
        if not self._running:
            return
        self._running = False
        for job in list(self.jobs.values()):
            job.cancel.set()
        self._latest["*"] = next(self._ids)  # queued looks and warm-ups are dropped rather than run on the way out
        self._thread.quit()
        self._thread.wait(10000)
