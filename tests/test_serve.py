"""``mlflow models serve`` on the champion: it answers on loopback, and refuses bad
requests with a message, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest

from helpers import SMALL_SYNTHETIC, run_session
from kedro_ad.data.datasets import ArraysDataset

pytestmark = pytest.mark.slow

HOST = "127.0.0.1"  # loopback only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_until_up(
    url: str, server: subprocess.Popen, log: Path, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(
                f"the server exited ({server.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"no answer from {url} within {seconds} s:\n{log.read_text()}")


def test_served_champion_answers_and_refuses_bad_requests(project):
    one_class = {**SMALL_SYNTHETIC, "data.classes": ["pill"]}
    run_session(project, "mean_image_served", one_class)
    run_session(project, "promote", {"promote.model_name": "kedro-ad-mean_image"})
    store = f"sqlite:///{project}/mlflow.db"
    mlflow.set_tracking_uri(store)
    uri = "models:/kedro-ad-mean_image@champion"
    arrays = ArraysDataset("data/05_model_input/dataset_arrays.npz").load()
    image = arrays["images"][arrays["splits"] == "test"][:1]
    expected = mlflow.pyfunc.load_model(uri).predict(image)

    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": store,
        # mlflow starts uvicorn from PATH: this environment's, as `make` has it
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    log = project / "serve.log"
    server = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "-m", uri, "--env-manager", "local"]
        + ["--host", HOST, "--port", str(port)],
        env=env,
        cwd=project,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped whole below
    )
    try:
        _wait_until_up(f"http://{HOST}:{port}/ping", server, log, 180)
        url = f"http://{HOST}:{port}/invocations"
        status, body = _post(url, json.dumps({"inputs": image.tolist()}).encode())
        assert status == 200, body
        answer = body["predictions"]
        np.testing.assert_allclose(answer["scores"], expected["scores"], rtol=1e-5)
        assert np.asarray(answer["maps"]).shape == (1, 32, 32)
        assert answer["decisions"] == expected["decisions"].tolist()
        assert answer["decisions"][0] in ("NG", "OK")

        for payload, message in [
            ({"inputs": (image.astype(int) + 300).tolist()}, "0..255"),
            ({"inputs": [1.5, 2.5]}, "expected images shaped"),
            ({"inputs": {"pixels": image.tolist()}}, "must hold 'images'"),
        ]:
            status, body = _post(url, json.dumps(payload).encode())
            assert status == 400, body
            assert message in body["message"]
            assert "stack_trace" not in body and "Traceback" not in json.dumps(body)
        status, body = _post(url, b"{not json")
        assert status == 400 and "valid JSON" in body["message"]
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """Stop the server and the workers it started (its own process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        try:
            server.wait(timeout=30)
            break
        except subprocess.TimeoutExpired:
            continue
