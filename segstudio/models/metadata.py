"""The schema of a model file's metadata, checked before any of it is used.

A model file comes from anywhere (a colleague, a download), and its metadata is JSON that reaches the
model list, the CLI, class tables and the network builder. Everything is checked here first: JSON depth
and size (Python's parser raises RecursionError at a few thousand levels), no NaN or Infinity, the type
and range of every field the program reads, and the architecture config against bounds that keep a
network buildable. A file that fails gets a MetadataError whose message says which field and why;
the library then lists it as a problem and carries on with the other files.

Torch-free: the parameter count a config implies is computed in checkpoint.py (on the "meta" device).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 32
MAX_JSON_NODES = 200_000
MAX_METADATA_CHARS = 4 * 2**20
MAX_CLASSES = 1024
MAX_CLASS_NAME = 64
MAX_VERSION = 10**9
MAX_IN_CHANNELS = 64
MAX_TEXT = 10_000
# About 1.6 GB of float32 weights; the largest built-in network (DeconvNet at default width) has 252 M.
MAX_PARAMETERS = 400_000_000

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ARCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# (low, high) for numbers every built-in architecture may take; keys not listed must be short text,
# a boolean, or None (the builder refuses keys it does not know).
_CONFIG_NUMBERS: dict[str, tuple[float, float]] = {
    "in_channels": (1, MAX_IN_CHANNELS),
    "num_classes": (1, MAX_CLASSES),
    "depth": (1, 8),
    "base_channels": (1, 256),
    "width": (1e-3, 4.0),
    "fc_channels": (1, 8192),
    "aspp_channels": (1, 2048),
    "low_level_channels": (1, 1024),
    "output_stride": (1, 64),
    "dropout": (0.0, 1.0),
    "variant": (1, 64),
}
_CONFIG_INT_LISTS = {"bins": (1, 64), "atrous_rates": (1, 64)}


class MetadataError(ValueError):
    """Metadata that does not fit the schema; the message names the field and the reason."""


# --- JSON ------------------------------------------------------------------------------------------------

def _refuse_constant(name: str) -> Any:
    raise MetadataError(f"the JSON holds {name}, which is not a number a model file may contain")


def parse_json(text: str | bytes, *, max_chars: int = MAX_METADATA_CHARS) -> Any:
    """json.loads with bounds: size, nesting depth, node count, and no NaN/Infinity."""
    if len(text) > max_chars:
        raise MetadataError(f"the JSON is {len(text):,} characters long, over the limit of {max_chars:,}")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise MetadataError(f"the JSON is nested too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"not valid JSON ({exc})") from None
    check_shape(value)
    return value


def check_shape(value: Any) -> None:
    """Refuse JSON data nested deeper than MAX_JSON_DEPTH or holding more than MAX_JSON_NODES values."""
    stack = [(value, 1)]
    nodes = 0
    while stack:  # iterative: a recursive walk would fail on exactly the inputs it must refuse
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise MetadataError(f"the JSON holds more than {MAX_JSON_NODES:,} values")
        if isinstance(item, float) and not math.isfinite(item):
            raise MetadataError("the JSON holds a number that is not finite")
        if isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise MetadataError(f"the JSON is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


# --- fields ----------------------------------------------------------------------------------------------

def _integer(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 12:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetadataError(f"{field} must be a whole number, not {_shown(value)}")
    if not low <= value <= high:
        raise MetadataError(f"{field} is {value}, outside {low}..{high}")
    return value


def _text(field: str, value: Any, limit: int = MAX_TEXT, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise MetadataError(f"{field} must be text, not {_shown(value)}")
    if len(value) > limit:
        raise MetadataError(f"{field} is {len(value):,} characters long, over the limit of {limit:,}")
    return value


def _mapping(field: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MetadataError(f"{field} must be a JSON object, not {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _classes(value: Any) -> list[dict]:
    """A list of {"id", "name", "color"} dicts, or of names (ids given by position)."""
    if not isinstance(value, list):
        raise MetadataError(f"classes must be a list, not {_shown(value)}")
    if len(value) > MAX_CLASSES:
        raise MetadataError(f"classes lists {len(value):,} classes, over the limit of {MAX_CLASSES:,}")
    out = []
    for position, entry in enumerate(value):
        where = f"classes[{position}]"
        if isinstance(entry, str):
            entry = {"id": position, "name": entry}
        if not isinstance(entry, dict):
            raise MetadataError(f"{where} must be a name or an object with 'id' and 'name', not {_shown(entry)}")
        cleaned = dict(entry)
        cleaned["id"] = _integer(f"{where}.id", entry.get("id", position), 0, 65535)
        cleaned["name"] = _text(f"{where}.name", entry.get("name", str(cleaned["id"])), MAX_CLASS_NAME)
        color = entry.get("color")
        if color is not None and not (isinstance(color, (list, str)) and len(color) <= 16):
            raise MetadataError(f"{where}.color must be [r, g, b] or '#rrggbb', not {_shown(color)}")
        out.append(cleaned)
    return out


def check_config(config: Any, *, field: str = "config") -> dict:
    """Types and bounds of an architecture config (numbers that size the network stay buildable)."""
    config = _mapping(field, config)
    if len(config) > 64:
        raise MetadataError(f"{field} has {len(config)} keys, over the limit of 64")
    for key, value in config.items():
        where = f"{field}.{key}"
        if key in _CONFIG_NUMBERS:
            low, high = _CONFIG_NUMBERS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise MetadataError(f"{where} must be a number, not {_shown(value)}")
            if not (math.isfinite(value) and low <= value <= high):
                raise MetadataError(f"{where} is {value}, outside {low:g}..{high:g}")
        elif key in _CONFIG_INT_LISTS:
            low, high = _CONFIG_INT_LISTS[key]
            if value is None:
                continue
            if not isinstance(value, list) or not 1 <= len(value) <= 8:
                raise MetadataError(f"{where} must be a list of 1 to 8 whole numbers, not {_shown(value)}")
            for index, item in enumerate(value):
                _integer(f"{where}[{index}]", item, low, high)
        elif not (value is None or isinstance(value, bool) or (isinstance(value, str) and len(value) <= 4096)):
            raise MetadataError(f"{where} must be text, true/false or null, not {_shown(value)}")
    return config


INPUT_KINDS = ("", "grey", "rgb", "he", "channels")


def check_input(value: Any) -> dict:
    """The model's input definition: {"kind": one of INPUT_KINDS, "channels": [...], "stain_vectors": 3x3}."""
    value = dict(_mapping("input", value))
    kind = value.get("kind", "")
    if kind not in INPUT_KINDS:
        raise MetadataError(f"input.kind is {_shown(kind)}; it must be one of {', '.join(k for k in INPUT_KINDS if k)}")
    if "channels" in value:
        channels = value["channels"]
        if not isinstance(channels, list) or not 1 <= len(channels) <= MAX_IN_CHANNELS:
            raise MetadataError(f"input.channels must be a list of 1 to {MAX_IN_CHANNELS} channel numbers")
        value["channels"] = [_integer(f"input.channels[{i}]", c, 0, 4096) for i, c in enumerate(channels)]
    if kind == "channels" and "channels" not in value:
        raise MetadataError("input.kind 'channels' needs input.channels")
    if "stain_vectors" in value:
        vectors = value["stain_vectors"]
        rows_ok = isinstance(vectors, list) and len(vectors) == 3 and all(
            isinstance(row, list) and len(row) == 3 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
                for v in row) and sum(v * v for v in row) > 0 for row in vectors)
        if not rows_ok:
            raise MetadataError("input.stain_vectors must be three [r, g, b] optical densities in 0..1 "
                                "(hematoxylin, eosin, residual), none all zero")
    return value


