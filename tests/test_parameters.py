"""kedro_ad.parameters reads conf/ as Kedro does, without Kedro (bench/ uses it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from kedro_ad.parameters import CONF_DIR, load_parameters
from kedro_ad.settings import CONFIG_LOADER_ARGS

REPO = Path(__file__).resolve().parents[1]


def _kedro(conf: Path, env: str) -> dict:
    loader = OmegaConfigLoader(str(conf), env=env, **CONFIG_LOADER_ARGS)
    return loader["parameters"]


@pytest.mark.parametrize("env", ["paper", "real_cpu", "local"])
def test_the_project_conf_reads_as_kedro_reads_it(env, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf, ignore=shutil.ignore_patterns("local"))
    (conf / "local").mkdir()  # this machine's overrides stay out of the test
    assert CONF_DIR == REPO / "conf"
    ours = load_parameters(env, conf)
    assert ours == _kedro(conf, env)
    if env == "local":
        assert ours == load_parameters("base", conf)
    elif env == "real_cpu":  # Magnetic Tile, DTD textures, 30 minutes of DiffusionAD
        assert ours["data"]["root"].endswith("magnetic_tile")
        assert ours["anomaly_synthesis"]["texture_dir"].endswith("dtd_subset")
        assert ours["diffusionad"]["training"]["max_minutes"] == 30
    else:
        assert ours["diffusionad"]["model"]["image_size"] == 256


def test_interpolation_is_per_environment_and_envs_replace_whole_blocks(tmp_path):
    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    (conf / "paper").mkdir()
    (conf / "base" / "parameters_a.yml").write_text(
        "_side: 64\na:\n  size: ${_side}\n  keep: 1\nb:\n  size: ${a.size}\n"
    )
    (conf / "paper" / "parameters_a.yml").write_text(
        "_side: 256\na:\n  size: ${_side}\n"
    )
    base, paper = load_parameters("base", conf), load_parameters("paper", conf)
    assert base == {"_side": 64, "a": {"size": 64, "keep": 1}, "b": {"size": 64}}
    # paper's a replaces base's whole; base's b was resolved within base
    assert paper == {"_side": 256, "a": {"size": 256}, "b": {"size": 64}}
    assert paper == _kedro(conf, "paper")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_parameters("nowhere", conf)
    (conf / "base" / "parameters_b.yml").write_text("b:\n  size: 1\n")
    with pytest.raises(ValueError, match="top-level key 'b'"):
        load_parameters("base", conf)


def test_it_needs_no_kedro():
    code = (
        "import sys; sys.modules['kedro'] = None\n"  # any import of kedro fails
        "from kedro_ad.parameters import load_parameters\n"
        "print(load_parameters('paper')['ran']['model']['image_size'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "256"
