"""dvc.yaml says everything each stage depends on, so `dvc repro` never skips a stage
that should run again, and lists nothing a stage does not read, so changing one
method's parameter re-runs only its branch.

For every stage (``kedro run --pipeline P [--tags T]``) the nodes it runs are taken
from the project's real pipelines, and:

* code: every module of ``src/kedro_ad`` the stage imports -- the modules of its
  node functions (for the shared wrappers, also the method's predict function) and
  of the ``kedro_ad`` dataset classes its catalog entries use, and the
  ``pipeline.py`` beside each ``nodes.py`` (the wiring), then everything those
  import, transitively, at module level or inside functions -- is listed in
  ``deps``, as the file or a folder above it. (Packages a module sits in but does
  not import by name are left out: their ``__init__`` is run, not used. So is
  ``pipeline_registry.py``: it imports every pipeline, whatever a stage runs.)
* data: every file the stage's nodes read and did not write is under a dep, and
  every file they write is under an out;
* parameters: the ``params:`` the nodes read are exactly the keys listed (a key
  covers what is under it), each found in the file named for it.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


@functools.cache
def _stages() -> dict:
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@functools.cache
def _pipelines() -> dict:
    from kedro_ad.pipeline_registry import register_pipelines

    return register_pipelines()


def _module_file(name: str) -> Path | None:
    """The file of module ``name`` under src/ (a package's ``__init__.py``)."""
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[str]:
    """kedro_ad modules ``path`` imports by name, anywhere in the file."""
    package = ".".join(path.relative_to(SRC).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.removesuffix(".__init__")
    else:
        package = package.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            # "from package import module" imports the module
            found.update(f"{module}.{a.name}" for a in node.names)
    return {
        name
        for name in found
        if name.split(".")[0] == "kedro_ad" and _module_file(name) is not None
    }


def _closure(modules: set[str]) -> set[Path]:
    """Files of ``modules`` and of everything they import inside kedro_ad."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or _module_file(name) is None:
            continue
        seen.add(name)
        todo.extend(_imports(_module_file(name)) - seen)
    return {_module_file(name) for name in seen}


def _stage_pipeline(stage: dict):
    args = shlex.split(stage["cmd"])
    assert args[:2] == ["kedro", "run"], stage["cmd"]
    name = args[args.index("--pipeline") + 1] if "--pipeline" in args else None
    pipeline = _pipelines()[name or "__default__"]
    if "--tags" in args:
        tags = args[args.index("--tags") + 1].split(",")
        pipeline = pipeline.only_nodes_with_tags(*tags)
    assert pipeline.nodes, f"{stage['cmd']} runs no node"
    return pipeline


@functools.cache
def _catalog_config() -> dict:
    return yaml.safe_load((REPO / "conf/base/catalog.yml").read_text())


def _entry(dataset: str) -> dict | None:
    """The catalog entry of ``dataset`` (exact, else the first matching pattern)."""
    config = _catalog_config()
    if dataset in config:
        return config[dataset]
    for pattern, entry in config.items():
        if "{" not in pattern:
            continue
        regex = re.sub(r"\\\{\w+\\\}", r"[^.]+", re.escape(pattern))
        if re.fullmatch(regex, dataset):
            values = dict(
                zip(
                    re.findall(r"\{(\w+)\}", pattern),
                    re.fullmatch(
                        re.sub(r"\\\{\w+\\\}", r"([^.]+)", re.escape(pattern)), dataset
                    ).groups(),
                    strict=True,
                )
            )
            text = yaml.safe_dump(entry)
            for key, value in values.items():
                text = text.replace("{" + key + "}", value)
            return yaml.safe_load(text)
    return None


def _types_and_paths(entry: dict) -> tuple[set[str], set[str]]:
    """Dataset class paths and local files of a catalog entry (nested too)."""
    types, paths = set(), set()
    for key, value in entry.items():
        if key == "type":
            types.add(value)
        elif key in ("filepath", "path"):
            paths.add(value)
        elif key == "dataset":
            inner = value if isinstance(value, dict) else {"type": value}
            more_types, more_paths = _types_and_paths(inner)
            types |= more_types
            paths |= more_paths
    return types, paths


def _roots(pipeline) -> set[str]:
    """Modules of the stage's node functions (with the ``pipeline`` module beside
    them: the wiring) and of the kedro_ad dataset classes its catalog entries use."""
    modules = set()
    for node in pipeline.nodes:
        func = node.func
        for candidate in (func, getattr(func, "predict", None), type(func)):
            name = getattr(candidate, "__module__", None)
            if name and name.startswith("kedro_ad"):
                modules.add(name)
                package, _, leaf = name.rpartition(".")
                if leaf == "nodes":
                    modules |= {package, f"{package}.pipeline"}
    for dataset in pipeline.datasets():
        entry = _entry(dataset)
        if entry:
            types, _ = _types_and_paths(entry)
            modules |= {t.rpartition(".")[0] for t in types if t.startswith("kedro_ad")}
    return modules


def _covered(path: str, listed: list[str]) -> bool:
    return any(
        path == item or path.startswith(item.rstrip("/") + "/") for item in listed
    )


def _paths(items: list) -> list[str]:
    return [next(iter(item)) if isinstance(item, dict) else item for item in items]


def missing_code(stages: dict) -> dict[str, list[str]]:
    """Per stage, the imported module files its ``deps`` do not cover."""
    out = {}
    for name, stage in stages.items():
        deps = _paths(stage.get("deps", []))
        files = _closure(_roots(_stage_pipeline(stage)))
        missing = sorted(
            rel
            for rel in (str(f.relative_to(REPO)) for f in files)
            if not _covered(rel, deps)
        )
        if missing:
            out[name] = missing
    return out


def test_every_imported_module_is_a_dep_of_its_stage():
    assert missing_code(_stages()) == {}


def test_the_check_fails_when_a_stage_forgets_a_module_it_imports():
    """The check itself: drop what the padim stage imports through PaDiM's models
    (and a single file of the diffusionad stage) and it names them."""
    stages = {k: dict(v) for k, v in _stages().items()}
    stages["padim"]["deps"] = [
        d for d in stages["padim"]["deps"] if d != "src/kedro_ad/models/padim"
    ]
    stages["diffusionad"]["deps"] = [
        d for d in stages["diffusionad"]["deps"] if d != "src/kedro_ad/data/io.py"
    ]
    missing = missing_code(stages)
    assert "src/kedro_ad/models/padim/torch_model.py" in missing["padim"]
    assert missing["diffusionad"] == ["src/kedro_ad/data/io.py"]
    assert set(missing) == {"padim", "diffusionad"}


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_data_deps_outs_and_params_are_what_its_nodes_use(name):
    stage = _stages()[name]
    pipeline = _stage_pipeline(stage)
    deps, outs = _paths(stage.get("deps", [])), _paths(stage.get("outs", []))
    for dataset in sorted(pipeline.datasets()):
        if dataset.startswith("params:"):
            continue
        entry = _entry(dataset)
        if entry is None:  # a MemoryDataset between two nodes of the stage
            continue
        _, files = _types_and_paths(entry)
        for path in files:
            if dataset in pipeline.all_outputs():
                assert _covered(path, outs), f"{name} writes {path}: not in outs"
            else:  # a folder read whole (compare) may be listed part by part
                parts = [d for d in deps if d.startswith(path.rstrip("/") + "/")]
                assert _covered(path, deps) or parts, (
                    f"{name} reads {path}: not in deps"
                )

    read = {
        p.removeprefix("params:") for p in pipeline.inputs() if p.startswith("params:")
    }
    listed = {}
    for item in stage.get("params", []):
        for file, keys in item.items():
            config = yaml.safe_load((REPO / file).read_text())
            for key in keys:
                value = config
                for part in key.split("."):
                    assert part in value, f"{name}: {key} is not in {file}"
                    value = value[part]
                listed[key] = file
    for param in read:
        assert any(param == k or param.startswith(k + ".") for k in listed), (
            f"{name} reads params:{param}, not listed in its params"
        )
    for key in listed:
        assert any(
            p == key or p.startswith(key + ".") or key.startswith(p + ".") for p in read
        ), f"{name} lists {key} but never reads it"


def test_compare_is_the_last_stage_and_follows_every_method():
    stages = _stages()
    assert list(stages)[-1] == "compare"
    compare = _paths(stages["compare"]["deps"])
    for name, stage in stages.items():
        for out in _paths(stage.get("outs", [])):
            if out.startswith("data/07_model_output/"):
                assert out in compare, f"compare does not follow {name}'s {out}"
