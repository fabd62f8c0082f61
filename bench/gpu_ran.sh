#!/usr/bin/env bash
# PaDiM and RAN speed and memory on a GPU machine (needs only python with torch,
# diffusers, timm and omegaconf, which reads the network sizes from conf/; no kedro,
# no mlflow): PaDiM fit time and peak memory at 128²
# and 256², RAN training-step time (conf/base 64² and conf/paper 256² networks),
# scoring and gradient-denoising images/s. About 2-5 minutes on an H100.
# Usage: bash bench/gpu_ran.sh [--tiny] [extra bench_ran.py arguments]
#   --tiny: a seconds-long CPU smoke run of the same script (no GPU needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [[ "${1:-}" == "--tiny" ]]; then
  shift
  exec timeout 480 "$PY" bench/bench_ran.py --device cpu --tiny "$@"
fi
"$PY" -c "import torch, diffusers, timm, omegaconf; assert torch.cuda.is_available(), 'no CUDA device'"
exec timeout 480 "$PY" bench/bench_ran.py --device cuda --sizes 128 256 \
  --configs default paper --n-train 200 --repeats 5 "$@"
