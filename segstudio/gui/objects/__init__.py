"""Objects in the window: the object view, the object tools, the measurements table and importing objects."""
