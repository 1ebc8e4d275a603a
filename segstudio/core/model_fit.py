"""Which channels of an image feed a model, and whether the image looks like what the model was trained on.

A model for one-channel fluorescence sees a multichannel slide through one channel: the nuclear stain when
the model looks for nuclei. Colour images become grey (the mean of R, G and B) unless the user picks one
colour. Two mismatches are common enough to warn about before Predict, because the model answers them
without complaint and the answer is wrong: a colour photograph into a fluorescence model, and a brightfield
slide (bright background, dark stained objects, as in H&E) into a model that learnt bright objects on a
dark background, which then marks the background instead of the objects.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

FLUORESCENCE = "fluorescence"
BRIGHTFIELD = "brightfield"

# Channel names (lower case, as substrings) that mark a nuclear stain.
NUCLEAR_STAINS = ("dapi", "hoechst", "draq5", "draq7", "nuclear", "nuclei", "nucleus")
_COLOUR_NAMES = (("R", "G", "B"), ("R", "G", "B", "A"))

# The median of a fluorescence image is its dark background, in the lower part of the range from the 1st to
# the 99th percentile, and its long tail is the bright objects. In a brightfield slide the background is the
# brightest part and the long tail is dark. Both must hold: on 300 generated fluorescence slides this called
# one (saturated over half its area) bright, and missed two of the same slides inverted.
BRIGHT_BACKGROUND_LEVEL = 0.5
_THUMBNAIL_SIDE = 256

# Optical density of hematoxylin, eosin and a residual (DAB) per unit stain, as [r, g, b]: Ruifrok & Johnston's
# values, the same as scikit-image's rgb_from_hed. A lab whose slides differ stores its own in the model.
HE_STAIN_VECTORS = ((0.65, 0.70, 0.29), (0.07, 0.99, 0.11), (0.27, 0.57, 0.78))
HE_LABEL = "Hematoxylin (separated from the H&E colours)"


@dataclass(frozen=True)
class ModelExpectation:
    """What a model was trained on, as far as its metadata says."""

    channels: int
    kind: str = ""  # FLUORESCENCE, BRIGHTFIELD or "" when nothing says
    nuclear: bool = False  # it looks for nuclei, so a nuclear stain is the channel to give it


@dataclass(frozen=True)
class ChannelChoice:
    label: str  # as shown to the user
    channels: tuple[int, ...] | None  # image channels fed to the model; None: the image as it is
    stain: str = ""  # "he": the model is fed the hematoxylin separated from the colours (engine.predict.stains)


@dataclass(frozen=True)
class Advice:
    """A warning about the input, and the one-click fix for it (if any)."""

    text: str
    fix: str = ""            # button text; "" when there is nothing to click
    choice: int | None = None  # the channel choice the fix selects; None: open the channel list to pick


@dataclass(frozen=True)
class InputPlan:
    """The choices offered for one image and one model, the default among them, and why it is the default."""

    choices: tuple[ChannelChoice, ...]
    default: int
    reason: str
    # The image does not fit what the model was made to read: said while the default is used (input_advice),
    # with a "Pick channels" fix when other channels of the image could be fed instead.
    mismatch: str = ""
    can_pick: bool = False
    stops: bool = False  # no choice can be fed: Predict would stop with an error


def expectation_of(in_channels: int, expects: Mapping | None = None, description: str = "",
                   class_names: Sequence[str] = ()) -> ModelExpectation:
    """Read what a model expects from its metadata.

    `expects` ({"kind": "fluorescence", "stain": "nuclear"}) is the metadata's own statement. Models
    written before it existed say it only in words, so the description and the class names are read as a
    fallback: "fluorescence" or a nuclear stain there means a fluorescence model, "brightfield" or "H&E" a
    brightfield one, a class called nucleus means it looks for nuclei.
    """
    expects = dict(expects or {})
    words = " ".join([description, *class_names]).lower()
    kind = str(expects.get("kind", "")).lower()
    if not kind:
        if "brightfield" in words or "h&e" in words:
            kind = BRIGHTFIELD
        elif "fluorescen" in words or any(stain in words for stain in NUCLEAR_STAINS[:4]):
            kind = FLUORESCENCE
    if "stain" in expects:
        nuclear = str(expects["stain"]).lower() == "nuclear"
    else:
        nuclear = any(stain in words for stain in NUCLEAR_STAINS)
    return ModelExpectation(int(in_channels), kind, nuclear)


def is_colour(channel_names: Sequence[str] | None) -> bool:
    return channel_names is not None and tuple(channel_names) in _COLOUR_NAMES


def nuclear_channel(channel_names: Sequence[str] | None) -> int | None:
    """The first channel whose name says it holds a nuclear stain (DAPI, Hoechst...), else None."""
    for index, name in enumerate(channel_names or ()):
        if any(stain in str(name).lower() for stain in NUCLEAR_STAINS):
            return index
    return None


def plan_input(channels: int, channel_names: Sequence[str] | None, model: ModelExpectation,
               definition: Mapping | None = None) -> InputPlan:
    """The channel choices for an image with `channels` channels, and the default with its reason.

    `definition` is the model's own input definition (its metadata's "input"): a model that reads the
    hematoxylin of H&E slides is offered nothing else for a colour image, and a model made to read chosen
    channels ("channels": [0, 2]) gets those by default. An image that does not fit says so (`mismatch`).
    """
    names = list(channel_names) if channel_names and len(channel_names) == channels else None
    definition = dict(definition or {})
    label = [names[i] if names else f"Channel {i + 1}" for i in range(channels)]
    if definition.get("kind") == "he":
        if channels >= 3:
            return InputPlan((ChannelChoice(HE_LABEL, None, "he"),), 0,
                             "the model reads the hematoxylin stain of H&E slides, separated from the colours")
        return InputPlan((ChannelChoice(label[0], None),), 0, "the model reads H&E colour images",
                         f"The model reads the hematoxylin of H&E colour images, but this image has "
                         f"{_count(channels, 'channel')}: Predict will stop with an error. Choose a model made for "
                         "images like this one, or make one (Model > New Model).", stops=True)
    picked = [int(c) for c in definition.get("channels", [])] if definition.get("kind") == "channels" else []
    if model.channels != 1:
        return _plan_several(channels, label, model.channels, picked, is_colour(names))
    plan = _plan_one(channels, names, label, model)
    if not picked:
        return plan
    if picked[0] >= channels:
        shown = plan.choices[plan.default].label
        return dataclasses.replace(plan, mismatch=(
            f"The model was made to read image channel {picked[0] + 1}, but this image has "
            f"{_count(channels, 'channel')}: {shown} is fed instead. Choose the channel that holds the same "
            "stain."), can_pick=len(plan.choices) > 1)
    index = next(i for i, c in enumerate(plan.choices) if c.channels == (picked[0],))
    return dataclasses.replace(plan, default=index, reason=f"the model was made to read {label[picked[0]]}")


def _plan_one(channels: int, names: list[str] | None, label: list[str], model: ModelExpectation) -> InputPlan:
    """The choices for a one-channel model: each channel, and grey or the H&E path for a colour image."""
    if channels == 1:
        return InputPlan((ChannelChoice(label[0], (0,)),), 0, "the image has one channel")
    singles = tuple(ChannelChoice(label[i], (i,)) for i in range(channels))
    if is_colour(names):
        grey = ChannelChoice("Grey (mean of R, G, B)", None)
        he = ChannelChoice(HE_LABEL, None, "he")
        if model.kind == BRIGHTFIELD and model.nuclear:
            return InputPlan((he, grey, *singles), 0, "the model looks for nuclei in brightfield (H&E) slides")
        return InputPlan((grey, he, *singles), 0, "a colour image becomes grey")
    found = nuclear_channel(names)
    if model.nuclear and found is not None:
        return InputPlan(singles, found, f"{label[found]} is a nuclear stain, and the model looks for nuclei")
    if model.nuclear:
        return InputPlan(singles, 0, "no channel is named as a nuclear stain (DAPI, Hoechst), so the first "
                                     "is used: choose the one that shows the nuclei")
    return InputPlan(singles, 0, "the model takes one channel: the first is used unless you choose another")


# More sets of channels than this and only the runs of neighbouring channels are offered.
_MAX_CHANNEL_SETS = 36


def _plan_several(channels: int, label: list[str], wanted: int, picked: list[int], colour: bool) -> InputPlan:
    """The choices for a model that reads `wanted` channels: sets of the image's channels in their order
    (the first `wanted` as None: the image as it is), the model's own set by default when the image has it."""
    own = ("image channels " + _listed([str(c + 1) for c in picked])) if picked else ""
    if channels == 1:
        choice = ChannelChoice(f"{label[0]}, repeated {wanted} times", None)
        mismatch = (f"The model was made to read {own}; this image has one channel, fed to each of them: expect "
                    "a poor mask.") if picked else ""
        return InputPlan((choice,), 0, "the image has one channel", mismatch)
    if channels < wanted:
        return InputPlan((ChannelChoice(", ".join(label), None),), 0, f"the model takes {wanted} channels",
                         f"The model needs {wanted} channels but this image has {channels}: Predict will stop with "
                         "an error. Choose or make a model for this image (Model > New Model).", stops=True)
    sets = list(itertools.islice(itertools.combinations(range(channels), wanted), _MAX_CHANNEL_SETS + 1))
    if len(sets) > _MAX_CHANNEL_SETS:
        sets = [tuple(range(i, i + wanted)) for i in range(channels - wanted + 1)]
    fits = bool(picked) and max(picked) < channels
    if fits and tuple(picked) not in sets:
        sets.insert(1, tuple(picked))
    choices = tuple(ChannelChoice(", ".join(label[i] for i in s), None if s == sets[0] else s) for s in sets)
    first = _listed(label[:wanted])
    if fits:
        index = sets.index(tuple(picked))
        return InputPlan(choices, index, f"the model was made to read {choices[index].label}")
    if picked:
        mismatch = (f"The model was made to read {own}, but this image has {channels}: {first} are fed instead. "
                    "Check that they hold the same stains" + (", or choose others." if len(sets) > 1 else "."))
    elif channels > wanted and not colour:
        mismatch = (f"This image has {channels} channels and the model reads {wanted}: {first} are fed. Choose the "
                    "ones that hold the stains the model learnt.")
    else:
        mismatch = ""
    return InputPlan(choices, 0, f"the model takes {wanted} channels", mismatch, len(sets) > 1)


