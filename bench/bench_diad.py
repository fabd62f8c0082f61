"""Benchmark DiAD: training-step time and inference images/s, with and without the
public code's duplicate classifier-free-guidance branch.

Usage::

    python bench/bench_diad.py [--config default|paper|tiny] [--device cpu|cuda]
        [--sizes 128 256] [--batch-size 8] [--train-batch N] [--repeats 3]
        [--threads N] [--amp]

``default`` reads the network settings of conf/base (f=4 autoencoder, small
SD-shaped UNet, EfficientNet-Lite0 maps), ``paper`` those of conf/paper (SD v1.5's
UNet shape with cross-attention to a null context, SD's f=8 autoencoder, ResNet50
maps), both through :func:`kedro_ad.parameters.load_parameters`; ``tiny`` is a toy
size for smoke tests. Weights are random: speed does not depend on them (and
SD/ResNet50 weights cannot be had here). Needs only torch, diffusers, timm and
OmegaConf (no kedro or mlflow).

Measured, each as the median of ``--repeats`` after one warm-up:

* one training step (UNet + SG forward and backward, AdamW) at the configuration's
  own image size, on precomputed latents as the pipeline trains;
* inference (encode, noise to t', DDIM ``num_steps`` steps, decode, feature maps,
  score) at each ``--sizes`` side: images/s with one branch, images/s with the
  duplicate branch, and their ratio, measured in the same process.

Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kedro_ad.models.backbones import build_backbone  # noqa: E402
from kedro_ad.models.diad import (  # noqa: E402
    AnomalyMapper,
    DiffusionReconstructor,
    SemanticGuidedNetwork,
    build_latent_unet,
    build_scheduler,
    trainable_parameters,
)
from kedro_ad.models.diad import autoencoder as ae  # noqa: E402
from kedro_ad.parameters import load_parameters  # noqa: E402

logger = logging.getLogger("bench_diad")

#: Kedro environment of each named configuration (``tiny`` is a toy size).
ENVS = {"default": "base", "paper": "paper"}
TINY: dict = {
    "image_size": 64,
    "vae": {"block_out_channels": [8, 16, 16], "norm_num_groups": 4},
    "unet": {
        "block_out_channels": [8, 16, 16, 16],
        "layers_per_block": 1,
        "attention": True,
        "cross_attention_dim": 16,
        "attention_head_dim": 4,
        "norm_num_groups": 4,
    },
    "sg": {"connect_blocks": [1, 2, 3, 4], "conditioning_widest": 16},
    "scheduler": {"prediction_type": "sample"},
    "backbone": {"name": "tf_efficientnet_lite0", "layers": [1, 2, 3]},
    "train_batch": 2,
    "num_steps": 2,
}


def load_config(name: str) -> dict:
    """The network settings of ``conf/<env>`` (parameters_diad/autoencoder.yml)."""
    if name == "tiny":
        return TINY
    params = load_parameters(ENVS[name])
    diad, autoencoder = params["diad"], params["autoencoder"]
    unet = {
        k: v
        for k, v in diad["model"].items()
        if k not in ("pretrained_unet_path", "class_conditioned")
    }
    sg = diad["sg"]
    return {
        "image_size": int(diad["image_size"]),
        "vae": dict(autoencoder["model"]),
        "unet": unet,
        "sg": {
            "connect_blocks": list(sg["connect_blocks"]),
            "conditioning_widest": int(sg["conditioning_widest"]),
        },
        "scheduler": dict(diad["scheduler"]),
        "backbone": dict(diad["backbone"]),
        "train_batch": int(diad["training"]["batch_size"]),
        "num_steps": int(diad["inference"]["num_steps"]),
    }


def build(config: dict, size: int, device: torch.device) -> DiffusionReconstructor:
    """The DiAD reconstructor of ``config`` for ``size``² images, random weights."""
    torch.manual_seed(0)
    vae = ae.build_autoencoder(**config["vae"])
    factor = ae.downsampling_factor(vae)
    unet = build_latent_unet(
        size // factor, in_channels=vae.config.latent_channels, **config["unet"]
    )
    sg = SemanticGuidedNetwork.from_unet(
        unet,
        latent_factor=factor,
        conditioning_widest=config["sg"]["conditioning_widest"],
        connect_blocks=config["sg"]["connect_blocks"],
    )
    scheduler = build_scheduler(**config.get("scheduler", {}))
    return DiffusionReconstructor("diad", unet, scheduler, vae, sg).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_train_step(
    config: dict, device: torch.device, batch: int, repeats: int, amp: bool
) -> dict:
    size = config["image_size"]
    recon = build(config, size, device)
    params = trainable_parameters(recon.unet, recon.sg, ["sg", "unet_decoder"])
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    images = torch.rand(batch, 3, size, size, device=device)
    z0 = recon.to_latent(images)
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = recon.loss(z0, images, None, g)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = _median_seconds(step, repeats, device)
    out = {
        "what": "train_step",
        "image_size": size,
        "batch": batch,
        "seconds": round(seconds, 4),
        "images_per_s": round(batch / seconds, 2),
    }
    if device.type == "cuda":
        out["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def bench_inference(
    config: dict, device: torch.device, size: int, batch: int, repeats: int, amp: bool
) -> dict:
    recon = build(config, size, device).eval()
    backbone = build_backbone(
        config["backbone"]["name"], config["backbone"]["layers"], pretrained=False
    )
    mapper = AnomalyMapper(backbone, sigma=5.0 * size / 256).to(device)
    images = torch.rand(batch, 3, size, size, device=device)

    def run(duplicate: bool):
        def go() -> None:
            with (
                torch.no_grad(),
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp),
            ):
                x_hat = recon.reconstruct(
                    images,
                    num_steps=config["num_steps"],
                    generator=torch.Generator().manual_seed(0),
                    duplicate_guidance_branch=duplicate,
                )
                mapper(images, x_hat.float())

        return go

    single = _median_seconds(run(False), repeats, device)
    double = _median_seconds(run(True), repeats, device)
    return {
        "what": "inference",
        "image_size": size,
        "batch": batch,
        "ddim_steps": config["num_steps"],
        "images_per_s": round(batch / single, 3),
        "images_per_s_duplicate_branch": round(batch / double, 3),
        "speedup_without_duplicate": round(double / single, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=[*ENVS, "tiny"], default="default")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train-batch", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = load_config(args.config)
    header = {
        "config": args.config,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        header["gpu"] = torch.cuda.get_device_name(device)
    print(json.dumps(header), flush=True)
    if not args.skip_train:
        batch = args.train_batch or config["train_batch"]
        print(
            json.dumps(bench_train_step(config, device, batch, args.repeats, args.amp)),
            flush=True,
        )
    for size in args.sizes:
        print(
            json.dumps(
                bench_inference(
                    config, device, size, args.batch_size, args.repeats, args.amp
                )
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
