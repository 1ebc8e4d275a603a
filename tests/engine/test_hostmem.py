"""Host memory reuse during prediction: fewer fresh pages while active, memory handed back afterwards."""
from __future__ import annotations

import resource
import threading

import numpy as np
import pytest
import torch

from segstudio.engine import hostmem

needs_glibc = pytest.mark.skipif(not hostmem.supported(), reason="only glibc's malloc is tuned")


def _faults_per_forward(runs: int = 4) -> int:
    """Minor page faults of a few forward passes whose activations (32 MiB each) exceed malloc's mmap threshold."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 2, 1),
    ).eval()
    x = torch.rand(2, 1, 512, 512)
    with torch.inference_mode():
        net(x)  # the first pass grows the heap in either case
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(runs):
            net(x)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // runs


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


@needs_glibc
def test_activations_reuse_freed_pages_while_active_and_not_after():
    plain = _faults_per_forward()
    with hostmem.keep_host_memory():
        kept = _faults_per_forward()
    after = _faults_per_forward()
    # Each pass allocates about 130 MiB of activations (~33,000 pages): normally fresh pages every time.
    assert plain > 20_000
    assert kept * 4 < plain
    assert after > 4 * kept


@needs_glibc
def test_memory_goes_back_to_the_system_when_the_last_user_leaves():
    big = 256 << 20
    with hostmem.keep_host_memory():
        block = torch.ones(big // 4)
        del block
        holding = _resident_bytes()
        assert hostmem.active()
    released = _resident_bytes()
    assert not hostmem.active()
    assert holding - released >= big // 2


@needs_glibc
def test_nested_and_concurrent_users_share_one_setting():
    entered, leave = threading.Event(), threading.Event()

    def other_user():
        with hostmem.keep_host_memory():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=other_user)
    thread.start()
    try:
        assert entered.wait(10)
        with hostmem.keep_host_memory():
            with hostmem.keep_host_memory():
                assert hostmem.active()
        assert hostmem.active()  # the other thread is still inside
    finally:
        leave.set()
        thread.join(10)
    assert not hostmem.active()


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv("SEGSTUDIO_KEEP_HOST_MEMORY", "0")
    assert not hostmem.supported()
    with hostmem.keep_host_memory():
        assert not hostmem.active()


def test_prediction_leaves_the_setting_off_when_it_finishes_or_is_cancelled():
    from segstudio.engine.predict import PredictionCancelled, Predictor, PredictSettings

    model = torch.nn.Conv2d(1, 2, 3, padding=1).eval()
    predictor = Predictor(model, device="cpu")
    image = np.random.default_rng(0).integers(0, 255, (100, 90), dtype=np.uint8)
    seen = []
    result = predictor.predict(image, PredictSettings(tile=64), progress=lambda d, t: seen.append(hostmem.active()))
    assert result.labels.shape == (100, 90)
    assert not hostmem.active()
    if hostmem.supported():
        assert seen and all(seen)
    with pytest.raises(PredictionCancelled):
        predictor.predict(image, PredictSettings(tile=64), cancel=lambda: True)
    assert not hostmem.active()
