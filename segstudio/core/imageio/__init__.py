"""Reading slide and microscope images, and showing them on screen.

read.py is the entry point for every format (raster.py: PNG, JPEG, BMP; tiff.py: TIFF); every failure
is one ImageReadError (types.py) naming the file and the reason. display.py turns pixels of any type
into a picture for the screen.
"""
from segstudio.core.imageio.display import (
    DisplayPicture,
    percentile_bounds,
    percentile_normalize,
    to_display_picture,
    to_display_rgb,
)
from segstudio.core.imageio.read import probe_image, read_image
from segstudio.core.imageio.types import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    MAX_BYTES_ENV,
    MAX_PIXELS_ENV,
    SUPPORTED_SUFFIXES,
    ImageData,
    ImageMeta,
    ImageReadError,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DisplayPicture",
    "MAX_BYTES_ENV",
    "MAX_PIXELS_ENV",
    "SUPPORTED_SUFFIXES",
    "ImageData",
    "ImageMeta",
    "ImageReadError",
    "percentile_bounds",
    "percentile_normalize",
    "probe_image",
    "read_image",
    "to_display_picture",
    "to_display_rgb",
]
