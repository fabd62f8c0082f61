"""The evaluation pipeline, and the side-by-side comparison of methods."""

from .pipeline import create_comparison_pipeline, create_pipeline

__all__ = ["create_comparison_pipeline", "create_pipeline"]
