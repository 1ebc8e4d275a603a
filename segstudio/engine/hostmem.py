"""Keep freed host memory for reuse while a network runs on the CPU.

glibc's malloc (Linux) serves every block above a threshold of at most 32 MiB with a fresh mmap and hands
it back to the system on free. A network's activations on a 512 px tile are such blocks, so every forward
pass on the CPU faults in hundreds of MiB of new zero-filled pages and spends much of its time in the
kernel: with the benchmark U-Net, batches of 4 tiles took 0.35 s per tile, 0.13 s of it system time, and
0.21 s per tile with the freed blocks kept (benchmarks/bench_predict.py prints both).

While `keep_host_memory()` is active, malloc takes large blocks from its heap and keeps what is freed for
the next block; when the last user leaves, the usual behaviour comes back and free memory is returned to
the system (malloc_trim), so a desktop session does not hold on to a prediction's peak. Elsewhere (macOS,
Windows, musl) and with SEGSTUDIO_KEEP_HOST_MEMORY=0 this does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import threading
from collections.abc import Iterator

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# glibc's documented defaults, restored on exit. Setting either turns off glibc's dynamic thresholds for
# the rest of the process, which leaves the static defaults in force: a documented, predictable state.
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
# While active: never trim the heap top (a forward pass frees and re-allocates the same sizes).
_KEEP_TRIM_THRESHOLD = 2**31 - 1

_lock = threading.Lock()
_users = 0
_libc: ctypes.CDLL | None | bool = False  # False: not looked up yet; None: not glibc


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is False:
        _libc = None
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                lib.mallopt.restype = ctypes.c_int
                lib.malloc_trim.argtypes = [ctypes.c_size_t]
                lib.malloc_trim.restype = ctypes.c_int
                _libc = lib
            except (OSError, AttributeError):
                _libc = None
    return _libc


def supported() -> bool:
    """Whether keep_host_memory() changes anything in this process."""
    return os.environ.get("SEGSTUDIO_KEEP_HOST_MEMORY", "1").strip() not in ("0", "false", "no") and (
        _glibc() is not None
    )


def active() -> bool:
    with _lock:
        return _users > 0


@contextlib.contextmanager
def keep_host_memory() -> Iterator[None]:
    """Within this block, freed large host blocks are reused instead of returned to the system.

    Safe to nest and to enter from several threads: the setting is process-wide, so it is switched on by
    the first user and back off by the last.
    """
    global _users
    lib = _glibc() if supported() else None
    if lib is None:
        yield
        return
    with _lock:
        if _users == 0:
            lib.mallopt(_M_MMAP_MAX, 0)
            lib.mallopt(_M_TRIM_THRESHOLD, _KEEP_TRIM_THRESHOLD)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                lib.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                lib.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                lib.malloc_trim(0)
