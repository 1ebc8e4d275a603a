"""Open images: the Qt adapter over core.document (signals and an undo stack), undo commands, autosave
and crash recovery, and the images panel."""
