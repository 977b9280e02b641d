"""Base model sources: builtin tiny models built locally, and resolving a
catalog source to a loadable path. Importing this package imports no torch."""

from tuneyard.models.resolve import ModelUnavailable, resolve_model_path

__all__ = ["ModelUnavailable", "resolve_model_path"]