def _listed(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def model_pixels(pixels: np.ndarray, channels: Sequence[int] | None) -> np.ndarray:
    """The image as handed to the model: only `channels` (all of them when None)."""
    if channels is None:
        return pixels
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    bad = [c for c in channels if not 0 <= c < pixels.shape[2]]
    if bad:
        raise ValueError(f"channel {bad[0] + 1} does not exist; the image has {pixels.shape[2]}")
    return pixels[..., list(channels)]


def default_feed(pixels: np.ndarray, channel_names: Sequence[str] | None, model: ModelExpectation,
                 definition: Mapping | None = None) -> tuple[ChannelChoice, list[Advice]]:
    """What the Model panel feeds a model from an image by default, and its warnings: the command line's
    choice for an image it is given, so both answer alike."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    plan = plan_input(channels, channel_names, model, definition)
    choice = plan.choices[plan.default]
    return choice, input_advice(pixels, channel_names, choice, model, plan)


def default_model_input(pixels: np.ndarray, channel_names: Sequence[str] | None, meta
                        ) -> tuple[np.ndarray, dict | None, list[Advice]]:
    """(pixels, input definition, warnings) of an image fed to a model (its ModelMeta) by default, as the
    Model panel and the command line feed it when no choice was made for that model."""
    names = [c.get("name", "") for c in meta.classes]
    model = expectation_of(meta.in_channels, getattr(meta, "expects", None), meta.description, names)
    choice, advice = default_feed(pixels, channel_names, model, meta.input)
    return model_pixels(pixels, choice.channels), fed_definition(meta.input, choice.stain), advice


def fed_definition(own: Mapping | None, stain: str) -> dict | None:
    """The input definition Predict and the inspector use for an image fed through the Model panel's choice
    (PredictSettings.model_input), or None for the model's own (`own`, its metadata's "input").

    The H&E path of a model that reads no hematoxylin itself takes the standard stain vectors. A model made
    to read chosen channels has had them picked already by the choice (model_pixels), so its own picking
    is set aside: the choice was made from the same definition, or replaces it where the image lacks them.
    """
    own = dict(own or {})
    if stain == "he" and own.get("kind") != "he":
        return {"kind": "he", "stain_vectors": [list(v) for v in HE_STAIN_VECTORS]}
    if own.get("kind") == "channels":
        return {}
    return None


def thumbnail_grey(pixels: np.ndarray, side: int = _THUMBNAIL_SIDE) -> np.ndarray:
    """A small float grey copy (every n-th pixel, colour averaged): enough to judge brightness, in microseconds."""
    step = max(1, -(-max(pixels.shape[:2]) // side))
    small = np.asarray(pixels[::step, ::step], np.float32)
    if small.ndim == 3:
        small = small[..., :3].mean(axis=-1)
    return small


def bright_background(pixels: np.ndarray) -> bool:
    """True when most of the image is near its brightest level: a brightfield-like slide (H&E, phase)."""
    grey = thumbnail_grey(pixels)
    grey = grey[np.isfinite(grey)]
    if grey.size == 0:
        return False
    low, dark, median, bright, high = np.percentile(grey, [1.0, 5.0, 50.0, 95.0, 99.0])
    if high <= low:
        return False
    return (median - low) / (high - low) > BRIGHT_BACKGROUND_LEVEL and median - dark > bright - median

def input_warnings(pixels: np.ndarray, channel_names: Sequence[str] | None, choice: ChannelChoice,
                   model: ModelExpectation) -> list[str]:
    """Plain-words warnings about feeding `pixels` through `choice` to a model that expects `model`."""
    return [advice.text for advice in input_advice(pixels, channel_names, choice, model)]


def input_advice(pixels: np.ndarray, channel_names: Sequence[str] | None, choice: ChannelChoice,
                 model: ModelExpectation, plan: InputPlan | None = None) -> list[Advice]:
    """The warnings about feeding `pixels` through `choice`, each with its fix among `plan`'s choices."""
    advice = []
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    he_index = next((i for i, c in enumerate(plan.choices) if c.stain == "he"), None) if plan else None
    if plan is None and model.channels > 1 and 1 < channels < model.channels:
        plan = plan_input(channels, channel_names, model)
    if plan is not None and plan.mismatch and choice == plan.choices[plan.default]:
        advice.append(Advice(plan.mismatch, "Pick channels" if plan.can_pick else "", None))
        if plan.stops:
            return advice
    if choice.stain == "he":
        return advice  # hematoxylin is bright where nuclei are, on a dark background: what the model learnt
    fed = model_pixels(pixels, choice.channels)
    bright = bright_background(fed)
    if model.channels == 1 and choice.channels is None and is_colour(channel_names):
        what = "one-channel fluorescence images" if model.kind == FLUORESCENCE else "one-channel images"
        text = (f"This is a colour image, but the model was trained on {what}. Its colours will be averaged to "
                "grey.")
        if bright and he_index is not None:
            advice.append(Advice(text + " It looks like a stained brightfield slide (H&E): the model can be fed "
                                        "the hematoxylin (nuclear) stain, separated from the colours.",
                                 "Use the H&E path", he_index))
        else:
            advice.append(Advice(text + " If one colour shows the stain, choose it.", "Pick a channel", None))
    if model.kind == FLUORESCENCE and bright:
        fix = ("Use the H&E path", he_index) if he_index is not None else ("Pick another channel", None)
        advice.append(Advice("The background of this image is bright and the objects dark (like a brightfield or "
                             "H&E slide). The model was trained on bright objects on a dark background, so it will "
                             "likely mark the background instead of the objects.", *fix))
    elif model.kind == BRIGHTFIELD and not bright:
        advice.append(Advice("The background of this image is dark (like a fluorescence image), but the model was "
                             "trained on brightfield slides with a bright background; expect a poor mask.",
                             "Pick another channel", None))
    return advice


