"""Node of the autoencoder pipeline (see kedro_ad.models.diad.autoencoder)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from kedro_ad.models.common import device
from kedro_ad.models.diad import autoencoder as ae
from kedro_ad.models.maps import to_unit_images
from kedro_ad.training import TrainConfig, fit, seed_weights
from kedro_ad.visualization import Panel, panel_figure

logger = logging.getLogger(__name__)


def _split(arrays: dict, split: str, size: int) -> torch.Tensor:
    rows = np.flatnonzero(arrays["splits"] == split)
    if len(rows) == 0:
        raise ValueError(f"dataset_arrays has no {split} images")
    return to_unit_images(arrays["images"][rows], size)


def _picture(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).clamp(0, 1).cpu().numpy()


def train_autoencoder(arrays: dict, params: dict):
    """Train the KL autoencoder on the train split; select on validation L1.

    With ``pretrained_path`` the autoencoder is loaded from that local diffusers
    folder and fine-tuned for ``training.max_steps`` steps (0 keeps it as it is);
    otherwise a small one is built from ``model`` and trained from scratch.

    Returns:
        ``model`` (``{"vae": AutoencoderKL, "image_size", "latent_factor",
        "source"}``), the training history and a figure of validation
        reconstructions.
    """
    size = int(params.get("image_size") or arrays["images"].shape[1])
    train, val = _split(arrays, "train", size), _split(arrays, "val", size)
    path = params.get("pretrained_path")
    seed_weights(params["training"].get("seed", 0))
    if path:
        vae, source = ae.load_autoencoder(path), f"pretrained from {path}"
    else:
        vae, source = ae.build_autoencoder(**params["model"]), "trained here"
    factor = ae.downsampling_factor(vae)
    if size % (factor * 8):
        raise ValueError(
            f"autoencoder: image size {size} must be a multiple of {factor * 8} "
            f"(latent factor {factor} times the UNet's 8x downsampling)"
        )
    dev = device()
    vae.to(dev)
    n_val = min(len(val), int(params.get("val_images", 32)))
    # evenly spaced over the split, so every class is seen (rows come sorted)
    val_batch = val[np.linspace(0, len(val) - 1, n_val).round().astype(int)].to(dev)

    def validate() -> dict[str, float]:
        with torch.no_grad():
            recon = ae.decode(vae, ae.encode(vae, val_batch))
        l1 = float((recon - val_batch).abs().mean())
        mse = float(((recon - val_batch) ** 2).mean())
        psnr = float(10 * np.log10(1.0 / max(mse, 1e-12)))
        return {"val_score": -l1, "val_l1": l1, "val_psnr": psnr}

    history: dict = {}
    if int(params["training"].get("max_steps", 1)) > 0:  # 0: keep pretrained as is
        config = TrainConfig.from_params(params["training"])
        kl_weight = float(params.get("kl_weight", 1e-6))
        result = fit(
            modules={"vae": vae},
            trainable=None,
            sample_batch=lambda step, g: train[
                torch.randint(len(train), (config.batch_size,), generator=g)
            ],
            loss_fn=lambda batch, g: ae.autoencoder_loss(vae, batch, g, kl_weight),
            validate_fn=validate,
            config=config,
            description="autoencoder",
        )
        history = result.history
        logger.info(
            "autoencoder: best step %d of %d (%s) in %.0f s",
            result.best_step,
            result.steps_done,
            {k: round(v, 4) for k, v in result.best_metrics.items()},
            result.seconds,
        )
    vae.eval()
    if params.get("rescale_latents", not path):
        with torch.no_grad():
            # every training image: the rows are sorted by class, and the first
            # 64 once gave the scale of two classes only
            scale = ae.estimate_scaling_factor(vae, train.to(dev))
        vae.register_to_config(scaling_factor=scale)
        logger.info("autoencoder: latent scaling factor %.4f", scale)
    metrics = validate()
    n_fig = min(n_val, int(params.get("figure_images", 8)))
    shown = val_batch[np.linspace(0, n_val - 1, n_fig).round().astype(int)]
    with torch.no_grad():
        recon = ae.decode(vae, ae.encode(vae, shown))
    figure = panel_figure(
        [
            [Panel(_picture(x), "input"), Panel(_picture(r), "reconstruction")]
            for x, r in zip(shown, recon, strict=True)
        ],
        [f"validation image {i + 1}" for i in range(len(shown))],
        f"KL autoencoder ({source}, f={factor}) on validation images: "
        f"L1 {metrics['val_l1']:.4f}, PSNR {metrics['val_psnr']:.1f} dB",
    )
    model = {
        "vae": vae.cpu(),
        "image_size": size,
        "latent_factor": factor,
        "source": source,
        "val_psnr": metrics["val_psnr"],
    }
    return model, history, figure
