"""A small model library on disk for tests: two bundled models and two fine-tuned versions of one."""
import torch

from segstudio.models.checkpoint import ModelMeta, save_checkpoint
from segstudio.models.registry import build_model

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]


def save_tiny(path, name, version, parent=None, seed=0):
    """A 2-level U-Net with 2 base channels (a few hundred weights) saved as `name` v`version`."""
    torch.manual_seed(seed)
    model = build_model("unet", in_channels=1, num_classes=2, base_channels=2, depth=2)
    save_checkpoint(path, model, ModelMeta(name=name, version=version, arch="unet", classes=CLASSES,
                                           parent=parent))


def populate(root):
    """(bundled folder, user folder) under `root`: nuclei-unet v1 and tissue-unet bundled, nuclei-unet v2
    (from v1) and v3 (from v2) fine-tuned by the user."""
    bundled = root / "resources" / "models"
    user = root / "user-models"
    bundled.mkdir(parents=True)
    save_tiny(bundled / "nuclei-unet-v1.safetensors", "nuclei-unet", 1, seed=1)
    save_tiny(bundled / "tissue-unet.safetensors", "tissue-unet", 1, seed=2)
    (user / "nuclei-unet").mkdir(parents=True)
    save_tiny(user / "nuclei-unet" / "v2.safetensors", "nuclei-unet", 2, parent="nuclei-unet/v1", seed=3)
    save_tiny(user / "nuclei-unet" / "v3.safetensors", "nuclei-unet", 3, parent="nuclei-unet/v2", seed=4)
    return bundled, user
