"""Several processes: `accelerate launch` trains data-parallel with the project's
loop, and only process 0 leaves a trace (files, checkpoints, an MLflow run)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from helpers import SMALL_SYNTHETIC, run_session

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_two_cpu_processes_train_on_different_data_to_equal_weights(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "OMP_NUM_THREADS": "1",
        # accelerate's torchrun launcher, on CPU processes (gloo)
        "ACCELERATE_USE_CPU": "true",
    }
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
        str(HERE / "distributed_fit.py"), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = (
        json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1)
    )
    assert first["world"] == second["world"] == 2
    # each process drew its own batches ...
    assert len(first["batches"]) == len(second["batches"]) == 6
    assert all(a != b for a, b in zip(first["batches"], second["batches"], strict=True))
    # ... yet the weights (and the BatchNorm statistics) are the same everywhere
    assert first["weights"] == second["weights"]
    assert first["best_step"] == second["best_step"]
    # one process validated, wrote checkpoints and best weights; the other only
    # its own RNG state into each checkpoint (to resume with two processes)
    assert first["validations"] == 2 and second["validations"] == 0
    assert second["writes"] == ["random_states_1.pkl"] * 3  # steps 2, 4, 6
    best = [w for w in first["writes"] if w.startswith(".best_weights.pt.tmp")]
    assert len(best) >= 1  # written beside, then renamed (atomic)
    for name in ("model.safetensors", "optimizer.bin", "custom_checkpoint_0.pkl"):
        assert first["writes"].count(name) == 3
    listing = first["listing_at_last_validation"]  # at step 6, before its save
    for step in (2, 4):
        assert {
            f"checkpoint_{step}/{name}"
            for name in (
                "model.safetensors",
                "optimizer.bin",
                "loop_state.json",
                "random_states_0.pkl",
                "random_states_1.pkl",
            )
        } <= set(listing)
    assert first["left_in_checkpoints"] == []  # a clean finish clears them


@pytest.mark.slow
def test_a_process_other_than_the_first_tracks_and_writes_nothing(project, monkeypatch):
    """What ``accelerate launch -m kedro run`` does on process 1 (a fresh process):
    the pipeline runs, but no MLflow run is created and no file is written."""
    from kedro_ad.data.embedded import generate_embedded_dataset

    generate_embedded_dataset(  # the data exists before the launch
        project / "data/01_raw/embedded",
        image_size=64,
        n_train=12,
        n_test_good=3,
        n_test_per_defect=2,
    )
    before = sorted(str(p) for p in (project / "data").rglob("*") if p.is_file())
    monkeypatch.setenv("RANK", "1")
    run_session(project, "mean_image_served", SMALL_SYNTHETIC)
    after = sorted(str(p) for p in (project / "data").rglob("*") if p.is_file())
    assert after == before
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("kedro-ad")
    assert client.search_runs([experiment.experiment_id]) == []
    assert client.search_model_versions("name='kedro-ad-mean_image'") == []
