"""PaDiM (Defard et al., 2020): a Gaussian per feature-map position, pure PyTorch.

The embedding of an image is the concatenation of the backbone's layers (1, 2, 3)
upsampled (nearest) to the stride-4 grid, reduced to a random subset of ``d``
channels (PaDiM's memory saving; anomalib's ``n_features``). Fitting keeps running
sums (float64) of the embeddings and of their outer products per position, so
memory does not grow with the number of training images (anomalib stores every
embedding); the covariance gets ``eps * I`` (0.01 in PaDiM) and is inverted once.

One Gaussian per position *per class*: PaDiM's protocol is one model per category,
so a "unified" PaDiM would only be the per-class models stored side by side; the
class of each image picks its Gaussians. ``mahalanobis_loss`` is differentiable in
the image: RAN's gradient-denoising reconstruction descends it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from kedro_ad.models.backbones import FeatureExtractor
from kedro_ad.models.common import class_ids
from kedro_ad.models.maps import resize_maps, to_unit_images

from .anomaly_map import mahalanobis_sq

logger = logging.getLogger(__name__)
_INVERT_CHUNK = 256  # positions whose covariances are inverted together


def select_channels(total: int, d: int, seed: int) -> np.ndarray:
    """PaDiM's random channel subset: ``d`` of ``total`` indices, sorted, seeded."""
    if not 0 < d <= total:
        raise ValueError(f"padim: n_features {d} must be in 1..{total}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=d, replace=False)).astype(np.int64)


class PadimModel(nn.Module):
    """Per-class multivariate Gaussians over a frozen backbone's embeddings.

    Attributes:
        extractor: the frozen backbone (``backbones.build_backbone``).
        channel_index: ``[d]`` indices into the concatenated layer channels.
        class_names: one Gaussian set per name, in this order.
        mean: ``[C, P, d]`` (``P = h * w`` of the stride-4 grid), after :meth:`fit`.
        inv_covariance: ``[C, P, d, d]`` float32, after :meth:`fit`.
    """

    def __init__(
        self,
        extractor: FeatureExtractor,
        channel_index: Sequence[int],
        class_names: Sequence[str],
        image_size: int,
        sigma: float = 4.0,
        eps: float = 0.01,
    ) -> None:
        super().__init__()
        self.extractor = extractor
        self.register_buffer(
            "channel_index",
            torch.as_tensor(np.asarray(channel_index), dtype=torch.long),
        )
        self.class_names = [str(c) for c in class_names]
        self.image_size = int(image_size)
        self.sigma = float(sigma)
        self.eps = float(eps)
        self.register_buffer("mean", torch.empty(0))
        self.register_buffer("inv_covariance", torch.empty(0))
        # split the global channel index into one index per layer (select early,
        # upsample only the kept channels)
        bounds = np.cumsum([0, *extractor.out_channels])
        index = np.asarray(channel_index)
        self._per_layer = [
            torch.as_tensor(index[(index >= lo) & (index < hi)] - lo)
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    @property
    def n_features(self) -> int:
        """``d``: channels of the embedding."""
        return int(self.channel_index.numel())

    def embed(self, images: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
        """Embeddings ``[B, d, H/4, W/4]`` of RGB images in ``[0, 1]``.

        ``differentiable=True`` keeps the graph back to ``images`` (the extractor's
        weights stay frozen); its forward is otherwise under ``no_grad``.
        """
        if differentiable:
            ext = self.extractor
            x = (images - ext.mean) / ext.std
            feats = list(ext.body(x))
        else:
            feats = self.extractor(images)
        size = feats[0].shape[-2:]
        parts = []
        for feat, idx in zip(feats, self._per_layer, strict=True):
            if idx.numel() == 0:
                continue
            feat = feat[:, idx.to(feat.device)]
            if feat.shape[-2:] != size:
                feat = F.interpolate(feat, size=size, mode="nearest")
            parts.append(feat)
        return torch.cat(parts, dim=1)

    def class_ids(
        self, classes: Sequence[str] | np.ndarray | None, n: int
    ) -> torch.Tensor:
        """Indices of ``classes`` in :attr:`class_names` (``None``: one-class model)."""
        return class_ids(classes, self.class_names, n, "padim")

    @torch.no_grad()
    def fit(
        self,
        images_per_class: Sequence[torch.Tensor | np.ndarray],
        batch_size: int = 16,
        progress: bool = True,
    ) -> None:
        """Fit one Gaussian per position for each class from its training images.

        Args:
            images_per_class: one ``[N, 3, S, S]`` float tensor in ``[0, 1]`` (or a
                uint8 ``[N, S, S, 3]`` array) per entry of :attr:`class_names`.
            batch_size: images per backbone pass.
            progress: show a tqdm bar per class.
        """
        if len(images_per_class) != len(self.class_names):
            raise ValueError("padim: one image stack per class is needed")
        means: list[torch.Tensor] = []
        inverses: torch.Tensor | None = None
        for k, (name, images) in enumerate(
            zip(self.class_names, images_per_class, strict=True)
        ):
            images = to_unit_images(images, self.image_size)
            n = len(images)
            if n < 2:
                raise ValueError(f"padim: class {name} needs >= 2 training images")
            total = sq = shift = None
            for start in tqdm(
                range(0, n, batch_size),
                desc=f"PaDiM {name}",
                disable=not progress,
                leave=False,
            ):
                emb = self.embed(images[start : start + batch_size])
                emb = emb.flatten(2).permute(2, 0, 1).double()  # [P, b, d]
                if shift is None:  # shifted sums keep float64 cancellation small
                    shift = emb.mean(dim=1, keepdim=True)
                    total = torch.zeros_like(shift[:, 0])
                    sq = torch.zeros(
                        emb.shape[0], emb.shape[2], emb.shape[2], dtype=torch.float64
                    )
                centred = emb - shift
                total += centred.sum(dim=1)
                sq += centred.transpose(1, 2) @ centred
            mu = total / n
            positions, d = mu.shape
            if inverses is None:  # one float32 block for every class, filled in place
                inverses = torch.empty(len(self.class_names), positions, d, d)
            eye = self.eps * torch.eye(d, dtype=torch.float64)
            for lo in range(0, positions, _INVERT_CHUNK):  # bounded float64 temporaries
                hi = lo + _INVERT_CHUNK
                m = mu[lo:hi]
                cov = (sq[lo:hi] - n * m.unsqueeze(2) * m.unsqueeze(1)) / (n - 1)
                inverses[k, lo:hi] = torch.linalg.inv(cov + eye).float()
            means.append((mu + shift[:, 0]).float())
            del sq
        self.mean = torch.stack(means)
        self.inv_covariance = inverses
        logger.info(
            "PaDiM fitted %d classes: %d positions x %d features each",
            len(self.class_names),
            self.mean.shape[1],
            self.n_features,
        )

    def distance_maps(
        self,
        images: torch.Tensor,
        class_ids: torch.Tensor,
        differentiable: bool = False,
    ) -> torch.Tensor:
        """Squared Mahalanobis distances ``[B, H/4, W/4]`` on the feature grid."""
        if self.mean.numel() == 0:
            raise RuntimeError("padim: the model is not fitted")
        emb = self.embed(images, differentiable=differentiable)
        if emb.shape[-2] * emb.shape[-1] != self.mean.shape[1]:
            raise ValueError(
                f"padim: images of size {tuple(images.shape[-2:])} give a "
                f"{tuple(emb.shape[-2:])} grid; the model was fitted at "
                f"{self.image_size}px"
            )
        return mahalanobis_sq(emb, self.mean[class_ids], self.inv_covariance[class_ids])

    def mahalanobis_loss(
        self, images: torch.Tensor, class_ids: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 12 of RAN: the summed squared distance over positions, per image."""
        return (
            self.distance_maps(images, class_ids, differentiable=True).flatten(1).sum(1)
        )

    @torch.no_grad()
    def forward(
        self, images: torch.Tensor, class_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores (map maxima) and maps ``[B, S, S]`` (distance, not squared)."""
        dist = self.distance_maps(images, class_ids).clamp_min(0).sqrt()
        maps = resize_maps(dist, images.shape[-2:], self.sigma)
        return maps.flatten(1).amax(1), maps
