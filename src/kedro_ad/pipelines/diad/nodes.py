"""Nodes of DiAD and of its LDM and DDPM baselines (see kedro_ad.models.diad).

DiAD trains in two stages, as the paper does on Stable Diffusion:

1. ``train_diad_prior``: the latent UNet alone, an unconditional LDM on the normal
   training images (EMA weights): the generative prior.
2. ``train_diad``: the Semantic-Guided network, a ControlNet copy of that prior,
   trained with the prior's encoder and middle block frozen. Its input carries
   synthetic defects of a family of its own (ellipses, strokes, rectangles:
   :mod:`kedro_ad.synthesis.shapes`) while the target latent and the noise come
   from the clean image, so the loss says "copy what is normal, repair what is
   not". The checkpoint is chosen on ``synthetic_validation``, whose Perlin
   defects the network never saw.

LDM (class-conditioned latent UNet) and DDPM (pixel UNet) train like stage 1 and
are chosen like stage 2. Every variant is then calibrated on the validation split
alone: ``t'`` among ``inference.t_start_candidates``, and the per-class, per-
position statistics that turn its maps into z-scores. Maps compare the
reconstruction with ``D(E(x))``, the autoencoder's own reconstruction of the input.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from tqdm.auto import tqdm

from kedro_ad.metrics.checkpoint import NOT_RECORDED, CheckpointRule
from kedro_ad.models.backbones import backbone_from_settings
from kedro_ad.models.common import class_ids, device
from kedro_ad.models.diad import (
    AnomalyMapper,
    DiffusionReconstructor,
    SemanticGuidedNetwork,
    build_latent_unet,
    build_pixel_unet,
    build_scheduler,
    copy_ratio,
    trainable_parameters,
)
from kedro_ad.models.maps import (
    map_statistics,
    resize_maps,
    resize_masks,
    standardize_leave_one_out,
    standardize_maps,
    to_unit_images,
)
from kedro_ad.pipelines.evaluation.nodes import make_predictions
from kedro_ad.serving import as_image_batch, served_output
from kedro_ad.synthesis.shapes import shape_defects
from kedro_ad.training import TrainConfig, fit, seed_weights
from kedro_ad.visualization import Panel, panel_figure, training_figure

logger = logging.getLogger(__name__)

DESCRIPTIONS = {
    "diad": "DiAD (He et al., AAAI 2024): latent diffusion prior + Semantic-Guided "
    "network (SFF block) trained to repair synthetic defects; maps = 1 - cosine of "
    "backbone features between the reconstruction and D(E(x))",
    "ldm": "LDM baseline of DiAD's tables: class-conditioned latent diffusion, no "
    "SG network; DiAD's inference and scoring",
    "ddpm": "DDPM baseline of DiAD's tables: class-agnostic pixel-space diffusion; "
    "DiAD's inference and scoring",
}


# -- building ----------------------------------------------------------------------
def _load_unet(path: str) -> UNet2DConditionModel:
    """A denoising UNet from a local diffusers folder (or its ``unet/`` subfolder),
    e.g. Stable Diffusion v1.5's."""
    root = Path(path).expanduser()
    for folder in (root, root / "unet"):
        if (folder / "config.json").is_file():
            logger.info("Loading the SD UNet from %s", folder)
            return UNet2DConditionModel.from_pretrained(folder, local_files_only=True)
    raise FileNotFoundError(
        f"model.pretrained_unet_path {root}: no diffusers UNet2DConditionModel "
        "folder (config.json + weights) there or in its unet/ subfolder"
    )


def _build_unet(
    kind: str,
    params: dict,
    size: int,
    factor: int,
    class_names: list[str],
    latent_channels: int = 4,
) -> torch.nn.Module:
    """A fresh (or SD-initialised) denoising UNet of a variant."""
    model = dict(params["model"])
    unet_path = model.pop("pretrained_unet_path", None)
    class_conditioned = bool(model.pop("class_conditioned", kind == "ldm"))
    n_classes = len(class_names) if class_conditioned else None
    if kind == "ddpm":
        for key in ("attention", "cross_attention_dim", "attention_head_dim"):
            model.pop(key, None)
        return build_pixel_unet(size, **model)
    if unet_path:
        unet = _load_unet(unet_path)
        if unet.config.num_class_embeds != n_classes:
            raise ValueError(
                f"{kind}.model.pretrained_unet_path {unet_path}: the UNet has "
                f"num_class_embeds={unet.config.num_class_embeds}, {kind} needs "
                f"{n_classes}"
            )
        return unet
    return build_latent_unet(
        size // factor,
        in_channels=latent_channels,
        num_class_embeds=n_classes,
        **model,
    )


