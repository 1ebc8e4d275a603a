"""Reading slide and microscope images, and showing them on screen.

read.py is the entry point for every format (raster.py: PNG, JPEG, BMP; tiff.py: TIFF); every failure
is one ImageReadError (types.py) naming the file and the reason; whole-slide images (slide.py) open
lazily as a Slide read a region of one level at a time (open_image picks). display.py turns pixels of any type
into a picture for the screen.
"""
from segstudio.core.imageio.display import (
    DisplayPicture,
    percentile_bounds,
    percentile_normalize,
    to_display_picture,
    to_display_rgb,
)
from segstudio.core.imageio.read import is_whole_slide, open_image, probe_image, read_image
from segstudio.core.imageio.slide import Slide, SlideInfo, SlideLevel, slide_info
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
    "Slide",
    "SlideInfo",
    "SlideLevel",
    "is_whole_slide",
    "open_image",
    "percentile_bounds",
    "percentile_normalize",
    "probe_image",
    "read_image",
    "slide_info",
    "to_display_picture",
    "to_display_rgb",
]
