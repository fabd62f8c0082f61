"""From DiffusionAD's averaged masks to image scores (Algorithm 2, last line)."""

from __future__ import annotations

import torch

__all__ = ["image_scores", "top_k_for"]


def top_k_for(height: int, width: int, k_at_256: int = 50) -> int:
    """K of the top-K image score, scaled with the pixel count (50 at 256 x 256).

    The paper and its code average the 50 highest pixels of a 256² map; keeping the
    same fraction of the image (0.076 %) makes the score mean the same thing at
    other resolutions. At least one pixel.
    """
    return max(1, round(k_at_256 * height * width / 256**2))


def image_scores(maps: torch.Tensor, top_k: int) -> torch.Tensor:
    """Mean of the ``top_k`` highest pixels of each map ([B, H, W] -> [B])."""
    flat = maps.flatten(1)
    k = min(int(top_k), flat.shape[1])
    return flat.topk(k, dim=1).values.mean(dim=1)
