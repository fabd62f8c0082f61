# The two commands that matter on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Telemetry and network stay off in everything the project runs.
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export KEDRO_DISABLE_TELEMETRY := 1
export HF_HUB_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := true
export PYTHONUNBUFFERED := 1

.PHONY: install run test test-quick lint ui viz repro bench

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# One pip call: torch is pinned in pyproject.toml beside everything else.
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# DiAD end to end on the embedded data: ingestion, validation, anomaly synthesis,
# autoencoder, DiAD training, scoring, evaluation, model registration.
run: $(STAMP)
	$(BIN)/kedro run --pipeline diad
	@echo ""
	@echo "Results:"
	@echo "  data checks: data/08_reporting/validation_report.json, dataset_preview.png, synthesis_preview.png"
	@echo "  evaluation:  data/08_reporting/diad/ (evaluation_table.csv/.md, roc_pr_curves.png, overlays.png, ...)"
	@echo "  model:       data/06_models/diad (and registered in MLflow as kedro-ad-diad)"
	@echo "  every run, its metrics, tables and figures: MLflow store mlflow.db + mlruns/ -> 'make ui'"

# The whole suite (what CI runs); the slowest tests are listed at the end.
test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# Everything but the tests marked slow (whole Kedro sessions, training runs).
test-quick: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

# kedro-mlflow's UI command reads the store, host and port from conf (mlflow.yml);
# it calls `mlflow`, hence the venv on PATH.
ui: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/kedro mlflow ui

# The pipelines as a graph (kedro-viz) on http://127.0.0.1:4141.
viz: $(STAMP)
	$(BIN)/kedro viz run --host 127.0.0.1 --port 4141 --no-browser

repro: $(STAMP)
	source $(BIN)/activate && dvc repro

bench: $(STAMP)
	$(BIN)/python bench/bench_pixel_metrics.py
	$(BIN)/python bench/bench_synthesis.py
	$(BIN)/python bench/bench_diffusionad.py
	$(BIN)/python bench/bench_diad.py
	$(BIN)/python bench/bench_ran.py
