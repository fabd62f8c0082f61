"""The compare pipeline: every method's stored test predictions, per data version."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
