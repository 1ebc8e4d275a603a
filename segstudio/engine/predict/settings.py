"""How an image is tiled and run: the settings a caller may change, each default with its reason."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ProgressCallback = Callable[[int, int], None]
CancelCallback = Callable[[], bool]


@dataclass
class PredictSettings:
    tile: int = 512
    overlap: float = 0.25
    # Tiles per forward pass; 0 picks for the device: 4 on a GPU, 1 on the CPU, where batching gains nothing
    # (measured: the same time per tile) but multiplies the memory for activations and the wait for Cancel.
    batch: int = 0
    device: str = "auto"
    amp: bool = True
    # Tile sizes and positions are multiples of this, the total stride of the usual networks, so every
    # tile meets the same pooling grid as a whole-image pass would (and odd sizes pad cleanly).
    align: int = 32
    # Gaussian blending window: sigma as a fraction of the tile side (MONAI and nnU-Net use 1/8).
    sigma_scale: float = 0.125
    # How the image becomes the network's input, instead of the model's own definition (its metadata's
    # "input"): {"kind": "he"} sends an H&E slide to a fluorescence model as its hematoxylin channel.
    model_input: dict | None = None

    def validate(self) -> None:
        if int(self.tile) < 1:
            raise ValueError(f"tile must be at least 1 pixel, got {self.tile}")
        if not 0.0 <= float(self.overlap) < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if int(self.batch) < 0:
            raise ValueError(f"batch must be at least 1 (or 0 to pick for the device), got {self.batch}")
        if int(self.align) < 1:
            raise ValueError(f"align must be at least 1, got {self.align}")
        if not float(self.sigma_scale) > 0.0:
            raise ValueError(f"sigma_scale must be positive, got {self.sigma_scale}")

    def aligned_tile(self) -> int:
        """The tile side rounded down to a multiple of `align` (and at least `align`)."""
        align = int(self.align)
        return max(align, int(self.tile) // align * align)

    def batch_for(self, device_type: str) -> int:
        """Tiles per forward pass on a device of this type ("cpu", "cuda", "mps", ...)."""
        if int(self.batch) >= 1:
            return int(self.batch)
        return 1 if device_type == "cpu" else 4
