"""Device choice: CUDA, then MPS, then CPU; overrides that do not exist here fail with a clear message."""
import pytest
import torch
from torch import nn

from segstudio.engine import devices
from segstudio.engine.devices import DeviceUnavailableError, amp_dtype, device_label, pick_device, place_model


@pytest.fixture
def machine(monkeypatch):
    """Pretend the machine has the given CUDA device count and MPS availability."""

    def configure(cuda: int = 0, mps: bool = False, bf16: bool = True):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: f"Test GPU {index}")
        monkeypatch.setattr(devices, "_mps_available", lambda: mps)

    return configure


def test_auto_prefers_cuda_then_mps_then_cpu(machine):
    machine(cuda=2, mps=True)
    assert pick_device("auto") == torch.device("cuda", 0)
    machine(cuda=0, mps=True)
    assert pick_device("auto") == torch.device("mps")
    machine(cuda=0, mps=False)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device() == torch.device("cpu")


def test_overrides_name_a_device(machine):
    machine(cuda=2, mps=True)
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("cuda") == torch.device("cuda", 0)
    assert pick_device("CUDA:1") == torch.device("cuda", 1)
    assert pick_device("mps") == torch.device("mps")


def test_unavailable_cuda_is_an_error_listing_what_exists(machine):
    machine(cuda=0, mps=False)
    with pytest.raises(DeviceUnavailableError, match=r"CUDA is not available.*available: cpu"):
        pick_device("cuda")


def test_missing_cuda_index_is_an_error(machine):
    machine(cuda=1)
    with pytest.raises(DeviceUnavailableError, match="CUDA device 1 does not exist.*1 CUDA device"):
        pick_device("cuda:1")


def test_unavailable_mps_is_an_error(machine):
    machine(cuda=0, mps=False)
    with pytest.raises(DeviceUnavailableError, match="MPS is not available"):
        pick_device("mps")


def test_unknown_device_name_is_an_error(machine):
    machine()
    with pytest.raises(DeviceUnavailableError, match="Unknown device 'tpu'.*auto, cpu, cuda, cuda:N or mps"):
        pick_device("tpu")
    assert issubclass(DeviceUnavailableError, ValueError)


def test_mixed_precision_only_on_cuda(machine):
    machine(cuda=1, bf16=True)
    assert amp_dtype("cuda:0") == torch.bfloat16
    machine(cuda=1, bf16=False)
    assert amp_dtype(torch.device("cuda", 0)) == torch.float16
    assert amp_dtype("cpu") is None
    assert amp_dtype("mps") is None


def test_device_label_for_the_status_bar(machine):
    machine(cuda=2)
    assert device_label(torch.device("cuda", 1)) == "CUDA: Test GPU 1"
    n = torch.get_num_threads()
    assert device_label("cpu") == (f"CPU ({n} threads)" if n != 1 else "CPU (1 thread)")
    assert device_label("mps") == "Apple MPS"


def test_place_model_puts_it_in_eval_mode_on_the_device():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    placed = place_model(model, pick_device("cpu"))
    assert not placed.training
    assert all(p.device.type == "cpu" for p in placed.parameters())


def test_cpu_models_run_in_channels_last_with_the_same_answers():
    """NHWC is faster on CPU (oneDNN); it must not change what the network predicts."""
    from segstudio.engine.devices import place_model, uses_channels_last
    from segstudio.models.registry import build_model

    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        expected = model(x)
    placed = place_model(model, "cpu")
    assert uses_channels_last("cpu")
    conv = next(m for m in placed.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = placed(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
