"""Making a model: a network, its input, its classes and where its weights start, saved as version 1.

The window's Model > New Model and `segstudio models new` both come here. A new model starts from scratch,
from ImageNet weights when the file is on this computer (never downloaded), or from an existing model of
the same network, whose weights are kept where shapes allow (models.transfer). The result is written into
the user's model library as a new family's version 1, so nothing in use is ever overwritten.

Growing a model's classes (`extend_classes`) is the same step applied to an existing model: a new version of
its family with a larger class layer, the old classes' weights kept.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone

from segstudio.core.labels import ClassTable
from segstudio.core.model_fit import BRIGHTFIELD, check_stain_vectors, input_definition
from segstudio.models.catalogue import network
from segstudio.models.checkpoint import ModelMeta, classes_within_outputs
from segstudio.models.transfer import TransferReport, class_map_by_name, transfer_weights

STARTS = ("scratch", "imagenet", "model")


class NewModelError(ValueError):
    """A new model that cannot be made as asked; the message says why in plain words."""


@dataclass
class NewModelSpec:
    name: str
    arch: str
    classes: list[dict]               # [{"id", "name", "color"}]; id 0 is the background
    input: str = "grey"               # grey | rgb | he | channels:0,2
    channels: int | None = None       # network input channels; None: what `input` implies
    start: str = "scratch"            # scratch | imagenet | model
    source: str | None = None         # the model to start from, when start == "model"
    config: dict = field(default_factory=dict)  # size options over the catalogue's default
    stain_vectors: list | None = None  # a lab's own H&E stain vectors (input "he"); None: the standard ones


@dataclass
class NewModelResult:
    meta: ModelMeta
    path: object
    report: TransferReport | None
    notes: list[str]


def classes_from_names(names: str | list[str]) -> list[dict]:
    """[{"id", "name", "color"}] from "background,nucleus,..." (background added first when missing)."""
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if str(n).strip()]
    table = ClassTable()
    for item in items:
        if item.casefold() == table.get(0).name.casefold():
            continue
        try:
            table.add(item)
        except ValueError as err:
            raise NewModelError(f"Class {item!r}: {err}") from None
    if len(table) < 2:
        raise NewModelError("A model needs at least one class besides the background")
    return table.to_list()


def _input_and_channels(spec: NewModelSpec) -> tuple[dict, int]:
    try:
        definition, implied = input_definition(spec.input)
    except ValueError as err:
        raise NewModelError(str(err)) from None
    channels = implied if spec.channels is None else int(spec.channels)
    if definition["kind"] in ("he", "rgb", "channels") and channels != implied:
        raise NewModelError(f"--input {spec.input} gives the network {implied} channel(s), not {channels}")
    if not 1 <= channels <= 64:
        raise NewModelError(f"A network takes 1 to 64 input channels, not {channels}")
    if definition["kind"] == "grey" and channels != 1:
        definition = {}  # an N-channel model reads the image's first N channels
    if spec.stain_vectors is not None:
        if definition.get("kind") != "he":
            raise NewModelError("Stain vectors are for a model that reads the hematoxylin of H&E slides (input he)")
        try:
            definition["stain_vectors"] = check_stain_vectors([list(row) for row in spec.stain_vectors])
        except (TypeError, ValueError) as err:
            raise NewModelError(f"Stain vectors: {err}") from None
    return definition, channels


def _expects(definition: dict, class_names: list[str]) -> dict:
    nuclear = any("nucle" in n.lower() for n in class_names)
    # An H&E model is fed brightfield slides (it derives the stain itself); other inputs say nothing.
    kind = BRIGHTFIELD if definition.get("kind") == "he" else ""
    expects = {"kind": kind} if kind else {}
    if nuclear:
        expects["stain"] = "nuclear"
    return expects


def build_new(spec: NewModelSpec, library=None) -> tuple[object, ModelMeta, TransferReport | None, list[str]]:
    """(model, metadata, transfer report or None, notes) as asked, not yet saved."""
    from segstudio.models.backbones import imagenet_weights_available
    from segstudio.models.registry import build_model

    try:
        choice = network(spec.arch)
    except ValueError as err:
        raise NewModelError(str(err)) from None
    if spec.start not in STARTS:
        raise NewModelError(f"Start must be one of {', '.join(STARTS)}, not {spec.start!r}")
    definition, channels = _input_and_channels(spec)
    classes = [dict(c) for c in spec.classes]
    num_classes = max(int(c["id"]) for c in classes) + 1
    notes: list[str] = []
    config = dict(choice.config)
    if spec.start == "imagenet":
        if choice.imagenet_config is None or not imagenet_weights_available(spec.arch):
            raise NewModelError(f"No ImageNet weights for {choice.title} are on this computer; start from "
                                "scratch or from an existing model")
        config = dict(choice.imagenet_config, pretrained_backbone=True)
        notes.append(f"The encoder starts from ImageNet weights (published size: {choice.cost(imagenet=True)}).")
    config.update(spec.config)
    model = build_model(spec.arch, in_channels=channels, num_classes=num_classes, **config)
    report = None
    meta = ModelMeta(name=spec.name, version=1, arch=spec.arch, classes=classes, in_channels=channels,
                     description=f"New {choice.title} for " + ", ".join(c["name"] for c in classes if c["id"]),
                     expects=_expects(definition, [c["name"] for c in classes]), input=definition)
    if spec.start == "model":
        model, meta, report = _start_from(spec, model, meta, library)
        notes += report.lines()
    return model, meta, report, notes


def _start_from(spec: NewModelSpec, model, meta: ModelMeta, library):
    from segstudio.models.library import ModelLibrary
    from segstudio.models.registry import build_model

    library = library or ModelLibrary()
    if not spec.source:
        raise NewModelError("Say which model to start from")
    try:
        source, source_meta = library.load(spec.source)
    except ValueError as err:  # CheckpointError is one
        raise NewModelError(str(err)) from None
    if source_meta.arch != spec.arch:
        raise NewModelError(f"{source_meta.id} is a {source_meta.arch}; weights can only be kept from the same "
                            f"network ({spec.arch})")
    # The source's size options (width, depth...) decide the shapes; class count and input are the new ones.
    options = {k: v for k, v in source_meta.config.items() if k not in ("in_channels", "num_classes")}
    options.update(spec.config)
    options["pretrained_backbone"] = False  # every weight comes from the source model
    model = build_model(spec.arch, in_channels=model.in_channels, num_classes=model.num_classes, **options)
    report = transfer_weights(source, model, class_map_by_name(source_meta.classes, meta.classes),
                              source_meta.classes, meta.classes)
    meta = dataclasses.replace(meta, parent=source_meta.id, normalisation=dict(source_meta.normalisation),
                               postprocess=dict(source_meta.postprocess),
                               description=f"{meta.description}, started from {source_meta.id}",
                               training={"transfer": report.to_dict()})
    return model, meta, report


def create_model(spec: NewModelSpec, library=None) -> NewModelResult:
    """Build the model and save it as version 1 of a new family in the user library."""
    from segstudio.models.library import ModelLibrary

    library = library or ModelLibrary()
    if any(e.meta.name == spec.name for e in library.entries()):
        raise NewModelError(f"A model named {spec.name!r} exists already; choose another name")
    model, meta, report, notes = build_new(spec, library)
    meta = dataclasses.replace(meta, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path, stored = library.save_version(spec.name, model, meta)
    return NewModelResult(stored, path, report, notes)


def extend_classes(base: str, classes: list[dict], library=None) -> NewModelResult:
    """A new version of `base` that predicts every class in `classes` (merged with its own, by id).

    The class layer grows to the largest id; the rows of classes the model had are kept, the new ones
    start untrained, every other weight is carried over. The base version is left as it was.
    """
    from segstudio.models.library import ModelLibrary
    from segstudio.models.registry import build_model

    library = library or ModelLibrary()
    source, source_meta = library.load(base)
    # A border output (objects.boundary_channel) is the last output, after the classes: it moves up past
    # the new classes and keeps what it learnt.
    border = (source_meta.objects or {}).get("boundary_channel")
    source_classes = source_meta.class_count
    merged = {int(c["id"]): dict(c) for c in source_meta.classes}
    for c in classes:
        merged.setdefault(int(c["id"]), dict(c))
    table = [merged[i] for i in sorted(merged)]
    class_outputs = max(max(merged) + 1, source_classes)
    outputs = class_outputs + (border is not None)
    options = {k: v for k, v in source_meta.config.items() if k not in ("in_channels", "num_classes")}
    options["pretrained_backbone"] = False
    model = build_model(source_meta.arch, in_channels=source_meta.in_channels, num_classes=outputs, **options)
    kept = {int(c["id"]): int(c["id"]) for c in source_meta.classes if int(c["id"]) < source_classes}
    if border is not None:
        kept[class_outputs] = int(border)
    report = transfer_weights(source, model, kept, source_meta.classes, table)
    objects = dict(source_meta.objects or {})
    if border is not None:
        objects["boundary_channel"] = class_outputs
    meta = dataclasses.replace(
        source_meta, classes=classes_within_outputs(table, class_outputs), parent=source_meta.id, objects=objects,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), metrics={},
        training={"transfer": report.to_dict()},
        description=f"{source_meta.id} with room for " + ", ".join(report.new_classes))
    path, stored = library.save_version(source_meta.name, model, meta)
    return NewModelResult(stored, path, report, report.lines())


def tile_seconds(arch: str, *, repeats: int = 2) -> float:
    """Median seconds of one forward pass of `arch` at the catalogue's default size over a 512 x 512
    one-channel tile on the CPU, after a warm-up pass: what the New Model dialog shows as the network's time
    on this computer, and scripts/compare_networks.py prints."""
    import statistics
    import time

    import torch

    from segstudio.models.registry import build_model

    model = build_model(arch, in_channels=1, num_classes=2, **network(arch).config).eval()
    x = torch.rand(1, 1, 512, 512)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)
