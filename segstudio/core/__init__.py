"""Pixel data, labels, edits, history and storage: numpy and OpenCV only (no Qt, no torch)."""
