"""The diffusion reconstructors compared in DiAD's Tables 1-4: DiAD, LDM and DDPM.

All three share the training objective (MSE between the true and the predicted
noise) and the inference (noise the input to step ``t'``, DDIM back to step 0), so
their anomaly maps compare like with like:

* ``diad``: latent UNet (SD-shaped) + Semantic-Guided network fed with ``x0``.
* ``ldm``: latent UNet conditioned on the class only (no SG network).
* ``ddpm``: pixel-space UNet, class-agnostic.

Pure PyTorch + diffusers: no kedro, mlflow or accelerate import.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel, UNet2DModel
from torch import nn

from . import autoencoder as ae
from .sg_network import SemanticGuidedNetwork

__all__ = [
    "KINDS",
    "DiffusionReconstructor",
    "build_pixel_unet",
    "build_latent_unet",
    "build_scheduler",
    "trainable_parameters",
]

KINDS = ("diad", "ldm", "ddpm")


def build_latent_unet(
    sample_size: int,
    in_channels: int = 4,
    block_out_channels: Sequence[int] = (32, 64, 64, 64),
    layers_per_block: int = 2,
    attention: bool = False,
    cross_attention_dim: int = 32,
    attention_head_dim: int = 8,
    norm_num_groups: int = 8,
    num_class_embeds: int | None = None,
) -> UNet2DConditionModel:
    """An SD-shaped denoising UNet: ``len(block_out_channels)`` encoder blocks,
    a middle block and as many decoder blocks.

    Args:
        sample_size: latent height/width.
        in_channels: latent channels.
        block_out_channels: channels per resolution (SD: 320, 640, 1280, 1280).
        layers_per_block: ResNets per encoder block (SD: 2).
        attention: cross-attention blocks as in SD (with a null context); ``False``
            leaves plain ResNet blocks (no text here, and cheaper on a CPU).
        cross_attention_dim: width of the null context when ``attention``.
        attention_head_dim: head width when ``attention``.
        norm_num_groups: GroupNorm groups.
        num_class_embeds: number of classes for a class embedding added to the
            time embedding (the LDM baseline's class condition), or ``None``.
    """
    n = len(block_out_channels)
    if attention:
        down = ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",)
        up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1)
        mid = "UNetMidBlock2DCrossAttn"
    else:
        down, up, mid = ("DownBlock2D",) * n, ("UpBlock2D",) * n, "UNetMidBlock2D"
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=in_channels,
        down_block_types=down,
        up_block_types=up,
        mid_block_type=mid,
        block_out_channels=tuple(int(c) for c in block_out_channels),
        layers_per_block=int(layers_per_block),
        cross_attention_dim=int(cross_attention_dim),
        attention_head_dim=int(attention_head_dim),
        norm_num_groups=int(norm_num_groups),
        num_class_embeds=num_class_embeds,
    )


def build_pixel_unet(
    sample_size: int,
    block_out_channels: Sequence[int] = (32, 64, 64, 64),
    layers_per_block: int = 2,
    norm_num_groups: int = 8,
) -> UNet2DModel:
    """The DDPM baseline's pixel-space UNet (no attention, class-agnostic)."""
    n = len(block_out_channels)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        block_out_channels=tuple(int(c) for c in block_out_channels),
        layers_per_block=int(layers_per_block),
        norm_num_groups=int(norm_num_groups),
    )


PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def build_scheduler(
    num_train_timesteps: int = 1000,
    beta_schedule: str = "scaled_linear",
    beta_start: float = 0.00085,
    beta_end: float = 0.012,
    prediction_type: str = "epsilon",
) -> DDIMScheduler:
    """The noise schedule (SD's scaled-linear by default; DDPM's is linear).

    ``prediction_type`` is what the network outputs: the noise (``"epsilon"``, SD
    v1.5 and the paper), the velocity (``"v_prediction"``, SD 2) or the clean
    latent (``"sample"``).
    """
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"prediction_type must be one of {PREDICTION_TYPES}, got "
            f"{prediction_type!r}"
        )
    return DDIMScheduler(
        num_train_timesteps=int(num_train_timesteps),
        beta_schedule=beta_schedule,
        beta_start=float(beta_start),
        beta_end=float(beta_end),
        clip_sample=False,
        set_alpha_to_one=True,
        prediction_type=prediction_type,
    )


