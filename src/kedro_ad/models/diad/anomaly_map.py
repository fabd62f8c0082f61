"""DiAD's anomaly map and image score (Eq. 8-9 and the implementation details).

Map: the sum over backbone scales of ``1 - cos(f_n(x0), f_n(x̂0))`` (cosine over
channels), each upsampled to the image size, then Gaussian-smoothed (the paper uses
sigma 5 at 256²). Image score: the maximum of the map after repeated 8x8 average
pooling (stride 1; 8 rounds in the paper), which rewards coherent regions over
isolated hot pixels.

Pure PyTorch: no kedro, mlflow or accelerate import.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# one Gaussian smoothing for every method's maps (anomalib's kernel-size rule)
from kedro_ad.models.maps import gaussian_blur

__all__ = ["AnomalyMapper", "gaussian_blur", "pooled_max_score"]


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

    @torch.no_grad()
    def forward(
        self, images: torch.Tensor, reconstructions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``[B]`` and maps of ``[B, 3, H, W]`` images.

        Maps are ``[B, H, W]``, or ``[B, feature_size, feature_size]`` when set.
        """
        if images.shape != reconstructions.shape:
            raise ValueError(
                f"images {tuple(images.shape)} and reconstructions "
                f"{tuple(reconstructions.shape)} differ in shape"
            )
        if self.feature_size and images.shape[-1] != self.feature_size:
            side = (self.feature_size, self.feature_size)
            images, reconstructions = (
                F.interpolate(v, size=side, mode="bilinear", align_corners=False)
                for v in (images, reconstructions)
            )
        size = images.shape[-2:]
        feats = self.backbone(torch.cat([images, reconstructions]))
        maps = images.new_zeros(images.shape[0], *size)
        for f in feats:
            a, b = f.float().chunk(2)
            dist = 1 - F.cosine_similarity(a, b, dim=1)
            maps = (
                maps
                + F.interpolate(
                    dist[:, None], size=size, mode="bilinear", align_corners=False
                )[:, 0]
            )
        maps = gaussian_blur(maps, self.sigma)
        return pooled_max_score(maps, self.pool_kernel, self.pool_rounds), maps
