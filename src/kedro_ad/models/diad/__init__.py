"""DiAD (He et al., AAAI 2024) and its diffusion baselines, in pure PyTorch.

``autoencoder``: the KL autoencoder; ``sg_network`` + ``sff``: the Semantic-Guided
network and its Spatial-aware Feature Fusion block; ``torch_model``: the DiAD, LDM
and DDPM reconstructors; ``anomaly_map``: feature-space maps and image scores.
"""

from .anomaly_map import AnomalyMapper, copy_ratio, gaussian_blur, pooled_max_score
from .sff import SpatialFeatureFusion
from .sg_network import SemanticGuidedNetwork
from .torch_model import (
    KINDS,
    DiffusionReconstructor,
    build_latent_unet,
    build_pixel_unet,
    build_scheduler,
    trainable_parameters,
)

__all__ = [
    "KINDS",
    "AnomalyMapper",
    "DiffusionReconstructor",
    "SemanticGuidedNetwork",
    "SpatialFeatureFusion",
    "copy_ratio",
    "build_latent_unet",
    "build_pixel_unet",
    "build_scheduler",
    "gaussian_blur",
    "pooled_max_score",
    "trainable_parameters",
]
