"""Whole-slide images in their own window: tiled viewing, overview, scale bar and labels painted at any zoom."""
