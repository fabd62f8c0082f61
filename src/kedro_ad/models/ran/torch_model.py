"""RAN (Lu et al., ICCV 2023): denoising diffusion scores over pixels and features.

:class:`RanModel` ties the class-conditioned :class:`RanUNet`, the frozen feature
extractor and a diffusers ``DDPMScheduler`` together:

* training loss: noise MSE (pixel space) + ``feature_weight`` x MSE between the
  predicted and the true (normalised) features of the clean image;
* scoring: at each timestep of ``timesteps`` the image is noised, the pixel KL term
  and the feature error (Eq. 10, ``feature_metric``: MSE or the Mahalanobis distance
  to the training errors' Gaussian) are measured, both are normalised per timestep
  and class (``normalisation``: one mean/std, or per position) with validation
  statistics, and Eq. 11 sums them; the map is upsampled to the input size and
  Gaussian-smoothed; the image score is its maximum.

The UNet runs at ``unet.config.sample_size``; inputs of any size are resized to it
and maps come back at the input size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch import nn
from tqdm.auto import tqdm

from kedro_ad.models.backbones import FeatureExtractor
from kedro_ad.models.maps import map_statistics, resize_images, resize_maps

from .anomaly_map import (
    ensemble,
    feature_mahalanobis_map,
    feature_mse_map,
    fit_residual_gaussian,
    kl_weights,
    pixel_kl_map,
)
from .unet import RanUNet

logger = logging.getLogger(__name__)

#: Eq. 10's distance between the clean image's features and the predicted ones
FEATURE_METRICS = ("mse", "mahalanobis")
#: how each term of Eq. 11 is normalised by normal validation maps
NORMALISATIONS = ("class", "position")


def concat_features(extractor: FeatureExtractor, images: torch.Tensor) -> torch.Tensor:
    """All layers of ``extractor`` upsampled (bilinear) to its first layer's grid."""
    feats = extractor(images)
    size = feats[0].shape[-2:]
    return torch.cat(
        [
            f
            if f.shape[-2:] == size
            else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            for f in feats
        ],
        dim=1,
    )


