"""DiAD's anomaly map and image score (Eq. 8-9 and the implementation details).

Map: the sum over backbone scales of ``1 - cos(f_n(x0), f_n(x̂0))`` (cosine over
channels), each upsampled to the image size, then Gaussian-smoothed (the paper uses
sigma 5 at 256²). Image score: the maximum of the map after repeated 8x8 average
pooling (stride 1; 8 rounds in the paper), which rewards coherent regions over
isolated hot pixels.

Pure PyTorch: no kedro, mlflow or accelerate import.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# one Gaussian smoothing for every method's maps (anomalib's kernel-size rule)
from kedro_ad.models.maps import gaussian_blur, resize_maps

__all__ = ["AnomalyMapper", "copy_ratio", "gaussian_blur", "pooled_max_score"]


def pooled_max_score(
    maps: torch.Tensor, kernel: int = 8, rounds: int = 8
) -> torch.Tensor:
    """Image scores: max of the map after ``rounds`` stride-1 average poolings.

    Rounds stop early when the map would become smaller than the kernel.
    """
    pooled = maps[:, None]
    for _ in range(int(rounds)):
        if min(pooled.shape[-2:]) < kernel:
            break
        pooled = F.avg_pool2d(pooled, kernel, stride=1)
    return pooled.flatten(1).amax(dim=1)


class AnomalyMapper(nn.Module):
    """Feature-space comparison of an input and its reconstruction.

    Args:
        backbone: a frozen multi-scale feature extractor taking ``[0, 1]`` RGB
            (``kedro_ad.models.backbones.FeatureExtractor``).
        sigma: Gaussian smoothing of the map, in pixels of the compared images.
        pool_kernel: average-pooling window of the image score.
        pool_rounds: how many poolings precede the max.
        feature_size: side both images are resized to before the backbone (and of
            the returned maps); ``None`` keeps the input size. Small reconstructions
            (64²) give finer maps when the backbone sees them enlarged.
    """

    def __init__(
        self,
        backbone: nn.Module,
        sigma: float = 5.0,
        pool_kernel: int = 8,
        pool_rounds: int = 8,
        feature_size: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.sigma = float(sigma)
        self.pool_kernel = int(pool_kernel)
        self.pool_rounds = int(pool_rounds)
        self.feature_size = int(feature_size) if feature_size else None

    def _at_feature_size(self, images: torch.Tensor) -> torch.Tensor:
        if self.feature_size and images.shape[-1] != self.feature_size:
            side = (self.feature_size, self.feature_size)
            return F.interpolate(
                images, size=side, mode="bilinear", align_corners=False
            )
        return images

    @torch.no_grad()
    def distance_maps(
        self, images: torch.Tensor, reconstructions: torch.Tensor
    ) -> torch.Tensor:
        """Smoothed ``sum_n 1 - cos(f_n(a), f_n(b))`` maps ``[B, H, W]`` of two
        ``[B, 3, H, W]`` batches (``[B, feature_size, feature_size]`` when set)."""
        if images.shape != reconstructions.shape:
            raise ValueError(
                f"images {tuple(images.shape)} and reconstructions "
                f"{tuple(reconstructions.shape)} differ in shape"
            )
        images = self._at_feature_size(images)
        reconstructions = self._at_feature_size(reconstructions)
        size = tuple(images.shape[-2:])
        feats = self.backbone(torch.cat([images, reconstructions]))
        maps = images.new_zeros(images.shape[0], *size)
        for f in feats:
            a, b = f.float().chunk(2)
            maps = maps + resize_maps(1 - F.cosine_similarity(a, b, dim=1), size)
        return gaussian_blur(maps, self.sigma)

    def image_scores(self, maps: torch.Tensor) -> torch.Tensor:
        """The image score of each map: max after the paper's average poolings."""
        return pooled_max_score(maps, self.pool_kernel, self.pool_rounds)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` unit-length, globally pooled deepest features: what tells the
        classes apart when a served image comes without its class name."""
        feats = self.backbone(self._at_feature_size(images))[-1].float()
        return F.normalize(feats.mean(dim=(-2, -1)), dim=1)

    @torch.no_grad()
    def forward(
        self, images: torch.Tensor, reconstructions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``[B]`` and maps of ``[B, 3, H, W]`` images (see
        :meth:`distance_maps` and :meth:`image_scores`)."""
        maps = self.distance_maps(images, reconstructions)
        return self.image_scores(maps), maps


def copy_ratio(
    recon_defective: torch.Tensor,
    recon_clean: torch.Tensor,
    defective: torch.Tensor,
    clean: torch.Tensor,
    masks: Any,
) -> float:
    """How much of a defect a reconstruction lets through, pooled over images:
    ``sum ||x̂(defective) - x̂(clean)||_mask / sum ||defective - clean||_mask``.

    1 means the reconstruction copies the defect, 0 that it repairs it. With the
    autoencoder's reconstructions ``D(E(.))`` as ``defective`` and ``clean``, the
    ratio is relative to what the autoencoder itself passes.

    Args:
        recon_defective, recon_clean: ``[B, 3, H, W]`` reconstructions of the
            defective images and of their clean twins (same noise).
        defective, clean: ``[B, 3, H, W]`` the images (or their references).
        masks: ``[B, H, W]`` defect masks (bool numpy or tensor).
    """
    m = torch.as_tensor(np.asarray(masks), dtype=torch.float32)[:, None]
    num = ((recon_defective - recon_clean) * m).pow(2).sum(dim=(1, 2, 3)).sqrt()
    den = ((defective - clean) * m).pow(2).sum(dim=(1, 2, 3)).sqrt()
    return float(num.sum() / den.sum().clamp_min(1e-12))
