"""The predictor: progress, cancel, out-of-memory fallback, post-processing, device-side blending."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from segstudio.engine.predict import PredictionCancelled, Predictor, PredictSettings, plan_tiles
from tests.engine.predict.nets import RecordingNet, RunsOutOfMemory, constant_net, small_net, textured_image


# --- progress and cancel -------------------------------------------------------------------------
def test_default_batch_is_one_tile_on_the_cpu_and_four_on_an_accelerator(rng):
    image = textured_image(150, 130, rng)
    on_cpu = RecordingNet(small_net())
    Predictor(on_cpu, device="cpu").predict(image, PredictSettings(tile=32))
    assert {shape[0] for _, shape in on_cpu.calls} == {1}

    chosen = RecordingNet(small_net())
    Predictor(chosen, device="cpu").predict(image, PredictSettings(tile=32, batch=3))
    assert max(shape[0] for _, shape in chosen.calls) == 3

    # "meta" stands in for an accelerator; it fails at any size, so the first try shows the batch it used.
    flaky = RunsOutOfMemory(small_net(), fails_on="meta")
    Predictor(flaky, device=torch.device("meta")).predict(image, PredictSettings(tile=32))
    first_device, first_shape = flaky.calls[0]
    assert first_device == "meta" and first_shape[0] == 4
    assert {shape[0] for device, shape in flaky.calls if device == "cpu"} == {1}  # back to the CPU's default


def test_progress_is_reported_after_every_batch(rng):
    image = textured_image(150, 130, rng)
    calls = []
    settings = PredictSettings(tile=32, batch=4)
    total = plan_tiles(150, 130, 32, 0.25, 32).count
    result = Predictor(small_net(), device="cpu").predict(image, settings, progress=lambda *a: calls.append(a))
    expected_done = list(range(4, total, 4)) + [total]
    assert calls == [(done, total) for done in expected_done]
    assert result.tiles == total


def test_cancel_stops_before_the_next_batch(rng):
    image = textured_image(150, 130, rng)
    net = RecordingNet(small_net())
    polls = []

    def cancel():
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(PredictionCancelled):
        Predictor(net, device="cpu").predict(image, PredictSettings(tile=32, batch=2), cancel=cancel)
    assert len(net.calls) == 2


# --- running out of memory -----------------------------------------------------------------------
def test_out_of_memory_retries_with_smaller_batches(rng):
    image = textured_image(150, 130, rng)
    net = small_net()
    flaky = RunsOutOfMemory(net, max_batch=2)
    result = Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=32, batch=8))
    expected = Predictor(net, device="cpu").predict(image, PredictSettings(tile=32, batch=2))

    assert len(result.notes) == 2
    assert "batches of 8" in result.notes[0] and "batches of 4" in result.notes[0]
    assert "batches of 2" in result.notes[1]
    assert np.array_equal(result.labels, expected.labels)
    np.testing.assert_allclose(result.confidence, expected.confidence, atol=1e-3)


def test_out_of_memory_with_batch_one_retries_with_smaller_tiles(rng):
    image = textured_image(150, 130, rng)
    net = small_net()
    flaky = RunsOutOfMemory(net, max_side=64)
    result = Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=128, batch=2))
    expected = Predictor(net, device="cpu").predict(image, PredictSettings(tile=64, batch=1))

    assert any("64 px tiles in batches of 1" in note for note in result.notes)
    assert flaky.calls[-1][1] == (1, 1, 64, 64)
    assert np.array_equal(result.labels, expected.labels)


def test_out_of_memory_on_an_accelerator_falls_back_to_the_cpu(rng):
    image = textured_image(150, 130, rng)
    net = small_net()
    # "meta" stands in for an accelerator: the wrapper fails there as a full GPU would, at any size.
    flaky = RunsOutOfMemory(net, fails_on="meta")
    predictor = Predictor(flaky, device=torch.device("meta"))
    result = predictor.predict(image, PredictSettings(tile=128, batch=4))
    expected = Predictor(net, device="cpu").predict(image, PredictSettings(tile=128, batch=4))

    assert result.device == "cpu"
    assert "on cpu" in result.notes[-1]
    tried = [(device, shape[0], shape[-1]) for device, shape in flaky.calls if device == "meta"]
    assert [(b, side) for _, b, side in tried] == [(4, 128), (2, 128), (1, 128), (1, 64)]
    assert np.array_equal(result.labels, expected.labels)
    assert predictor.device == torch.device("meta")  # later calls try the accelerator again


def test_out_of_memory_everywhere_is_raised_not_swallowed(rng):
    image = textured_image(150, 130, rng)
    flaky = RunsOutOfMemory(small_net(), max_batch=0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=128, batch=2))
    assert [shape[0] for _, shape in flaky.calls] == [2, 1, 1]


def test_out_of_memory_runtime_error_from_other_backends_is_recognised(rng):
    image = textured_image(100, 100, rng)
    flaky = RunsOutOfMemory(small_net(), max_batch=1, error=RuntimeError,
                            message="MPS backend out of memory (MPS allocated: 8.00 GB)")
    result = Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=32, batch=2))
    assert result.labels.shape == (100, 100) and len(result.notes) == 1


def test_other_errors_are_not_retried(rng):
    image = textured_image(100, 100, rng)
    flaky = RunsOutOfMemory(small_net(), max_batch=0, error=RuntimeError, message="expected input channels")
    with pytest.raises(RuntimeError, match="expected input channels"):
        Predictor(flaky, device="cpu").predict(image, PredictSettings(tile=32, batch=2))
    assert len(flaky.calls) == 1


class RingNet(nn.Module):
    """Foreground is a ring with a 2x2 pinhole in the middle and a lone speck: what networks leave."""

    def forward(self, x):
        n, _, h, w = x.shape
        fg = torch.zeros((n, 1, h, w))
        fg[:, :, 8:20, 8:20] = 1.0
        fg[:, :, 13:15, 13:15] = 0.0
        fg[:, :, 2, 28] = 1.0
        return torch.cat([1.0 - fg, fg], dim=1) * 10.0


def test_the_models_postprocess_rules_clean_the_labels(rng):
    from types import SimpleNamespace

    image = rng.random((32, 32, 1)).astype(np.float32)
    plain = SimpleNamespace(in_channels=1, normalisation={"kind": "none"}, classes=[])
    raw = Predictor(RingNet(), plain, device="cpu").predict(image, PredictSettings(tile=32)).labels
    assert raw[13, 13] == 0 and raw[2, 28] == 1
    meta = SimpleNamespace(**vars(plain), postprocess={"fill_holes_px": 16, "min_object_px": 3})
    cleaned = Predictor(RingNet(), meta, device="cpu").predict(image, PredictSettings(tile=32)).labels
    assert cleaned[13, 13] == 1 and cleaned[2, 28] == 0
    np.testing.assert_array_equal(cleaned[8:20, 8:20], 1)


# --- blending where the network runs (GPUs) ------------------------------------------------------------
@pytest.mark.parametrize("band_limit", [None, 0])
def test_device_side_blending_gives_the_host_result(rng, monkeypatch, band_limit):
    """The GPU path (band of sums and summaries on the device) run on CPU tensors, against the host path.

    With a zero band limit the first batch has already run on the device when the engine learns that the
    band will not fit, and it must carry on on the host.
    """
    from segstudio.engine.predict import outputs, predictor

    image = textured_image(203, 171, rng)
    meta = SimpleNamespace(in_channels=1, normalisation={"kind": "percentile", "low": 1.0, "high": 99.8},
                           classes=[{"id": 0, "name": "background"}, {"id": 4, "name": "a"},
                                    {"id": 7, "name": "b"}])
    net = small_net(classes=3)
    settings = PredictSettings(tile=64, overlap=0.3, batch=3)
    host = Predictor(net, meta, device="cpu").predict(image, settings)
    host_bands = list(Predictor(net, meta, device="cpu").iter_probabilities(image, settings))

    monkeypatch.setattr(predictor, "_blend_on_device", lambda device: True)
    if band_limit is not None:
        monkeypatch.setattr(predictor, "_DEVICE_BAND_BYTES", band_limit)
    summaries = []
    summarise = outputs._summarise_tensor
    monkeypatch.setattr(outputs, "_summarise_tensor", lambda *a: summaries.append(1) or summarise(*a))
    device = Predictor(net, meta, device="cpu").predict(image, settings)
    assert bool(summaries) == (band_limit is None)  # which path ran
    device_bands = list(Predictor(net, meta, device="cpu").iter_probabilities(image, settings))

    assert device.labels.dtype == host.labels.dtype == np.uint8
    assert set(np.unique(device.labels)) <= {0, 4, 7}
    # Probabilities agree to float32 rounding; a pixel whose top two classes tie that closely may differ.
    assert (device.labels == host.labels).mean() > 0.999
    np.testing.assert_allclose(device.confidence.astype(np.float32), host.confidence.astype(np.float32),
                               atol=1e-3)
    np.testing.assert_allclose(device.uncertainty.astype(np.float32), host.uncertainty.astype(np.float32),
                               atol=2e-3)
    stacked = lambda bands: np.concatenate([probs for _, probs in bands], axis=1)  # noqa: E731
    assert [row for row, _ in device_bands][0] == 0
    np.testing.assert_allclose(stacked(device_bands), stacked(host_bands), atol=1e-5)
    assert stacked(device_bands).shape == (3, 203, 171)


def test_device_side_blending_with_more_than_255_classes(rng, monkeypatch):
    from segstudio.engine.predict import predictor

    monkeypatch.setattr(predictor, "_blend_on_device", lambda device: True)
    logits = [0.0] * 300
    logits[280] = 5.0
    result = Predictor(constant_net(logits), device="cpu").predict(textured_image(20, 30, rng))
    assert result.labels.dtype == np.uint16 and np.all(result.labels == 280)
    meta = SimpleNamespace(in_channels=1, normalisation={"kind": "none"},
                           classes=[{"id": 1000 + i, "name": f"c{i}"} for i in range(300)])
    named = Predictor(constant_net(logits), meta, device="cpu").predict(textured_image(20, 30, rng))
    assert named.labels.dtype == np.uint16 and np.all(named.labels == 1280)


def test_warm_up_runs_the_shapes_a_prediction_will_use_on_an_accelerator_only():
    """Warming the model for a GPU runs blank tiles of the tile size in the batch sizes a prediction uses
    (a full batch and the single tile a remainder may leave), so each shape's one-off cost is paid once,
    before the user's Predict; on the CPU there is nothing to gain and nothing runs."""
    on_cpu = RecordingNet(small_net())
    Predictor(on_cpu, device="cpu").warm_up(PredictSettings(tile=96, batch=3))
    assert on_cpu.calls == []
    accelerator = RecordingNet(small_net())
    Predictor(accelerator, device=torch.device("meta")).warm_up(PredictSettings(tile=100, batch=3, amp=False))
    assert sorted(accelerator.calls) == [("meta", (1, 1, 96, 96)), ("meta", (3, 1, 96, 96))]


