"""One training loop for every method: Accelerate, checkpoints, resume, selection.

The loop owns what every diffusion method repeats: the optimiser, gradient
clipping, progress, a wall-clock budget, checkpoints every N steps that a killed
run resumes from, and keeping the weights that scored best on the validation
split. A method brings its modules, a ``sample_batch`` and a ``loss_fn``.

Reproducibility: step ``s`` draws its batch and its noise from generators seeded by
``(seed, s)``, so a run resumed from a checkpoint reproduces an uninterrupted one.

Several processes (``accelerate launch --num_processes N -m kedro run --pipeline
NAME``, on GPUs or CPUs, one machine or several sharing the checkpoint folder)
train data-parallel with no change to a method: process ``r`` draws its batches and
noise from ``(seed, s, r)``, so each sees other data; after each backward pass the
gradients are averaged over the processes (by hand, since methods call their own
modules rather than a ``DistributedDataParallel`` wrapper) and buffers are copied
from process 0, so the weights stay equal everywhere. The effective batch is
``batch_size * N``. Only process 0 validates (the others receive its figures),
writes checkpoints, best weights and the resume key, and shows the progress bar;
every process saves its own RNG state into the checkpoint so a resume with the
same ``N`` reproduces the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, send_to_device
from tqdm.auto import tqdm

from kedro_ad.data.atomic import atomic_path

logger = logging.getLogger(__name__)

History = dict[str, list[dict[str, float]]]


@dataclass
class TrainConfig:
    """Settings of one training run (``<method>.training`` in the parameters)."""

    max_steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 100
    checkpoints_total_limit: int = 2
    validate_every: int = 200
    log_every: int = 10
    max_minutes: float | None = None
    seed: int = 0
    grad_clip: float | None = 1.0
    # exponential moving average of the trained weights (diffusers' EMAModel):
    # validation, checkpoint choice and the returned weights use the average
    ema_decay: float | None = None
    mixed_precision: str = "no"
    fingerprint: dict = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainConfig:
        """Build from a parameters dict; unknown keys are an error, not ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(
                f"training parameters: unknown key(s) {unknown}; known: {sorted(names)}"
            )
        config = cls(**dict(params))
        for name in ("max_steps", "batch_size", "checkpoint_every", "validate_every"):
            if int(getattr(config, name)) < 1:
                raise ValueError(f"training parameters: {name} must be >= 1")
        return config

    def resume_key(
        self, modules: Mapping[str, torch.nn.Module], num_processes: int = 1
    ) -> str:
        """What must match for a checkpoint to be resumed: settings, shapes and
        the number of processes (each draws its own batches).

        The budget and the checkpoint folder itself may change between tries.
        """
        settings = dataclasses.asdict(self)
        for volatile in ("checkpoint_dir", "max_minutes", "checkpoints_total_limit"):
            settings.pop(volatile)
        if num_processes != 1:
            settings["num_processes"] = int(num_processes)
        shapes = {
            name: sorted((k, list(v.shape)) for k, v in module.state_dict().items())
            for name, module in modules.items()
        }
        text = json.dumps({"settings": settings, "shapes": shapes}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    """What a run did; the modules passed to ``fit`` hold the best weights."""

    history: History
    best_step: int
    best_metrics: dict[str, float]
    steps_done: int
    seconds: float
    resumed_from: int | None = None
    stopped_early: bool = False


class _State:
    """The loop's own progress, saved inside each checkpoint."""

    def __init__(self) -> None:
        self.step = 0
        self.seconds = 0.0
        self.history: History = {}
        self.best_step = -1
        self.best_metrics: dict[str, float] = {}
        self.best_value = -math.inf

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        vars(self).update(state)


def seed_weights(seed: int) -> None:
    """Seed torch's global generator before a node builds its networks.

    Initial weights come from that generator, whose state otherwise depends on
    whatever ran before in the process (other nodes, other tests): the same
    training seed then gave different weights and metrics from run to run.
    """
    torch.manual_seed(int(seed))


def step_seed(seed: int, step: int, process: int = 0) -> int:
    """The seed of step ``step`` on process ``process``: distinct per step and per
    process, identical across resumes (process 0: the single-process seed).

    torch's CPU generator keeps the low 32 bits of a seed, so the process offset
    (an odd 32-bit constant, the golden ratio's) moves those bits.
    """
    offset = int(process) * 0x9E3779B1
    return (int(seed) * 1_000_003 + int(step) + offset) % (2**63 - 1)


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    found = []
    for path in folder.glob("checkpoint_*"):
        suffix = path.name.removeprefix("checkpoint_")
        if path.is_dir() and suffix.isdigit() and (path / "loop_state.json").is_file():
            found.append((int(suffix), path))
    return sorted(found)


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _append(history: History, name: str, step: int, value: float) -> None:
    history.setdefault(name, []).append({"step": int(step), "value": float(value)})


def fit(
    modules: Mapping[str, torch.nn.Module],
    trainable: Iterable[torch.nn.Parameter | dict] | None,
    sample_batch: Callable[[int, torch.Generator], Any],
    loss_fn: Callable[[Any, torch.Generator], Mapping[str, torch.Tensor]],
    config: TrainConfig,
    validate_fn: Callable[[], Mapping[str, float]] | None = None,
    monitor: str = "val_score",
    description: str = "training",
) -> TrainResult:
    """Train ``modules`` for ``config.max_steps`` steps; return the history.

    Args:
        modules: every module whose weights are checkpointed and selected.
        trainable: the parameters the optimiser updates (None: every parameter of
            ``modules`` that requires grad), or torch parameter groups
            (``{"params": [...], "lr": ...}``) where parts learn at other rates.
        sample_batch: ``(step, generator) -> batch``, deterministic given both. The
            generator is a CPU ``torch.Generator`` seeded for this step; a numpy
            generator can be derived with ``np.random.default_rng(g.initial_seed())``.
            Tensors in the batch are moved to the training device.
        loss_fn: ``(batch, generator) -> {"loss": tensor, ...}``; ``"loss"`` is
            back-propagated, every entry is logged. Draw noise on the CPU with the
            generator and move it to the batch's device.
        validate_fn: scores the validation split, ``{monitor: value, ...}``, higher
            is better. Called with the modules in eval mode every
            ``validate_every`` steps and at the end; without it the last step wins.
        monitor: the key of ``validate_fn``'s result that chooses the checkpoint.
    """
    modules = dict(modules)
    if trainable is None:
        trainable = [
            p for m in modules.values() for p in m.parameters() if p.requires_grad
        ]
    groups = [g if isinstance(g, dict) else {"params": [g]} for g in trainable]
    trainable = [p for g in groups for p in g["params"]]
    if not trainable:
        raise ValueError(f"{description}: no trainable parameters")

    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    world, rank = accelerator.num_processes, accelerator.process_index
    main = accelerator.is_main_process
    optimizer = torch.optim.AdamW(
        groups, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    # Placed on the device and registered for checkpoints, never wrapped in
    # DistributedDataParallel: methods call their own modules, so a wrapper would
    # be bypassed; gradients are averaged by hand below (_synchronise).
    for name in list(modules):
        modules[name] = accelerator.prepare_model(modules[name], evaluation_mode=True)
    optimizer = accelerator.prepare_optimizer(optimizer)
    state = _State()
    accelerator.register_for_checkpointing(state)
    ema = None
    if config.ema_decay:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(trainable, decay=float(config.ema_decay))
        accelerator.register_for_checkpointing(ema)
    buffers = [
        b for m in modules.values() for b in m.buffers() if b.is_floating_point()
    ]

    def from_main(value: Any) -> Any:
        """``value`` as process 0 has it (itself when there is one process)."""
        return broadcast_object_list([value])[0] if world > 1 else value

    folder = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    key = config.resume_key(modules, world)
    resumed_from = None
    if folder is not None:
        resume = None
        if main:  # one process decides; the others follow its decision
            folder.mkdir(parents=True, exist_ok=True)
            key_file = folder / "resume_key.json"
            existing = _checkpoints(folder)
            old_key = (
                json.loads(key_file.read_text())["key"] if key_file.is_file() else None
            )
            if existing and old_key == key:
                resume = str(existing[-1][1])
            elif existing or old_key is not None:
                logger.warning(
                    "%s: %s holds checkpoints of other settings; starting afresh",
                    description,
                    folder,
                )
                _clear(folder)
            key_file.write_text(json.dumps({"key": key}))
        resume = from_main(resume)
        if resume is not None:
            accelerator.load_state(resume)
            resumed_from = state.step
            if main:
                logger.warning(
                    "%s: resuming from %s (step %d of %d)",
                    description,
                    resume,
                    state.step,
                    config.max_steps,
                )
    best_file = folder / "best_weights.pt" if folder is not None else None
    best_weights = None
    if best_file is not None and best_file.is_file() and resumed_from is not None:
        best_weights = torch.load(best_file, map_location="cpu", weights_only=True)

    def unwrapped() -> dict[str, torch.nn.Module]:
        return {n: accelerator.unwrap_model(m) for n, m in modules.items()}

    def validate() -> None:
        if ema is None:
            return _validate()
        ema.store(trainable)  # validate, and keep as best, the averaged weights
        ema.copy_to(trainable)
        try:
            _validate()
        finally:
            ema.restore(trainable)

    def _validate() -> None:
        nonlocal best_weights
        metrics: dict[str, float] = {}
        if validate_fn is not None:
            if main:  # the weights are equal everywhere: one process scores
                for module in modules.values():
                    module.eval()
                with torch.no_grad():
                    metrics = {k: float(v) for k, v in validate_fn().items()}
                for module in modules.values():
                    module.train()
            metrics = from_main(metrics)
            for name, value in metrics.items():
                _append(state.history, name, state.step, value)
            if monitor not in metrics:
                raise KeyError(f"{description}: validate_fn returned no {monitor!r}")
        value = metrics.get(monitor, float(state.step))
        if value > state.best_value or state.best_step < 0:
            state.best_value, state.best_step = value, state.step
            state.best_metrics = metrics
            best_weights = {
                n: {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
                for n, m in unwrapped().items()
            }
            if best_file is not None and main:
                with atomic_path(best_file) as tmp:
                    torch.save(best_weights, tmp)
        if not main:
            return
        logger.info(
            "%s step %d: %s (best %s=%.4f at step %d)",
            description,
            state.step,
            {k: round(v, 4) for k, v in metrics.items()},
            monitor,
            state.best_value,
            state.best_step,
        )

    def checkpoint() -> None:
        # loop_state.json marks a complete checkpoint; the folder appears whole.
        # Process 0 makes the folder; every process saves into it (weights and
        # optimiser once, from process 0; each its RNG state), then it is renamed.
        final = folder / f"checkpoint_{state.step}"
        with atomic_path(final, folder=True) if main else nullcontext() as tmp:
            tmp = Path(from_main(str(tmp) if main else None))
            accelerator.save_state(str(tmp))
            accelerator.wait_for_everyone()
            if main:
                (tmp / "loop_state.json").write_text(json.dumps({"step": state.step}))
        accelerator.wait_for_everyone()
        if main:
            for _, old in _checkpoints(folder)[: -config.checkpoints_total_limit]:
                shutil.rmtree(old)

    def synchronise(loss: torch.Tensor, out_of_time: bool) -> tuple[bool, bool]:
        """Average the gradients over the processes and copy buffers from process
        0; return (some loss was not finite, some process is out of time), the
        same answer on every process so that all stop together."""
        finite = bool(torch.isfinite(loss))
        if world == 1:
            return not finite, out_of_time
        grads = [
            p.grad if p.grad is not None else torch.zeros_like(p) for p in trainable
        ]
        flags = torch.tensor(
            [float(not finite), float(out_of_time)], device=accelerator.device
        )
        flat = torch.cat([g.reshape(-1) for g in grads] + [flags.to(grads[0].dtype)])
        torch.distributed.all_reduce(flat)
        flat /= world
        offset = 0
        for param, grad in zip(trainable, grads, strict=True):
            size = grad.numel()
            if param.grad is None:
                param.grad = grad
            param.grad.copy_(flat[offset : offset + size].view_as(grad))
            offset += size
        some_not_finite, some_out_of_time = bool(flat[-2] > 0), bool(flat[-1] > 0)
        if buffers:
            packed = torch.cat([b.reshape(-1) for b in buffers])
            torch.distributed.broadcast(packed, src=0)
            offset = 0
            for buffer in buffers:
                buffer.copy_(packed[offset : offset + buffer.numel()].view_as(buffer))
                offset += buffer.numel()
        return some_not_finite, some_out_of_time

    for module in modules.values():
        module.train()
    start = time.monotonic() - state.seconds
    running: dict[str, list[float]] = {}
    stopped_early = False
    bar = tqdm(
        total=config.max_steps,
        initial=state.step,
        desc=description,
        mininterval=5,
        dynamic_ncols=True,
        disable=not main,
    )
    while state.step < config.max_steps:
        seed = step_seed(config.seed, state.step, rank)
        torch.manual_seed(seed)  # dropout and anything else on the global RNG
        generator = torch.Generator().manual_seed(seed)
        batch = send_to_device(sample_batch(state.step, generator), accelerator.device)
        with accelerator.autocast():
            losses = loss_fn(batch, generator)
        loss = losses["loss"]
        if torch.isfinite(loss):
            accelerator.backward(loss)
        out_of_time = (
            config.max_minutes is not None
            and time.monotonic() - start > 60 * config.max_minutes
        )
        not_finite, out_of_time = synchronise(loss, out_of_time)
        if not_finite:
            raise FloatingPointError(
                f"{description}: loss is {loss.item()} at step {state.step}"
                + (" on some process" if world > 1 else "")
                + "; lower training.learning_rate or check the inputs"
            )
        if config.grad_clip:
            accelerator.clip_grad_norm_(trainable, config.grad_clip)
        optimizer.step()
        if ema is not None:
            ema.step(trainable)
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.seconds = time.monotonic() - start
        for name, value in losses.items():
            running.setdefault(name, []).append(float(value.detach()))
        if state.step % config.log_every == 0 or state.step == config.max_steps:
            for name, values in running.items():
                _append(state.history, name, state.step, sum(values) / len(values))
            bar.set_postfix(loss=f"{sum(running['loss']) / len(running['loss']):.4f}")
            running = {}
        bar.update(1)
        if (
            state.step % config.validate_every == 0
            or state.step == config.max_steps
            or out_of_time
        ):
            validate()
        if folder is not None and state.step % config.checkpoint_every == 0:
            checkpoint()
        if out_of_time and state.step < config.max_steps:
            if not main:
                stopped_early = True
                break
            logger.warning(
                "%s: stopped at step %d of %d: the %.1f-minute budget "
                "(training.max_minutes) is spent",
                description,
                state.step,
                config.max_steps,
                config.max_minutes,
            )
            stopped_early = True
            break
    bar.close()
    if best_weights is None:  # resumed at max_steps, its best weights lost
        state.best_value, state.best_step = -math.inf, -1
        validate()

    for name, module in unwrapped().items():
        module.load_state_dict(best_weights[name])
        module.eval()
    accelerator.wait_for_everyone()
    if folder is not None and main:  # finished cleanly: nothing left to resume
        _clear(folder)
    return TrainResult(
        history=state.history,
        best_step=state.best_step,
        best_metrics=dict(state.best_metrics),
        steps_done=state.step,
        seconds=state.seconds,
        resumed_from=resumed_from,
        stopped_early=stopped_early,
    )
