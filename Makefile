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

.PHONY: install run test lint ui repro bench clean-runs

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

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlruns --host 127.0.0.1 --port 5000

repro: $(STAMP)
	source $(BIN)/activate && dvc repro

bench: $(STAMP)
	$(BIN)/python bench/bench_pixel_metrics.py
	$(BIN)/python bench/bench_synthesis.py
	$(BIN)/python bench/bench_diffusionad.py
	$(BIN)/python bench/bench_diad.py
	$(BIN)/python bench/bench_ran.py
