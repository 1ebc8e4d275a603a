"""Long-running work (prediction, training) with progress callbacks and cancel: no Qt."""
