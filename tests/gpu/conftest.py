"""Tests that need an NVIDIA GPU. Without CUDA every test here is skipped (CI has no GPU); on a GPU machine
`pytest tests/gpu` runs the engine, training, inspector and window paths on the real device."""
from __future__ import annotations

import pytest
import torch

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(cuda_only)


@pytest.fixture
def gpu():
    """The first CUDA device, with its memory cap lifted and its cache emptied after the test."""
    device = torch.device("cuda", 0)
    torch.cuda.synchronize(device)
    yield device
    torch.cuda.set_per_process_memory_fraction(1.0, device)
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()


@pytest.fixture
def nuclei_model():
    """The bundled nuclei U-Net on the CPU, with its metadata, as the window loads it."""
    from segstudio.models.library import ModelLibrary

    return ModelLibrary().load("nuclei-unet", device="cpu")


@pytest.fixture
def nuclei_image():
    """A generated 16-bit fluorescence field of 700 x 1100 px (several tiles, uneven edges) and its truth."""
    from segstudio.synth.nuclei import generate_nuclei_image

    image, mask, _ = generate_nuclei_image(11, height=700, width=1100)
    return image[..., None], mask
