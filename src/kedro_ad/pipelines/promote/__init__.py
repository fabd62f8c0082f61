"""The promote pipeline: move the ``champion`` alias to a better model version."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
