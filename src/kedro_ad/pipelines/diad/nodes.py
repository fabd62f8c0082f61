"""Nodes of DiAD and of its LDM and DDPM baselines (see kedro_ad.models.diad).

The three variants share one training, scoring and serving path; the thin
``train_<variant>`` / ``predict_<variant>`` wrappers fix the variant.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from sklearn.metrics import roc_auc_score

from kedro_ad.models.backbones import build_backbone
from kedro_ad.models.diad import (
    AnomalyMapper,
    DiffusionReconstructor,
    SemanticGuidedNetwork,
    build_latent_unet,
    build_pixel_unet,
    build_scheduler,
    trainable_parameters,
)
from kedro_ad.models.maps import resize_maps
from kedro_ad.serving import as_image_batch, input_size
from kedro_ad.training import TrainConfig, fit
from kedro_ad.visualization import training_figure

logger = logging.getLogger(__name__)

DESCRIPTIONS = {
    "diad": "DiAD (He et al., AAAI 2024): latent diffusion with a Semantic-Guided "
    "network and SFF block; feature-space (1 - cosine) anomaly maps",
    "ldm": "LDM baseline of DiAD's tables: class-conditioned latent diffusion, no "
    "SG network; DiAD's inference and scoring",
    "ddpm": "DDPM baseline of DiAD's tables: class-agnostic pixel-space diffusion; "
    "DiAD's inference and scoring",
}


def device() -> torch.device:
    """The GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# -- building ----------------------------------------------------------------------
