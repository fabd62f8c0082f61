"""DiffusionAD: one-step denoising diffusion + a segmentation sub-network."""

from .anomaly_map import image_scores, top_k_for
from .loss import binary_focal_loss, diffusionad_loss, sample_timesteps
from .torch_model import (
    DiffusionAD,
    InferenceBatch,
    SegmentationUNet,
    build_denoiser,
    build_scheduler,
    one_step_x0,
)

__all__ = [
    "DiffusionAD",
    "InferenceBatch",
    "SegmentationUNet",
    "binary_focal_loss",
    "build_denoiser",
    "build_scheduler",
    "diffusionad_loss",
    "image_scores",
    "one_step_x0",
    "sample_timesteps",
    "top_k_for",
]
