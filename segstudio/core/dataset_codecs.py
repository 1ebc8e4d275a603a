"""Encoding the files of a dataset folder and of its nnU-Net export: lossless TIFF, PNG and TIFF planes."""
from __future__ import annotations

from io import BytesIO

import cv2
import numpy as np
import tifffile


class EncodingError(ValueError):
    """An encoder refused the data; dataset.py reports it as a DatasetError."""


def tiff_bytes(pixels_hwc: np.ndarray) -> bytes:
    c = pixels_hwc.shape[2]
    buf = BytesIO()
    if c == 1:
        tifffile.imwrite(buf, pixels_hwc[:, :, 0], photometric="minisblack", compression="zlib")
    elif c == 3 and pixels_hwc.dtype in (np.uint8, np.uint16):
        tifffile.imwrite(buf, pixels_hwc, photometric="rgb", compression="zlib")
    else:
        tifffile.imwrite(buf, pixels_hwc, photometric="minisblack", planarconfig="contig", compression="zlib")
    return buf.getvalue()


def encode_png(plane: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(plane))
    if not ok:
        raise EncodingError(f"PNG encoding failed for a {plane.dtype} plane of shape {plane.shape}")
    return buf.tobytes()


def encode_tif(plane: np.ndarray) -> bytes:
    buf = BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(plane), photometric="minisblack", compression="zlib")
    return buf.getvalue()
