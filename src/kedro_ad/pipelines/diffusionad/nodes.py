"""Nodes of DiffusionAD: train (with checkpoint selection on validation), score, serve.

The model (a ``<m>.model`` folder) is a dict: ``settings`` (JSON: image size,
schedule, the classes of per-class models) and one ``unet``/``seg`` pair, or with
``model.per_class`` one pair per class, ``unet_<i>``/``seg_<i>`` for
``settings["classes"][i]``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from kedro_ad.metrics.checkpoint import NOT_RECORDED, CheckpointRule
from kedro_ad.models.common import class_ids, device
from kedro_ad.models.diffusionad import (
    DiffusionAD,
    SegmentationUNet,
    build_denoiser,
    build_scheduler,
    diffusionad_loss,
    top_k_for,
)
from kedro_ad.models.maps import resize_maps, resize_masks, to_unit_images
from kedro_ad.pipelines.evaluation.nodes import make_predictions
from kedro_ad.serving import as_image_batch, input_size, served_output
from kedro_ad.training import TrainConfig, fit
from kedro_ad.visualization import (
    Panel,
    examples_per_class,
    panel_figure,
    training_figure,
)

logger = logging.getLogger(__name__)

METHOD = "diffusionad"
DESCRIPTION = (
    "DiffusionAD (Zhang et al. 2023): one-step DDPM denoising at lambda in {lams} + "
    "a segmentation U-Net on (x0, x0_hat); image score = mean of the top-{k} pixels"
)


# --- model building and (de)serialisation ----------------------------------------
def _settings(params: dict, classes: list[str] | None) -> dict:
    model = params["model"]
    return {
        "image_size": int(model["image_size"]),
        "num_train_timesteps": int(model.get("num_train_timesteps", 1000)),
        "beta_start": float(model.get("beta_start", 1e-4)),
        "beta_end": float(model.get("beta_end", 2e-2)),
        "classes": classes,
    }


def build_network(params: dict) -> DiffusionAD:
    """A fresh (untrained) DiffusionAD from ``params["model"]``."""
    model = params["model"]
    den, seg = model["denoiser"], model["segmentation"]
    unet = build_denoiser(
        int(model["image_size"]),
        block_out_channels=tuple(den["block_out_channels"]),
        layers_per_block=int(den["layers_per_block"]),
        attention_resolutions=tuple(den["attention_resolutions"]),
        attention_head_dim=int(den["attention_head_dim"]),
        norm_num_groups=int(den["norm_num_groups"]),
        dropout=float(den.get("dropout", 0.0)),
    )
    segmenter = SegmentationUNet(block_out_channels=tuple(seg["block_out_channels"]))
    s = _settings(params, None)
    scheduler = build_scheduler(
        s["num_train_timesteps"], s["beta_start"], s["beta_end"]
    )
    return DiffusionAD(unet, segmenter, scheduler)


def _pack(networks: dict[str | None, DiffusionAD], settings: dict) -> dict:
    if None in networks:
        return {
            "settings": settings,
            "unet": networks[None].unet,
            "seg": networks[None].seg,
        }
    out: dict = {"settings": settings}
    for i, cls in enumerate(settings["classes"]):
        out[f"unet_{i}"], out[f"seg_{i}"] = networks[cls].unet, networks[cls].seg
    return out


def _unpack(model: dict) -> dict[str | None, DiffusionAD]:
    s = model["settings"]
    scheduler = build_scheduler(
        s["num_train_timesteps"], s["beta_start"], s["beta_end"]
    )
    if s.get("classes") is None:
        return {None: DiffusionAD(model["unet"], model["seg"], scheduler).eval()}
    return {
        cls: DiffusionAD(model[f"unet_{i}"], model[f"seg_{i}"], scheduler).eval()
        for i, cls in enumerate(s["classes"])
    }


# --- scoring ---------------------------------------------------------------------
def run_network(
    network: DiffusionAD,
    images: torch.Tensor,
    inference: dict,
    out_size: tuple[int, int],
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Algorithm 2 in batches: scores [N], maps [N, *out_size], x̂0 [N, 3, s, s].

    The corruption noise comes from a generator seeded by ``inference.seed`` so a
    model scores the same images the same way every time. ``progress``: a tqdm bar
    over the batches (test scoring, where a user waits; not every validation).
    """
    dev = next(network.parameters()).device
    lams = [int(t) for t in inference["timesteps"]]
    size = images.shape[-1]
    k = top_k_for(size, size, int(inference.get("top_k_at_256", 50)))
    batch = int(inference.get("batch_size", 16))
    generator = torch.Generator(device=dev).manual_seed(int(inference.get("seed", 0)))
    scores, maps, recons = [], [], []
    for start in tqdm(
        range(0, len(images), batch),
        desc=f"{METHOD} scoring",
        unit="batch",
        disable=not progress or len(images) <= batch,
        leave=False,
    ):
        x = images[start : start + batch].to(dev)
        out = network(x, timesteps=lams, top_k=k, generator=generator)
        scores.append(out.pred_score.float().cpu())
        maps.append(resize_maps(out.anomaly_map.float(), out_size).cpu())
        recons.append(out.reconstruction.float().cpu())
    if not scores:
        empty = np.zeros((0, *out_size), np.float32)
        return np.zeros(0, np.float32), empty, np.zeros((0, 3, size, size), np.float32)
    return (
        torch.cat(scores).numpy(),
        torch.cat(maps).numpy(),
        torch.cat(recons).numpy(),
    )


