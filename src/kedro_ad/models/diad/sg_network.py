"""DiAD's Semantic-Guided (SG) network: a ControlNet-style copy of the SD encoder.

The SG network is a trainable copy of the denoising UNet's encoder and middle block
(diffusers' :class:`~diffusers.ControlNetModel`, initialised from the UNet with
``from_unet``). The pixel image ``x0`` goes through ``C``, the conv-SiLU stack that
maps it to latent size (ControlNet's conditioning embedding; Eq. 7), and is added to
the embedded noisy latent ``z_t``. Outputs, each through a zero-initialised 1x1
convolution (so training starts from the plain SD network):

* the SG middle block output, added to the SD middle block output (``MSG``);
* the outputs of selected SG encoder blocks, added to the matching skip connections
  of the SD decoder (the paper connects block 4, the coarsest; Table 5 ablates 3);
* before that, the Spatial-aware Feature Fusion block fuses every sub-layer of the
  second-to-last block (SGEB3) into every sub-layer of the last (SGEB4).

An "encoder block" is the paper's (and LDM's) grouping of UNet skip tensors in
threes: block 1 = ``conv_in`` + the first resolution's ResNets, block ``k > 1`` = the
downsampler into resolution ``k`` + that resolution's ResNets.

Pure PyTorch + diffusers: no kedro, mlflow or accelerate import.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .sff import SpatialFeatureFusion

__all__ = ["SemanticGuidedNetwork", "conditioning_channels_for"]


def conditioning_channels_for(factor: int, widest: int = 64) -> tuple[int, ...]:
    """Channels of ``C`` for a latent ``factor`` times smaller than the image.

    ``C`` downsamples once per entry after the first, so f=4 needs three entries and
    f=8 four (ControlNet's (16, 32, 96, 256)).
    """
    steps = int(factor).bit_length() - 1
    if 2**steps != factor or steps < 1:
        raise ValueError(
            f"latent downsampling factor must be a power of 2, got {factor}"
        )
    channels = [min(16 * 2**i, widest) for i in range(steps + 1)]
    return tuple(channels)


class SemanticGuidedNetwork(ModelMixin, ConfigMixin):
    """SG encoder + middle block, SFF block and zero convolutions.

    Args:
        controlnet_config: keyword arguments of the inner :class:`ControlNetModel`
            (the UNet's encoder shape plus ``conditioning_embedding_out_channels``).
        connect_blocks: 1-based SG encoder blocks whose outputs reach the SD decoder
            (paper: ``[4]``; ``[]`` = middle block only, Table 5's "MSG").
        connect_middle: add the SG middle output to the SD middle block.
        sff: fuse the second-to-last block into the last (Fig. 3).
        sff_norm: ``"instance"`` (paper) or ``"batch"`` (Table 5 ablation).
        sff_activation: ``"silu"`` (paper) or ``"relu"`` (Table 5 ablation).
    """

    @register_to_config
    def __init__(
        self,
        controlnet_config: dict,
        connect_blocks: Sequence[int] = (4,),
        connect_middle: bool = True,
        sff: bool = True,
        sff_norm: str = "instance",
        sff_activation: str = "silu",
    ) -> None:
        super().__init__()
        self.controlnet = ControlNetModel(**controlnet_config)
        self.groups = self._skip_groups()
        self.n_blocks = len(self.controlnet.down_blocks)
        bad = [b for b in connect_blocks if not 1 <= int(b) <= self.n_blocks]
        if bad:
            raise ValueError(
                f"connect_blocks {list(connect_blocks)}: blocks are numbered 1.."
                f"{self.n_blocks} for this UNet"
            )
        self.connected = {int(b) for b in connect_blocks}
        channels = self._skip_channels()
        self.fusion = None
        if sff and self.n_blocks >= 2:
            last, prev = self.n_blocks, self.n_blocks - 1
            self.fusion = SpatialFeatureFusion(
                [c for c, g in zip(channels, self.groups, strict=True) if g == prev],
                [c for c, g in zip(channels, self.groups, strict=True) if g == last],
                stride=2,
                norm=sff_norm,
                activation=sff_activation,
            )

    @classmethod
    def from_unet(
        cls,
        unet: UNet2DConditionModel,
        latent_factor: int,
        conditioning_widest: int = 64,
        **kwargs,
    ) -> SemanticGuidedNetwork:
        """Copy the UNet's encoder and middle block (weights included) into a new SG.

        Args:
            unet: the SD denoising UNet.
            latent_factor: image size / latent size (4 or 8); shapes ``C``.
            conditioning_widest: channel cap of ``C``.
            **kwargs: the other constructor arguments.
        """
        cond_channels = conditioning_channels_for(latent_factor, conditioning_widest)
        copy = ControlNetModel.from_unet(
            unet, conditioning_embedding_out_channels=cond_channels
        )
        config = {k: v for k, v in copy.config.items() if not k.startswith("_")}
        net = cls(controlnet_config=config, **kwargs)
        net.controlnet.load_state_dict(copy.state_dict())
        return net

    def _skip_groups(self) -> list[int]:
        """Paper block number (1-based) of every skip tensor the encoder emits."""
        groups = [1]
        for b, block in enumerate(self.controlnet.down_blocks):
            groups += [b + 1] * len(block.resnets)
            if block.downsamplers is not None:
                groups += [b + 2] * len(block.downsamplers)
        return groups

    def _skip_channels(self) -> list[int]:
        """Channels of every skip tensor, in order."""
        channels = list(self.controlnet.config.block_out_channels)
        out = [channels[0]]
        for b, block in enumerate(self.controlnet.down_blocks):
            out += [channels[b]] * len(block.resnets)
            if block.downsamplers is not None:
                out += [channels[b]] * len(block.downsamplers)
        return out

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        image: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        class_labels: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Residuals for the SD UNet's skips and middle block.

        Args:
            sample: noisy latent ``z_t`` ``[B, C, h, w]``.
            timestep: ``[B]`` or scalar diffusion step.
            image: the pixel image ``x0`` in ``[-1, 1]``, ``[B, 3, H, W]``.
            encoder_hidden_states: the (null) context of cross-attention blocks.
            class_labels: class ids when the UNet is class-conditioned.

        Returns:
            ``(down_residuals, mid_residual)`` in the form of
            ``UNet2DConditionModel(down_block_additional_residuals=...,
            mid_block_additional_residual=...)``; unconnected ones are zeros.
        """
        cn = self.controlnet
        t = torch.as_tensor(timestep, device=sample.device)
        if t.ndim == 0:
            t = t[None]
        t = t.expand(sample.shape[0])
        emb = cn.time_embedding(cn.time_proj(t).to(sample.dtype))
        if cn.class_embedding is not None:
            if class_labels is None:
                raise ValueError("this SG network is class-conditioned: give classes")
            emb = emb + cn.class_embedding(class_labels).to(emb.dtype)
        h = cn.conv_in(sample) + cn.controlnet_cond_embedding(image)
        skips = [h]
        for block in cn.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, res = block(
                    hidden_states=h,
                    temb=emb,
                    encoder_hidden_states=encoder_hidden_states,
                )
            else:
                h, res = block(hidden_states=h, temb=emb)
            skips += list(res)
        if getattr(cn.mid_block, "has_cross_attention", False):
            h = cn.mid_block(h, emb, encoder_hidden_states=encoder_hidden_states)
        else:
            h = cn.mid_block(h, emb)
        if self.fusion is not None:
            last, prev = self.n_blocks, self.n_blocks - 1
            idx_prev = [i for i, g in enumerate(self.groups) if g == prev]
            idx_last = [i for i, g in enumerate(self.groups) if g == last]
            fused = self.fusion(
                [skips[i] for i in idx_prev], [skips[i] for i in idx_last]
            )
            for i, f in zip(idx_last, fused, strict=True):
                skips[i] = f
        down = [
            zero_conv(s) if g in self.connected else torch.zeros_like(s)
            for s, g, zero_conv in zip(
                skips, self.groups, cn.controlnet_down_blocks, strict=True
            )
        ]
        mid = cn.controlnet_mid_block(h)
        if not self.config.connect_middle:
            mid = torch.zeros_like(mid)
        return down, mid
