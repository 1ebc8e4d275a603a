"""What a fine-tune trains on and how: every training default, once, with the reason for it.

`TrainConfig` is read by the training loop, built from `segstudio train` options (`from_namespace`) and
turned back into them (`to_argv`), which is how the window starts its training child. The options are
declared on the fields themselves (`add_arguments` builds the parser from that table), so a default or a
help text is written in exactly one place. No torch here: the window imports this before torch loads.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segstudio.engine.training.errors import TrainingError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class CliOption:
    """How one TrainConfig field appears on the `segstudio train` command line."""

    flag: str
    help: str                 # "{default}" is replaced by the field's default
    kind: str = "value"       # "value" (--x N), "append" (repeatable), "flag" (sets True), "negated" (sets False)
    required: bool = False
    metavar: str | None = None
    exclusive: str | None = None  # options sharing this name are alternatives (argparse mutually exclusive)


def _cli(flag: str, help: str, **kwargs) -> dict:
    return {"cli": CliOption(flag, help, **kwargs)}


@dataclass
class TrainConfig:
    # Model id ("name/vN"), family name (its newest version) or a .safetensors file.
    base: str = field(metadata=_cli(
        "--model", "base model: id (name/vN), family name (its newest version) or .safetensors file",
        required=True))
    # Dataset folders in the segstudio.core.dataset layout.
    data: Sequence[str | Path] = field(default=(), metadata=_cli(
        "--data", "dataset folder written by `segstudio export` (repeat for several)", kind="append",
        required=True, metavar="DIR"))
    # Passes over the training crops; an epoch covers the data about once whatever the image sizes.
    epochs: int = field(default=20, metadata=_cli(
        "--epochs", "passes over the training crops (default {default})", exclusive="length"))
    # Optimisation steps; when set it replaces `epochs` (benchmarks and tests want an exact length).
    steps: int | None = field(default=None, metadata=_cli(
        "--steps", "optimisation steps instead of epochs", exclusive="length"))
    # Peak AdamW rate, reached after a short warm-up, then decayed by cosine (objective.learning_rate_at).
    lr: float = field(default=3e-4, metadata=_cli("--lr", "peak learning rate (default {default})"))
    # Crops per step and per process under torchrun; halved automatically when memory runs out.
    batch_size: int = field(default=8, metadata=_cli(
        "--batch", "crops per step and per process (default {default})"))
    # Side of the square training crops; shrunk to the largest training image when all are smaller.
    crop: int = field(default=256, metadata=_cli("--crop", "crop size in pixels (default {default})"))
    # Off: the whole network adapts (to a new stain, say); on: only the decoder learns, from fewer weights.
    freeze_encoder: bool = field(default=False, metadata=_cli(
        "--freeze-encoder", "train only the decoder; encoder weights and norm statistics stay as they are",
        kind="flag"))
    augment: bool = field(default=True, metadata=_cli(
        "--no-augment", "no flips, rotations or intensity changes", kind="negated"))
    # Scale of rotation angle and intensity jitter (1.0 = 15 degrees, 20% brightness, see augment.py).
    augment_strength: float = field(default=1.0, metadata=_cli(
        "--augment-strength", "scale of rotation angle and intensity changes (default {default})"))
    # Loss weight of hand-painted pixels (1.0 = same as the rest): corrections are what the user cares about.
    hand_weight: float = field(default=3.0, metadata=_cli(
        "--hand-weight", "loss weight of pixels corrected by hand (1 = no extra weight; default {default})"))
    # Soft Dice next to cross-entropy, so that small foreground classes count as much as the background.
    dice_weight: float = 1.0
    # For a model with a border output: its loss next to the classes', at the weight the bundled border model
    # was trained with (scripts/train_boundary_model.py), so a fine-tune keeps the balance it learnt.
    boundary_weight: float = field(default=1.0, metadata=_cli(
        "--boundary-weight", "loss weight of the borders between objects, for a model with a border output "
        "(0: leave it as it is; default {default})"))
    weight_decay: float = 1e-4                 # AdamW's decoupled decay, kept small for fine-tuning
    device: str = field(default="auto", metadata=_cli("--device", "auto, cpu, cuda, cuda:N or mps"))
    # Mixed precision on GPU (ignored on CPU); float16 runs with loss scaling.
    amp: bool = field(default=True, metadata=_cli("--no-amp", "full precision on GPU", kind="negated"))
    # -1: a few loader processes on GPU (to keep it fed), none on CPU (they would compete for its cores).
    num_workers: int = field(default=-1, metadata=_cli(
        "--workers", "data loader processes (default: automatic)"))
    seed: int = field(default=0, metadata=_cli("--seed", "random seed (default {default})"))
    # Family of the new version; None keeps the parent's.
    name: str | None = field(default=None, metadata=_cli(
        "--name", "model family of the new version (default: the base's)"))
    # A new version becomes active only if it scores at least as well as its parent, unless forced.
    force_promote: bool = field(default=False, metadata=_cli(
        "--force-promote", "make the new version active even if it scores below its parent", kind="flag"))
    # At most one "step" event per interval (the first and last always): enough for a live plot.
    progress_interval_s: float = 0.5
    # Larger validation images go through the tiled Predictor, whose memory use is bounded.
    val_whole_max_pixels: int = 1024 * 1024
    # A dataset with more pixels than this is not loaded whole: each image is copied once into chunked
    # storage (chunks.py) and training reads crop by crop, so memory stays flat whatever the dataset's size.
    # 2**27 pixels held as network input (float32) with labels and hand map: about 0.9 GB for one channel,
    # 1.9 GB for three.
    in_memory_max_pixels: int = field(default=1 << 27, metadata=_cli(
        "--in-memory-pixels", "datasets with more pixels than this train from chunked copies read crop by "
        "crop (default {default}; 0: always)", metavar="N"))
    # Where the chunked copies live (None: the user data folder's training-chunks); one copy per image and
    # mask, reused by later runs and by every rank of a torchrun job.
    chunk_dir: str | None = field(default=None, metadata=_cli(
        "--chunk-dir", "folder for the chunked copies (default: training-chunks in the user data folder)",
        metavar="DIR"))

    # --- checks and records ------------------------------------------------------------------------
    def normalised(self) -> TrainConfig:
        """The same config with `data` as a list (one folder may be given as a plain path)."""
        if isinstance(self.data, (str, Path)):
            return dataclasses.replace(self, data=[self.data])
        return self

    def check(self) -> None:
        """Raise TrainingError for values training cannot start with."""
        if self.steps is None and self.epochs < 1:
            raise TrainingError("epochs must be at least 1")
        if self.steps is not None and self.steps < 1:
            raise TrainingError("steps must be at least 1")
        if self.batch_size < 1 or self.crop < 16:
            raise TrainingError("batch size must be at least 1 and crop at least 16 pixels")
        if not self.lr > 0 or self.hand_weight < 0 or self.boundary_weight < 0:
            raise TrainingError("the learning rate must be above 0, the hand-correction and border weights not "
                                "below 0")
        if self.name is not None and not _NAME_RE.match(self.name):
            raise TrainingError(f"Invalid model name {self.name!r}: use letters, digits, '.', '_' or '-'")

    def settings(self) -> dict:
        """The JSON-able settings recorded in the new version's lineage."""
        d = dataclasses.asdict(self)
        d["data"] = [str(Path(p).resolve()) for p in self.normalised().data]
        return d

    # --- the command line --------------------------------------------------------------------------
    def to_argv(self) -> list[str]:
        """`segstudio train` options that rebuild this config (defaults are left out).

        Raises ValueError for a config the command line cannot express: both a length in epochs and one in
        steps, or a changed field that has no option.
        """
        if self.steps is not None and self.epochs != default("epochs"):
            raise ValueError("epochs and steps are alternatives: set only one of them")
        argv: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            option = f.metadata.get("cli")
            if option is None:
                if value != f.default:
                    raise ValueError(f"{f.name} has no `segstudio train` option; it can only be set from Python")
                continue
            if option.kind == "append":
                for item in self.normalised().data if f.name == "data" else value:
                    argv += [option.flag, str(item)]
            elif not option.required and value == f.default:
                continue
            elif option.kind in ("flag", "negated"):
                argv.append(option.flag)
            else:
                argv += [option.flag, repr(float(value)) if isinstance(value, float) else str(value)]
        return argv

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace) -> TrainConfig:
        """The config that options added by `add_arguments` describe."""
        values = {name: getattr(ns, name) for name in _option_fields()}
        values["data"] = list(values["data"])
        return cls(**values)


