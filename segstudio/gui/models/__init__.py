"""Model > New Model, Import and Export: the user's own models."""