# --- input definitions (the "input" field of a model's metadata) ---------------------------------------------

INPUT_CHOICES = ("grey", "rgb", "he", "channels:0,2")


def input_definition(text: str) -> tuple[dict, int]:
    """(metadata "input" dict, network input channels) for grey | rgb | he | channels:0,2."""
    text = str(text).strip().lower()
    if text in ("grey", "gray"):
        return {"kind": "grey"}, 1
    if text == "rgb":
        return {"kind": "rgb"}, 3
    if text in ("he", "h&e", "hematoxylin"):
        return {"kind": "he", "stain_vectors": [list(v) for v in HE_STAIN_VECTORS]}, 1
    if text.startswith("channels:"):
        try:
            channels = [int(part) for part in text.split(":", 1)[1].split(",") if part.strip()]
        except ValueError:
            channels = []
        if channels and all(0 <= c < 64 for c in channels) and len(set(channels)) == len(channels):
            return {"kind": "channels", "channels": channels}, len(channels)
        raise ValueError(f"{text!r}: list distinct channel numbers from 0, e.g. channels:0,2")
    raise ValueError(f"Unknown input {text!r}; choose one of {', '.join(INPUT_CHOICES)}")


STAIN_VECTORS_HELP = ("three rows of r,g,b optical densities (hematoxylin; eosin; residual) between 0 and 1, "
                      "rows separated by ';' or new lines, e.g. 0.65,0.70,0.29; 0.07,0.99,0.11; 0.27,0.57,0.78")