UNET_PARTS = ("unet_encoder", "unet_middle", "unet_decoder")


def trainable_parameters(
    unet: nn.Module, sg: nn.Module | None, parts: Sequence[str]
) -> list[nn.Parameter]:
    """Parameters of the chosen parts, freezing the others.

    Args:
        unet: the denoising UNet.
        sg: the SG network or ``None``.
        parts: any of ``"all"``, ``"sg"``, ``"unet"``, ``"unet_encoder"`` (time and
            class embeddings, ``conv_in``, encoder blocks), ``"unet_middle"``,
            ``"unet_decoder"`` (decoder blocks and output layers). DiAD's public
            code trains ``["sg", "unet_decoder"]`` on top of a pretrained SD UNet.
    """
    parts = set(parts)
    unknown = parts - {"all", "sg", "unet", *UNET_PARTS}
    if unknown:
        raise ValueError(f"unknown trainable parts {sorted(unknown)}")
    if "all" in parts:
        parts = {"sg", *UNET_PARTS}
    if "unet" in parts:
        parts |= set(UNET_PARTS)
    for module in (unet, sg):
        if module is not None:
            module.requires_grad_(False)
    chosen: list[nn.Module] = []
    if "sg" in parts and sg is not None:
        chosen.append(sg)
    for name, child in unet.named_children():
        if name == "mid_block":
            part = "unet_middle"
        elif name in ("up_blocks", "conv_norm_out", "conv_out", "conv_act"):
            part = "unet_decoder"
        else:
            part = "unet_encoder"
        if part in parts:
            chosen.append(child)
    params: list[nn.Parameter] = []
    for module in chosen:
        module.requires_grad_(True)
        params += list(module.parameters())
    if not params:
        raise ValueError(f"trainable parts {sorted(parts)} select no parameters")
    return params


def _twice(value: torch.Tensor | None) -> torch.Tensor | None:
    """The batch stacked on itself (the duplicate guidance branch's input)."""
    return None if value is None else torch.cat([value, value])


