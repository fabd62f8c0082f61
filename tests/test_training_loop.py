"""The shared training loop: resume reproduces, selection uses validation, budget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kedro_ad.training import TrainConfig, fit

TARGET = torch.linspace(-1, 1, 8)


def _problem(fail_at: int | None = None):
    """A tiny regression whose batches and noise come from the step's generator."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.Dropout(0.1), torch.nn.Linear(16, 8)
    )

    def sample_batch(step, generator):
        rng = np.random.default_rng(generator.initial_seed())
        x = torch.from_numpy(rng.standard_normal((4, 8)).astype(np.float32))
        return {"x": x, "step": step}

    def loss_fn(batch, generator):
        if fail_at is not None and batch["step"] == fail_at:
            raise KeyboardInterrupt("simulated kill")
        noise = torch.randn(batch["x"].shape, generator=generator) * 0.01
        out = net(batch["x"] + noise)
        return {"loss": ((out - TARGET) ** 2).mean()}

    return net, sample_batch, loss_fn


def _config(tmp_path, **kw):
    params = dict(
        max_steps=12,
        batch_size=4,
        learning_rate=1e-2,
        checkpoint_dir=str(tmp_path / "ckpt"),
        checkpoint_every=4,
        validate_every=4,
        log_every=1,
    )
    params.update(kw)
    return TrainConfig.from_params(params)


def test_interrupted_run_resumes_and_matches_uninterrupted(tmp_path):
    net, sample, loss = _problem()
    straight = fit({"net": net}, None, sample, loss, _config(tmp_path / "a"))
    reference = {k: v.clone() for k, v in net.state_dict().items()}

    net, sample, loss = _problem(fail_at=9)
    with pytest.raises(KeyboardInterrupt):
        fit({"net": net}, None, sample, loss, _config(tmp_path / "b"))
    assert (tmp_path / "b" / "ckpt" / "checkpoint_8").is_dir()
    net, sample, loss = _problem()  # a new process would rebuild everything
    resumed = fit({"net": net}, None, sample, loss, _config(tmp_path / "b"))

    assert resumed.resumed_from == 8
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, reference[k], rtol=0, atol=0)
    assert resumed.history["loss"] == straight.history["loss"]
    assert not any((tmp_path / "b" / "ckpt").iterdir()), "clean finish leaves none"


def test_changed_settings_do_not_resume(tmp_path):
    net, sample, loss = _problem(fail_at=9)
    with pytest.raises(KeyboardInterrupt):
        fit({"net": net}, None, sample, loss, _config(tmp_path))
    net, sample, loss = _problem()
    result = fit(
        {"net": net}, None, sample, loss, _config(tmp_path, learning_rate=0.02)
    )
    assert result.resumed_from is None
    assert result.history["loss"][0]["step"] == 1


def test_best_validation_weights_are_restored(tmp_path):
    net, sample, loss = _problem()
    snapshots = {}

    def validate():
        step = len(snapshots) * 4 + 4
        snapshots[step] = {k: v.clone() for k, v in net.state_dict().items()}
        return {"val_score": {4: 0.2, 8: 0.9, 12: 0.5}[step]}

    result = fit(
        {"net": net}, None, sample, loss, _config(tmp_path), validate_fn=validate
    )
    assert result.best_step == 8 and result.best_metrics == {"val_score": 0.9}
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, snapshots[8][k], rtol=0, atol=0)
    assert [p["step"] for p in result.history["val_score"]] == [4, 8, 12]
    assert not net.training


def test_budget_stops_early_and_still_validates(tmp_path):
    net, sample, loss = _problem()

    def slow_loss(batch, generator):
        time.sleep(0.05)
        return loss(batch, generator)

    calls = []
    config = _config(tmp_path, max_steps=10_000, max_minutes=0.3 / 60)
    result = fit(
        {"net": net},
        None,
        sample,
        slow_loss,
        config,
        validate_fn=lambda: calls.append(1) or {"val_score": 0.0},
    )
    assert result.stopped_early and 1 <= result.steps_done < 100
    assert calls, "the last step is validated"


def test_unknown_parameter_is_an_error():
    with pytest.raises(ValueError, match="max_step"):
        TrainConfig.from_params({"max_step": 3})


