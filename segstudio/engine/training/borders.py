"""Border targets for a model with a boundary output, drawn from the dataset's instance maps.

A model whose metadata declares ``objects.boundary_channel`` gives, beside its classes, the probability of a
border between objects (core.objects.instances.boundary_target is what it learns). Fine-tuning teaches that
output from an entry's instance map (``objects/<id>.tif``) when the map says more than the mask does. Export
to Dataset writes objects for every image, but for an image whose objects were never found they are just
the mask's connected patches, where two touching nuclei painted as one patch are one object: borders drawn
from such a map would teach the model that touching nuclei have no border between them, undoing what it
knows. So a map whose borders are those of the mask's own patches teaches no borders; its image trains the
classes only.

The target is drawn after augmentation, on the instance map moved with the mask (nearest neighbour, in the
same ``tv_tensors.Mask`` as the class ids): a border one or two pixels wide, rotated with nearest neighbour,
breaks into dots and drifts off the rotated objects' edges, while borders drawn on the rotated ids lie on
them exactly. A pixel counts only where its whole 3x3 neighbourhood lies inside the crop's valid area (not
padding, not a corner a rotation brought in): boundary_target compares a pixel with those neighbours, and
beyond the valid area it cannot tell an object's edge from the crop's.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from segstudio.core.objects.instances import boundary_target, connected_objects
from segstudio.core.words import count

_NEIGHBOURS = np.ones((3, 3), np.uint8)


def objects_teaching_borders(objects: np.ndarray | None, mask: np.ndarray) -> np.ndarray | None:
    """``objects`` when its borders differ from those of the mask's connected patches (it splits touching
    objects, say); None when it has none, or when it is no more than those patches."""
    if objects is None:
        return None
    ids = np.asarray(objects)
    if np.array_equal(boundary_target(ids), boundary_target(connected_objects(np.asarray(mask)))):
        return None
    return ids


def border_targets(ids: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, counts) of a crop, both float32 (H, W): 1 on object pixels next to another object or the
    background, and 1 where that answer can be trusted (the pixel and its 8 neighbours valid)."""
    values = ids.numpy()
    if int(values.max(initial=0)) >= 2**24:
        # Small numbers for this crop's objects: boundary_target compares ids as float32, exact below 2**24.
        present = np.unique(values)
        values = np.searchsorted(present, values) + (1 if present[0] != 0 else 0)
    target = boundary_target(values.astype(np.int32))
    inside = cv2.erode(valid.numpy().astype(np.uint8), _NEIGHBOURS, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return torch.from_numpy(target.astype(np.float32)), torch.from_numpy(inside.astype(np.float32))


def borders_note(learning: int, images: int) -> str:
    """What the run tells the user about its border output, in plain words."""
    if learning == 0:
        return ("No training image has objects that split touching ones, so the model's border output is left "
                "as it was. To train it, find the objects (View > Object View), correct them, and export the "
                "images again")
    return (f"The border output learns where touching objects meet from {learning} of "
            f"{count(images, 'training image')}: those whose exported objects split touching ones (found or "
            "corrected in View > Object View)")
