"""RAN's per-timestep scores and their ensemble (Eq. 10-11), pure PyTorch.

Pixel term: the DDPM variational-bound term ``L_{t-1} = KL(q(x_{t-1} | x_t, x_0) ||
p_theta(x_{t-1} | x_t))`` per pixel. With the fixed posterior variance
``beta~_t`` (DDPM's "fixed small"; the paper's guided-diffusion UNet learns the
variance, ours does not, so the variance part of the KL is zero) the KL is the
squared distance of the two means over ``2 beta~_t``, which is
``beta_t^2 / (2 beta~_t alpha_t (1 - alpha_bar_t)) * |eps - eps_theta|^2``, summed
over the colour channels. Its scale varies greatly with ``t``: it is normalised per
timestep (and class) by the mean and standard deviation on normal validation images.

Feature term (Eq. 10): the squared error between the clean image's features and
those the network predicts from ``x_t``, averaged over channels, per position.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler


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


def ensemble(
    pixel: torch.Tensor,
    feature: torch.Tensor,
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """Eq. 11: ``A = sum_i alpha * s^_ti + (1 - alpha) * s^f_ti``.

    Args:
        pixel: ``[B, T, H, W]`` KL maps.
        feature: ``[B, T, H, W]`` feature maps (already at the same size).
        pixel_mean, pixel_std: ``[B, T]`` validation statistics of each image's
            class per timestep.
        alpha: weight of the pixel term.
    """
    normalised = (pixel - pixel_mean[..., None, None]) / pixel_std[..., None, None]
    return (alpha * normalised + (1 - alpha) * feature).sum(dim=1)
