"""Incremental fine-tuning: dataset folders in, a new model version out.

The flow of `fine_tune`:
  1. load the base model from the library and the labelled images of every dataset folder, normalised
     exactly as the predictor will normalise them later (data.py);
  2. measure the base ("parent") model on the validation split (evaluate.py);
  3. train on random crops with joint image/target augmentation, cross-entropy + soft Dice, extra weight
     on pixels the user corrected by hand, optional frozen encoder, mixed precision on GPU (this module);
     a model with a border output also learns the borders of the instance maps that teach them (borders.py);
  4. measure the result ("child") on the same split after every epoch;
  5. write it as a NEW version next to the parent (never over it) and make it the active model only if it
     is at least as good as the parent on that split (release.py).

Nothing is written before step 5 and the write itself is atomic, so a cancel, a crash, a killed process,
a non-finite loss or running out of memory leave the library exactly as it was.
"""
from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from segstudio.engine.devices import amp_dtype as device_amp_dtype
from segstudio.engine.devices import device_label, pick_device
from segstudio.engine.hostmem import keep_host_memory
from segstudio.engine.predict.predictor import boundary_channel
from segstudio.engine.training import events
from segstudio.engine.training.config import TrainConfig
from segstudio.engine.training.crop_check import check_crop, crop_works, smallest_crop
from segstudio.engine.training.data import (
    CropDataset,
    TrainingData,
    load_training_data,
    make_loader,
    resolve_workers,
    round_up,
)
from segstudio.engine.training.distributed import DistContext, wrap_model
from segstudio.engine.training.errors import TrainingCancelled, TrainingError
from segstudio.engine.training.evaluate import Evaluator
from segstudio.engine.training.objective import boundary_loss, learning_rate_at, segmentation_loss
from segstudio.engine.training.release import RunRecord, check_room_to_save, release

ProgressFn = Callable[[events.TrainingEvent], None]
CancelFn = Callable[[], bool]


@dataclass
class TrainResult:
    status: str                                # "done" or "cancelled"
    version: str | None = None                 # id of the new version ("name/vN")
    path: Path | None = None
    promoted: bool = False
    parent_metrics: dict | None = None
    child_metrics: dict | None = None
    steps: int = 0
    epochs: int = 0
    batch_size: int = 0                        # after any out-of-memory reduction
    crop: int = 0
    notes: list[str] = field(default_factory=list)
    # train_s: wall time of the optimisation steps (loading included, validation not); train_cpu_s: the
    # process's CPU time over the same spans (a steadier figure on a busy machine); val_s, total_s, samples
    timing: dict = field(default_factory=dict)
    replicas_identical: bool | None = None     # DDP only: all ranks ended with the same weights


# --- encoder -------------------------------------------------------------------------------------
def freeze_encoder(model: nn.Module) -> list[nn.Module]:
    """Stop training the encoder the model declares (SegmentationModel.freeze_encoder, which also keeps the
    encoder's norm statistics fixed in train mode); returns its modules, or [] when it declares none."""
    modules = [m for _, m in model.encoder_modules()]
    if not any(True for m in modules for _ in m.parameters()):
        return []
    model.freeze_encoder(True)
    return modules


# --- the fine-tune -------------------------------------------------------------------------------
def fine_tune(config: TrainConfig, *, progress: ProgressFn | None = None, cancel: CancelFn | None = None,
              library=None) -> TrainResult:
    """Fine-tune `config.base` on `config.data` and save the result as a new version.

    `progress(event)` receives the typed events of segstudio.engine.training.events; `cancel()` is polled
    at every step. Returns a TrainResult with status "done" or "cancelled"; raises TrainingError (after a
    Failed event) when training cannot finish. Under torchrun (WORLD_SIZE > 1) every rank calls this; only
    rank 0 reports, validates and writes.
    """
    ctx = DistContext.from_env()

    def emit(event: events.TrainingEvent) -> None:
        if progress is not None and ctx.is_main:
            progress(event)

    try:
        # Activations of a training batch are large blocks; reusing freed ones saves the page faults
        # (see engine/hostmem.py).
        with keep_host_memory():
            return _fine_tune(config, ctx, emit, cancel, library)
    except TrainingCancelled:
        emit(events.Cancelled())
        return TrainResult(status="cancelled")
    except TrainingError as e:
        emit(events.Failed(str(e)))
        raise
    except Exception as e:
        emit(events.Failed(f"{type(e).__name__}: {e}"))
        raise
    finally:
        ctx.teardown()