class RanModel(nn.Module):
    """The trainable UNet plus everything needed to score and repair images.

    The backbone sees the image at ``feature_image_size`` (the dataset's size by
    default), so the feature grid is as fine as PaDiM's; the UNet sees it at its own
    (smaller) ``sample_size`` and pools its feature outputs onto that grid.
    """

    def __init__(
        self,
        unet: RanUNet,
        extractor: FeatureExtractor,
        scheduler: DDPMScheduler,
        timesteps: Sequence[int] = (5, 50, 100),
        alpha: float = 0.5,
        sigma: float = 4.0,
        noise_samples: int = 1,
        normalize_features: bool = False,
        feature_image_size: int | None = None,
        feature_metric: str = "mse",
        normalisation: str = "class",
        residual_channels: Sequence[int] | None = None,
        residual_eps: float = 0.01,
    ) -> None:
        super().__init__()
        if feature_metric not in FEATURE_METRICS:
            raise ValueError(
                f"ran: scoring.feature_metric must be one of {FEATURE_METRICS}, "
                f"got {feature_metric!r}"
            )
        if normalisation not in NORMALISATIONS:
            raise ValueError(
                f"ran: scoring.normalisation must be one of {NORMALISATIONS}, "
                f"got {normalisation!r}"
            )
        self.feature_metric = feature_metric
        self.normalisation = normalisation
        self.residual_eps = float(residual_eps)
        self.unet = unet
        self.extractor = extractor
        self.scheduler = scheduler
        self.timesteps = [int(t) for t in timesteps]
        self.alpha = float(alpha)
        self.sigma = float(sigma)
        self.noise_samples = int(noise_samples)
        self.normalize_features = bool(normalize_features)
        self.feature_image_size = int(feature_image_size or self.size)
        n_classes, n_t = len(unet.config.class_names), len(self.timesteps)
        side = int(unet.config.sample_size)
        for name in ("pixel", "feature"):  # [class, t, S, S]: per position or flat
            self.register_buffer(
                f"{name}_score_mean", torch.zeros(n_classes, n_t, side, side)
            )
            self.register_buffer(
                f"{name}_score_std", torch.ones(n_classes, n_t, side, side)
            )
        channels = sum(extractor.out_channels)
        index = (
            list(range(channels)) if residual_channels is None else residual_channels
        )
        self.register_buffer("residual_index", torch.as_tensor(index, dtype=torch.long))
        # the training errors' Gaussian (feature_metric mahalanobis), per class
        self.register_buffer("residual_mean", torch.zeros(0))
        self.register_buffer("residual_inv_covariance", torch.zeros(0))
        self.register_buffer("kl_weight", kl_weights(scheduler, self.timesteps))
        if channels != unet.config.feature_channels:
            raise ValueError(
                f"ran: the backbone gives {channels} channels but the UNet predicts "
                f"{unet.config.feature_channels}"
            )
        grid = self.feature_image_size // extractor.reductions[0]
        if grid * unet.config.feature_stride != self.size:
            raise ValueError(
                f"ran: the UNet ({self.size}px, feature pooling "
                f"{unet.config.feature_stride}) does not land on the backbone's "
                f"{grid}x{grid} grid of {self.feature_image_size}px images"
            )

    @property
    def size(self) -> int:
        """Side of the images the UNet sees."""
        return int(self.unet.config.sample_size)

    def _raw_features(self, images: torch.Tensor) -> torch.Tensor:
        return concat_features(
            self.extractor, resize_images(images, self.feature_image_size)
        )

    def target_features(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised backbone features of ``[0, 1]`` images (the head's targets)."""
        return self.unet.normalise_features(self._raw_features(images))

    @torch.no_grad()
    def set_feature_statistics(
        self, images: torch.Tensor, batch_size: int = 32
    ) -> None:
        """Per-channel mean and std of the training images' features (the targets)."""
        feats = torch.cat(
            [
                self._raw_features(images[i : i + batch_size])
                for i in range(0, len(images), batch_size)
            ]
        )
        self.unet.feature_mean.copy_(feats.mean(dim=(0, 2, 3)))
        self.unet.feature_std.copy_(feats.std(dim=(0, 2, 3)).clamp_min(1e-4))

    def loss(
        self,
        images: torch.Tensor,
        class_ids: torch.Tensor,
        generator: torch.Generator,
        max_timestep: int,
        feature_weight: float = 1.0,
        features: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training loss for clean ``[0, 1]`` images.

        Timesteps are drawn uniformly from ``[1, max_timestep]`` and the noise from
        ``generator`` (CPU), so a step is reproducible. ``features``: precomputed
        :meth:`target_features` of ``images`` (computed here when ``None``).
        """
        if features is None:
            features = self.target_features(images)
        x0 = resize_images(images, self.size) * 2 - 1
        b = len(x0)
        t = torch.randint(1, max_timestep + 1, (b,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        t = t.to(x0.device)
        noisy = self.scheduler.add_noise(x0, noise, t)
        eps, feats = self.unet(noisy, t, class_ids)
        noise_mse = F.mse_loss(eps, noise)
        feature_mse = F.mse_loss(feats, features)
        return {
            "loss": noise_mse + feature_weight * feature_mse,
            "noise_mse": noise_mse.detach(),
            "feature_mse": feature_mse.detach(),
        }

    def _feature_error(
        self, target: torch.Tensor, predicted: torch.Tensor, class_ids: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 10's term ``[B, h, w]`` in ``feature_metric``."""
        if self.feature_metric == "mse":
            return feature_mse_map(target, predicted)
        if self.residual_mean.numel() == 0:
            raise RuntimeError(
                "ran: the feature-error Gaussian is not fitted "
                "(RanModel.fit_feature_gaussian)"
            )
        residual = (target - predicted)[:, self.residual_index]
        ids = class_ids.to(residual.device)
        return feature_mahalanobis_map(
            residual, self.residual_mean[ids], self.residual_inv_covariance[ids]
        )

    @torch.no_grad()
    def fit_feature_gaussian(
        self,
        images: torch.Tensor,
        class_ids: torch.Tensor,
        generator: torch.Generator,
        batch_size: int = 16,
        features: torch.Tensor | None = None,
    ) -> None:
        """The Gaussian per class and position of the feature errors of *training*
        images (``feature_metric`` mahalanobis; a no-op for mse).

        ``images``: ``[0, 1]`` images at any size; ``features``: their
        :meth:`target_features` when already computed. Image ``i`` is noised at
        ``timesteps[i % T]``: the errors of every scoring timestep go into one
        Gaussian (measured on Magnetic Tile, the feature term barely changes with
        t <= 100).
        """
        if self.feature_metric == "mse":
            return
        n_classes = len(self.unet.config.class_names)
        residuals = []
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size]
            ids = class_ids[start : start + batch_size].to(x.device)
            target = (
                self.target_features(x)
                if features is None
                else features[start : start + batch_size].to(x.device)
            )
            x0 = resize_images(x, self.size) * 2 - 1
            steps = [
                self.timesteps[(start + i) % len(self.timesteps)] for i in range(len(x))
            ]
            steps = torch.as_tensor(steps).to(x.device)
            noise = torch.randn(x0.shape, generator=generator).to(x0)
            _, feats = self.unet(self.scheduler.add_noise(x0, noise, steps), steps, ids)
            residuals.append((target - feats)[:, self.residual_index].cpu())
        residuals = torch.cat(residuals)
        means, inverses = [], []
        for c in range(n_classes):
            own = residuals[class_ids.cpu() == c]
            if len(own) < 2:
                name = self.unet.config.class_names[c]
                raise ValueError(f"ran: class {name} needs >= 2 training images")
            mean, inv = fit_residual_gaussian(own, self.residual_eps)
            means.append(mean)
            inverses.append(inv)
        self.residual_mean = torch.stack(means)
        self.residual_inv_covariance = torch.stack(inverses)

    @torch.no_grad()
    def components(
        self, images: torch.Tensor, class_ids: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw pixel KL maps and feature MSE maps ``[B, T, S, S]`` at the UNet's size.

        Each is averaged over ``noise_samples`` noise draws; all timesteps of a
        draw go through the UNet as one batch.
        """
        target = self.target_features(images)
        x0 = resize_images(images, self.size) * 2 - 1
        b, n_t = len(x0), len(self.timesteps)
        t = torch.as_tensor(self.timesteps, device=x0.device).repeat(b)
        x0_rep = x0.repeat_interleave(n_t, dim=0)
        cls_rep = class_ids.to(x0.device).repeat_interleave(n_t)
        target_rep = target.repeat_interleave(n_t, dim=0)
        weight = self.kl_weight.to(x0.device).repeat(b)[:, None, None]
        pixel = torch.zeros(b * n_t, self.size, self.size, device=x0.device)
        feature = torch.zeros(b * n_t, *target.shape[-2:], device=x0.device)
        for _ in range(self.noise_samples):
            noise = torch.randn(x0_rep.shape, generator=generator).to(x0)
            noisy = self.scheduler.add_noise(x0_rep, noise, t)
            eps, feats = self.unet(noisy, t, cls_rep)
            pixel += pixel_kl_map(noise, eps, weight)
            feature += self._feature_error(target_rep, feats, cls_rep)
        pixel = pixel / self.noise_samples
        feature = F.interpolate(
            (feature / self.noise_samples).unsqueeze(1),
            size=(self.size, self.size),
            mode="bilinear",
            align_corners=False,
        ).squeeze(1)
        shape = (b, n_t, self.size, self.size)
        return pixel.view(shape), feature.view(shape)

    @torch.no_grad()
    def raw_maps(
        self,
        images: torch.Tensor,
        class_ids: torch.Tensor,
        generator: torch.Generator,
        batch_size: int = 16,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`components` of every image, in batches (tqdm), on the CPU."""
        pixel, feature = [], []
        for start in tqdm(
            range(0, len(images), batch_size),
            desc="RAN scoring",
            disable=len(images) <= batch_size,
            leave=False,
        ):
            stop = start + batch_size
            p, f = self.components(images[start:stop], class_ids[start:stop], generator)
            pixel.append(p.cpu())
            feature.append(f.cpu())
        return torch.cat(pixel), torch.cat(feature)

    @torch.no_grad()
    def set_normalisation(
        self, pixel: torch.Tensor, feature: torch.Tensor, class_ids: torch.Tensor
    ) -> None:
        """Per class and timestep mean/std of raw maps of *normal* images, one per
        map (``normalisation`` class) or per position (``position``: moments
        smoothed with sigma 1 and the variance shrunk halfway to the class's, as
        :func:`kedro_ad.models.maps.map_statistics` does).

        Only validation images may come here (never the test split).
        """
        n_classes = len(self.unet.config.class_names)
        missing = sorted(set(range(n_classes)) - set(class_ids.tolist()))
        if missing:
            names = [self.unet.config.class_names[i] for i in missing]
            raise ValueError(f"ran: no normal validation images of classes {names}")
        for name, maps in (("pixel", pixel), ("feature", feature)):
            mean, std = (
                getattr(self, f"{name}_score_mean"),
                getattr(self, f"{name}_score_std"),
            )
            for t in range(maps.shape[1]):
                if self.normalisation == "position":
                    m, sd = map_statistics(
                        maps[:, t].float(),
                        class_ids,
                        n_classes,
                        mode="position",
                        shrink=0.5,
                        sigma=1.0,
                    )
                    mean[:, t], std[:, t] = m.to(mean), sd.clamp_min(1e-12).to(std)
                    continue
                for c in range(n_classes):  # one mean and std of all values
                    values = maps[class_ids == c, t].double().flatten()
                    mean[c, t] = float(values.mean())
                    std[c, t] = max(float(values.std()), 1e-12)

    @torch.no_grad()
    def fit_normalisation(
        self,
        images: torch.Tensor,
        class_ids: torch.Tensor,
        generator: torch.Generator,
        batch_size: int = 16,
    ) -> None:
        """:meth:`set_normalisation` from normal validation images."""
        pixel, feature = self.raw_maps(images, class_ids, generator, batch_size)
        self.set_normalisation(pixel, feature, class_ids)

    @torch.no_grad()
    def combine(
        self,
        pixel: torch.Tensor,
        feature: torch.Tensor,
        class_ids: torch.Tensor,
        size: tuple[int, int] | int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 11, upsampled to ``size`` and smoothed: scores ``[N]``, maps."""
        ids = class_ids.to(pixel.device)

        def stat(name: str) -> torch.Tensor:
            return getattr(self, name).to(pixel.device)[ids]

        normalise = self.normalize_features or self.normalisation == "position"
        maps = ensemble(
            pixel,
            feature,
            stat("pixel_score_mean"),
            stat("pixel_score_std"),
            self.alpha,
            stat("feature_score_mean") if normalise else None,
            stat("feature_score_std") if normalise else None,
        )
        maps = resize_maps(maps, size, self.sigma)
        return maps.flatten(1).amax(1), maps

    @torch.no_grad()
    def anomaly_maps(
        self,
        images: torch.Tensor,
        class_ids: torch.Tensor,
        generator: torch.Generator,
        batch_size: int = 16,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores ``[N]`` and maps ``[N, H, W]`` at the input size (Eq. 11)."""
        pixel, feature = self.raw_maps(images, class_ids, generator, batch_size)
        return self.combine(pixel, feature, class_ids, images.shape[-2:])
