"""Trains a tiny module with kedro_ad.training.fit in every process of
``accelerate launch --cpu --num_processes N tests/distributed_fit.py OUT``, and
writes what each process did to ``OUT/rank_<r>.json`` (test_distributed reads it).
"""

import json
import sys
from pathlib import Path

import safetensors.torch
import torch

WRITES: list[str] = []


def _recording(save):
    def wrapper(obj, path, *args, **kwargs):
        WRITES.append(Path(str(path)).name)
        return save(obj, path, *args, **kwargs)

    return wrapper


# before accelerate is imported: it binds save_file by name
torch.save = _recording(torch.save)
safetensors.torch.save_file = _recording(safetensors.torch.save_file)

from accelerate import PartialState  # noqa: E402

from kedro_ad.training import TrainConfig, fit  # noqa: E402


def main(out: Path) -> None:
    torch.manual_seed(0)  # the same initial weights in every process
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1)
    )
    data = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    target = data.sum(dim=1, keepdim=True)
    seen: list[list[int]] = []
    listings: list[list[str]] = []
    folder = out / "checkpoints"

    def sample_batch(step: int, generator: torch.Generator) -> dict:
        rows = torch.randint(0, len(data), (4,), generator=generator)
        seen.append(rows.tolist())
        return {"x": data[rows], "y": target[rows]}

    def loss_fn(batch: dict, generator: torch.Generator) -> dict:
        return {"loss": (net(batch["x"]) - batch["y"]).pow(2).mean()}

    def validate_fn() -> dict:
        listings.append(sorted(str(p.relative_to(folder)) for p in folder.rglob("*")))
        return {"val_score": -float((net(data) - target).pow(2).mean())}

    config = TrainConfig(
        max_steps=6,
        batch_size=4,
        learning_rate=0.05,
        checkpoint_dir=str(folder),
        checkpoint_every=2,
        checkpoints_total_limit=5,
        validate_every=3,
        log_every=1,
    )
    result = fit({"net": net}, None, sample_batch, loss_fn, config, validate_fn)
    rank = PartialState().process_index
    report = {
        "rank": rank,
        "world": PartialState().num_processes,
        "batches": seen,
        "weights": {k: v.tolist() for k, v in net.state_dict().items()},
        "best_step": result.best_step,
        "validations": len(listings),
        "listing_at_last_validation": listings[-1] if listings else None,
        "writes": WRITES,
        "left_in_checkpoints": sorted(p.name for p in folder.iterdir()),
    }
    (out / f"rank_{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
