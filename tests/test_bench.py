"""bench/ reads the network sizes from conf/ (no copies to keep in step)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from kedro_ad.parameters import load_parameters

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"bench/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("name", "env"), [("default", "base"), ("paper", "paper")])
def test_diffusionad_bench_configurations_are_conf(name, env):
    params = load_parameters(env)["diffusionad"]
    config = _bench("bench_diffusionad").configuration(name)
    assert config["image_size"] == params["model"]["image_size"]
    assert config["denoiser"] == params["model"]["denoiser"]
    assert config["segmentation"] == params["model"]["segmentation"]
    assert config["batch_size"] == params["training"]["batch_size"]
    assert config["timestep_ranges"] == params["loss"]["timestep_ranges"]


def test_diffusionad_bench_builds_the_pipelines_network():
    from kedro_ad.pipelines.diffusionad.nodes import build_network

    bench = _bench("bench_diffusionad")
    ours = bench.build(bench.configuration("default"))
    theirs = build_network(load_parameters("base")["diffusionad"])
    for a, b in ((ours.unet, theirs.unet), (ours.seg, theirs.seg)):
        shapes = [p.shape for p in a.parameters()]
        assert shapes == [p.shape for p in b.parameters()]


@pytest.mark.parametrize(("name", "env"), [("default", "base"), ("paper", "paper")])
def test_ran_bench_configurations_are_conf(name, env):
    params = load_parameters(env)
    ran = params["ran"]
    config = _bench("bench_ran").configuration(name)
    for key, value in config["model"].items():
        assert value == ran["model"][key], key
    assert config["scoring"] == ran["scoring"]
    assert config["batch_size"] == ran["training"]["batch_size"]
    assert config["repair_steps"] == ran["repair"]["steps"]
    side = ran["model"]["feature_image_size"] or params["data"]["image_size"]
    assert config["feature_image_size"] == side


@pytest.mark.parametrize(("name", "env"), [("default", "base"), ("paper", "paper")])
def test_diad_bench_configurations_are_conf(name, env):
    params = load_parameters(env)
    diad = params["diad"]
    config = _bench("bench_diad").load_config(name)
    assert config["image_size"] == diad["image_size"]
    assert config["vae"] == params["autoencoder"]["model"]
    for key, value in config["unet"].items():
        assert value == diad["model"][key], key
    assert config["sg"]["connect_blocks"] == diad["sg"]["connect_blocks"]
    assert config["scheduler"] == diad["scheduler"]
    assert config["train_batch"] == diad["training"]["batch_size"]
    assert config["num_steps"] == diad["inference"]["num_steps"]
