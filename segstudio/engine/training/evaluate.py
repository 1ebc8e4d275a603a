"""Validation: IoU and Dice per class over whole images, the same way for the parent and the new version; for
a model with a border output, also the Dice of its borders on the checked images that have instance maps."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segstudio.core.objects.instances import boundary_target
from segstudio.engine.predict import Predictor, PredictSettings
from segstudio.engine.predict.predictor import boundary_channel
from segstudio.engine.training.data import LabelledImage
from segstudio.engine.training.errors import TrainingCancelled
from segstudio.engine.training.objective import segmentation_loss

CancelFn = Callable[[], bool]


def metrics_from_confusion(conf: np.ndarray, classes: list[dict], loss_sum: float, loss_n: int,
                            images: int) -> dict:
    """IoU and Dice per class over the whole split (pixels pooled over images).

    mean_iou/mean_dice average the foreground classes that occur in the ground truth or the prediction;
    background only counts when nothing else occurs.
    """
    tp = np.diag(conf).astype(np.float64)
    fp = conf.sum(axis=0) - tp
    fn = conf.sum(axis=1) - tp
    iou: dict[str, float | None] = {}
    dice: dict[str, float | None] = {}
    fg_iou, fg_dice, bg = [], [], None
    for c in classes:
        cid = int(c["id"])
        name = str(c["name"]) if str(c["name"]) not in iou else f"{c['name']} ({cid})"
        if cid >= len(tp):
            iou[name] = dice[name] = None
            continue
        denom = tp[cid] + fp[cid] + fn[cid]
        if denom == 0:
            iou[name] = dice[name] = None
            continue
        iou[name] = float(tp[cid] / denom)
        dice[name] = float(2 * tp[cid] / (2 * tp[cid] + fp[cid] + fn[cid]))
        if cid == 0:
            bg = (iou[name], dice[name])
        else:
            fg_iou.append(iou[name])
            fg_dice.append(dice[name])
    if not fg_iou and bg is not None:
        fg_iou, fg_dice = [bg[0]], [bg[1]]
    return {
        "loss": (loss_sum / loss_n) if loss_n else None,
        "iou": iou,
        "dice": dice,
        "mean_iou": float(np.mean(fg_iou)) if fg_iou else None,
        "mean_dice": float(np.mean(fg_dice)) if fg_dice else None,
        "images": images,
    }


class Evaluator:
    """Validation on whole images: a direct forward (which also gives the loss) for images up to
    `whole_max_pixels`, the tiled Predictor for larger ones (bounded memory, labels only)."""

    def __init__(self, meta, classes: list[dict], num_classes: int, device: torch.device,
                 amp_dtype: torch.dtype | None, whole_max_pixels: int, amp: bool):
        self.meta = meta
        self.classes = classes
        # The classes' outputs: a boundary output declared after them is a border map, not a class.
        self.num_classes = num_classes - (boundary_channel(meta) is not None)
        self.border_output = boundary_channel(meta)
        self.device = device
        self.amp_dtype = amp_dtype
        self.whole_max_pixels = whole_max_pixels
        self.amp = amp
        self._predictor = None

    @torch.no_grad()
    def __call__(self, model: nn.Module, items: list[LabelledImage], cancel: CancelFn | None = None) -> dict:
        model.eval()
        k = self.num_classes
        conf = torch.zeros(k * k, dtype=torch.int64, device=self.device)
        loss_sum, loss_n = 0.0, 0
        borders = [0, 0, 0]  # images, border pixels found on borders, border pixels found plus true
        for item in items:
            if cancel is not None and cancel():
                raise TrainingCancelled
            item = item.loaded(self.whole_max_pixels)  # a chunked image is read now, and let go after
            target = torch.from_numpy(item.labels.astype(np.int64)).to(self.device)
            if item.raw is not None:
                result = self._predictor_for(model).predict(item.raw, self._predict_settings())
                pred = torch.from_numpy(np.asarray(result.labels).astype(np.int64)).to(self.device)
                found = None if result.boundary is None else np.asarray(result.boundary) > 0.5
            else:
                logits = self._forward_whole(model, item.image)
                found = None if self.border_output is None else (logits[0, self.border_output] > 0).cpu().numpy()
                logits = logits[:, :k]
                loss_sum += float(segmentation_loss(logits, target[None]).item())
                loss_n += 1
                pred = logits.argmax(dim=1)[0]
            conf += torch.bincount((target * k + pred.clamp(0, k - 1)).reshape(-1), minlength=k * k)
            if found is not None and item.objects is not None:
                true = boundary_target(item.objects)
                borders = [borders[0] + 1, borders[1] + int(np.count_nonzero(found & true)),
                           borders[2] + int(np.count_nonzero(found)) + int(np.count_nonzero(true))]
        metrics = metrics_from_confusion(conf.reshape(k, k).cpu().numpy(), self.classes, loss_sum, loss_n,
                                         len(items))
        if borders[0]:
            # Dice of the border pixels over the checked images with instance maps (None: no border anywhere).
            metrics["border_dice"] = 2 * borders[1] / borders[2] if borders[2] else None
            metrics["border_images"] = borders[0]
        return metrics

    def _forward_whole(self, model: nn.Module, image: torch.Tensor) -> torch.Tensor:
        # Pad to a multiple of 32 by reflection so every pooling stage sees whole cells, as on tiles.
        _, h, w = image.shape
        x = image[None].to(self.device)
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            logits = model(x)
        return logits[:, :, :h, :w].float()

    def _predictor_for(self, model: nn.Module) -> Predictor:
        if self._predictor is None:
            self._predictor = Predictor(model, self.meta, device=str(self.device))
        return self._predictor

    def _predict_settings(self) -> PredictSettings:
        return PredictSettings(device=str(self.device), amp=self.amp)

