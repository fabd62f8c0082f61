"""Benchmark ``kedro_ad.metrics.pixel_metrics``: wall time and peak memory.

Usage::

    python bench/bench_pixel_metrics.py [--n 500] [--size 256] [--seed 0]

Each measurement runs in a fresh child process that first generates the data
(float32 maps and bool blob masks, written in place so that generation has no
large temporaries) and then calls ``pixel_metrics`` once. Two children run:

* ``rss``: wall time, and the peak resident-set-size increase during the call.
  The kernel's high-water mark (VmHWM) is reset just before the call by
  writing ``5`` to ``/proc/self/clear_refs``; the increase is
  ``VmHWM after - VmRSS before``. If the reset is not permitted the child falls
  back to ``ru_maxrss after - VmRSS before``, which is only an upper bound if
  generation peaked higher (it is reported as such).
* ``tracemalloc``: peak of traced Python/numpy allocations during the call
  (numpy reports its data buffers to tracemalloc; buffers malloc'ed inside C
  extensions without numpy are not seen).

The parent also reports ``getrusage(RUSAGE_CHILDREN).ru_maxrss``: the largest
whole-process peak RSS of any child (interpreter + imports + data + call).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

logger = logging.getLogger("bench_pixel_metrics")
MIB = 1024.0**2


def make_data(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 maps and bool masks with elliptic blobs in half the images."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    maps = np.empty((n, size, size), dtype=np.float32)
    yy, xx = np.ogrid[:size, :size]
    for i in range(n):
        if i % 2:  # every other image is anomalous, with 1-3 blobs
            for _ in range(rng.integers(1, 4)):
                cy, cx = rng.uniform(0, size, size=2)
                ry, rx = rng.uniform(size / 64, size / 8, size=2)
                masks[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        rng.standard_normal(out=maps[i], dtype=np.float32)
        maps[i] += 1.5 * masks[i]
    return masks, maps


def _status_kib(field: str) -> int | None:
    """Read a ``VmXXX`` field (KiB) from /proc/self/status, None if missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS counter for this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(mode: str, n: int, size: int, seed: int) -> dict:
    """Generate data and time one ``pixel_metrics`` call in this process."""
    from kedro_ad.metrics import pixel_metrics

    if mode == "sklearn":  # the reference: scikit-learn's AUROC + AP only

        def pixel_metrics(masks, maps):
            from sklearn.metrics import average_precision_score, roc_auc_score

            y, s = masks.ravel(), maps.ravel()
            return {"auroc": roc_auc_score(y, s), "ap": average_precision_score(y, s)}

    masks, maps = make_data(n, size, seed)
    result: dict = {"mode": mode, "input_bytes": int(maps.nbytes + masks.nbytes)}
    if mode == "tracemalloc":
        import tracemalloc

        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        metrics = pixel_metrics(masks, maps)
        result["wall_s"] = time.perf_counter() - start
        result["peak_bytes"] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    else:
        rss_before = _status_kib("VmRSS")
        exact = _reset_hwm() and _status_kib("VmHWM") is not None
        start = time.perf_counter()
        metrics = pixel_metrics(masks, maps)
        result["wall_s"] = time.perf_counter() - start
        if exact:
            peak_kib = _status_kib("VmHWM")
        else:
            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["peak_bytes"] = (peak_kib - (rss_before or 0)) * 1024
        result["exact_hwm_reset"] = exact
    result["metrics"] = metrics
    return result


def run_child(mode: str, args: argparse.Namespace) -> dict:
    """Run :func:`child` in a fresh interpreter and return its JSON result."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--n",
        str(args.n),
        "--size",
        str(args.size),
        "--seed",
        str(args.seed),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse arguments, run both measurements and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="number of maps")
    parser.add_argument("--size", type=int, default=256, help="map height=width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-sklearn",
        action="store_true",
        help="skip the scikit-learn AUROC+AP reference (slow: ~10x)",
    )
    parser.add_argument(
        "--child", choices=["rss", "tracemalloc", "sklearn"], help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    if args.child:
        print(json.dumps(child(args.child, args.n, args.size, args.seed)))
        return

    rss = run_child("rss", args)
    traced = run_child("tracemalloc", args)
    child_max_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    n_pix = args.n * args.size**2
    in_mb = rss["input_bytes"] / MIB
    hwm = "VmHWM reset" if rss["exact_hwm_reset"] else "ru_maxrss, upper bound"
    print(f"pixel_metrics on {args.n} x {args.size}x{args.size} = {n_pix:,} pixels")
    print(f"  input: maps float32 + masks bool = {in_mb:.1f} MiB")
    print(f"  wall time: {rss['wall_s']:.2f} s")
    print(f"  peak RSS increase during call ({hwm}): {rss['peak_bytes'] / MIB:.1f} MiB")
    print(f"  tracemalloc peak during call: {traced['peak_bytes'] / MIB:.1f} MiB")
    print(f"    (wall time with tracemalloc on: {traced['wall_s']:.2f} s)")
    print(
        f"  max whole-child peak RSS (RUSAGE_CHILDREN): {child_max_rss / MIB:.1f} MiB"
    )
    print("  metrics: " + ", ".join(f"{k}={v:.6f}" for k, v in rss["metrics"].items()))
    if not args.no_sklearn:
        ref = run_child("sklearn", args)
        print(
            f"  scikit-learn AUROC+AP alone on the same data: {ref['wall_s']:.2f} s, "
            f"peak RSS increase {ref['peak_bytes'] / MIB:.1f} MiB"
        )
        print(
            f"  ratio pixel_metrics (4 metrics) / scikit-learn (2 metrics): time "
            f"{rss['wall_s'] / ref['wall_s']:.2f}, memory "
            f"{rss['peak_bytes'] / ref['peak_bytes']:.2f}"
        )
        print(
            "  " + ", ".join(f"sklearn {k}={v:.6f}" for k, v in ref["metrics"].items())
        )


if __name__ == "__main__":
    main()
