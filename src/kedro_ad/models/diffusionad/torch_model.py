"""DiffusionAD (Zhang et al., arXiv 2303.08730): denoising + segmentation sub-networks.

* Denoising sub-network: a diffusers ``UNet2DModel`` predicting the noise of
  ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps`` under a ``DDPMScheduler`` (linear betas
  1e-4..2e-2, T = 1000); the one-step flawless approximation is Eq. 5,
  ``x̂0 = (x_t - sqrt(1 - a_t) eps_theta(x_t, t)) / sqrt(a_t)``.
* Segmentation sub-network: :class:`SegmentationUNet`, an encoder-decoder with skip
  connections on ``concat(x_0, x̂0)`` (6 channels) that returns mask logits.
* Inference (Algorithm 2): corrupt the query at each ``lambda`` in ``timesteps``,
  denoise in one step, segment, average the masks; the image score is the mean of
  the top-K pixels of the averaged mask.

Images enter :class:`DiffusionAD` as RGB floats in ``[0, 1]`` and are mapped to
``[-1, 1]`` inside, the range the DDPM works in. Pure PyTorch + diffusers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .anomaly_map import image_scores

__all__ = [
    "DiffusionAD",
    "InferenceBatch",
    "SegmentationUNet",
    "build_denoiser",
    "build_scheduler",
    "one_step_x0",
]


def build_scheduler(
    num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2
) -> DDPMScheduler:
    """The paper's variance schedule: linear betas over T steps (Sec. 4.2)."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_start=beta_start,
        beta_end=beta_end,
        beta_schedule="linear",
    )


def build_denoiser(
    image_size: int,
    block_out_channels: Sequence[int] = (128, 128, 256, 256, 512, 512),
    layers_per_block: int = 2,
    attention_resolutions: Sequence[int] = (32, 16, 8),
    attention_head_dim: int = 64,
    norm_num_groups: int = 32,
    dropout: float = 0.0,
) -> UNet2DModel:
    """A ``UNet2DModel`` with self-attention at the given feature-map sizes.

    Level ``i`` of the encoder works at ``image_size / 2**i``; it (and its mirror in
    the decoder) gets attention when that size is in ``attention_resolutions``.
    """
    sizes = [image_size // 2**i for i in range(len(block_out_channels))]
    attn = [size in set(attention_resolutions) for size in sizes]
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
    return UNet2DModel(
        sample_size=image_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        down_block_types=down,
        up_block_types=up,
        attention_head_dim=attention_head_dim,
        norm_num_groups=norm_num_groups,
        dropout=dropout,
    )


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SegmentationUNet(ModelMixin, ConfigMixin):
    """U-Net on ``concat(x_0, x̂0)``: encoder, decoder and skip connections.

    The public code's network has six levels of widths ``64 * (1, 2, 4, 8, 8, 8)``
    (the default here), conv-BN-ReLU pairs, max-pool down and bilinear up. Returns
    logits ``[B, out_channels, H, W]``; ``sigmoid`` gives the anomaly mask. ``H`` and
    ``W`` must be divisible by ``2 ** (len(block_out_channels) - 1)``.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 6,
        out_channels: int = 1,
        block_out_channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512),
    ):
        super().__init__()
        widths = list(block_out_channels)
        self.encoder = nn.ModuleList(
            _double_conv(c_in, c_out)
            for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for deeper, skip in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    nn.Conv2d(deeper, skip, 3, padding=1),
                    nn.BatchNorm2d(skip),
                    nn.ReLU(inplace=True),
                )
            )
            self.decoder.append(_double_conv(2 * skip, skip))
        self.head = nn.Conv2d(widths[0], out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (len(self.encoder) - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(
                f"SegmentationUNet: input {tuple(x.shape[-2:])} is not divisible by "
                f"{factor} (2 ** (levels - 1))"
            )
        skips = []
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.up, self.decoder, strict=True):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


def one_step_x0(
    unet: UNet2DModel,
    scheduler: DDPMScheduler,
    x0: torch.Tensor,
    timesteps: torch.Tensor,
    noise: torch.Tensor,
    clip: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt ``x0`` ([-1, 1]) to ``x_t`` (Eq. 2), denoise it in one step (Eq. 5).

    Returns ``(x̂0, eps_theta)``. ``clip`` clamps ``x̂0`` to [-1, 1] as the public code
    does (the paper does not say).
    """
    x_t = scheduler.add_noise(x0, noise, timesteps)
    eps = unet(x_t, timesteps).sample
    a_t = scheduler.alphas_cumprod.to(x0.device, x0.dtype)[timesteps].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return (x0_hat.clamp(-1, 1) if clip else x0_hat), eps


@dataclass
class InferenceBatch:
    """What a DiffusionAD forward pass returns in eval mode."""

    pred_score: torch.Tensor  # [B] mean of the top-K pixels of the map
    anomaly_map: torch.Tensor  # [B, H, W] averaged sigmoid masks, model resolution
    reconstruction: torch.Tensor  # [B, 3, H, W] x̂0 at the last lambda, in [0, 1]


class DiffusionAD(nn.Module):
    """Denoising + segmentation sub-networks under one DDPM schedule."""

    def __init__(
        self,
        unet: UNet2DModel,
        seg: SegmentationUNet,
        scheduler: DDPMScheduler | None = None,
    ):
        super().__init__()
        self.unet = unet
        self.seg = seg
        self.scheduler = scheduler or build_scheduler()

    def segment(self, x0: torch.Tensor, x0_hat: torch.Tensor) -> torch.Tensor:
        """Mask logits from the query and its flawless approximation (both [-1, 1])."""
        return self.seg(torch.cat([x0, x0_hat], dim=1))

    @torch.no_grad()
    def forward(
        self,
        images: torch.Tensor,
        timesteps: Sequence[int] = (100, 200),
        top_k: int = 50,
        generator: torch.Generator | None = None,
    ) -> InferenceBatch:
        """Algorithm 2 on a batch of RGB images in [0, 1] ([B, 3, H, W])."""
        x0 = images * 2 - 1
        total = torch.zeros_like(x0[:, 0])
        x0_hat = x0
        for lam in timesteps:
            t = torch.full((len(x0),), int(lam), dtype=torch.long, device=x0.device)
            noise = torch.randn(
                x0.shape, generator=generator, device=x0.device, dtype=x0.dtype
            )
            x0_hat, _ = one_step_x0(self.unet, self.scheduler, x0, t, noise)
            total += torch.sigmoid(self.segment(x0, x0_hat))[:, 0]
        maps = total / len(timesteps)
        return InferenceBatch(
            pred_score=image_scores(maps, top_k),
            anomaly_map=maps,
            reconstruction=(x0_hat + 1) / 2,
        )
