#!/usr/bin/env bash
# DiffusionAD speed and memory on a GPU machine (needs only python with torch,
# diffusers, timm and omegaconf, which reads the network sizes from conf/; no kedro,
# no mlflow): training-step time of the default and paper configurations, and
# inference images/s at 128² and 256² model input.
# Usage: bash bench/gpu_diffusionad.sh [extra bench_diffusionad.py arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, diffusers, omegaconf; assert torch.cuda.is_available(), 'no CUDA device'"
python bench/bench_diffusionad.py --device cuda --configs default paper \
  --sizes 128 256 --batch-sizes 1 16 64 --repeats 5 "$@"
