"""A tiny U-Net in the user's model library and a tiny exported dataset, for the fine-tuning tests."""
from __future__ import annotations

import hashlib

import numpy as np

CLASSES = [{"id": 0, "name": "background", "color": [0, 0, 0]}, {"id": 1, "name": "nucleus", "color": [255, 0, 0]}]


def save_tiny_unet(name="blobs", version=1, *, activate=True) -> str:
    import torch

    from segstudio.core.paths import user_models_dir
    from segstudio.models.checkpoint import ModelMeta, save_checkpoint
    from segstudio.models.library import ModelLibrary
    from segstudio.models.registry import build_model

    torch.manual_seed(version)
    model = build_model("unet", in_channels=1, num_classes=2, depth=2, base_channels=4)
    meta = ModelMeta(name=name, version=version, arch="unet", config=dict(model.config), classes=CLASSES,
                     in_channels=1, parent=f"{name}/v{version - 1}" if version > 1 else None)
    save_checkpoint(user_models_dir() / name / f"v{version}.safetensors", model, meta)
    if activate:
        ModelLibrary().set_active(meta.id)
    return meta.id


def write_dataset(folder, n=8, size=48, seed=3):
    from segstudio.core.dataset import ExportItem, export_many
    from segstudio.core.labels import ClassTable

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    items = []
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        for _ in range(3):
            cy, cx = rng.integers(8, size - 8, size=2)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(4, 8) ** 2] = 1
        pixels = np.clip(rng.normal(300, 60, mask.shape) + mask * 1100.0, 0, 65535).astype(np.uint16)
        items.append(ExportItem(pixels=pixels, mask=mask, source=f"/slides/blob{i}.tif", hand=mask > 0))
    export_many(folder, items, ClassTable.from_list(CLASSES))
    return folder


def user_data_snapshot() -> dict[str, str]:
    from segstudio.core.paths import user_data_dir

    root = user_data_dir()
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