_STAIN_FILE_CHARS = 100_000


def parse_stain_vectors(text: str) -> list[list[float]]:
    """A lab's own stain vectors from "r,g,b; r,g,b; r,g,b" (spaces or commas between numbers, ';' or new lines
    between rows, or a JSON list of three rows), checked; ValueError says what is wrong in plain words."""
    import json

    text = str(text).strip()
    if text.startswith("["):
        try:
            rows = json.loads(text)
        except ValueError:
            raise ValueError("the stain vectors are not a readable JSON list") from None
    else:
        rows = [line.replace(",", " ").split() for line in text.replace(";", "\n").splitlines() if line.strip()]
    return check_stain_vectors(rows)


def check_stain_vectors(rows) -> list[list[float]]:
    """Three [r, g, b] rows of numbers in 0..1, none all zero, no two of the same colour; as floats."""
    if not isinstance(rows, list) or len(rows) != 3 or any(not isinstance(r, list) or len(r) != 3 for r in rows):
        raise ValueError(f"the stain vectors must be {STAIN_VECTORS_HELP}")
    try:
        vectors = [[float(v) for v in row] for row in rows]
    except (TypeError, ValueError):
        raise ValueError(f"the stain vectors must be numbers: {STAIN_VECTORS_HELP}") from None
    names = ("hematoxylin", "eosin", "residual")
    for name, row in zip(names, vectors):
        if not all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in row):
            raise ValueError(f"the {name} vector {row} must hold numbers between 0 and 1")
        if not any(row):
            raise ValueError(f"the {name} vector is all zero: a stain needs a colour")
    unit = np.asarray(vectors) / np.linalg.norm(vectors, axis=1, keepdims=True)
    if abs(np.linalg.det(unit)) < 1e-3:
        raise ValueError("two of the stain vectors have (nearly) the same colour, so the stains cannot be told apart")
    return vectors


