"""Prediction on a real GPU: the same masks as on the CPU, device-side blending, AMP, memory that does
not grow with the image, out-of-memory fallback under a memory cap, and Cancel in the middle of a run."""
from __future__ import annotations

import copy
import gc

import numpy as np
import torch

from segstudio.engine.predict import Predictor, PredictSettings
from segstudio.engine.predict import predictor as predictor_module
from segstudio.engine.predict.predictor import PredictionCancelled
from segstudio.synth.nuclei import iou


def _predictor(nuclei_model, device):
    model, meta = nuclei_model
    return Predictor(copy.deepcopy(model), meta, device=device)


def test_cuda_prediction_matches_the_cpu_and_finds_the_nuclei(gpu, nuclei_model, nuclei_image):
    image, truth = nuclei_image
    settings = PredictSettings(tile=256, overlap=0.25, batch=4, amp=False)
    on_cpu = _predictor(nuclei_model, "cpu").predict(image, PredictSettings(tile=256, overlap=0.25, batch=1))
    on_gpu = _predictor(nuclei_model, gpu).predict(image, settings)
    assert on_gpu.device.startswith("cuda")
    # float32 on both; cuDNN and the CPU sum in other orders, so a few boundary pixels may flip.
    assert (on_gpu.labels == on_cpu.labels).mean() > 0.999
    np.testing.assert_allclose(on_gpu.confidence.astype(np.float32), on_cpu.confidence.astype(np.float32),
                               atol=2e-2)
    assert iou(on_gpu.labels > 0, truth > 0) > 0.7


def test_mixed_precision_gives_the_same_mask(gpu, nuclei_model, nuclei_image):
    image, _ = nuclei_image
    predictor = _predictor(nuclei_model, gpu)
    full = predictor.predict(image, PredictSettings(tile=256, batch=4, amp=False))
    mixed = predictor.predict(image, PredictSettings(tile=256, batch=4, amp=True))
    assert (mixed.labels == full.labels).mean() > 0.995


def test_blending_on_the_device_and_on_the_host_agree(gpu, nuclei_model, nuclei_image, monkeypatch):
    """The GPU keeps the band of sums on the device while it fits; a wider image blends on the host."""
    image, _ = nuclei_image
    settings = PredictSettings(tile=256, batch=4, amp=False)
    predictor = _predictor(nuclei_model, gpu)
    made = []
    real_blender = predictor_module.BandBlender

    def recording_blender(plan, band_h, device):
        made.append(device)
        return real_blender(plan, band_h, device)

    monkeypatch.setattr(predictor_module, "BandBlender", recording_blender)
    on_device = predictor.predict(image, settings)
    monkeypatch.setattr(predictor_module, "_DEVICE_BAND_BYTES", 0)
    on_host = predictor.predict(image, settings)
    assert made[0] is not None and made[0].type == "cuda" and made[1] is None
    assert (on_device.labels == on_host.labels).mean() > 0.9999
    np.testing.assert_allclose(on_device.uncertainty.astype(np.float32), on_host.uncertainty.astype(np.float32),
                               atol=2e-3)


def test_streamed_probabilities_from_the_gpu_sum_to_one(gpu, nuclei_model, nuclei_image):
    image, _ = nuclei_image
    rows = 0
    for row, probs in _predictor(nuclei_model, gpu).iter_probabilities(image, PredictSettings(tile=256, batch=4)):
        assert row == rows and isinstance(probs, np.ndarray)
        np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-3)
        rows += probs.shape[1]
    assert rows == image.shape[0]


def test_gpu_memory_does_not_grow_with_the_image(gpu, nuclei_model):
    predictor = _predictor(nuclei_model, gpu)
    settings = PredictSettings(tile=256, batch=4)
    peaks = []
    for side in (1024, 3072):
        image = np.random.default_rng(side).integers(200, 3000, (side, side, 1), dtype=np.uint16)
        torch.cuda.synchronize(gpu)
        torch.cuda.reset_peak_memory_stats(gpu)
        predictor.predict(image, settings)
        peaks.append(torch.cuda.max_memory_allocated(gpu))
    # 9x the pixels: the peak may grow with the band's width (3x), never with the area.
    assert peaks[1] < 3.5 * peaks[0], [p / 2**20 for p in peaks]


def test_out_of_memory_under_a_cap_falls_back_and_still_predicts(gpu, nuclei_model, nuclei_image):
    """A memory cap too small for 1024 px tiles in batches of 16: the run halves the batch, then the
    tile, and finishes with a mask like the uncapped one, saying what it did."""
    image, _ = nuclei_image
    predictor = _predictor(nuclei_model, gpu)
    reference = predictor.predict(image, PredictSettings(tile=256, batch=1, amp=False))
    torch.cuda.synchronize(gpu)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(gpu).total_memory
    cap = torch.cuda.memory_allocated(gpu) + (160 << 20)  # the weights plus 160 MiB for the run
    torch.cuda.set_per_process_memory_fraction(cap / total, gpu)
    try:
        capped = predictor.predict(image, PredictSettings(tile=1024, batch=16, amp=False))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, gpu)
    assert any("Out of memory" in note for note in capped.notes), capped.notes
    assert capped.device.startswith("cuda") or capped.device == "cpu"
    assert (capped.labels == reference.labels).mean() > 0.98
    # Later calls try the GPU again at the sizes asked for.
    assert predictor.device.type == "cuda"


def test_cancel_in_the_middle_of_a_gpu_run_frees_its_memory(gpu, nuclei_model):
    predictor = _predictor(nuclei_model, gpu)
    image = np.random.default_rng(0).integers(200, 3000, (2048, 2048, 1), dtype=np.uint16)
    settings = PredictSettings(tile=256, batch=4)
    predictor.predict(image[:256, :256], settings)  # warm: cuDNN's choices and the allocator's pool
    torch.cuda.synchronize(gpu)
    before = torch.cuda.memory_allocated(gpu)
    progress = []
    cancelled = False
    try:
        predictor.predict(image, settings, progress=lambda done, total: progress.append((done, total)),
                          cancel=lambda: len(progress) >= 3)
    except PredictionCancelled:  # not kept: its traceback would hold the run's tensors
        cancelled = True
    assert cancelled and 3 <= len(progress) < progress[0][1]
    gc.collect()
    torch.cuda.synchronize(gpu)
    assert torch.cuda.memory_allocated(gpu) <= before + (8 << 20)
    # The predictor is usable at once after a cancel.
    assert predictor.predict(image[:512, :512], settings).labels.shape == (512, 512)