def _score_rows(
    networks: dict[str | None, DiffusionAD],
    images: torch.Tensor,
    classes: np.ndarray | None,
    inference: dict,
    out_size: tuple[int, int],
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score every row with the unified network or with its class's network."""
    if None in networks:
        return run_network(networks[None], images, inference, out_size, progress)
    known = sorted(networks)
    ids = class_ids(classes, known, len(images), f"{METHOD} (one network per class)")
    n, size = len(images), images.shape[-1]
    scores = np.zeros(n, np.float32)
    maps = np.zeros((n, *out_size), np.float32)
    recons = np.zeros((n, 3, size, size), np.float32)
    for i, cls in enumerate(known):
        sel = np.flatnonzero(ids.numpy() == i)
        if len(sel):
            scores[sel], maps[sel], recons[sel] = run_network(
                networks[cls], images[sel], inference, out_size, progress
            )
    return scores, maps, recons


def validation_metrics(
    networks: dict[str | None, DiffusionAD],
    validation: dict[str, np.ndarray],
    inference: dict,
    image_size: int,
    rule: CheckpointRule,
) -> dict[str, float]:
    """Metrics on synthetic_validation (normal val images + synthesised anomalies)
    and ``val_score``, the project's one checkpoint rule (``checkpoint_rule``)."""
    x = to_unit_images(validation["images"], image_size)
    masks = validation["masks"]
    classes = validation["classes"] if None not in networks else None
    scores, maps, _ = _score_rows(networks, x, classes, inference, masks.shape[1:3])
    return rule.score(validation["labels"], scores, masks, maps)


# --- training --------------------------------------------------------------------
def _synthesis_settings(synthesis: dict) -> dict:
    """Keyword arguments of synthesize_batch from ``params:anomaly_synthesis``."""
    out = dict(synthesis.get("synthesis") or {})
    for k in ("beta_range", "perlin_scale_range"):
        if k in out:
            out[k] = tuple(out[k])
    return out


def _batch_sampler(
    images: np.ndarray,
    is_texture: np.ndarray,
    synthesis: dict,
    batch_size: int,
    image_size: int,
) -> Callable[[int, torch.Generator], dict]:
    """``(step, generator) -> batch`` of train images, about half with synthetic
    defects (the paper's batches: 3 normal + 3 anomalous), drawn at the dataset's
    resolution and resized to the model's like the validation and test images."""
    from kedro_ad.synthesis import foreground_masks, load_textures, synthesize_batch

    textures = load_textures(synthesis.get("texture_dir"), max(images.shape[1:3]))
    foreground = foreground_masks(
        images, is_texture, **(synthesis.get("foreground") or {})
    )
    settings = _synthesis_settings(synthesis)

    def sample(step: int, generator: torch.Generator) -> dict:
        rng = np.random.default_rng(generator.initial_seed())
        idx = rng.choice(len(images), size=batch_size, replace=len(images) < batch_size)
        out, masks, labels = synthesize_batch(
            images[idx],
            rng,
            textures=textures,
            object_mask=foreground[idx],
            is_texture=is_texture[idx],
            **settings,
        )
        return {
            "images": to_unit_images(out, image_size),
            # area-averaged: a defect edge that covers part of a pixel is a soft
            # target (see binary_focal_loss for what the focal term does with it)
            "masks": resize_masks(torch.from_numpy(masks), image_size, soft=True)[
                :, None
            ],
            "labels": torch.as_tensor(np.asarray(labels), dtype=torch.long),
        }

    return sample


def _fit_one(
    name: str,
    images: np.ndarray,
    is_texture: np.ndarray,
    validation: dict[str, np.ndarray],
    params: dict,
    synthesis: dict,
    checkpoint_dir: str | None,
    rule: CheckpointRule,
) -> tuple[DiffusionAD, dict]:
    size = int(params["model"]["image_size"])
    training = dict(params["training"])
    with torch.random.fork_rng(devices=[]):  # initial weights follow training.seed
        torch.manual_seed(int(training.get("seed", 0)))
        network = build_network(params)
    training["checkpoint_dir"] = checkpoint_dir
    training["fingerprint"] = {
        **dict(training.get("fingerprint") or {}),
        "model": params["model"],
        "loss": params["loss"],
        "synthesis": {k: synthesis.get(k) for k in ("texture_dir", "synthesis")},
        "name": name,
        "checkpoint_rule": rule.name,  # best weights chosen by another rule: afresh
    }
    config = TrainConfig.from_params(training)
    sample_batch = _batch_sampler(
        images, is_texture, synthesis, config.batch_size, size
    )
    loss = params["loss"]

    def loss_fn(batch: dict, generator: torch.Generator) -> dict:
        return diffusionad_loss(
            network,
            batch["images"],
            batch["masks"],
            batch["labels"],
            generator,
            timestep_ranges=loss["timestep_ranges"],
            noise_loss_on=loss["noise_loss_on"],
            focal_weight=float(loss["focal_weight"]),
            focal_alpha=float(loss["focal_alpha"]),
            focal_gamma=float(loss["focal_gamma"]),
        )

    def validate_fn() -> dict:
        return validation_metrics(
            {None: network}, validation, params["inference"], size, rule
        )

    result = fit(
        modules={"unet": network.unet, "seg": network.seg},
        trainable=None,
        sample_batch=sample_batch,
        loss_fn=loss_fn,
        validate_fn=validate_fn if len(validation["images"]) else None,
        config=config,
        monitor="val_score",
        description=f"{METHOD}[{name}]" if name != "all" else METHOD,
    )
    logger.info(
        "%s[%s]: %d steps in %.0f s; kept step %d %s",
        METHOD,
        name,
        result.steps_done,
        result.seconds,
        result.best_step,
        {k: round(v, 4) for k, v in result.best_metrics.items()},
    )
    return network.cpu().eval(), result.history


def _rows(arrays: dict, sel: np.ndarray) -> dict:
    return {
        k: v[sel] for k, v in arrays.items() if isinstance(v, np.ndarray) and v.ndim
    }


def train_diffusionad(
    arrays: dict[str, np.ndarray],
    synthetic_validation: dict[str, np.ndarray],
    params: dict,
    synthesis: dict,
    checkpoint_rule: dict | None = None,
):
    """Algorithm 1 on the train split; the checkpoint is chosen on validation only.

    Returns the model dict, the training history (kedro-mlflow metric history) and
    the loss/validation figure. With ``model.per_class`` one model per class is
    trained (the paper's protocol); otherwise one unified model for all classes.
    ``checkpoint_rule`` (``params:checkpoint_rule``; None: the default) picks the
    kept step and is recorded in the model's settings.
    """
    started = time.perf_counter()
    rule = CheckpointRule.from_params(checkpoint_rule)
    train = arrays["splits"] == "train"
    from kedro_ad.synthesis import texture_rows

    is_texture = texture_rows(arrays["classes"], synthesis.get("texture_classes") or [])
    folder = params["training"].get("checkpoint_dir")
    if not params["model"].get("per_class", False):
        network, history = _fit_one(
            "all",
            arrays["images"][train],
            is_texture[train],
            synthetic_validation,
            params,
            synthesis,
            folder,
            rule,
        )
        model = _pack({None: network}, _settings(params, None))
    else:
        classes = sorted(set(arrays["classes"][train].tolist()))
        networks, history = {}, {}
        for i, cls in enumerate(classes):
            sel = train & (arrays["classes"] == cls)
            val = _rows(synthetic_validation, synthetic_validation["classes"] == cls)
            networks[cls], hist = _fit_one(
                cls,
                arrays["images"][sel],
                is_texture[sel],
                val,
                params,
                synthesis,
                f"{folder}/class_{i}" if folder else None,
                rule,
            )
            history.update({f"{cls}/{k}": v for k, v in hist.items()})
        model = _pack(networks, _settings(params, classes))
    model["settings"]["checkpoint_rule"] = rule.name
    model["settings"]["train_seconds"] = time.perf_counter() - started
    figure = training_figure(
        history,
        f"{METHOD}: training losses and validation metrics; kept the step with the "
        f"best val_score = {rule.name}",
    )
    return model, history, figure


# --- test scoring and serving ------------------------------------------------------
def score_diffusionad(model: dict, arrays: dict[str, np.ndarray], params: dict):
    """Test-split scores and maps (predictions format) + a reconstructions figure."""
    networks = {k: v.to(device()) for k, v in _unpack(model).items()}
    size = int(model["settings"]["image_size"])
    index = np.flatnonzero(arrays["splits"] == "test")
    images = arrays["images"][index]
    classes = arrays["classes"][index]
    inference = params["inference"]
    started = time.perf_counter()
    scores, maps, recons = _score_rows(
        networks,
        to_unit_images(images, size),
        classes if None not in networks else None,
        inference,
        images.shape[1:3],
        progress=True,
    )
    score_seconds = time.perf_counter() - started
    lams = ", ".join(str(int(t)) for t in inference["timesteps"])
    k = top_k_for(size, size, int(inference.get("top_k_at_256", 50)))
    predictions = make_predictions(
        arrays,
        index,
        scores,
        maps,
        METHOD,
        DESCRIPTION.format(lams=lams, k=k) + f" at {size}px",
        model["settings"].get("checkpoint_rule", NOT_RECORDED),
        train_seconds=model["settings"].get("train_seconds", np.nan),
        score_seconds=score_seconds,
    )
    chosen = examples_per_class(
        classes, arrays["labels"][index], int(inference.get("n_figure", 6))
    )
    inputs = to_unit_images(images[chosen], size).permute(0, 2, 3, 1).numpy()
    rows = [
        [
            Panel(x, "input x0"),
            Panel(np.transpose(recon, (1, 2, 0)).clip(0, 1), "one-step x̂0"),
            Panel(amap, "predicted mask", vmin=0, vmax=1),
            Panel(mask, "ground truth", kind="mask"),
        ]
        for x, recon, amap, mask in zip(
            inputs,
            recons[chosen],
            resize_maps(maps[chosen], size),
            resize_masks(arrays["masks"][index[chosen]], size),
            strict=True,
        )
    ]
    figure = panel_figure(
        rows,
        [f"{classes[i]}\nscore {scores[i]:.2f}" for i in chosen],
        f"{METHOD}: test images, their one-step reconstruction and mask",
    )
    return predictions, figure


def predict_diffusionad(model: dict, images, params: dict) -> dict[str, np.ndarray]:
    """Serve: uint8 images [N, H, W, 3] (or ``{"images", "classes"}``) -> scores, maps.

    Maps come back at the input's own size. Per-class models need the classes.
    """
    size = int(model["settings"]["image_size"])
    x, classes = as_image_batch(images, size)
    networks = {k: v.to(device()) for k, v in _unpack(model).items()}
    scores, maps, _ = _score_rows(
        networks, x, classes, params["inference"], input_size(images)
    )
    return served_output(scores, maps, images)
