"""segstudio: label biomedical slides with a segmentation network in the loop."""
__version__ = "0.1.0"
