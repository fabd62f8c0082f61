"""Gradient-denoising reconstruction (RAN Sec. 3.3, Eq. 12-13, Algorithm 1).

The image descends PaDiM's Mahalanobis loss (Eq. 12) with weight decay ``omega``
and learning rate ``s`` (Eq. 13); the gradients are noisy and would corrupt the
image, so every ``N_d`` steps the diffusion model removes them as noise: the image
is read as ``x_t`` at timestep ``denoise_timestep`` and replaced by the model's
estimate of ``x_0`` (a DDPM reverse step taken to its end, the mean of
``p_theta``; Algorithm 1 samples one reverse step, which at small ``t`` removes only
a few percent of the noise). The result ``x_N`` is the "repaired" image: anomalies
removed, normal content kept, an explanation of the anomaly map.

Gradients are normalised per image to unit root-mean-square, so ``s`` is the size
of a step in the ``[-1, 1]`` pixel scale whatever the loss's magnitude (the
fragment leaves the loss's scale open: it depends on the grid size and ``d``).
"""

from __future__ import annotations

import torch

from kedro_ad.models.maps import resize_images
from kedro_ad.models.padim import PadimModel

from .torch_model import RanModel


def _denoise(
    ran: RanModel, x: torch.Tensor, class_ids: torch.Tensor, t: int
) -> torch.Tensor:
    """One jump from ``x_t`` (``x`` read at timestep ``t``) to the model's ``x_0``."""
    low = resize_images(x, ran.size)
    bar = ran.scheduler.alphas_cumprod[t].to(x)
    x_t = bar.sqrt() * low  # x lies on the x_0 scale; the forward process shrinks it
    timestep = torch.full((len(x),), t, device=x.device, dtype=torch.long)
    eps, _ = ran.unet(x_t, timestep, class_ids)
    x0 = ((x_t - (1 - bar).sqrt() * eps) / bar.sqrt()).clamp(-1, 1)
    if x0.shape[-2:] == x.shape[-2:]:
        return x0
    # the UNet runs at a lower resolution: add back only what it changed
    return (x + resize_images(x0 - low, x.shape[-1])).clamp(-1, 1)


def gradient_denoise(
    ran: RanModel,
    padim: PadimModel,
    images: torch.Tensor,
    class_ids: torch.Tensor,
    padim_class_ids: torch.Tensor,
    steps: int = 30,
    learning_rate: float = 0.02,
    weight_decay: float = 1.0,
    denoise_every: int = 5,
    denoise_timestep: int = 50,
) -> tuple[torch.Tensor, list[float]]:
    """Algorithm 1 on ``[0, 1]`` images at PaDiM's size; returns ``x_N`` in ``[0, 1]``.

    Args:
        ran: the trained RAN model (its UNet denoises).
        padim: the fitted PaDiM model (its Gaussians give the loss).
        images: ``[B, 3, S, S]`` with ``S`` = PaDiM's image size.
        class_ids: indices into the RAN UNet's classes.
        padim_class_ids: the same images' indices into PaDiM's classes.
        steps: ``N``, gradient steps.
        learning_rate: ``s`` (per step, ``[-1, 1]`` scale, unit-RMS gradients).
        weight_decay: ``omega``, the factor on ``x`` at every step.
        denoise_every: ``N_d``.
        denoise_timestep: the timestep the accumulated gradient noise is read at.

    Returns:
        ``x_N`` and the mean Mahalanobis loss before each step and at the end.
    """
    x = (images * 2 - 1).detach()
    losses: list[float] = []
    for step in range(1, steps + 1):
        x.requires_grad_(True)
        loss = padim.mahalanobis_loss((x + 1) / 2, padim_class_ids)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        losses.append(float(loss.detach().mean()))
        rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12)
        with torch.no_grad():
            x = weight_decay * x - learning_rate * grad / rms.view(-1, 1, 1, 1)
            if step % denoise_every == 0:
                x = _denoise(ran, x, class_ids, denoise_timestep)
    with torch.no_grad():
        losses.append(
            float(padim.mahalanobis_loss((x + 1) / 2, padim_class_ids).mean())
        )
    return ((x.detach() + 1) / 2).clamp(0, 1), losses