def test_non_finite_loss_is_reported(tmp_path):
    net, sample, _ = _problem()
    with pytest.raises(FloatingPointError, match="step 0"):
        fit(
            {"net": net},
            None,
            sample,
            lambda b, g: {"loss": net(b["x"]).sum() * float("nan")},
            _config(tmp_path),
        )


SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    import torch
    from test_training_loop import _problem, _config
    from kedro_ad.training import fit
    from pathlib import Path
    slow = sys.argv[1] == "slow"
    net, sample, loss = _problem()
    def loss_fn(b, g):
        if slow and b["step"] >= 8:
            time.sleep(60)
        return loss(b, g)
    r = fit({{"net": net}}, None, sample, loss_fn, _config(Path(sys.argv[2])))
    torch.save(net.state_dict(), Path(sys.argv[2]) / "final.pt")
    (Path(sys.argv[2]) / "resumed_from.txt").write_text(str(r.resumed_from))
    """
)


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_weights(tmp_path):
    """SIGKILL (no cleanup at all) mid-training, then a fresh process resumes."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, str(script)]
    subprocess.run([*run, "fast", str(tmp_path / "a")], check=True, env=env)

    proc = subprocess.Popen([*run, "slow", str(tmp_path / "b")], env=env)
    deadline = time.monotonic() + 60
    while not (tmp_path / "b" / "ckpt" / "checkpoint_8").is_dir():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    subprocess.run([*run, "fast", str(tmp_path / "b")], check=True, env=env)

    assert (tmp_path / "b" / "resumed_from.txt").read_text() == "8"
    a = torch.load(tmp_path / "a" / "final.pt")
    b = torch.load(tmp_path / "b" / "final.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_ema_weights_are_validated_kept_and_resumed(tmp_path):
    """With ema_decay the loop validates and returns the moving average of the
    trajectory (checked against one computed by hand), and a resumed run ends
    with the same averaged weights as an uninterrupted one."""
    decay = 0.9
    net, sample, loss = _problem()
    shadow = [p.detach().clone() for p in net.parameters()]
    seen = []

    def validate():
        seen.append([p.detach().clone() for p in net.parameters()])
        return {"val_score": -float(len(seen))}  # the first validation is best

    config = _config(tmp_path / "a", ema_decay=decay, max_steps=8)
    optimizer_steps = []
    original_step = torch.optim.AdamW.step

    def spy(self, *a, **k):  # the raw weights after each optimiser step
        out = original_step(self, *a, **k)
        optimizer_steps.append([p.detach().clone() for p in net.parameters()])
        return out

    torch.optim.AdamW.step = spy
    try:
        result = fit({"net": net}, None, sample, loss, config, validate)
    finally:
        torch.optim.AdamW.step = original_step
    # diffusers' EMAModel: decay min(decay, (1 + n) / (10 + n)) from its 2nd step
    for n, raw in enumerate(optimizer_steps, start=1):
        d = 0.0 if n <= 1 else min(decay, n / (9 + n))
        shadow = [d * s + (1 - d) * r for s, r in zip(shadow, raw, strict=True)]
        if n == 4:
            at_first_validation = [s.clone() for s in shadow]
    for got, want in zip(seen[0], at_first_validation, strict=True):
        torch.testing.assert_close(got, want)
    assert result.best_step == 4
    for got, want in zip(net.parameters(), at_first_validation, strict=True):
        torch.testing.assert_close(got.detach(), want)
    assert not torch.allclose(seen[0][0], optimizer_steps[3][0]), "EMA != raw"

    net, sample, loss = _problem(fail_at=6)
    with pytest.raises(KeyboardInterrupt):
        fit({"net": net}, None, sample, loss, _config(tmp_path / "b", ema_decay=decay))
    net, sample, loss = _problem()
    fit({"net": net}, None, sample, loss, _config(tmp_path / "b", ema_decay=decay))
    resumed = {k: v.clone() for k, v in net.state_dict().items()}
    net, sample, loss = _problem()
    fit({"net": net}, None, sample, loss, _config(tmp_path / "c", ema_decay=decay))
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, resumed[k], rtol=0, atol=0)
