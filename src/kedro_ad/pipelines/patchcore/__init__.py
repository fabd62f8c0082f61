"""PatchCore through anomalib's own torch model (optional extra ``anomalib``)."""

from .pipeline import create_inference_pipeline, create_pipeline

__all__ = ["create_inference_pipeline", "create_pipeline"]