def default(name: str) -> Any:
    """The default of one TrainConfig field (for forms that start from the defaults)."""
    f = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    if f.default is dataclasses.MISSING:
        raise KeyError(f"{name} has no default")
    return f.default


def _show(value: Any) -> str:
    """A default as people write it: 3, 0.5, 3e-4."""
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        return re.sub(r"e-0*", "e-", f"{value:.0e}")
    return f"{value:g}" if isinstance(value, float) else str(value)


def _option_fields() -> dict[str, tuple[dataclasses.Field, CliOption]]:
    return {f.name: (f, f.metadata["cli"]) for f in dataclasses.fields(TrainConfig) if "cli" in f.metadata}


def _value_type(name: str):
    """int, float or str from the field's annotation (`int | None` -> int)."""
    hint = typing.get_type_hints(TrainConfig)[name]
    kinds = [t for t in typing.get_args(hint) or (hint,) if t is not type(None)]
    return kinds[0] if kinds and kinds[0] in (int, float, str) else str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of every TrainConfig field that has one, with its default and help."""
    groups: dict[str, Any] = {}
    for name, (f, option) in _option_fields().items():
        target = parser
        if option.exclusive:
            if option.exclusive not in groups:
                groups[option.exclusive] = parser.add_mutually_exclusive_group()
            target = groups[option.exclusive]
        kwargs: dict[str, Any] = {"dest": name}
        if option.required:
            kwargs["required"] = True
        else:
            kwargs["default"] = f.default
        if option.kind == "flag":
            kwargs["action"] = "store_true"
        elif option.kind == "negated":
            kwargs["action"] = "store_false"
        elif option.kind == "append":
            kwargs["action"] = "append"
        else:
            kwargs["type"] = _value_type(name)
        if option.kind in ("value", "append"):  # named after the option, as argparse would by default
            kwargs["metavar"] = option.metavar or option.flag.lstrip("-").upper().replace("-", "_")
        # argparse would read a "%" in help as a format directive.
        kwargs["help"] = option.help.replace("{default}", _show(f.default)).replace("%", "%%")
        target.add_argument(option.flag, **kwargs)


# --- presets and a time estimate, for people who do not tune training ------------------------------
@dataclass(frozen=True)
class Preset:
    """A named TrainConfig variant: the fields it changes from the defaults, and why."""

    key: str
    label: str
    changes: dict
    why: str

    def apply(self, config: TrainConfig) -> TrainConfig:
        return dataclasses.replace(config, steps=None, **self.changes)


PRESETS: tuple[Preset, ...] = (
    # Quick is the training defaults, so a form that starts on Quick asks for exactly TrainConfig().
    Preset("quick", "Quick", {"epochs": default("epochs")},
           "the usual length: enough to adapt a model to a new stain or a few corrections"),
    Preset("thorough", "Thorough", {"epochs": 3 * default("epochs")},
           "many passes: for larger datasets or a model that still makes many mistakes"),
)


def preset(key: str) -> Preset:
    for p in PRESETS:
        if p.key == key:
            return p
    raise KeyError(f"no preset {key!r}; presets: {', '.join(p.key for p in PRESETS)}")


#: Seconds per training pixel (batch x crop x crop) assumed before a fine-tune has been timed on this
#: computer: a 4-level U-Net measured about 4e-6 on a laptop CPU and 1e-7 on a desktop GPU.
GUESSED_SECONDS_PER_PIXEL = {"cpu": 4e-6, "gpu": 1e-7}


def planned_steps(config: TrainConfig, image_sizes: Sequence[tuple[int, int]]) -> int:
    """The optimisation steps a run of `config` makes over training images of these (height, width).

    The same count as the training loop's: each image gives about area / crop area crops per epoch.
    """
    if config.steps is not None:
        return int(config.steps)
    if not image_sizes:
        return 0
    crop = min(config.crop, max(max(h, w) for h, w in image_sizes))
    crops = sum(max(1, round(h * w / float(crop * crop))) for h, w in image_sizes)
    return config.epochs * -(-crops // config.batch_size)


def estimate_seconds(config: TrainConfig, image_sizes: Sequence[tuple[int, int]], seconds_per_pixel: float) -> float:
    """Training time of `config`: steps x pixels per step x the time per pixel measured (or guessed)."""
    sizes = image_sizes or [(config.crop, config.crop)]
    crop = min(config.crop, max(max(h, w) for h, w in sizes))
    return planned_steps(config, image_sizes) * config.batch_size * crop * crop * seconds_per_pixel
