"""Benchmark DiffusionAD: training-step time, inference images/s, peak memory.

Usage::

    python bench/bench_diffusionad.py [--device cpu|cuda] [--configs default paper]
        [--sizes 128 256] [--batch-sizes 1 8] [--train-batch N] [--repeats 3]

For each configuration (``default`` = conf/base, ``paper`` = conf/paper, read by
:func:`kedro_ad.parameters.load_parameters`, so this file needs torch, diffusers
and OmegaConf, no kedro or mlflow):

* one training step (Algorithm 1: forward, backward, Adam) at the configuration's
  own image size and batch size (``--train-batch`` overrides it), median of
  ``--repeats`` after one warm-up step;
* inference (Algorithm 2: two one-step corruptions at lambda = 100, 200, the
  segmenter, top-K score) at the configuration's own model resolution and at each
  ``--sizes`` one, per batch size, in images per second (median of ``--repeats``
  after a warm-up). The model's input side is what costs: a served model resizes
  any input to its ``image_size`` first, so the default (64²) serves 128² and
  256² images at its 64² speed;
* the process's peak RSS so far, and on CUDA the peak allocated GPU memory of each
  measurement.

Prints one JSON line per measurement and a summary table. The functions are
importable (``bench/gpu_diffusionad.sh`` runs this file on a GPU machine).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kedro_ad.models.diffusionad import (  # noqa: E402
    DiffusionAD,
    SegmentationUNet,
    build_denoiser,
    build_scheduler,
    diffusionad_loss,
    top_k_for,
)
from kedro_ad.parameters import load_parameters  # noqa: E402

logger = logging.getLogger("bench_diffusionad")

# the configurations and the conf environment each is read from
ENVS = {"default": "base", "paper": "paper"}


def configuration(name: str) -> dict:
    """diffusionad.model with training.batch_size and loss.timestep_ranges of the
    ``default`` or ``paper`` configuration, as conf/ holds them."""
    params = load_parameters(ENVS[name])["diffusionad"]
    model = params["model"]
    return {
        "image_size": int(model["image_size"]),
        "denoiser": dict(model["denoiser"]),
        "segmentation": dict(model["segmentation"]),
        "batch_size": int(params["training"]["batch_size"]),
        "timestep_ranges": params["loss"]["timestep_ranges"],
    }


def build(config: dict, image_size: int | None = None) -> DiffusionAD:
    """The configuration's network, optionally at another model resolution."""
    size = int(image_size or config["image_size"])
    den = config["denoiser"]
    unet = build_denoiser(
        size,
        block_out_channels=tuple(den["block_out_channels"]),
        layers_per_block=int(den["layers_per_block"]),
        attention_resolutions=tuple(den["attention_resolutions"]),
        attention_head_dim=int(den["attention_head_dim"]),
        norm_num_groups=int(den["norm_num_groups"]),
    )
    seg = SegmentationUNet(
        block_out_channels=tuple(config["segmentation"]["block_out_channels"])
    )
    return DiffusionAD(unet, seg, build_scheduler())


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_gpu_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _gpu_peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 1024**2


def time_train_step(
    config: dict, device: torch.device, batch_size: int, repeats: int = 3
) -> dict:
    """Median seconds of one Algorithm-1 step (forward, backward, Adam)."""
    torch.manual_seed(0)
    model = build(config).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    size = int(config["image_size"])
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 3, size, size, generator=g).to(device)
    masks = torch.zeros(batch_size, 1, size, size)
    masks[batch_size // 2 :, :, size // 4 : size // 2, size // 4 : size // 2] = 1
    masks = masks.to(device)
    labels = (torch.arange(batch_size) >= batch_size // 2).long().to(device)
    times = []
    _reset_gpu_peak(device)
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        losses = diffusionad_loss(
            model, x, masks, labels, g, timestep_ranges=config["timestep_ranges"]
        )
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        _sync(device)
        if i:  # the first step warms up
            times.append(time.perf_counter() - start)
    return {
        "what": "train_step",
        "image_size": size,
        "batch_size": batch_size,
        "seconds_per_step": statistics.median(times),
        "images_per_second": batch_size / statistics.median(times),
        "gpu_peak_mib": _gpu_peak_mib(device),
        "peak_rss_mib": peak_rss_mib(),
    }


@torch.no_grad()
def time_inference(
    config: dict,
    device: torch.device,
    image_size: int,
    batch_size: int,
    repeats: int = 3,
    timesteps: tuple[int, ...] = (100, 200),
) -> dict:
    """Images per second of Algorithm 2 at a model resolution and batch size."""
    torch.manual_seed(0)
    model = build(config, image_size).to(device).eval()
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch_size, 3, image_size, image_size, device=device, generator=g)
    k = top_k_for(image_size, image_size)
    times = []
    _reset_gpu_peak(device)
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        model(x, timesteps=timesteps, top_k=k, generator=g)
        _sync(device)
        if i:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {
        "what": "inference",
        "image_size": image_size,
        "batch_size": batch_size,
        "seconds_per_batch": seconds,
        "images_per_second": batch_size / seconds,
        "gpu_peak_mib": _gpu_peak_mib(device),
        "peak_rss_mib": peak_rss_mib(),
    }


def parameter_count(config: dict) -> dict:
    model = build(config)
    return {
        "unet_params_m": sum(p.numel() for p in model.unet.parameters()) / 1e6,
        "seg_params_m": sum(p.numel() for p in model.seg.parameters()) / 1e6,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--configs", nargs="+", default=["default", "paper"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--train-batch", type=int, default=None)
    parser.add_argument("--skip-train", nargs="*", default=[], help="configs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    env = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    logger.info(json.dumps(env))
    rows = []
    for name in args.configs:
        config = configuration(name)
        info = {"config": name, **env, **parameter_count(config)}
        if name not in args.skip_train:
            batch = args.train_batch or int(config["batch_size"])
            rows.append(
                {**info, **time_train_step(config, device, batch, args.repeats)}
            )
            logger.info(json.dumps(rows[-1]))
        # model resolutions: the requested ones and the configuration's own
        for size in sorted({*args.sizes, int(config["image_size"])}):
            for batch in args.batch_sizes:
                row = time_inference(config, device, size, batch, args.repeats)
                rows.append({**info, **row})
                logger.info(json.dumps(rows[-1]))
    logger.info(
        "\nconfig   what        size batch  s/iter   img/s   peak RSS MiB  GPU MiB"
    )
    for r in rows:
        seconds = r.get("seconds_per_step", r.get("seconds_per_batch"))
        gpu = f"{r['gpu_peak_mib']:.0f}" if r["gpu_peak_mib"] is not None else "-"
        logger.info(
            f"{r['config']:8} {r['what']:11} {r['image_size']:4} {r['batch_size']:5} "
            f"{seconds:7.3f} {r['images_per_second']:7.1f} {r['peak_rss_mib']:13.0f}  "
            f"{gpu}"
        )
    return rows


if __name__ == "__main__":
    main()
