"""Which channels of an image feed a model, and whether the image looks like what the model was trained on.

A model for one-channel fluorescence sees a multichannel slide through one channel: the nuclear stain when
the model looks for nuclei. Colour images become grey (the mean of R, G and B) unless the user picks one
colour. Two mismatches are common enough to warn about before Predict, because the model answers them
without complaint and the answer is wrong: a colour photograph into a fluorescence model, and a brightfield
slide (bright background, dark stained objects, as in H&E) into a model that learnt bright objects on a
dark background, which then marks the background instead of the objects.
"""
from __future__ import annotations

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
    hematoxylin of H&E slides is offered nothing else for a colour image.
    """
    names = list(channel_names) if channel_names and len(channel_names) == channels else None
    if (definition or {}).get("kind") == "he" and channels >= 3:
        return InputPlan((ChannelChoice(HE_LABEL, None, "he"),), 0,
                         "the model reads the hematoxylin stain of H&E slides, separated from the colours")
    label = [names[i] if names else f"Channel {i + 1}" for i in range(channels)]
    if model.channels != 1:
        if channels == 1:
            return InputPlan((ChannelChoice(f"{label[0]}, repeated {model.channels} times", None),), 0,
                             "the image has one channel")
        shown = ", ".join(label[: model.channels])
        return InputPlan((ChannelChoice(shown, None),), 0, f"the model takes {model.channels} channels")
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
    if model.channels > 1 and 1 < channels < model.channels:
        return [Advice(f"The model needs {model.channels} channels but this image has {channels}: "
                       "Predict will stop with an error. Choose or make a model for this image (Model > New Model).")]
    if choice.stain == "he":
        return []  # hematoxylin is bright where nuclei are, on a dark background: what the model learnt
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
