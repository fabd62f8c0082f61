"""The inference pipeline: a folder of new images scored by a registered model."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
