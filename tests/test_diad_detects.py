"""DiAD must detect: a small seeded `kedro run --pipeline diad` on embedded data beats
the mean-image floor, fitted on the same data in the same project, by a margin.

The margins come from the measured run-to-run spread of this very configuration
(seeds 0, 1, 2 of every training stage and of the inference noise, same data;
`KEDRO_AD_FLOOR_SEED=1 pytest -s tests/test_diad_detects.py` prints the figures).
Class means, percent, DiAD against the floor's 57.0 / 72.6 / 26.2:

    seed   image AUROC   pixel AUROC   AU-PRO   (threads)
    0      68.1          71.4          40.3     1
    1      66.7          75.3          43.1     2
    2      66.7          67.3          32.9     2

The gap over the floor is 10.2 +- 0.8 image AUROC and 12.6 +- 5.3 AU-PRO (mean +-
std). Image AUROC: margin = mean less three std, rounded down (7). AU-PRO spreads
too much for that; its margin is the mean less two std, rounded down (2). Pixel
AUROC is not asserted: seed 2 is below the floor there. (Three runs before a fix of
the validation, which had repeated its first pass, gave gaps of 12.6 +- 1.6 and
18.8 +- 3.1.)

A DiAD that stops detecting (copies its input, loses normal content, maps against
the wrong reference) falls to the floor or below it, as the pre-rework DiAD did
(52.3 image AUROC against the floor's 63.0 on the full embedded default).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import class_means, run_session

pytestmark = pytest.mark.slow

CLASSES = ["brushed_metal", "pcb", "washer"]  # a texture and two objects
MARGIN = {"image_auroc": 0.07, "pixel_aupro": 0.02}  # see the module docstring


def small_run_params(root: Path, seed: int = 0) -> dict:
    """The embedded data (3 classes, 64²) and DiAD's default design at few steps."""
    params = {
        "data.source": "embedded",
        "data.root": str(root / "data/01_raw/embedded_small"),
        "data.classes": CLASSES,
        "data.image_size": 64,
        "data.embedded.raw_size": 128,
        "data.embedded.n_train": 30,
        "data.embedded.n_test_good": 8,
        "data.embedded.n_test_per_defect": 3,
        "evaluation.n_overlays": 2,
        "autoencoder.training.max_steps": 300,
        "autoencoder.training.validate_every": 300,
        "autoencoder.training.seed": seed,
        "diad.prior.training.max_steps": 400,
        "diad.prior.training.validate_every": 400,
        "diad.prior.training.seed": seed,
        "diad.training.max_steps": 600,
        "diad.training.validate_every": 300,
        "diad.training.seed": seed,
        "diad.inference.t_start_candidates": [600],
        "diad.inference.seed": seed,
    }
    return params


def diad_and_floor(project: Path, seed: int = 0) -> tuple[dict, dict]:
    params = small_run_params(project, seed)
    run_session(project, "diad", params)
    run_session(project, "mean_image", params)
    return class_means(project, "diad"), class_means(project, "mean_image")


def test_diad_beats_the_mean_image_floor(project):
    # KEDRO_AD_FLOOR_SEED=1 pytest -s ... : the runs that measured the spread
    diad, floor = diad_and_floor(project, int(os.environ.get("KEDRO_AD_FLOOR_SEED", 0)))
    print(f"\nDiAD {diad}\nmean-image floor {floor}")
    for metric, margin in MARGIN.items():
        assert diad[metric] >= floor[metric] + margin, (metric, diad, floor)
