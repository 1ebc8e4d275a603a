"""A small pass (the inspector's first look) runs on one torch thread, so a busy machine does not make each
of several threads wait for a core; a full pass keeps torch's threads, and the setting is put back."""
import pytest
import torch

from segstudio.engine.devices import ONE_THREAD_BELOW_PIXELS
from segstudio.engine.inspect import TapInspector
from segstudio.models.registry import build_model
from tests.engine.test_inspect import smooth_image


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize(("side", "mode", "threads"), [(512, "downsample", 1), (512, "crop", 2)])
def test_the_first_look_runs_on_one_thread_and_the_full_pass_on_torchs(two_threads, side, mode, threads):
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4)
    seen = []
    model.register_forward_pre_hook(lambda _module, _inputs: seen.append(torch.get_num_threads()))
    inspector = TapInspector(model, None)
    pixels = smooth_image(side, side)[..., 0]
    region = inspector.plan(pixels.shape, (0, 0, side, side), max_side=192 if mode == "downsample" else side,
                            mode=mode)
    assert (region.input_shape[0] * region.input_shape[1] < ONE_THREAD_BELOW_PIXELS) == (threads == 1)
    inspector.inspect(pixels, region)
    assert seen == [threads]
    assert torch.get_num_threads() == 2