@dataclass
class _Session:
    """Everything set up before the first step; the loader is rebuilt after an out-of-memory retry."""

    config: TrainConfig
    ctx: DistContext
    library: object
    model: nn.Module
    net: nn.Module                 # the model, wrapped for DDP under torchrun
    parent_meta: object
    name: str
    device: torch.device
    amp: torch.dtype | None
    data: TrainingData
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    evaluator: Evaluator
    workers: int
    batch: int
    crop: int
    cancelled: CancelFn
    border_output: int | None = None  # the output channel of the borders, for a model that has one
    loader: object = None
    sampler: object = None


@dataclass
class _Run:
    """Counters and timers of the run so far."""

    started: float
    total: int = 0                 # planned steps; changes after an out-of-memory retry
    step: int = 0
    epoch: int = 0
    samples: int = 0
    train_s: float = 0.0
    train_cpu_s: float = 0.0
    val_s: float = 0.0
    val_runs: int = 0
    last_report: float = -math.inf
    loss_sum: torch.Tensor | None = None       # losses since the last StepProgress, summed on the device
    loss_count: int = 0
    epoch_loss: torch.Tensor | None = None     # this epoch's losses, summed on the device
    epoch_batches: int = 0
    parent_metrics: dict | None = None
    child_metrics: dict | None = None


def _fine_tune(config: TrainConfig, ctx: DistContext, emit, cancel: CancelFn | None, library) -> TrainResult:
    run = _Run(started=time.perf_counter())
    config = config.normalised()
    config.check()
    cancelled = (lambda: bool(cancel())) if cancel is not None else (lambda: False)
    s = _set_up(config, ctx, library, cancelled)
    run.total = _planned_steps(s, run)
    run.loss_sum = torch.zeros((), device=s.device)
    emit(_started_event(s, run))
    if ctx.is_main:
        run.parent_metrics = _validate(s, run)
        emit(events.Evaluated(model="parent", val=run.parent_metrics))
    while True:
        if _train_epoch(s, run, emit):
            _recover_from_oom(s, run, emit)
            continue  # the same epoch again, with the smaller batch or crop
        if _end_epoch(s, run, emit):
            break
        run.total = _planned_steps(s, run)
    return _finish(s, run, emit)


def _set_up(config: TrainConfig, ctx: DistContext, library, cancelled: CancelFn) -> _Session:
    from segstudio.models.library import ModelLibrary

    library = library if library is not None else ModelLibrary()
    try:
        model, parent_meta = library.load(config.base, device="cpu")
    except (ValueError, OSError) as e:
        raise TrainingError(f"Cannot load base model {config.base!r}: {e}") from e
    if ctx.is_main:  # the one rank that writes: a result that cannot be saved is not trained at all
        check_room_to_save(library.user_dir, model)
    in_channels = int(parent_meta.in_channels)
    check_crop(model, in_channels, int(config.crop), parent_meta.id)
    num_classes = int(getattr(model, "config", {}).get("num_classes") or len(parent_meta.classes))
    has_border_output = boundary_channel(parent_meta) is not None
    device = ctx.setup(pick_device(config.device))
    amp = device_amp_dtype(device) if config.amp and device.type in ("cuda", "mps") else None
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # A border output is not a class: a mask that uses its number is refused by name, not trained on.
    data = _load_data(config, ctx, parent_meta, num_classes - has_border_output, cancelled)
    # Images smaller than the crop would be mostly padding: shrink the crop to the largest image, but not
    # below what the network can train on.
    largest = max(max(it.hw) for it in data.train)
    crop = min(int(config.crop), round_up(largest, 16))
    if crop < config.crop and not crop_works(model, in_channels, crop):
        crop = smallest_crop(model, in_channels) or int(config.crop)
    if crop < config.crop:
        data.notes.append(f"crop reduced from {config.crop} to {crop} px: no training image is larger")

    model.to(device)
    if config.freeze_encoder:
        if not freeze_encoder(model):
            raise TrainingError(f"{parent_meta.id} ({parent_meta.arch}) has no encoder to freeze")
    trainable = [p for p in model.parameters() if p.requires_grad]
    session = _Session(
        config=config, ctx=ctx, library=library, model=model, net=wrap_model(model, ctx, device),
        parent_meta=parent_meta, name=config.name or parent_meta.name, device=device, amp=amp, data=data,
        optimizer=torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay),
        scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        evaluator=Evaluator(parent_meta, data.classes, num_classes, device, amp, config.val_whole_max_pixels,
                            config.amp),
        workers=resolve_workers(config.num_workers, device), batch=int(config.batch_size), crop=crop,
        cancelled=cancelled, border_output=_learnt_border_output(config, parent_meta))
    _build_loader(session)
    return session


