"""Images, documents, labels, edits, stroke merging, storage, autosave and datasets.

numpy and OpenCV only (no Qt, no torch).
"""
