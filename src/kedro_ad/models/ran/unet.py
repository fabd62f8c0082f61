"""RAN's denoising network: a class-conditioned pixel-space UNet with a feature head.

One diffusers ``UNet2DModel`` predicts, from the corrupted image ``x_t``, both the
noise (3 channels; pixel space) and the pretrained features of the clean image
``f(x_0)`` (the joint ``P(x, f)`` of the paper): its last convolution has
``3 + feature_channels`` outputs, and the feature part is average-pooled by
``feature_stride`` onto the backbone's grid. Class conditioning uses the UNet's
class-embedding table (one unified model for every class, as in the paper's Table 3).
The features are predicted in a normalised space (per-channel mean and standard
deviation of the training features, stored as buffers) so every channel weighs the
same in the MSE.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import ModelMixin, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config

from kedro_ad.models.common import class_ids


class RanUNet(ModelMixin, ConfigMixin):
    """Noise + clean-feature predictor ``(x_t, t, class) -> (eps, f_hat)``."""

    @register_to_config
    def __init__(
        self,
        sample_size: int = 64,
        class_names: Sequence[str] = ("default",),
        feature_channels: int = 176,
        feature_stride: int = 4,
        block_out_channels: Sequence[int] = (32, 64, 128),
        layers_per_block: int = 1,
        attention: Sequence[bool] = (False, False, True),
        norm_num_groups: int = 8,
        attention_head_dim: int = 8,
    ) -> None:
        super().__init__()
        if len(attention) != len(block_out_channels):
            raise ValueError("ran: one attention flag per UNet level is needed")
        if sample_size % feature_stride:
            raise ValueError(
                f"ran: model.image_size {sample_size} must be a multiple of the "
                f"feature pooling {feature_stride}"
            )
        down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention)
        up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention))
        self.unet = UNet2DModel(
            sample_size=sample_size,
            in_channels=3,
            out_channels=3 + feature_channels,
            down_block_types=down,
            up_block_types=up,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups,
            attention_head_dim=attention_head_dim,
            num_class_embeds=len(class_names),
        )
        self.register_buffer("feature_mean", torch.zeros(feature_channels))
        self.register_buffer("feature_std", torch.ones(feature_channels))

    def class_ids(self, classes: Sequence[str] | None, n: int) -> torch.Tensor:
        """Class indices for the embedding table; a clear error for unknown classes."""
        return class_ids(classes, self.config.class_names, n, "ran")

    def normalise_features(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone features ``[B, C, h, w]`` -> the space the head predicts in."""
        mean = self.feature_mean.view(1, -1, 1, 1)
        return (features - mean) / self.feature_std.view(1, -1, 1, 1)

    def forward(
        self, noisy: torch.Tensor, timesteps: torch.Tensor, class_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted noise ``[B, 3, S, S]`` and normalised clean features.

        Args:
            noisy: ``x_t`` in the diffusion space (``[-1, 1]`` images plus noise).
            timesteps: ``[B]`` integer timesteps.
            class_ids: ``[B]`` indices into ``config.class_names``.
        """
        out = self.unet(noisy, timesteps, class_labels=class_ids).sample
        eps, feats = out[:, :3], out[:, 3:]
        stride = self.config.feature_stride
        return eps, F.avg_pool2d(feats, stride) if stride > 1 else feats
