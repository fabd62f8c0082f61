"""Benchmark ``kedro_ad.synthesis.synthesize_batch``: samples per second on one core.

Usage::

    python bench/bench_synthesis.py [--batch 16] [--seconds 3] [--sizes 128 256]
        [--texture-dir ../shared/data/textures/dtd_subset]

numpy (and any BLAS/OpenMP pool) is limited to one thread and the process is pinned
to one CPU before numpy is imported. For each image size and anomaly source (none:
self-augmentation only; generated: ten procedural textures; dtd: the texture folder,
when it exists) it times repeated ``synthesize_batch`` calls on a fixed batch of
object-like images with a foreground mask, half of each batch made anomalous (what a
training step consumes), and prints a table: samples/s and ms/batch by CPU time of
the one thread (robust to other processes on the machine), and by wall time.
``foreground_masks`` is timed apart: it runs once per image, not per step.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from kedro_ad.synthesis import (  # noqa: E402
    foreground_masks,
    load_textures,
    perlin_noise,
    synthesize_batch,
)

logger = logging.getLogger("bench_synthesis")


def object_images(n: int, size: int, seed: int) -> np.ndarray:
    """Dark noisy backgrounds with a bright noisy disc in the middle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    disc = (yy**2 + xx**2) < 0.3**2
    base = np.where(disc[..., None], [200.0, 190.0, 180.0], [30.0, 30.0, 35.0])
    noise = rng.normal(0, 6, (n, size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def generated_textures(k: int, size: int, seed: int) -> np.ndarray:
    """Coloured Perlin-noise images: stand-ins for a texture folder."""
    rng = np.random.default_rng(seed)
    noise = perlin_noise(rng, 3 * k, size, size, (2, 6)).reshape(k, 3, size, size)
    return np.clip(128 + 120 * noise.transpose(0, 2, 3, 1), 0, 255).astype(np.uint8)


def rate(fn, seconds: float) -> tuple[float, float]:
    """Calls per CPU second and per wall second of ``fn`` (after one warm-up).

    On one thread, CPU time is what one core spends; it stays meaningful when other
    processes share the machine, where wall time does not.
    """
    fn()
    calls, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.process_time() - cpu < seconds or calls < 3:
        fn()
        calls += 1
    return calls / (time.process_time() - cpu), calls / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--texture-dir", default="../shared/data/textures/dtd_subset")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    lines = [
        f"synthesize_batch, batch {args.batch}, half anomalous, one core "
        f"(CPU {sorted(os.sched_getaffinity(0))})",
        f"{'size':>5} {'source':>10} {'samples/s':>10} {'ms/batch':>9} "
        f"{'wall samples/s':>15}",
    ]
    for size in args.sizes:
        images = object_images(args.batch, size, seed=0)
        is_texture = np.zeros(args.batch, dtype=bool)
        fg_rate, _ = rate(lambda im=images, t=is_texture: foreground_masks(im, t), 1.0)
        objects = foreground_masks(images, is_texture)
        sources = {"none": None, "generated": generated_textures(10, size, seed=1)}
        if Path(args.texture_dir).is_dir():
            sources["dtd"] = load_textures(args.texture_dir, size)
        for name, textures in sources.items():
            rng = np.random.default_rng(0)
            per_second, per_wall_second = rate(
                lambda im=images, tx=textures, ob=objects, r=rng: synthesize_batch(
                    im, r, textures=tx, object_mask=ob
                ),
                args.seconds,
            )
            lines.append(
                f"{size:>5} {name:>10} {per_second * args.batch:>10.0f} "
                f"{1000 / per_second:>9.1f} {per_wall_second * args.batch:>15.0f}"
            )
        lines.append(
            f"{size:>5} {'(foreground_masks, once per image)':>21}: "
            f"{fg_rate * args.batch:.0f} images/s"
        )
    logger.info("\n".join(lines))


if __name__ == "__main__":
    main()
