"""One registry from architecture name to builder, so the GUI, the CLI and checkpoints agree on names.

A checkpoint stores only the architecture name and its config; rebuilding it goes through `build_model`,
so every network the program can load is one registered here.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

# Imported on first use so that importing the registry (e.g. from checkpoint metadata code) stays cheap
# and the architecture modules can import `register` without a cycle.
_BUILTIN_MODULES = (
    "segstudio.models.unet",
    "segstudio.models.fcn",
    "segstudio.models.deconvnet",
    "segstudio.models.pspnet",
    "segstudio.models.deeplab",
)


class UnknownModelError(ValueError):
    """Raised for an architecture name nobody registered; the message lists the names that exist."""

    def __init__(self, name: str, valid: list[str]):
        self.name = name
        self.valid = list(valid)
        super().__init__(f"Unknown model architecture {name!r}; valid names: {', '.join(self.valid)}")


@dataclass(frozen=True)
class _Registered:
    name: str
    builder: Callable[..., nn.Module]
    description: str


_REGISTRY: dict[str, _Registered] = {}
_loaded = False


def register(name: str, *, description: str = ""):
    """Decorator for a builder `f(*, in_channels, num_classes, **config) -> nn.Module`.

    A second registration under the same name is an error rather than a silent override: two builders
    answering to one name would make saved checkpoints rebuild the wrong network.
    """

    def decorate(builder: Callable[..., nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"Model architecture {name!r} is already registered")
        doc_lines = (builder.__doc__ or "").strip().splitlines()
        text = description or (doc_lines[0] if doc_lines else "")
        _REGISTRY[name] = _Registered(name, builder, text)
        return builder

    return decorate


def _ensure_builtin_models() -> None:
    global _loaded
    if _loaded:
        return
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    _loaded = True


def list_models() -> list[str]:
    """Registered architecture names in registration order (simplest first)."""
    _ensure_builtin_models()
    return list(_REGISTRY)


def describe_model(name: str) -> str:
    _ensure_builtin_models()
    if name not in _REGISTRY:
        raise UnknownModelError(name, list(_REGISTRY))
    return _REGISTRY[name].description


def build_model(name: str, *, in_channels: int = 1, num_classes: int = 2, **config) -> nn.Module:
    """Build a freshly initialised network; `config` holds the architecture's own keyword options."""
    _ensure_builtin_models()
    entry = _REGISTRY.get(name)
    if entry is None:
        raise UnknownModelError(name, list(_REGISTRY))
    if int(in_channels) < 1:
        raise ValueError(f"in_channels must be at least 1, got {in_channels}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    return entry.builder(in_channels=int(in_channels), num_classes=int(num_classes), **config)