def _load_data(config: TrainConfig, ctx: DistContext, parent_meta, num_classes: int,
               cancelled: CancelFn) -> TrainingData:
    """The datasets, read for this model. Under torchrun rank 0 makes any chunked copies first and the
    other ranks then find them made (a rank that races ahead would only make the same copy twice)."""
    if ctx.enabled and not ctx.is_main:
        ctx.barrier()
    try:
        # Under torchrun a rank must not leave alone before the first step (the others would wait for
        # it); a cancel there is agreed on at the first step instead.
        return load_training_data(
            config.data, in_channels=int(parent_meta.in_channels), normalisation=dict(parent_meta.normalisation),
            num_classes=num_classes, val_whole_max_pixels=config.val_whole_max_pixels,
            cancel=None if ctx.enabled else cancelled, model_input=dict(parent_meta.input),
            in_memory_max_pixels=config.in_memory_max_pixels, chunk_dir=config.chunk_dir,
            borders=_learnt_border_output(config, parent_meta) is not None)
    finally:
        if ctx.enabled and ctx.is_main:
            ctx.barrier()


def _learnt_border_output(config: TrainConfig, parent_meta) -> int | None:
    """The output channel whose borders this run teaches: the model's border output, unless its weight is 0."""
    return boundary_channel(parent_meta) if config.boundary_weight > 0 else None


def _build_loader(s: _Session) -> None:
    c = s.config
    dataset = CropDataset(s.data.train, s.crop, augment=c.augment, strength=c.augment_strength,
                          hand_weight=c.hand_weight, seed=c.seed, borders=s.border_output is not None)
    s.loader, s.sampler = make_loader(dataset, s.batch, s.workers, s.ctx, c.seed, s.device)


def _planned_steps(s: _Session, run: _Run) -> int:
    if s.config.steps is not None:
        return int(s.config.steps)
    return run.step + (s.config.epochs - run.epoch) * len(s.loader)


def _started_event(s: _Session, run: _Run) -> events.Started:
    return events.Started(
        base=s.parent_meta.id, name=s.name, device=device_label(s.device), world_size=s.ctx.world_size,
        backend=s.ctx.backend, train_images=len(s.data.train), val_images=len(s.data.val), val_source=s.data.val_source,
        steps=run.total, epochs=s.config.epochs if s.config.steps is None else None,
        batch=s.batch, crop=s.crop, amp=str(s.amp).replace("torch.", "") if s.amp else None,
        frozen_parameters=sum(p.numel() for p in s.model.parameters() if not p.requires_grad),
        notes=list(s.data.notes))


def _validate(s: _Session, run: _Run) -> dict:
    """Measure the model on the validation split (rank 0 only); counts the time for the ETA."""
    t0 = time.perf_counter()
    metrics = s.evaluator(s.model, s.data.val, s.cancelled if not s.ctx.enabled else None)
    run.val_s += time.perf_counter() - t0
    run.val_runs += 1
    return metrics


# --- one epoch -----------------------------------------------------------------------------------
def _train_epoch(s: _Session, run: _Run, emit) -> bool:
    """One pass over the crops (or up to the planned step); True if it ran out of memory.

    The out-of-memory error is only noted here: it is handled by the caller once this frame, the
    traceback and the activations they hold are gone.
    """
    s.sampler.set_epoch(run.epoch)
    run.epoch_loss = torch.zeros((), device=s.device)
    run.epoch_batches = 0
    s.net.train()  # a frozen encoder's norm layers stay in eval: SegmentationModel.train
    t_epoch, cpu_epoch = time.perf_counter(), time.process_time()
    out_of_memory = False
    try:
        for batch in s.loader:
            if _train_step(s, run, emit, batch, t_epoch):
                break
    except Exception as e:
        if not is_oom(e):
            raise
        out_of_memory = True
    run.train_s += time.perf_counter() - t_epoch
    run.train_cpu_s += time.process_time() - cpu_epoch
    return out_of_memory


