"""RAN's per-timestep scores and their ensemble (Eq. 10-11), pure PyTorch.

Pixel term: the DDPM variational-bound term ``L_{t-1} = KL(q(x_{t-1} | x_t, x_0) ||
p_theta(x_{t-1} | x_t))`` per pixel. With the fixed posterior variance
``beta~_t`` (DDPM's "fixed small"; the paper's guided-diffusion UNet learns the
variance, ours does not, so the variance part of the KL is zero) the KL is the
squared distance of the two means over ``2 beta~_t``, which is
``beta_t^2 / (2 beta~_t alpha_t (1 - alpha_bar_t)) * |eps - eps_theta|^2``, summed
over the colour channels. Its scale varies greatly with ``t``: it is normalised per
timestep (and class) by the mean and standard deviation on normal validation images.

Feature term (Eq. 10): the error between the clean image's features and those the
network predicts from ``x_t``, per position, in one of two metrics:

* ``mse``: the squared error averaged over channels (Eq. 10 as printed);
* ``mahalanobis``: the Mahalanobis distance of the error to a Gaussian per class
  and position fitted on the training images' errors (:func:`fit_residual_gaussian`).
  Averaging over channels weighs a channel that never moves on normal parts like
  one that always does, which on Magnetic Tile lost 24 points of image AUROC
  against PaDiM's distance on the same features; the Mahalanobis metric keeps the
  channels' scales and correlations, as PaDiM does.

Either term is then normalised per timestep (and class) by normal validation maps:
``class`` (one mean and standard deviation, as the paper normalises the KL term) or
``position`` (per position, :func:`kedro_ad.models.maps.map_statistics`).
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from kedro_ad.models.padim.anomaly_map import mahalanobis_sq


def kl_weights(scheduler: DDPMScheduler, timesteps: list[int]) -> torch.Tensor:
    """``beta_t^2 / (2 beta~_t alpha_t (1 - alpha_bar_t))`` for each timestep (>= 1)."""
    if min(timesteps) < 1:
        raise ValueError("ran: scoring timesteps must be >= 1 (t = 0 has no KL term)")
    betas = scheduler.betas.double()
    alphas_cumprod = scheduler.alphas_cumprod.double()
    out = []
    for t in timesteps:
        beta, bar, bar_prev = betas[t], alphas_cumprod[t], alphas_cumprod[t - 1]
        posterior_var = beta * (1 - bar_prev) / (1 - bar)
        out.append(beta**2 / (2 * posterior_var * (1 - beta) * (1 - bar)))
    return torch.stack(out).float()


def pixel_kl_map(
    eps: torch.Tensor, eps_pred: torch.Tensor, weight: torch.Tensor | float
) -> torch.Tensor:
    """Per-pixel KL term ``[B, H, W]`` from the true and predicted noise."""
    return weight * (eps - eps_pred).pow(2).sum(dim=1)


def feature_mse_map(features: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Eq. 10 per position ``[B, h, w]``: squared error averaged over channels."""
    return (features - predicted).pow(2).mean(dim=1)


def fit_residual_gaussian(
    residuals: torch.Tensor, eps: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[h * w, d]`` and inverse covariance ``[h * w, d, d]`` per position of
    ``[N, d, h, w]`` feature errors (``Sigma + eps * I``, as PaDiM), in float64."""
    n = len(residuals)
    if n < 2:
        raise ValueError("ran: the feature-error Gaussian needs >= 2 images")
    x = residuals.flatten(2).permute(2, 0, 1).double()  # [P, N, d]
    mean = x.mean(dim=1)
    centred = x - mean[:, None]
    cov = centred.transpose(1, 2) @ centred / (n - 1)
    eye = eps * torch.eye(x.shape[-1], dtype=torch.float64)
    return mean.float(), torch.linalg.inv(cov + eye).float()


def feature_mahalanobis_map(
    residual: torch.Tensor, mean: torch.Tensor, inv_covariance: torch.Tensor
) -> torch.Tensor:
    """Mahalanobis distance ``[B, h, w]`` of ``[B, d, h, w]`` feature errors to
    their Gaussian (``[B, h * w, d]`` / ``[B, h * w, d, d]``, each image's class)."""
    return mahalanobis_sq(residual, mean, inv_covariance).clamp_min(0).sqrt()


def ensemble(
    pixel: torch.Tensor,
    feature: torch.Tensor,
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    alpha: float,
    feature_mean: torch.Tensor | None = None,
    feature_std: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 11: ``A = sum_i alpha * s^_ti + (1 - alpha) * s^f_ti``.

    Args:
        pixel: ``[B, T, H, W]`` KL maps.
        feature: ``[B, T, H, W]`` feature maps (already at the same size).
        pixel_mean, pixel_std: validation statistics of each image's class per
            timestep, ``[B, T]`` (one per map) or ``[B, T, H, W]`` (per position).
        alpha: weight of the pixel term.
        feature_mean, feature_std: the same for the feature term (None: the
            feature term as it is).
    """

    def z(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        if mean.ndim == 2:
            mean, std = mean[..., None, None], std[..., None, None]
        return (x - mean) / std

    normalised = z(pixel, pixel_mean, pixel_std)
    if feature_mean is not None:
        feature = z(feature, feature_mean, feature_std)
    return (alpha * normalised + (1 - alpha) * feature).sum(dim=1)
