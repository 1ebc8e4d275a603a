"""Segmentation networks, feature taps and checkpoints: torch only (no Qt)."""