def read_stain_vectors(value: str) -> list[list[float]]:
    """parse_stain_vectors() of a file's text when `value` names a file, else of `value` itself; errors name the
    file."""
    from pathlib import Path

    path = Path(str(value).strip()).expanduser()
    try:
        is_file = path.is_file()
    except OSError:  # a name too long for the file system is text, not a file
        is_file = False
    if not is_file:
        words = re.sub(r"(?i)nan|inf(inity)?|e", "", str(value))  # what numbers may spell
        if any(ch.isalpha() or ch in "/\\" for ch in words):
            raise ValueError(f"{value}: no such file; give a file or the vectors themselves: {STAIN_VECTORS_HELP}")
        return parse_stain_vectors(value)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(_STAIN_FILE_CHARS + 1)
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the stain vectors ({err})") from None
    if len(text) > _STAIN_FILE_CHARS:
        raise ValueError(f"{path}: too large for a stain vector file")
    try:
        return parse_stain_vectors(text)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def describe_input(definition: Mapping | None, in_channels: int) -> str:
    """The input definition in words, for the model list and the Model panel."""
    definition = dict(definition or {})
    kind = definition.get("kind", "")
    if kind == "he":
        own = definition.get("stain_vectors") not in (None, [list(v) for v in HE_STAIN_VECTORS])
        return "hematoxylin from H&E colour images" + (" (the lab's own stain vectors)" if own else "")
    if kind == "rgb":
        return "colour (RGB)"
    if kind == "grey":
        return "grey (colour averaged)"
    if kind == "channels":
        return "image channels " + ", ".join(str(int(c) + 1) for c in definition.get("channels", []))
    return f"{in_channels} channel{'s' if in_channels != 1 else ''}"
