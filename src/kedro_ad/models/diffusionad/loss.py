"""DiffusionAD's training objective (Algorithm 1, Eqs. 6-8).

``L = L_noise + L_mask`` with ``L_noise = ||eps - eps_theta(x_t, t)||²`` and
``L_mask = SmoothL1(M, M̂) + gamma * L_focal(M, M̂)`` (gamma = 5 in the paper).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .torch_model import DiffusionAD, one_step_x0

__all__ = ["binary_focal_loss", "diffusionad_loss", "sample_timesteps"]


def binary_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.5, gamma: float = 4.0
) -> torch.Tensor:
    """Mean of ``alpha * (1 - p_t)**gamma * BCE`` with ``p_t = exp(-BCE)``, from logits.

    The paper's L_mask uses the focal loss of Lin et al., defined on binary masks,
    and the paper and its public code train on binary masks; there this equals
    ``torchvision.ops.sigmoid_focal_loss`` (``alpha`` weights both classes alike,
    as the code's alpha 0.5 does). Here the masks are area-resized to the model's
    side, so edge pixels have soft targets t in (0, 1), where the two differ:
    torchvision's ``p_t = p t + (1 - p)(1 - t)`` is lowest far from p = t (0.06
    for t = 0.3) and pulls soft pixels to 0 or 1, while the public code's
    ``p_t = exp(-BCE) = p^t (1 - p)^(1 - t)`` makes the loss a rising function of
    the BCE, lowest at p = t. This is the public code's ``BinaryFocalLoss``;
    ``tests/test_diffusionad_model.py`` checks both statements. Computed from
    logits for numerical stability.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    return (alpha * (1 - p_t) ** gamma * bce).mean()


def sample_timesteps(
    n: int,
    ranges: Sequence[Sequence[int]],
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """One timestep per sample, uniform over the union of ``[low, high]`` ranges.

    Timestep indices follow diffusers (0 .. T-1); the paper's ``t ~ U[1, T]`` is the
    single range ``[0, T-1]`` here.
    """
    lows = torch.tensor([int(r[0]) for r in ranges])
    highs = torch.tensor([int(r[1]) for r in ranges])
    if (lows > highs).any() or (lows < 0).any():
        raise ValueError(
            f"timestep ranges must be [low, high] with 0 <= low <= high: {ranges}"
        )
    sizes = (highs - lows + 1).double()
    which = torch.multinomial(
        sizes / sizes.sum(), n, replacement=True, generator=generator
    )
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    t = lows[which] + (u * sizes[which]).long().clamp(max=(sizes[which] - 1).long())
    return t.to(device)


def diffusionad_loss(
    model: DiffusionAD,
    images: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    timestep_ranges: Sequence[Sequence[int]] = ((0, 999),),
    noise_loss_on: str = "normal",
    focal_weight: float = 5.0,
    focal_alpha: float = 0.5,
    focal_gamma: float = 4.0,
) -> dict[str, torch.Tensor]:
    """One training step's losses on a batch of normal and synthetic anomalous images.

    ``images`` are RGB in [0, 1] ([B, 3, H, W]); ``masks`` [B, 1, H, W] in {0, 1};
    ``labels`` [B] (1 = synthetic anomaly). ``noise_loss_on``: ``"normal"`` averages
    the noise loss over the normal samples only (the public code: the denoiser must
    learn the normal appearance, not the synthetic defects; a batch without normal
    samples contributes 0), ``"all"`` over every sample (Algorithm 1 as printed).
    """
    if noise_loss_on not in ("normal", "all"):
        raise ValueError(
            f"noise_loss_on must be 'normal' or 'all', got {noise_loss_on!r}"
        )
    x0 = images * 2 - 1
    t = sample_timesteps(len(x0), timestep_ranges, generator, x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    x0_hat, eps = one_step_x0(model.unet, model.scheduler, x0, t, noise)
    per_sample = (eps - noise).square().flatten(1).mean(dim=1)
    if noise_loss_on == "normal":
        normal = (labels == 0).to(per_sample.dtype)
        noise_loss = (per_sample * normal).sum() / normal.sum().clamp(min=1)
    else:
        noise_loss = per_sample.mean()
    logits = model.segment(x0, x0_hat)
    focal = binary_focal_loss(logits, masks, focal_alpha, focal_gamma)
    smooth_l1 = F.smooth_l1_loss(torch.sigmoid(logits), masks)
    loss = noise_loss + smooth_l1 + focal_weight * focal
    return {
        "loss": loss,
        "noise_mse": noise_loss.detach(),
        "focal": focal.detach(),
        "smooth_l1": smooth_l1.detach(),
    }