def _train_step(s: _Session, run: _Run, emit, batch, t_epoch: float) -> bool:
    """One optimisation step; True when it was the last one planned."""
    if not s.ctx.enabled and s.cancelled():
        raise TrainingCancelled
    x = batch[0].to(s.device, non_blocking=True)
    lr = learning_rate_at(run.step, run.total, s.config.lr)
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(s.device.type, dtype=s.amp or torch.float32, enabled=s.amp is not None):
        logits = s.net(x)
    loss = _loss(s, logits, batch)
    s.optimizer.zero_grad(set_to_none=True)
    s.scaler.scale(loss).backward()
    s.scaler.step(s.optimizer)
    s.scaler.update()
    run.step += 1
    run.samples += x.shape[0]
    detached = loss.detach()
    # A non-finite loss poisons these sums; they are checked whenever a number is read.
    run.loss_sum += detached
    run.epoch_loss += detached
    run.loss_count += 1
    run.epoch_batches += 1
    if s.ctx.enabled:
        # Every rank must leave the loop at the same step or the others block forever.
        stop, bad = s.ctx.any_flags([s.cancelled(), ~torch.isfinite(detached)], s.device)
        if bad:
            raise_nonfinite(run.step, s.config)
        if stop:
            raise TrainingCancelled
    last_step = s.config.steps is not None and run.step >= run.total
    now = time.perf_counter()
    if s.ctx.is_main and (now - run.last_report >= s.config.progress_interval_s or run.step == 1 or last_step):
        emit(_step_event(s, run, lr, x.shape[0], (run.train_s + now - t_epoch) / run.step))
        run.loss_sum.zero_()
        run.loss_count = 0
        run.last_report = now
    return last_step


def _loss(s: _Session, logits: torch.Tensor, batch) -> torch.Tensor:
    """The classes' loss, plus the borders' for a model with a border output when the batch has crops of
    images with instance maps (others have a border weight of 0; a batch with none adds no border term)."""
    y, w = (t.to(s.device, non_blocking=True) for t in batch[1:3])
    loss = segmentation_loss(logits[:, :s.evaluator.num_classes], y, w, dice_weight=s.config.dice_weight)
    if s.border_output is None or not bool(batch[4].any()):  # checked on the host copy: no device sync
        return loss
    border, border_weight = (t.to(s.device, non_blocking=True) for t in batch[3:5])
    return loss + s.config.boundary_weight * boundary_loss(logits[:, s.border_output], border, border_weight)


def _step_event(s: _Session, run: _Run, lr: float, batch: int, per_step: float) -> events.StepProgress:
    mean_loss = float(run.loss_sum.item()) / max(1, run.loss_count)
    if not math.isfinite(mean_loss):
        raise_nonfinite(run.step, s.config)
    epochs_left = math.ceil((run.total - run.step) / max(1, len(s.loader)))
    eta = eta_seconds(per_step, run.total - run.step, epochs_left, run.val_s, run.val_runs)
    return events.StepProgress(step=run.step, steps=run.total, epoch=run.epoch + 1, loss=mean_loss, lr=lr,
                               eta_s=eta, images_per_s=(batch / per_step) if per_step > 0 else None)


def eta_seconds(per_step_s: float, steps_left: int, epochs_left: int, val_s: float, val_runs: int) -> float:
    """Time left: the remaining steps at the mean step time so far, plus one validation per epoch left
    at the mean validation time so far."""
    return max(0.0, per_step_s * steps_left + epochs_left * val_s / max(1, val_runs))


def _end_epoch(s: _Session, run: _Run, emit) -> bool:
    """Count the epoch, check its loss, validate (rank 0); True when training is over."""
    run.epoch += 1
    mean_epoch_loss = None
    if run.epoch_batches:
        mean_epoch_loss = float(run.epoch_loss.item()) / run.epoch_batches
        if not math.isfinite(mean_epoch_loss):
            raise_nonfinite(run.step, s.config)
    finished = run.step >= run.total if s.config.steps is not None else run.epoch >= s.config.epochs
    if s.ctx.is_main:
        run.child_metrics = _validate(s, run)
        emit(events.EpochProgress(epoch=run.epoch, epochs=s.config.epochs if s.config.steps is None else None,
                                  step=run.step, train_loss=mean_epoch_loss, val=run.child_metrics))
    return finished