class DiffusionReconstructor(nn.Module):
    """Noise-and-denoise reconstruction with one of the three networks.

    Args:
        kind: ``"diad"``, ``"ldm"`` or ``"ddpm"``.
        unet: :class:`UNet2DConditionModel` (latent kinds) or :class:`UNet2DModel`
            (``ddpm``).
        scheduler: the noise schedule.
        vae: the frozen KL autoencoder (latent kinds), else ``None``.
        sg: the SG network (``diad`` only).
    """

    def __init__(
        self,
        kind: str,
        unet: nn.Module,
        scheduler: DDIMScheduler,
        vae: AutoencoderKL | None = None,
        sg: SemanticGuidedNetwork | None = None,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if (kind == "ddpm") != (vae is None):
            raise ValueError(
                "ddpm works in pixel space (no vae); diad and ldm need one"
            )
        if (kind == "diad") != (sg is not None):
            raise ValueError("the SG network belongs to diad and only to diad")
        self.kind = kind
        self.unet = unet
        self.sg = sg
        self.vae = vae
        if vae is not None:
            vae.requires_grad_(False)
            vae.eval()
        self.scheduler = scheduler
        self.class_conditioned = (
            getattr(unet.config, "num_class_embeds", None) is not None
        )

    # -- spaces -------------------------------------------------------------------
    @torch.no_grad()
    def to_latent(self, images: torch.Tensor) -> torch.Tensor:
        """Latent (or ``[-1, 1]`` pixels for ddpm) of RGB images in ``[0, 1]``."""
        if self.vae is None:
            return images * 2 - 1
        return ae.encode(self.vae, images)

    @torch.no_grad()
    def latent_moments(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled posterior mean and std of the latents (std 0 for ddpm).

        Training draws ``mean + std * noise`` each step (LDM's posterior sample)
        without running the frozen encoder again.
        """
        if self.vae is None:
            x = images * 2 - 1
            return x, torch.zeros_like(x)
        dist = self.vae.encode(images * 2 - 1).latent_dist
        scale = float(self.vae.config.scaling_factor)
        return dist.mean * scale, dist.std * scale

    @torch.no_grad()
    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """RGB images in ``[0, 1]`` from latents (or ``[-1, 1]`` pixels)."""
        if self.vae is None:
            return ((z + 1) / 2).clamp(0, 1)
        return ae.decode(self.vae, z)

    @torch.no_grad()
    def reference(self, images: torch.Tensor) -> torch.Tensor:
        """What a reconstruction is compared with: ``D(E(x))``, the autoencoder's
        own reconstruction of the input (the input itself for ddpm).

        Comparing with the raw input would mark the autoencoder's blur on every
        normal texture as anomalous; against ``D(E(x))`` only what the diffusion
        changed stands out.
        """
        return self.from_latent(self.to_latent(images))

    # -- the network --------------------------------------------------------------
    def _context(self, z: torch.Tensor) -> torch.Tensor:
        """Null cross-attention context: one zero token (no text here)."""
        dim = int(self.unet.config.cross_attention_dim)
        return z.new_zeros(z.shape[0], 1, dim)

    @property
    def prediction_type(self) -> str:
        """What the network outputs: ``epsilon``, ``v_prediction`` or ``sample``."""
        return str(self.scheduler.config.get("prediction_type", "epsilon"))

    def network_output(
        self,
        z_t: torch.Tensor,
        t: torch.Tensor,
        images: torch.Tensor | None = None,
        class_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The network's raw output at ``(z_t, t[, C(x)][, class])``.

        Args:
            z_t: noisy latents.
            t: ``[B]`` steps.
            images: the SG network's input image in ``[0, 1]`` (diad only).
            class_ids: ``[B]`` class indices (class-conditioned UNets only).
        """
        labels = class_ids if self.class_conditioned else None
        if self.class_conditioned and labels is None:
            raise ValueError(
                f"this {self.kind} model is class-conditioned: classes are required"
            )
        if self.kind == "ddpm":
            return self.unet(z_t, t, class_labels=labels).sample
        context = self._context(z_t)
        down = mid = None
        if self.sg is not None:
            if images is None:
                raise ValueError("diad needs the input image x0 for its SG network")
            down, mid = self.sg(z_t, t, images * 2 - 1, context, labels)
        return self.unet(
            z_t,
            t,
            encoder_hidden_states=context,
            class_labels=labels,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample

    def _alpha_bar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        a = self.scheduler.alphas_cumprod.to(like.device, torch.float32)[t]
        return a.view(-1, *([1] * (like.ndim - 1)))

    def predict_noise(
        self,
        z_t: torch.Tensor,
        t: torch.Tensor,
        images: torch.Tensor | None = None,
        class_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``eps_theta(z_t, t[, C(x)][, class])``, whatever the network predicts."""
        out = self.network_output(z_t, t, images, class_ids)
        if self.prediction_type == "epsilon":
            return out
        a = self._alpha_bar(t, z_t)
        if self.prediction_type == "sample":
            return (z_t - a.sqrt() * out) / (1 - a).sqrt()
        return a.sqrt() * out + (1 - a).sqrt() * z_t  # v_prediction

    def target(
        self, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
    ) -> torch.Tensor:
        """What the network should output for ``z_t = add_noise(z0, noise, t)``."""
        if self.prediction_type == "epsilon":
            return noise
        if self.prediction_type == "sample":
            return z0
        return self.scheduler.get_velocity(z0, noise, t)

    def loss(
        self,
        z0: torch.Tensor,
        images: torch.Tensor | None,
        class_ids: torch.Tensor | None,
        generator: torch.Generator | None = None,
        weights: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """MSE of the network's output at uniformly drawn steps (Eq. 6).

        With ``epsilon`` prediction this is the paper's noise MSE; ``sample`` and
        ``v_prediction`` weigh the clean latent's error more at high ``t``.

        Args:
            z0: clean latents (ddpm: pixels in ``[-1, 1]``): the target.
            images: the SG network's input in ``[0, 1]`` (diad). To teach it to
                repair, this may hold synthetic defects while ``z0`` is the latent
                of the clean image.
            class_ids: class indices (class-conditioned models).
            generator: random source of steps and noise.
            weights: per-position weights broadcastable to ``z0`` (e.g. more
                weight where a synthetic defect must be repaired); the loss is
                the weighted mean.
        """
        n_steps = int(self.scheduler.config.num_train_timesteps)
        t = torch.randint(0, n_steps, (z0.shape[0],), generator=generator)
        noise = torch.randn(z0.shape, generator=generator)
        t, noise = t.to(z0.device), noise.to(z0.device, z0.dtype)
        z_t = self.scheduler.add_noise(z0, noise, t)
        pred = self.network_output(z_t, t, images, class_ids)
        error = (pred.float() - self.target(z0, noise, t).float()) ** 2
        if weights is None:
            mse = error.mean()
            return {"loss": mse, "mse": mse.detach()}
        w = weights.float().expand_as(error)
        loss = (w * error).sum() / w.sum()
        return {"loss": loss, "mse": error.mean().detach()}

    def timesteps(self, t_start: int, num_steps: int) -> list[int]:
        """The DDIM steps from ``t_start`` down towards 0 (``num_steps`` of them)."""
        n_train = int(self.scheduler.config.num_train_timesteps)
        if not 0 < t_start < n_train or num_steps < 1:
            raise ValueError(
                f"need 0 < t_start < {n_train} and num_steps >= 1, "
                f"got t_start={t_start}, num_steps={num_steps}"
            )
        stride = (t_start + 1) / num_steps
        return [round(t_start - i * stride) for i in range(num_steps)]

    def _ddim_step(
        self, z: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int
    ) -> torch.Tensor:
        """Deterministic DDIM update (eta = 0) from ``t`` to ``t_prev`` (-1: clean).

        Written out because ``DDIMScheduler.step`` assumes equally spaced steps that
        start at the end of the schedule, while DiAD starts at a configurable ``t'``.
        """
        alphas = self.scheduler.alphas_cumprod.to(z.device, torch.float32)
        a_t = alphas[t]
        a_prev = alphas[t_prev] if t_prev >= 0 else torch.ones((), device=z.device)
        z0 = (z - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        if self.kind == "ddpm":
            z0 = z0.clamp(-1, 1)
        return a_prev.sqrt() * z0 + (1 - a_prev).sqrt() * eps

    @torch.no_grad()
    def reconstruct(
        self,
        images: torch.Tensor,
        class_ids: torch.Tensor | None = None,
        t_start: int = 999,
        num_steps: int = 10,
        generator: torch.Generator | None = None,
        duplicate_guidance_branch: bool = False,
        guidance_scale: float = 9.0,
    ) -> torch.Tensor:
        """``x̂0``: noise the input's latent to ``t_start``, DDIM back, decode.

        Args:
            images: ``[B, 3, H, W]`` in ``[0, 1]``.
            class_ids: class indices (class-conditioned models).
            t_start: ``t'``, the step the input is noised to (paper: 1000).
            num_steps: DDIM steps (paper: 10).
            generator: random source of the forward noise.
            duplicate_guidance_branch: run DiAD's public code's classifier-free
                guidance with two identical branches (for timing comparison only:
                both branches see the same inputs, so the output is unchanged).
            guidance_scale: the public code's scale (used only with the duplicate).

        Returns:
            ``[B, 3, H, W]`` reconstructions in ``[0, 1]``.
        """
        z0 = self.to_latent(images)
        noise = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)
        steps = self.timesteps(int(t_start), int(num_steps))
        t0 = torch.full((z0.shape[0],), steps[0], device=z0.device, dtype=torch.long)
        z = self.scheduler.add_noise(z0, noise, t0)
        for i, t in enumerate(steps):
            t_prev = steps[i + 1] if i + 1 < len(steps) else -1
            t_batch = torch.full((z.shape[0],), t, device=z.device, dtype=torch.long)
            if duplicate_guidance_branch:
                eps_c, eps_u = self.predict_noise(
                    *(_twice(v) for v in (z, t_batch, images, class_ids))
                ).chunk(2)
                eps = eps_u + guidance_scale * (eps_c - eps_u)
            else:
                eps = self.predict_noise(z, t_batch, images, class_ids)
            z = self._ddim_step(z, eps, t, t_prev)
        return self.from_latent(z)
