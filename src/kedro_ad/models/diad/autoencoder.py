"""The pixel-space KL autoencoder {E, D} of DiAD and of the LDM baseline.

A diffusers :class:`~diffusers.AutoencoderKL`, either built small and trained here
(f=4: two downsamplings) or loaded from a local diffusers folder (the paper uses
Stable Diffusion's f=8 KL autoencoder). Training follows the LDM recipe without its
perceptual (LPIPS) and adversarial terms: LPIPS needs VGG weights that cannot be had
offline, and DiAD's public code fine-tunes without the discriminator too. The loss
is an L1 reconstruction term plus a small KL term.

Images go in as RGB in ``[0, 1]``; the autoencoder works in ``[-1, 1]``. Latents are
multiplied by the autoencoder's ``scaling_factor`` (as Stable Diffusion does), so the
diffusion models see roughly unit-variance latents.

Pure PyTorch + diffusers: no kedro, mlflow or accelerate import.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

logger = logging.getLogger(__name__)

__all__ = [
    "autoencoder_loss",
    "build_autoencoder",
    "decode",
    "encode",
    "estimate_scaling_factor",
    "load_autoencoder",
]


def build_autoencoder(
    block_out_channels: Sequence[int] = (32, 64, 64),
    layers_per_block: int = 1,
    latent_channels: int = 4,
    norm_num_groups: int = 8,
) -> AutoencoderKL:
    """A fresh KL autoencoder with ``2 ** (len(block_out_channels) - 1)`` downsampling.

    Args:
        block_out_channels: channels per resolution; three entries give f=4.
        layers_per_block: ResNet layers per resolution.
        latent_channels: channels of the latent (4, as in Stable Diffusion).
        norm_num_groups: GroupNorm groups (must divide every channel count).

    Returns:
        An untrained :class:`AutoencoderKL` taking 3-channel images.
    """
    n = len(block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(int(c) for c in block_out_channels),
        layers_per_block=int(layers_per_block),
        latent_channels=int(latent_channels),
        norm_num_groups=int(norm_num_groups),
        sample_size=64,
    )


def load_autoencoder(path: str | os.PathLike[str]) -> AutoencoderKL:
    """Load a pretrained KL autoencoder from a local diffusers folder.

    ``path`` is either the autoencoder folder itself (``config.json`` and weights) or a
    pipeline folder holding it under ``vae/`` (e.g. a Stable Diffusion download).

    Raises:
        FileNotFoundError: neither layout is found at ``path``.
    """
    root = Path(path).expanduser()
    for folder in (root, root / "vae"):
        if (folder / "config.json").is_file():
            vae = AutoencoderKL.from_pretrained(folder, local_files_only=True)
            logger.info("Loaded the KL autoencoder from %s", folder)
            return vae
    raise FileNotFoundError(
        f"autoencoder.pretrained_path {root}: no diffusers AutoencoderKL folder "
        "(config.json + weights) there or in its vae/ subfolder"
    )


def downsampling_factor(vae: AutoencoderKL) -> int:
    """Pixel size of one latent cell (4 or 8)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def encode(
    vae: AutoencoderKL,
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    sample: bool = False,
) -> torch.Tensor:
    """Scaled latents of RGB images in ``[0, 1]``.

    Args:
        vae: the autoencoder.
        images: ``[B, 3, H, W]`` in ``[0, 1]``.
        generator: random source when ``sample`` is true.
        sample: draw from the posterior instead of taking its mean (training-time
            augmentation, as in LDM); inference uses the mean.

    Returns:
        ``[B, C, H / f, W / f]`` latents times ``vae.config.scaling_factor``.
    """
    posterior = vae.encode(images * 2 - 1).latent_dist
    z = posterior.sample(generator) if sample else posterior.mode()
    return z * float(vae.config.scaling_factor)


def decode(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """RGB images in ``[0, 1]`` from scaled latents (inverse of :func:`encode`)."""
    x = vae.decode(latents / float(vae.config.scaling_factor)).sample
    return ((x + 1) / 2).clamp(0, 1)


def autoencoder_loss(
    vae: AutoencoderKL,
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    kl_weight: float = 1e-6,
) -> dict[str, torch.Tensor]:
    """LDM's autoencoder objective without LPIPS and discriminator.

    Args:
        vae: the autoencoder being trained.
        images: ``[B, 3, H, W]`` in ``[0, 1]``.
        generator: random source of the posterior sample.
        kl_weight: weight of the KL term (LDM uses 1e-6).

    Returns:
        ``loss`` (back-propagated), ``l1`` (mean absolute error on the ``[-1, 1]``
        scale) and ``kl`` (mean KL per sample).
    """
    x = images * 2 - 1
    posterior = vae.encode(x).latent_dist
    recon = vae.decode(posterior.sample(generator)).sample
    l1 = F.l1_loss(recon, x)
    kl = posterior.kl().mean()
    return {"loss": l1 + kl_weight * kl, "l1": l1.detach(), "kl": kl.detach()}


@torch.no_grad()
def estimate_scaling_factor(
    vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 32
) -> float:
    """``1 / std`` of the latent means of ``images`` (LDM's rescaling rule), over
    all of them (encoded in batches)."""
    z = torch.cat(
        [
            vae.encode(images[i : i + batch_size] * 2 - 1).latent_dist.mode().cpu()
            for i in range(0, len(images), batch_size)
        ]
    )
    return float(1.0 / z.flatten().std().clamp_min(1e-6))
