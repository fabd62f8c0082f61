"""DiAD's Spatial-aware Feature Fusion (SFF) block (paper Fig. 3).

Each sub-layer output of SG encoder block ``n`` (SGEB4 in the paper) receives, added
to it, every sub-layer output of block ``n - 1`` (SGEB3) passed through its own
"conv block": a stride-2 3x3 convolution to block ``n``'s resolution and channels,
a normalisation and an activation. Instance norm + SiLU is the paper's choice;
batch norm + ReLU is its ablation (Table 5).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SpatialFeatureFusion", "conv_block"]

_NORMS = {"instance": "IN", "batch": "BN"}


def conv_block(
    in_channels: int, out_channels: int, stride: int, norm: str, activation: str
) -> nn.Sequential:
    """Conv 3x3 + norm + activation, the unit the SFF block fuses with."""
    if norm == "instance":
        norm_layer: nn.Module = nn.InstanceNorm2d(out_channels, affine=True)
    elif norm == "batch":
        norm_layer = nn.BatchNorm2d(out_channels)
    else:
        raise ValueError(f"sff norm must be one of {sorted(_NORMS)}, got {norm!r}")
    if activation == "silu":
        act: nn.Module = nn.SiLU()
    elif activation == "relu":
        act = nn.ReLU()
    else:
        raise ValueError(f"sff activation must be 'silu' or 'relu', got {activation!r}")
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        norm_layer,
        act,
    )


class SpatialFeatureFusion(nn.Module):
    """Fuse every layer of a finer SG block into every layer of the next block.

    Args:
        low_channels: channels of each sub-layer of the finer block (SGEB3).
        high_channels: channels of each sub-layer of the coarser block (SGEB4).
        stride: resolution ratio between them (2 in a UNet encoder).
        norm: ``"instance"`` (paper) or ``"batch"`` (ablation).
        activation: ``"silu"`` (paper) or ``"relu"`` (ablation).
    """

    def __init__(
        self,
        low_channels: Sequence[int],
        high_channels: Sequence[int],
        stride: int = 2,
        norm: str = "instance",
        activation: str = "silu",
    ) -> None:
        super().__init__()
        self.low_channels = tuple(int(c) for c in low_channels)
        self.high_channels = tuple(int(c) for c in high_channels)
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                conv_block(c_low, c_high, stride, norm, activation)
                for c_low in self.low_channels
            )
            for c_high in self.high_channels
        )

    def forward(
        self, low: Sequence[torch.Tensor], high: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """``high[j] + sum_i conv_block_ji(low[i])`` for every layer ``j``."""
        if len(low) != len(self.low_channels) or len(high) != len(self.high_channels):
            raise ValueError(
                f"SFF expects {len(self.low_channels)} + {len(self.high_channels)} "
                f"feature maps, got {len(low)} + {len(high)}"
            )
        return [
            h + sum(block(x) for block, x in zip(row, low, strict=True))
            for h, row in zip(high, self.blocks, strict=True)
        ]