def check_objects(value: Any, config: dict) -> dict:
    """``{"boundary_channel": k}``: output k, the last one, is the probability of an object border (a sigmoid,
    not one of the classes), which seeds the watershed that splits touching objects."""
    objects = _mapping("objects", value)
    if "boundary_channel" not in objects or objects["boundary_channel"] is None:
        return objects
    channel = _integer("objects.boundary_channel", objects["boundary_channel"], 1, MAX_CLASSES)
    outputs = config.get("num_classes")
    if outputs is not None and channel != outputs - 1:
        raise MetadataError(f"objects.boundary_channel is {channel}, but it must be the network's last output "
                            f"({outputs - 1}), after the classes")
    return {**objects, "boundary_channel": channel}


def check_meta(data: Any) -> dict:
    """The fields ModelMeta reads, checked and normalised (classes given as names become dicts)."""
    if not isinstance(data, dict):
        raise MetadataError(f"model metadata must be a JSON object, not {_shown(data)}")
    check_shape(data)
    missing = [name for name in ("name", "version", "arch") if name not in data]
    if missing:
        raise MetadataError(f"model metadata lacks {', '.join(missing)}")
    out = dict(data)
    name = _text("name", data["name"], 128)
    if not _NAME.match(name):
        raise MetadataError(f"name {name[:40]!r} must be letters, digits, '.', '_' or '-'")
    arch = _text("arch", data["arch"], 64)
    if not _ARCH.match(arch):
        raise MetadataError(f"arch {arch[:40]!r} is not an architecture name")
    out["version"] = _integer("version", data["version"], 1, MAX_VERSION)
    out["config"] = check_config(data.get("config"))
    if "classes" in data:
        out["classes"] = _classes(data["classes"])
    if "in_channels" in data:
        out["in_channels"] = _integer("in_channels", data["in_channels"], 1, MAX_IN_CHANNELS)
    if "input" in data:
        out["input"] = check_input(data["input"])
    if "objects" in data:
        out["objects"] = check_objects(data["objects"], out["config"])
    for key in ("normalisation", "training", "metrics", "postprocess", "expects"):
        if key in data:
            out[key] = _mapping(key, data[key])
    for key, limit, optional in (("created", 64, False), ("parent", 200, True), ("description", MAX_TEXT, False)):
        if key in data:
            out[key] = _text(key, data[key], limit, optional=optional)
    return out
