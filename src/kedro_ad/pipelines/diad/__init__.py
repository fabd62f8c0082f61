"""DiAD and its LDM / DDPM baselines (one pipeline per variant)."""

from .pipeline import create_inference_pipeline, create_pipeline

__all__ = ["create_inference_pipeline", "create_pipeline"]
