"""PaDiM's distance: the Mahalanobis distance of every position to its Gaussian.

Pure PyTorch. Follows anomalib's ``AnomalyMapGenerator`` for PaDiM: the distance is
computed on the stride-4 grid, then upsampled bilinearly to the image size and
blurred with a Gaussian of sigma 4 by :func:`kedro_ad.models.maps.resize_maps`;
the image score is the maximum of the map.
"""

from __future__ import annotations

import torch


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
