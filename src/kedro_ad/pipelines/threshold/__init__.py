"""The decision threshold of a method, chosen on synthetic_validation (a template)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