def raise_nonfinite(step: int, config: TrainConfig, what: str = "training loss"):
    raise TrainingError(
        f"The {what} became NaN or infinite by step {step}; nothing was saved. "
        f"Try a lower learning rate than {config.lr:g}" + (" or full precision" if config.amp else "")
    )


# --- out of memory -------------------------------------------------------------------------------
def is_oom(e: BaseException) -> bool:
    if isinstance(e, torch.OutOfMemoryError):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _recover_from_oom(s: _Session, run: _Run, emit) -> None:
    """Halve the batch (then the crop) and rebuild the loader, or give up with a clear message."""
    s.batch, s.crop, action = shrink_after_oom(s.batch, s.crop, s.ctx, s.device)
    if not crop_works(s.model, int(s.parent_meta.in_channels), s.crop):
        raise TrainingError(f"Out of memory on {s.device} even with batch {s.batch}, and crops of {s.crop} px "
                            f"are too small for {s.parent_meta.id}; nothing was saved")
    s.loader = s.sampler = None
    _free_memory(s.optimizer, s.device)
    emit(events.OutOfMemory(action=action, batch=s.batch, crop=s.crop))
    s.data.notes.append(f"out of memory: {action}")
    _build_loader(s)
    run.total = _planned_steps(s, run)


def shrink_after_oom(batch: int, crop: int, ctx: DistContext, device: torch.device) -> tuple[int, int, str]:
    if ctx.enabled:
        # Ranks would have to agree on the new sizes mid-collective; ask the user instead.
        raise TrainingError(f"Out of memory on {device} with batch {batch} and crop {crop}: "
                            "restart with a smaller --batch or --crop")
    if batch > 1:
        new_batch = max(1, batch // 2)
        return new_batch, crop, f"retrying with batch {new_batch} (was {batch})"
    if crop > 32:
        new_crop = max(32, round_up(crop // 2, 16))
        return batch, new_crop, f"retrying with crop {new_crop} px (was {crop})"
    raise TrainingError(f"Out of memory on {device} even with batch 1 and crop {crop} px; "
                        "nothing was saved")


def _free_memory(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    optimizer.zero_grad(set_to_none=True)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --- the end -------------------------------------------------------------------------------------
def _finish(s: _Session, run: _Run, emit) -> TrainResult:
    identical = s.ctx.replicas_identical(s.model, s.device)
    if not s.ctx.is_main:
        return TrainResult(status="done", steps=run.step, epochs=run.epoch, batch_size=s.batch, crop=s.crop,
                           replicas_identical=identical)
    if s.cancelled():
        raise TrainingCancelled
    if not all(bool(torch.isfinite(p).all()) for p in s.model.parameters()):
        raise_nonfinite(run.step, s.config, "model's weights")

    # From here on the new version is written; a cancel arriving now is too late to matter.
    data = s.data
    record = RunRecord(
        name=s.name, classes=data.classes, datasets=data.datasets, val_source=data.val_source,
        train_images=len(data.train), val_images=len(data.val), steps=run.step, epochs=run.epoch,
        batch=s.batch, crop=s.crop, world_size=s.ctx.world_size, device=device_label(s.device),
        notes=data.notes, parent_metrics=run.parent_metrics, child_metrics=run.child_metrics,
        started=run.started)
    meta, path, promoted = release(s.library, s.model, s.parent_meta, s.config, record)
    timing = {"train_s": run.train_s, "train_cpu_s": run.train_cpu_s, "val_s": run.val_s,
              "samples": run.samples, "total_s": time.perf_counter() - run.started}
    emit(events.Finished(
        version=meta.id, path=str(path), promoted=promoted, parent=s.parent_meta.id,
        parent_metrics=run.parent_metrics, child_metrics=run.child_metrics, steps=run.step, epochs=run.epoch,
        replicas_identical=identical, world_size=s.ctx.world_size, timing=timing))
    return TrainResult(status="done", version=meta.id, path=path, promoted=promoted,
                       parent_metrics=run.parent_metrics, child_metrics=run.child_metrics, steps=run.step,
                       epochs=run.epoch, batch_size=s.batch, crop=s.crop, notes=data.notes, timing=timing,
                       replicas_identical=identical)