def _build_networks(
    kind: str, params: dict, size: int, factor: int, class_names: list[str]
) -> dict[str, Any]:
    """Fresh (or SD-initialised) networks of a variant, from its parameters."""
    model = dict(params["model"])
    unet_path = model.pop("pretrained_unet_path", None)
    class_conditioned = bool(model.pop("class_conditioned", kind == "ldm"))
    n_classes = len(class_names) if class_conditioned else None
    if kind == "ddpm":
        for key in ("attention", "cross_attention_dim", "attention_head_dim"):
            model.pop(key, None)
        return {"unet": build_pixel_unet(size, **model)}
    if unet_path:
        unet = _load_unet(unet_path)
        if n_classes is not None and unet.config.num_class_embeds != n_classes:
            raise ValueError(
                f"{kind}.model.pretrained_unet_path {unet_path}: the UNet has "
                f"num_class_embeds={unet.config.num_class_embeds}, this data "
                f"{n_classes} classes"
            )
    else:
        unet = build_latent_unet(size // factor, num_class_embeds=n_classes, **model)
    nets: dict[str, Any] = {"unet": unet}
    if kind == "diad":
        sg = dict(params["sg"])
        widest = int(sg.pop("conditioning_widest", 64))
        nets["sg"] = SemanticGuidedNetwork.from_unet(
            unet, latent_factor=factor, conditioning_widest=widest, **sg
        )
    return nets


def _load_unet(path: str | os.PathLike[str]) -> UNet2DConditionModel:
    """A denoising UNet from a local diffusers folder (or its ``unet/`` subfolder),
    e.g. Stable Diffusion v1.5's."""
    from pathlib import Path

    root = Path(path).expanduser()
    for folder in (root, root / "unet"):
        if (folder / "config.json").is_file():
            logger.info("Loading the SD UNet from %s", folder)
            return UNet2DConditionModel.from_pretrained(folder, local_files_only=True)
    raise FileNotFoundError(
        f"model.pretrained_unet_path {root}: no diffusers UNet2DConditionModel "
        "folder (config.json + weights) there or in its unet/ subfolder"
    )


def _reconstructor(model: dict, vae) -> DiffusionReconstructor:
    kind = model["kind"]
    return DiffusionReconstructor(
        kind,
        model["unet"],
        build_scheduler(**model["scheduler"]),
        vae=None if kind == "ddpm" else vae,
        sg=model.get("sg"),
    )


def _class_ids(names: np.ndarray | None, model: dict) -> torch.Tensor | None:
    """Class indices for a class-conditioned model (clear errors otherwise)."""
    known = list(model.get("class_names") or [])
    if not model.get("class_conditioned"):
        return None
    if names is None:
        raise ValueError(
            f"the {model['kind']} model is class-conditioned: pass "
            '{"images": ..., "classes": ...} with one of ' + f"{known} per image"
        )
    unknown = sorted(set(names.tolist()) - set(known))
    if unknown:
        raise ValueError(f"classes {unknown} are unknown to the model (knows {known})")
    return torch.tensor([known.index(c) for c in names.tolist()], dtype=torch.long)


_BACKBONES: dict[str, torch.nn.Module] = {}


def _mapper(model: dict) -> AnomalyMapper:
    cfg = model["backbone"]
    key = repr(sorted(cfg.items()))
    if key not in _BACKBONES:  # built once per process (weights conversion is slow)
        _BACKBONES[key] = build_backbone(
            name=cfg["name"],
            layers=tuple(cfg["layers"]),
            pretrained=bool(cfg.get("pretrained", True)),
            weights_path=cfg.get("weights_path"),
        )
    amap = model["anomaly_map"]
    return AnomalyMapper(
        _BACKBONES[key],
        sigma=float(amap["sigma"]),
        pool_kernel=int(amap["pool_kernel"]),
        pool_rounds=int(amap["pool_rounds"]),
        feature_size=amap.get("feature_size"),
    )


def reconstruct_and_score(
    recon: DiffusionReconstructor,
    mapper: AnomalyMapper,
    images: torch.Tensor,
    class_ids: torch.Tensor | None,
    inference: dict,
    keep_reconstructions: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Scores, maps (at the model's size) and optionally x̂0, batch by batch.

    The forward noise is drawn from ``inference.seed`` per batch, so a run is
    reproducible and every checkpoint is validated on the same noise.
    """
    dev = next(recon.unet.parameters()).device
    mapper.to(dev)
    bs = int(inference.get("batch_size", 16))
    scores, maps, recons = [], [], []
    for start in range(0, images.shape[0], bs):
        x = images[start : start + bs].to(dev)
        cls = None if class_ids is None else class_ids[start : start + bs].to(dev)
        g = torch.Generator().manual_seed(int(inference.get("seed", 0)) + start)
        x_hat = recon.reconstruct(
            x,
            cls,
            t_start=int(inference["t_start"]),
            num_steps=int(inference["num_steps"]),
            generator=g,
            duplicate_guidance_branch=bool(
                inference.get("duplicate_guidance_branch", False)
            ),
        )
        s, m = mapper(x, x_hat)
        scores.append(s.cpu().numpy())
        maps.append(m.cpu().numpy())
        if keep_reconstructions:
            recons.append(x_hat.cpu().numpy())
    return (
        np.concatenate(scores),
        np.concatenate(maps),
        np.concatenate(recons) if keep_reconstructions else None,
    )


def _resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
    m = torch.from_numpy(masks.astype(np.float32))[:, None]
    return (F.interpolate(m, size=(size, size), mode="nearest")[:, 0] > 0.5).numpy()


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def _validation_rows(synthetic: dict, n_max: int) -> np.ndarray:
    """A fixed, balanced subset of the synthetic validation set (per class)."""
    rows = []
    classes = synthetic["classes"]
    names = sorted(set(classes.tolist()))
    per = max(1, n_max // (2 * len(names)))
    for cls in names:
        for label in (0, 1):
            rows += np.flatnonzero((classes == cls) & (synthetic["labels"] == label))[
                :per
            ].tolist()
    return np.asarray(sorted(rows))


# -- nodes -------------------------------------------------------------------------
def _train(
    kind: str,
    arrays: dict,
    synthetic: dict,
    autoencoder: dict | None,
    params: dict,
):
    size = int(params.get("image_size") or arrays["images"].shape[1])
    vae, factor = None, 1
    if kind != "ddpm":
        vae = autoencoder["vae"]
        factor = int(autoencoder["latent_factor"])
        if int(autoencoder["image_size"]) != size:
            raise ValueError(
                f"{kind}: autoencoder.model was trained at "
                f"{autoencoder['image_size']}px, {kind}.image_size is {size}"
            )
    train_rows = np.flatnonzero(arrays["splits"] == "train")
    class_names = sorted(set(arrays["classes"][train_rows].tolist()))
    nets = _build_networks(kind, params, size, factor, class_names)
    model: dict[str, Any] = {
        **nets,
        "kind": kind,
        "image_size": size,
        "latent_factor": factor,
        "class_names": class_names,
        "class_conditioned": kind != "ddpm"
        and nets["unet"].config.num_class_embeds is not None,
        "scheduler": dict(params["scheduler"]),
        "backbone": dict(params["backbone"]),
        "anomaly_map": dict(params["anomaly_map"]),
        "inference": dict(params["inference"]),
    }
    dev = device()
    recon = _reconstructor(model, vae).to(dev)
    trainable = trainable_parameters(recon.unet, recon.sg, params["trainable"])
    images = as_image_batch(arrays["images"][train_rows], size)[0]
    ids = _class_ids(arrays["classes"][train_rows], model)
    with torch.no_grad():  # the frozen encoder runs once, not every step
        moments = [
            recon.latent_moments(images[i : i + 32].to(dev))
            for i in range(0, len(images), 32)
        ]
    mean = torch.cat([m for m, _ in moments]).cpu()
    std = torch.cat([s for _, s in moments]).cpu()
    config = TrainConfig.from_params(params["training"])

    def sample_batch(step: int, g: torch.Generator) -> dict:
        idx = torch.randint(len(images), (config.batch_size,), generator=g)
        batch = {"mean": mean[idx], "std": std[idx], "images": images[idx]}
        if ids is not None:
            batch["class_ids"] = ids[idx]
        return batch

    def loss_fn(batch: dict, g: torch.Generator) -> dict:
        eps = torch.randn(batch["mean"].shape, generator=g).to(batch["mean"].device)
        z0 = batch["mean"] + batch["std"] * eps
        return recon.loss(
            z0, batch["images"] if kind == "diad" else None, batch.get("class_ids"), g
        )

    rows = _validation_rows(synthetic, int(params["validation"]["max_images"]))
    val_images = as_image_batch(synthetic["images"][rows], size)[0]
    val_labels = synthetic["labels"][rows]
    val_ids = _class_ids(synthetic["classes"][rows], model)
    mapper = _mapper(model)
    inference = {**model["inference"], **params["validation"].get("inference", {})}

    def validate() -> dict[str, float]:
        scores, maps, _ = reconstruct_and_score(
            recon, mapper, val_images, val_ids, inference
        )
        image = _auroc(val_labels, scores)
        val_masks = _resize_masks(synthetic["masks"][rows], maps.shape[-1])
        pixel = _auroc(val_masks.ravel(), maps.ravel())
        return {
            "val_score": float(np.nanmean([image, pixel])),
            "val_image_auroc": image,
            "val_pixel_auroc": pixel,
        }

    modules = {
        k: v for k, v in (("unet", recon.unet), ("sg", recon.sg)) if v is not None
    }
    result = fit(
        modules=modules,
        trainable=trainable,
        sample_batch=sample_batch,
        loss_fn=loss_fn,
        validate_fn=validate,
        config=config,
        monitor="val_score",
        description=kind,
    )
    logger.info(
        "%s: best step %d of %d on the synthetic validation set %s (%.0f s)",
        kind,
        result.best_step,
        result.steps_done,
        {k: round(v, 4) for k, v in result.best_metrics.items()},
        result.seconds,
    )
    model.update(
        {k: v.cpu() for k, v in modules.items()},
        best_step=int(result.best_step),
        steps_done=int(result.steps_done),
        training_seconds=float(result.seconds),
        best_metrics=result.best_metrics,
    )
    figure = training_figure(
        result.history,
        f"{kind}: {result.steps_done} steps in {result.seconds / 60:.1f} min; "
        f"weights of step {result.best_step} kept (best val_score on the synthetic "
        "validation set)",
    )
    return model, result.history, figure


def train_diad(
    arrays: dict, synthetic_validation: dict, autoencoder_model: dict, params: dict
):
    """DiAD: SD-shaped latent UNet + SG network, chosen on synthetic validation.

    Returns the model folder dict, the training history and the training figure.
    """
    return _train("diad", arrays, synthetic_validation, autoencoder_model, params)


def train_ldm(
    arrays: dict, synthetic_validation: dict, autoencoder_model: dict, params: dict
):
    """The LDM baseline: class-conditioned latent UNet, no SG network."""
    return _train("ldm", arrays, synthetic_validation, autoencoder_model, params)


def train_ddpm(arrays: dict, synthetic_validation: dict, params: dict):
    """The DDPM baseline: class-agnostic pixel-space UNet."""
    return _train("ddpm", arrays, synthetic_validation, None, params)


def _score(model: dict, vae, images: torch.Tensor, classes, params: dict, keep=False):
    recon = _reconstructor(model, vae).to(device()).eval()
    inference = {**model["inference"], **(params.get("inference") or {})}
    return reconstruct_and_score(
        recon, _mapper(model), images, _class_ids(classes, model), inference, keep
    )


def _figure(images, recons, maps, masks, titles) -> plt.Figure:
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.9 * n, 6), squeeze=False)
    for i in range(n):
        axes[0, i].imshow(images[i])
        axes[0, i].contour(masks[i], levels=[0.5], colors="r", linewidths=0.6)
        axes[0, i].set_title(titles[i], fontsize=7)
        axes[1, i].imshow(recons[i])
        axes[2, i].imshow(maps[i], cmap="jet")
        for row in range(3):
            axes[row, i].axis("off")
    for row, name in enumerate(("x0 (mask in red)", "reconstruction", "anomaly map")):
        axes[row, 0].text(
            -0.05,
            0.5,
            name,
            transform=axes[row, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=7,
        )
    fig.tight_layout()
    return fig


def score_test_split(model: dict, autoencoder_model: dict | None, arrays: dict, params):
    """Scores and maps of the test split (predictions format) and a figure."""
    index = np.flatnonzero(arrays["splits"] == "test")
    size = int(model["image_size"])
    images = as_image_batch(arrays["images"][index], size)[0]
    classes = arrays["classes"][index]
    vae = None if autoencoder_model is None else autoencoder_model["vae"]
    start = time.perf_counter()
    scores, small_maps, recons = _score(model, vae, images, classes, params, True)
    score_seconds = time.perf_counter() - start
    height, width = arrays["images"].shape[1:3]
    maps = resize_maps(small_maps, (height, width))
    kind = model["kind"]
    predictions = {
        "index": index,
        "image_paths": arrays["image_paths"][index],
        "scores": scores.astype(np.float32),
        "maps": maps.astype(np.float16),
        "method": np.asarray(kind),
        "description": np.asarray(
            f"{DESCRIPTIONS[kind]}; t'={model['inference']['t_start']}, "
            f"{model['inference']['num_steps']} DDIM steps, {size}px"
        ),
        "train_seconds": np.float64(model.get("training_seconds", np.nan)),
        "score_seconds": np.float64(score_seconds),
    }
    labels = arrays["labels"][index]
    chosen = []
    for cls in sorted(set(classes.tolist())):
        rows = np.flatnonzero((classes == cls) & (labels == 1))
        chosen += rows[:1].tolist()
    chosen = chosen[: int(params.get("figure_images", 6))]
    figure = _figure(
        images[chosen].permute(0, 2, 3, 1).numpy(),
        recons[chosen].transpose(0, 2, 3, 1),
        small_maps[chosen],
        _resize_masks(arrays["masks"][index[chosen]], size),
        [f"{classes[i]}: {scores[i]:.3f}" for i in chosen],
    )
    return predictions, figure


def score_ddpm(model: dict, arrays: dict, params: dict):
    """The DDPM baseline's test scores (it has no autoencoder)."""
    return score_test_split(model, None, arrays, params)


def _predict(model: dict, vae, images: Any, params: dict) -> dict[str, np.ndarray]:
    x, classes = as_image_batch(images, int(model["image_size"]))
    scores, maps, _ = _score(model, vae, x, classes, params)
    maps = resize_maps(maps, input_size(images))
    return {"scores": scores.astype(np.float32), "maps": maps}


def predict_diad(
    model: dict, autoencoder_model: dict, images: Any, params: dict
) -> dict[str, np.ndarray]:
    """Serve DiAD: uint8 images ``(N, H, W, 3)`` -> scores ``(N,)``, maps ``(N, H, W)``.

    Maps come back at the input's size.
    """
    return _predict(model, autoencoder_model["vae"], images, params)


def predict_ldm(
    model: dict, autoencoder_model: dict, images: Any, params: dict
) -> dict[str, np.ndarray]:
    """Serve the LDM baseline: ``{"images": (N, H, W, 3), "classes": (N,)}`` (it is
    class-conditioned) -> scores and maps at the input's size."""
    return _predict(model, autoencoder_model["vae"], images, params)


def predict_ddpm(model: dict, images: Any, params: dict) -> dict[str, np.ndarray]:
    """Serve the DDPM baseline: images -> scores and maps at the input's size."""
    return _predict(model, None, images, params)