@pytest.mark.parametrize("shape", [(203, 171), (40, 300), (700, 90)])
def test_tiles_cut_from_rows_on_the_device_give_the_hosts_result(rng, monkeypatch, shape):
    """On a GPU each row of tiles is uploaded once as stored pixels, scaled there and cut into tiles there
    (run here on CPU tensors): the same network input, so the same result, as tiles cut on the host, at
    mirrored edges, images narrower than a tile and batches that span two rows included."""
    from segstudio.engine.predict import predictor as predictor_module

    image = (rng.random((*shape, 1)) * 4000 + 100).astype(np.uint16)
    settings = PredictSettings(tile=64, overlap=0.25, batch=3)
    meta = SimpleNamespace(in_channels=1, normalisation={"kind": "percentile", "low": 1.0, "high": 99.8},
                           classes=[])
    net = small_net()
    host = Predictor(net, meta, device="cpu").predict(image, settings)
    monkeypatch.setattr(predictor_module, "_cut_on_device", lambda device: True)
    uploads = []
    real = predictor_module._scaled_on_device
    monkeypatch.setattr(predictor_module, "_scaled_on_device",
                        lambda source, raw, device: uploads.append(raw.shape) or real(source, raw, device))
    device = Predictor(net, meta, device="cpu").predict(image, settings)
    plan = plan_tiles(*shape, 64, 0.25, 32)
    assert len(uploads) == len(plan.rows)  # one upload per row of tiles, not one per tile
    assert all(raw[-1] == plan.padded_w and raw[-2] == plan.tile_h for raw in uploads)
    np.testing.assert_array_equal(device.labels, host.labels)
    np.testing.assert_allclose(device.confidence.astype(np.float32), host.confidence.astype(np.float32), atol=1e-3)
