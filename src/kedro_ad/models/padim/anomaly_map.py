"""PaDiM's distance and map: Mahalanobis distance per position, upsampled, smoothed.

Pure PyTorch. Follows anomalib's ``AnomalyMapGenerator`` for PaDiM: the distance is
computed on the stride-4 grid, upsampled bilinearly to the image size and blurred
with a Gaussian of sigma 4 (kernel ``2 * int(4 * sigma + 0.5) + 1``, reflect
padding); the image score is the maximum of the map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mahalanobis_sq(
    embedding: torch.Tensor, mean: torch.Tensor, inv_covariance: torch.Tensor
) -> torch.Tensor:
    """Squared Mahalanobis distance of every position's embedding to its Gaussian.

    Args:
        embedding: ``[B, d, h, w]`` features.
        mean: ``[B, h * w, d]`` or ``[h * w, d]`` means (per image's class or shared).
        inv_covariance: ``[B, h * w, d, d]`` or ``[h * w, d, d]``.

    Returns:
        ``[B, h, w]`` squared distances (differentiable in ``embedding``).
    """
    b, d, h, w = embedding.shape
    delta = embedding.flatten(2).transpose(1, 2) - mean  # [B, P, d]
    if inv_covariance.ndim == 3:
        dist = torch.einsum("bpd,pde,bpe->bp", delta, inv_covariance, delta)
    else:
        dist = torch.einsum("bpd,bpde,bpe->bp", delta, inv_covariance, delta)
    return dist.reshape(b, h, w)


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian with anomalib's size rule ``2 * int(4s + 0.5) + 1``."""
    radius = int(4.0 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[B, H, W]`` maps with reflect padding."""
    if sigma <= 0:
        return maps
    kernel = gaussian_kernel1d(sigma).to(maps)
    radius = (len(kernel) - 1) // 2
    x = maps.unsqueeze(1)
    # reflect padding needs pad < size; fall back to replicate for tiny maps
    mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    x = F.pad(x, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.squeeze(1)


def upsample_maps(
    maps: torch.Tensor, size: tuple[int, int] | int, sigma: float = 0.0
) -> torch.Tensor:
    """Bilinear upsampling of ``[B, h, w]`` maps to ``size``, then Gaussian blur."""
    if isinstance(size, int):
        size = (size, size)
    out = F.interpolate(
        maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False
    ).squeeze(1)
    return gaussian_blur(out, sigma)