def _build_sg(
    unet: torch.nn.Module, params: dict, factor: int
) -> SemanticGuidedNetwork:
    """The SG network: a ControlNet copy of the (trained) prior's encoder."""
    sg = dict(params["sg"])
    widest = int(sg.pop("conditioning_widest", 64))
    return SemanticGuidedNetwork.from_unet(
        unet, latent_factor=factor, conditioning_widest=widest, **sg
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


_BACKBONES: dict[str, torch.nn.Module] = {}


def _mapper(model: dict) -> AnomalyMapper:
    cfg = model["backbone"]
    key = repr(sorted(cfg.items()))
    if key not in _BACKBONES:  # built once per process (weights conversion is slow)
        _BACKBONES[key] = backbone_from_settings(cfg)
    amap = model["anomaly_map"]
    return AnomalyMapper(
        _BACKBONES[key],
        sigma=float(amap["sigma"]),
        pool_kernel=int(amap["pool_kernel"]),
        pool_rounds=int(amap["pool_rounds"]),
        feature_size=amap.get("feature_size"),
    )


def _autoencoder(kind: str, autoencoder: dict | None, size: int):
    """The frozen autoencoder and its downsampling factor (None, 1 for ddpm)."""
    if kind == "ddpm":
        return None, 1
    if int(autoencoder["image_size"]) != size:
        raise ValueError(
            f"{kind}: autoencoder.model was trained at {autoencoder['image_size']}px, "
            f"{kind}.image_size is {size}"
        )
    return autoencoder["vae"], int(autoencoder["latent_factor"])


# -- data ---------------------------------------------------------------------------
def _split(arrays: dict, split: str, size: int, class_names: list[str] | None = None):
    """Images of a split at the model's side, their classes and class indices."""
    rows = np.flatnonzero(arrays["splits"] == split)
    if len(rows) == 0:
        raise ValueError(f"dataset_arrays has no {split} images")
    names = arrays["classes"][rows]
    known = class_names or sorted(set(names.tolist()))
    return to_unit_images(arrays["images"][rows], size), names, known


@torch.no_grad()
def _latent_moments(
    recon: DiffusionReconstructor, images: torch.Tensor, batch: int = 32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image's latent, computed once (the encoder
    is frozen): training draws ``mean + std * noise`` each step."""
    dev = next(recon.unet.parameters()).device
    parts = [
        recon.latent_moments(images[i : i + batch].to(dev))
        for i in range(0, len(images), batch)
    ]
    return torch.cat([m for m, _ in parts]).cpu(), torch.cat(
        [s for _, s in parts]
    ).cpu()


@torch.no_grad()
def _reconstruct(
    recon: DiffusionReconstructor,
    images: torch.Tensor,
    ids: torch.Tensor | None,
    inference: dict,
    t_start: int | None = None,
    progress: str | None = None,
) -> torch.Tensor:
    """x̂0 of every image, in batches, on the model's device; returned on the CPU.

    The forward noise of the batch starting at row ``i`` is drawn from
    ``inference.seed + i``: a run is reproducible, every checkpoint is validated on
    the same noise, and two equally long lists (an image and its clean twin) get
    the same noise row by row.
    """
    dev = next(recon.unet.parameters()).device
    bs = int(inference.get("batch_size", 16))
    t = int(t_start if t_start is not None else inference["t_start"])
    out = []
    starts = range(0, len(images), bs)
    for start in tqdm(starts, desc=progress, disable=progress is None, mininterval=5):
        g = torch.Generator().manual_seed(int(inference.get("seed", 0)) + start)
        cls = None if ids is None else ids[start : start + bs].to(dev)
        out.append(
            recon.reconstruct(
                images[start : start + bs].to(dev),
                cls,
                t_start=t,
                num_steps=int(inference["num_steps"]),
                generator=g,
                duplicate_guidance_branch=bool(
                    inference.get("duplicate_guidance_branch", False)
                ),
            ).cpu()
        )
    return torch.cat(out)


@torch.no_grad()
def _batched(fn, *tensors: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """``fn`` over row batches of equally long tensors, on the model's device."""
    return torch.cat(
        [
            fn(*(t[i : i + batch] for t in tensors)).cpu()
            for i in range(0, len(tensors[0]), batch)
        ]
    )


def _standardize_modes(model: dict) -> list[str]:
    """The standardisations to choose from on validation (the first is used while
    training)."""
    modes = model["anomaly_map"].get("standardize", "position")
    return [str(m) for m in ([modes] if isinstance(modes, str) else modes)]


def _standardize_settings(model: dict, mode: str | None = None) -> dict:
    amap = model["anomaly_map"]
    return {
        "mode": mode or _standardize_modes(model)[0],
        "shrink": float(amap.get("std_shrink", 0.5)),
        "sigma": float(amap.get("stat_sigma", 2.0)),
    }


# -- validation: checkpoint choice, t' and map statistics ----------------------------
class _Validation:
    """One pass over ``synthetic_validation``: the checkpoint rule's metrics, the
    diagnostics, and the normal maps' statistics.

    The clean rows are the validation split's normal images; each defective row is
    a twin of one of them. Reconstructions of a clean image and of its defective
    twin share their noise, so their difference inside the mask is what the
    network let through (the copy ratio: 1 copies the defect, 0 repairs it).
    Clean maps are standardised leave-one-out (against the other normals of their
    class), defective maps against all normals: no image is scored against itself.
    """

    def __init__(
        self,
        synthetic: dict,
        model: dict,
        recon: DiffusionReconstructor,
        rule: CheckpointRule,
    ) -> None:
        size = int(model["image_size"])
        clean = np.flatnonzero(synthetic["labels"] == 0)
        defective = []
        for row in clean:
            twins = np.flatnonzero(
                (synthetic["labels"] == 1)
                & (synthetic["source_index"] == synthetic["source_index"][row])
            )
            if len(twins) == 0:
                raise ValueError(
                    "synthetic_validation: a clean validation image has no defective "
                    "twin (run the anomaly_synthesis pipeline again)"
                )
            defective.append(int(twins[0]))
        self.rows = np.concatenate([clean, defective])
        self.n = len(clean)
        self.model, self.recon, self.rule = model, recon, rule
        self.mapper = _mapper(model)
        self.names = synthetic["classes"][clean]
        self.ids = class_ids(self.names, model["class_names"], self.n, model["kind"])
        self.images = to_unit_images(synthetic["images"][self.rows], size)
        self.masks = synthetic["masks"][self.rows]
        self.model_masks = resize_masks(self.masks[self.n :], size)
        self.cond = self.ids if model.get("class_conditioned") else None
        self.last: dict[str, Any] = {}
        self._cache: dict[str, Any] = {}
        self._references: torch.Tensor | None = None

    def references(self) -> torch.Tensor:
        """``D(E(x))`` of every row (the autoencoder is frozen: computed once)."""
        if self._references is None:
            dev = next(self.recon.unet.parameters()).device
            self._references = _batched(
                lambda x: self.recon.reference(x.to(dev)), self.images
            )
        return self._references

    def _pass(self, t_start: int | None, reuse: bool) -> dict[str, Any]:
        """Reconstructions, raw maps and diagnostics at one ``t'``. ``reuse``: the
        previous pass, if it was at the same ``t'`` (only while the weights have
        not changed since: the other standardisations of one calibration)."""
        key = (
            t_start if t_start is not None else int(self.model["inference"]["t_start"])
        )
        if reuse and self._cache.get("t_start") == key:
            return self._cache
        n, inference = self.n, self.model["inference"]
        dev = next(self.recon.unet.parameters()).device
        self.mapper.to(dev)
        x_hat = torch.cat(
            [
                _reconstruct(self.recon, part, self.cond, inference, key)
                for part in (self.images[:n], self.images[n:])
            ]
        )
        refs = self.references()

        def distances(a, b):
            return self.mapper.distance_maps(a.to(dev), b.to(dev))

        raw = _batched(distances, refs, x_hat)
        fidelity = _batched(distances, self.images[:n], x_hat[:n])
        masks = self.model_masks
        self._cache = {
            "t_start": key,
            "x_hat": x_hat,
            "raw": raw,
            "diagnostics": {
                "val_fidelity": float(raw[:n].mean()),
                "val_feature_distance": float(fidelity.mean()),
                "val_copy_ratio": copy_ratio(
                    x_hat[n:], x_hat[:n], self.images[n:], self.images[:n], masks
                ),
                "val_copy_ratio_ae": copy_ratio(
                    x_hat[n:], x_hat[:n], refs[n:], refs[:n], masks
                ),
            },
        }
        return self._cache

    def __call__(
        self, t_start: int | None = None, mode: str | None = None, reuse: bool = False
    ) -> dict[str, float]:
        """The rule's metrics and the diagnostics at ``t'`` with one
        standardisation (defaults: those of the parameters). A fresh pass unless
        ``reuse`` (the training loop validates changed weights at every call)."""
        n, model = self.n, self.model
        done = self._pass(t_start, reuse)
        raw = done["raw"]
        std = _standardize_settings(model, mode)
        mean_map, std_map = map_statistics(
            raw[:n], self.ids, len(model["class_names"]), **std
        )
        maps = torch.cat(
            [
                standardize_leave_one_out(raw[:n], self.ids, **std),
                standardize_maps(raw[n:], self.ids, mean_map, std_map),
            ]
        )
        scores = self.mapper.image_scores(maps)
        metrics = self.rule.score(
            np.repeat([0, 1], n),
            scores.numpy(),
            self.masks,
            resize_maps(maps.numpy(), self.masks.shape[1:3]),
        )
        metrics.update(done["diagnostics"])
        self.last = {
            "x_hat": done["x_hat"],
            "maps": maps,
            "scores": scores,
            "mean": mean_map,
            "std": std_map,
            "metrics": metrics,
            "t_start": done["t_start"],
            "standardize": std["mode"],
        }
        return metrics

    def figure(self, title: str, per_class: int = 1):
        """Input / D(E(x)) / reconstruction / map of a normal image and its
        defective twin per class, from the last pass."""
        rows, labels = [], []
        refs, last = self.references(), self.last
        for k, name in enumerate(self.model["class_names"]):
            for i in np.flatnonzero(self.ids.numpy() == k)[:per_class]:
                for j, what in ((int(i), "normal"), (int(i) + self.n, "defective")):
                    rows.append(_panels(self.images[j], refs[j], last["x_hat"][j],
                                        last["maps"][j], self.masks[j]))  # fmt: skip
                    labels.append(f"{name} {what}: {float(last['scores'][j]):.2f}")
        return panel_figure(rows, labels, title)


def _picture(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).clamp(0, 1).numpy()


def _panels(x, ref, x_hat, amap, mask) -> list[Panel]:
    side = amap.shape[-1]
    outline = resize_masks(np.asarray(mask)[None], side)[0]
    return [
        Panel(
            _picture(x), "input x0", outline=resize_masks(mask[None], x.shape[-1])[0]
        ),
        Panel(_picture(ref), "D(E(x0))"),
        Panel(_picture(x_hat), "reconstruction x̂0"),
        Panel(amap.numpy(), "map (z-score)", outline=outline, vmin=0),
    ]


def _calibrate(validation: _Validation, model: dict) -> dict[str, Any]:
    """``t'`` and the map standardisation, chosen on the validation split alone,
    and the normal maps' statistics of that choice (``validation.last``)."""
    inference = model["inference"]
    candidates = [int(t) for t in inference.get("t_start_candidates") or []]
    candidates = candidates or [int(inference["t_start"])]
    results = {}
    for t in candidates:
        for k, mode in enumerate(_standardize_modes(model)):
            results[(t, mode)] = validation(t, mode, reuse=k > 0)
            logger.info(
                "%s: t'=%d, standardize=%s on synthetic_validation %s",
                model["kind"],
                t,
                mode,
                {k: round(v, 4) for k, v in results[(t, mode)].items()},
            )
    best = max(results, key=lambda k: np.nan_to_num(results[k]["val_score"], nan=-1))
    chosen = validation(*best, reuse=True)  # so validation.last holds the choice
    return {
        "t_start": best[0],
        "standardize": best[1],
        "metrics": chosen,
        "by_choice": {f"t'={t}, {mode}": r for (t, mode), r in results.items()},
    }


# -- training ------------------------------------------------------------------------
def _train_settings(params: dict, key: str = "training") -> TrainConfig:
    return TrainConfig.from_params(params[key])


def _class_centroids(
    model: dict, images: torch.Tensor, names: np.ndarray
) -> np.ndarray:
    """Mean embedding of each class's training images (unit length)."""
    mapper = _mapper(model)
    emb = _batched(mapper.embed, images)
    ids = class_ids(names, model["class_names"], len(names), model["kind"])
    centroids = torch.stack(
        [emb[ids == k].mean(0) for k in range(len(model["class_names"]))]
    )
    return F.normalize(centroids, dim=1).numpy()


def _new_model(kind: str, params: dict, size: int, factor: int, class_names, nets):
    return {
        **nets,
        "kind": kind,
        "image_size": size,
        "latent_factor": factor,
        "class_names": list(class_names),
        "class_conditioned": kind != "ddpm"
        and nets["unet"].config.num_class_embeds is not None,
        "scheduler": dict(params["scheduler"]),
        "backbone": dict(params["backbone"]),
        "anomaly_map": dict(params["anomaly_map"]),
        "inference": dict(params["inference"]),
    }


def _fit(
    recon: DiffusionReconstructor,
    modules: dict,
    trainable,
    data: dict,
    config: TrainConfig,
    validate_fn,
    description: str,
    defects: dict | None = None,
):
    """The shared loop on latents drawn from the training images' posteriors.

    With ``defects`` (the SG stage), each batch's SG input gets synthetic shape
    defects, and the loss weighs the latent cells they cover ``1 + loss_weight``.
    """
    mean, std, ids, u8 = data["mean"], data["std"], data["ids"], data["uint8"]
    factor = data["factor"]

    def sample_batch(step: int, g: torch.Generator) -> dict:
        idx = torch.randint(len(mean), (config.batch_size,), generator=g)
        batch = {"mean": mean[idx], "std": std[idx]}
        if ids is not None:
            batch["class_ids"] = ids[idx]
        if defects is not None:
            rng = np.random.default_rng(g.initial_seed())
            images, masks, _ = shape_defects(
                u8[idx.numpy()],
                rng,
                anomaly_probability=float(defects["anomaly_probability"]),
                opacity_range=tuple(defects.get("opacity_range", (0.5, 1.0))),
                max_size=float(defects.get("max_size", 0.15)),
            )
            batch["images"] = to_unit_images(images, images.shape[1])
            cover = F.avg_pool2d(torch.from_numpy(masks).float()[:, None], factor)
            batch["weights"] = 1 + float(defects.get("loss_weight", 0.0)) * cover
        return batch

    def loss_fn(batch: dict, g: torch.Generator) -> dict:
        eps = torch.randn(batch["mean"].shape, generator=g).to(batch["mean"].device)
        z0 = batch["mean"] + batch["std"] * eps
        return recon.loss(
            z0, batch.get("images"), batch.get("class_ids"), g, batch.get("weights")
        )

    return fit(
        modules=modules,
        trainable=trainable,
        sample_batch=sample_batch,
        loss_fn=loss_fn,
        validate_fn=validate_fn,
        config=config,
        monitor="val_score",
        description=description,
    )


def _training_data(recon, arrays, model, factor) -> dict:
    size = int(model["image_size"])
    images, names, _ = _split(arrays, "train", size, model["class_names"])
    mean, std = _latent_moments(recon, images)
    ids = None
    if model.get("class_conditioned"):
        ids = class_ids(names, model["class_names"], len(names), model["kind"])
    uint8 = (images.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    return {
        "images": images,
        "names": names,
        "mean": mean,
        "std": std,
        "ids": ids,
        "uint8": uint8,
        "factor": factor,
    }


def _finish(
    model: dict,
    recon: DiffusionReconstructor,
    validation: _Validation,
    result,
    data: dict,
    rule: CheckpointRule,
):
    """Calibrate on validation, store what serving needs, draw the figures."""
    kind = model["kind"]
    calibration = _calibrate(validation, model)
    model["inference"] = {**model["inference"], "t_start": calibration["t_start"]}
    model["anomaly_map"] = {
        **model["anomaly_map"],
        "standardize": calibration["standardize"],
    }
    last = validation.last
    model.update(
        {
            k: v.cpu()
            for k, v in (("unet", recon.unet), ("sg", recon.sg))
            if v is not None
        },
        map_mean=last["mean"].numpy(),
        map_std=last["std"].numpy(),
        class_centroids=_class_centroids(model, data["images"], data["names"]),
        best_step=int(result.best_step),
        steps_done=int(result.steps_done),
        training_seconds=float(result.seconds),
        best_metrics=result.best_metrics,
        val_metrics=calibration["metrics"],
        val_metrics_by_choice=calibration["by_choice"],
        checkpoint_rule=rule.name,
    )
    logger.info(
        "%s: weights of step %d of %d, t'=%d and %s standardisation chosen on "
        "synthetic_validation: %s",
        kind,
        result.best_step,
        result.steps_done,
        calibration["t_start"],
        calibration["standardize"],
        {k: round(v, 4) for k, v in calibration["metrics"].items()},
    )
    m = calibration["metrics"]
    training = training_figure(
        result.history,
        f"{kind}: {result.steps_done} steps in {result.seconds / 60:.1f} min; "
        f"weights of step {result.best_step} kept (best {rule.name})",
    )
    figure = validation.figure(
        f"{kind} on synthetic_validation (defects never trained on), t'="
        f"{calibration['t_start']}, {calibration['standardize']} z-scores: "
        f"fidelity {m['val_fidelity']:.3f}, copy ratio "
        f"{m['val_copy_ratio']:.2f} ({m['val_copy_ratio_ae']:.2f} of what the "
        f"autoencoder passes), {rule.name} {m['val_score']:.3f}"
    )
    return model, result.history, training, figure


def _train_baseline(kind, arrays, synthetic, autoencoder, params, checkpoint_rule):
    """LDM or DDPM: one UNet trained on normal latents, chosen by the rule."""
    rule = CheckpointRule.from_params(checkpoint_rule)
    size = int(params.get("image_size") or arrays["images"].shape[1])
    vae, factor = _autoencoder(kind, autoencoder, size)
    class_names = sorted(set(arrays["classes"][arrays["splits"] == "train"].tolist()))
    channels = 4 if vae is None else int(vae.config.latent_channels)
    seed_weights(params["training"].get("seed", 0))
    unet = _build_unet(kind, params, size, factor, class_names, channels)
    model = _new_model(kind, params, size, factor, class_names, {"unet": unet})
    recon = _reconstructor(model, vae).to(device())
    data = _training_data(recon, arrays, model, factor)
    validation = _Validation(synthetic, model, recon, rule)
    config = _train_settings(params)
    config.fingerprint = {"checkpoint_rule": rule.name}
    result = _fit(
        recon,
        {"unet": recon.unet},
        trainable_parameters(recon.unet, None, params["trainable"]),
        data,
        config,
        validation,
        kind,
    )
    return _finish(model, recon, validation, result, data, rule)


def train_diad_prior(arrays: dict, autoencoder_model: dict, params: dict):
    """Stage 1: the latent UNet alone, an unconditional LDM of the normal images.

    Validated by the network's loss on the validation split's latents (fixed
    steps and noise); the EMA weights with the lowest loss are kept. With
    ``model.pretrained_unet_path`` it starts from that UNet (SD v1.5's in
    ``conf/paper``); ``prior.training.max_steps: 0`` keeps it as it is.

    Returns the prior (a model folder dict), its history and a figure.
    """
    size = int(params.get("image_size") or arrays["images"].shape[1])
    vae, factor = _autoencoder("diad", autoencoder_model, size)
    class_names = sorted(set(arrays["classes"][arrays["splits"] == "train"].tolist()))
    seed_weights(params["prior"]["training"].get("seed", 0))
    unet = _build_unet(
        "diad", params, size, factor, class_names, int(vae.config.latent_channels)
    )
    model = _new_model("diad", params, size, factor, class_names, {"unet": unet})
    recon = DiffusionReconstructor(
        "ldm", unet, build_scheduler(**model["scheduler"]), vae=vae
    ).to(device())
    data = _training_data(recon, arrays, model, factor)
    val_images, _, _ = _split(arrays, "val", size, class_names)
    val_mean, _ = _latent_moments(recon, val_images)
    prior = params["prior"]

    def validate() -> dict[str, float]:
        g = torch.Generator().manual_seed(int(prior["training"].get("seed", 0)))
        dev = next(recon.unet.parameters()).device
        losses = [
            float(recon.loss(val_mean[i : i + 32].to(dev), None, None, g)["mse"])
            for i in range(0, len(val_mean), 32)
        ]
        return {"val_score": -float(np.mean(losses)), "val_mse": float(np.mean(losses))}

    history: dict = {}
    steps = best = 0
    seconds = 0.0
    if int(prior["training"].get("max_steps", 1)) > 0:
        result = _fit(
            recon,
            {"unet": unet},
            list(unet.parameters()),
            data,
            _train_settings(prior),
            validate,
            "diad prior",
        )
        history, steps, best, seconds = (
            result.history,
            result.steps_done,
            result.best_step,
            result.seconds,
        )
    unet.eval()
    with torch.no_grad():
        metrics = validate()
    logger.info("diad prior: step %d of %d kept, %s", best, steps, metrics)
    out = {
        "unet": unet.cpu(),
        "scheduler": model["scheduler"],
        "image_size": size,
        "latent_factor": factor,
        "steps_done": int(steps),
        "best_step": int(best),
        "training_seconds": float(seconds),
        "val_mse": metrics["val_mse"],
    }
    figure = training_figure(
        history,
        f"diad prior (unconditional latent UNet, EMA): {steps} steps in "
        f"{seconds / 60:.1f} min; validation loss {metrics['val_mse']:.4f}",
    )
    return out, history, figure


def _sg_parameter_groups(unet, sg, params: dict) -> list[dict]:
    """What trains in stage 2, and at which rate (``decoder_learning_rate``)."""
    chosen = trainable_parameters(unet, sg, params["trainable"])
    in_sg = {id(p) for p in sg.parameters()}
    sg_params = [p for p in chosen if id(p) in in_sg]
    rest = [p for p in chosen if id(p) not in in_sg]
    groups = [{"params": sg_params}]
    if rest:
        lr = params.get("decoder_learning_rate")
        groups.append({"params": rest, **({"lr": float(lr)} if lr else {})})
    return [g for g in groups if g["params"]]


def train_diad(
    arrays: dict,
    synthetic_validation: dict,
    autoencoder_model: dict,
    diad_prior: dict,
    params: dict,
    checkpoint_rule: dict | None = None,
):
    """Stage 2: the SG network (a copy of the prior's encoder) learns to guide the
    frozen prior back to the normal image from a defective one.

    Returns the model folder dict, the training history, the training figure and a
    figure of normal and defective validation images with their reconstructions
    and maps.
    """
    rule = CheckpointRule.from_params(checkpoint_rule)
    size = int(params.get("image_size") or arrays["images"].shape[1])
    vae, factor = _autoencoder("diad", autoencoder_model, size)
    if int(diad_prior["image_size"]) != size:
        raise ValueError(
            f"diad: the prior was trained at {diad_prior['image_size']}px, "
            f"diad.image_size is {size}"
        )
    class_names = sorted(set(arrays["classes"][arrays["splits"] == "train"].tolist()))
    unet = diad_prior["unet"]
    seed_weights(params["training"].get("seed", 0))
    nets = {"unet": unet, "sg": _build_sg(unet, params, factor)}
    model = _new_model("diad", params, size, factor, class_names, nets)
    model["scheduler"] = dict(diad_prior["scheduler"])  # the prior's own schedule
    recon = _reconstructor(model, vae).to(device())
    data = _training_data(recon, arrays, model, factor)
    validation = _Validation(synthetic_validation, model, recon, rule)
    config = _train_settings(params)
    config.fingerprint = {"checkpoint_rule": rule.name, "prior": diad_prior["val_mse"]}
    result = _fit(
        recon,
        {"unet": recon.unet, "sg": recon.sg},
        _sg_parameter_groups(recon.unet, recon.sg, params),
        data,
        config,
        validation,
        "diad",
        defects=params["defects"],
    )
    model["prior_steps"] = int(diad_prior["steps_done"])
    model["prior_seconds"] = float(diad_prior["training_seconds"])
    return _finish(model, recon, validation, result, data, rule)


def train_ldm(
    arrays: dict,
    synthetic_validation: dict,
    autoencoder_model: dict,
    params: dict,
    checkpoint_rule: dict | None = None,
):
    """The LDM baseline: class-conditioned latent UNet, no SG network."""
    return _train_baseline(
        "ldm", arrays, synthetic_validation, autoencoder_model, params, checkpoint_rule
    )


def train_ddpm(
    arrays: dict,
    synthetic_validation: dict,
    params: dict,
    checkpoint_rule: dict | None = None,
):
    """The DDPM baseline: class-agnostic pixel-space UNet."""
    return _train_baseline(
        "ddpm", arrays, synthetic_validation, None, params, checkpoint_rule
    )


# -- scoring and serving -------------------------------------------------------------
def _image_classes(model: dict, mapper: AnomalyMapper, x: torch.Tensor, names):
    """Each image's class index: from its name when given, else the nearest class
    centroid of the backbone's pooled features (a unified model needs no names)."""
    known = model["class_names"]
    if names is not None or len(known) == 1:
        return class_ids(names, known, len(x), model["kind"])
    emb = _batched(mapper.embed, x)
    return (emb @ torch.from_numpy(model["class_centroids"]).T).argmax(dim=1)


def _score(model: dict, vae, x: torch.Tensor, names, progress: str | None = None):
    """Scores, standardised maps (model size) and reconstructions of images."""
    dev = device()
    recon = _reconstructor(model, vae).to(dev).eval()
    mapper = _mapper(model).to(dev)
    ids = _image_classes(model, mapper, x, names)
    cond = ids if model.get("class_conditioned") else None
    if cond is not None and names is None and len(model["class_names"]) > 1:
        raise ValueError(
            f"the {model['kind']} model is class-conditioned: pass "
            '{"images": ..., "classes": ...} with one of '
            f"{list(model['class_names'])} per image"
        )
    x_hat = _reconstruct(recon, x, cond, model["inference"], progress=progress)

    def distances(a, b):
        return mapper.distance_maps(recon.reference(a.to(dev)), b.to(dev))

    raw = _batched(distances, x, x_hat)
    maps = standardize_maps(
        raw,
        ids,
        torch.from_numpy(np.asarray(model["map_mean"])),
        torch.from_numpy(np.asarray(model["map_std"])),
    )
    return mapper.image_scores(maps), maps, x_hat


def score_test_split(model: dict, autoencoder_model: dict | None, arrays: dict, params):
    """Scores and maps of the test split (predictions format) and a figure of a
    normal and a defective test image per class."""
    index = np.flatnonzero(arrays["splits"] == "test")
    size = int(model["image_size"])
    x = to_unit_images(arrays["images"][index], size)
    names = arrays["classes"][index]
    vae = None if autoencoder_model is None else autoencoder_model["vae"]
    kind = model["kind"]
    start = time.perf_counter()
    scores, maps, x_hat = _score(model, vae, x, names, progress=f"{kind} test")
    score_seconds = time.perf_counter() - start
    predictions = make_predictions(
        arrays,
        index,
        scores.numpy(),
        resize_maps(maps.numpy(), arrays["images"].shape[1:3]),
        kind,
        f"{DESCRIPTIONS[kind]}; t'={model['inference']['t_start']} (chosen on "
        f"validation), {model['inference']['num_steps']} DDIM steps, {size}px",
        model.get("checkpoint_rule", NOT_RECORDED),
        train_seconds=float(model.get("training_seconds", np.nan))
        + float(model.get("prior_seconds", 0.0)),
        score_seconds=score_seconds,
    )
    labels = arrays["labels"][index]
    dev = device()
    recon = _reconstructor(model, vae).to(dev)
    rows, captions = [], []
    for cls in sorted(set(names.tolist()))[: int(params.get("figure_images", 6))]:
        for label in (0, 1):
            found = np.flatnonzero((names == cls) & (labels == label))[:1]
            for i in found.tolist():
                ref = recon.reference(x[i : i + 1].to(dev))[0].cpu()
                mask = arrays["masks"][index[i]]
                rows.append(_panels(x[i], ref, x_hat[i], maps[i], mask))
                what = "defective" if label else "normal"
                captions.append(f"{cls} {what}: {float(scores[i]):.2f}")
    figure = panel_figure(
        rows,
        captions,
        f"{kind} on the test split, t'={model['inference']['t_start']}: input, the "
        "autoencoder's reconstruction D(E(x0)), the diffusion reconstruction and the "
        "standardised map (ground truth outlined)",
    )
    return predictions, figure


def score_ddpm(model: dict, arrays: dict, params: dict):
    """The DDPM baseline's test scores (it has no autoencoder)."""
    return score_test_split(model, None, arrays, params)


def _predict(model: dict, vae, images: Any, params: dict) -> dict[str, np.ndarray]:
    x, names = as_image_batch(images, int(model["image_size"]))
    scores, maps, _ = _score(model, vae, x, names)
    return served_output(scores.numpy(), maps.numpy(), images)


def predict_diad(
    model: dict, autoencoder_model: dict, images: Any, params: dict
) -> dict[str, np.ndarray]:
    """Serve DiAD: uint8 images ``(N, H, W, 3)`` -> scores ``(N,)``, maps ``(N, H, W)``.

    Class names (``{"images": ..., "classes": ...}``) choose the map statistics;
    without them each image's class is recognised from its features. Maps come
    back at the input's size.
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
