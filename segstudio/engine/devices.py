"""Which device runs the network, and the settings that make it fast there.

The order is CUDA, then Apple MPS, then the CPU. A user may name a device instead; naming one that this
machine does not have is an error that says what it does have, rather than a silent switch to the CPU.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(?::(\d+))?)$")

# A CPU pass over fewer input pixels than this runs on one thread. Split over several it gains little even
# on an idle machine, and on a busy one each thread waits for a core in turn: the inspector's 160 x 160
# first look with the bundled U-Net took 2.3 s on torch's two threads of a two-core machine at load 8, and
# 0.18 s on one (benchmarks/bench_inspect.py).
ONE_THREAD_BELOW_PIXELS = 200 * 200


class DeviceUnavailableError(ValueError):
    """The requested device does not exist on this machine (or the name is not a device)."""


def available_devices() -> list[str]:
    """Device names this machine can run on, best first (for messages and menus)."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def pick_device(preference: str | torch.device = "auto") -> torch.device:
    """Resolve "auto", "cpu", "cuda", "cuda:N" or "mps" to a device that exists here.

    A torch.device other than cuda/mps is taken as given: the caller built it on purpose.
    """
    if isinstance(preference, torch.device):
        if preference.type == "cuda":
            return pick_device(f"cuda:{preference.index or 0}")
        if preference.type == "mps":
            return pick_device("mps")
        return preference
    text = (preference or "auto").strip().lower()
    match = _DEVICE_PATTERN.match(text)
    if not match:
        raise DeviceUnavailableError(
            f"Unknown device {preference!r}: use auto, cpu, cuda, cuda:N or mps "
            f"(this machine has: {', '.join(available_devices())})"
        )
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise DeviceUnavailableError(
                f"Apple MPS is not available on this machine (available: {', '.join(available_devices())})"
            )
        return torch.device("mps")
    index = int(match.group(2) or 0)
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"CUDA is not available on this machine (available: {', '.join(available_devices())})"
        )
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceUnavailableError(
            f"CUDA device {index} does not exist: this machine has {count} CUDA device(s) "
            f"(available: {', '.join(available_devices())})"
        )
    return torch.device("cuda", index)


def device_label(device: torch.device | str) -> str:
    """Short human description for the status bar, e.g. "CUDA: NVIDIA H100" or "CPU (8 threads)"."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device.index or 0)}"
    if device.type == "mps":
        return "Apple MPS"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"CPU ({threads} thread{'' if threads == 1 else 's'})"
    return str(device)


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """Reduced precision for inference on this device, or None to stay in float32.

    Only CUDA gets mixed precision: bfloat16 keeps float32's range (no overflow in logits) where the
    GPU supports it; older GPUs get float16. MPS and CPU autocast are not reliably faster for convs.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def uses_channels_last(device: torch.device | str) -> bool:
    """NHWC where convolutions run faster in it.

    On CUDA it lets cuDNN pick tensor-core kernels. On CPU oneDNN's NHWC convolutions measured 5-40% faster
    than NCHW for our networks (U-Net 512 px tiles 0.59x the time on 1 thread, 0.69x on 2; FCN-8s 0.64x;
    DeepLabv3+ ResNet-18 0.85-0.95x). MPS gains nothing from it.
    """
    return torch.device(device).type in ("cuda", "cpu")


def place_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move a model to `device` in eval mode, with the memory layout and cuDNN tuning that pay there."""
    device = torch.device(device)
    model = model.to(device).eval()
    if uses_channels_last(device):
        model = model.to(memory_format=torch.channels_last)
        # Tiles have few distinct shapes, so letting cuDNN time its algorithms once per shape pays back.
        torch.backends.cudnn.benchmark = True
    return model


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


@contextmanager
def threads_for_input(device: torch.device | str, pixels: int) -> Iterator[None]:
    """torch on one thread for a small CPU pass (see ONE_THREAD_BELOW_PIXELS), as it was set otherwise.

    torch's thread count is the process's: only for work on the one thread that runs the model's jobs."""
    previous = torch.get_num_threads()
    if torch.device(device).type != "cpu" or pixels >= ONE_THREAD_BELOW_PIXELS or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
