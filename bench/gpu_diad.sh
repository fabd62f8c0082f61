#!/usr/bin/env bash
# DiAD speed on a GPU machine at the paper's scale (SD v1.5-shaped UNet with a null
# cross-attention context, SG network, SD's f=8 autoencoder, ResNet50 maps; random
# weights): training-step time (batch 12, 256²) and inference images/s at 128² and
# 256², with and without the public code's duplicate guidance branch, in one run.
# Needs only python with torch, diffusers, timm and omegaconf (it reads the sizes
# from conf/; no kedro, no mlflow); < 8 min.
# Usage: bash bench/gpu_diad.sh            # on a CUDA machine
#        bash bench/gpu_diad.sh --tiny     # CPU smoke test with toy networks
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--tiny" ]]; then
  shift
  exec timeout 480 python bench/bench_diad.py --config tiny --device cpu \
    --sizes 64 --batch-size 2 --repeats 1 "$@"
fi
python -c "import torch, diffusers, timm, omegaconf; assert torch.cuda.is_available(), 'no CUDA device'"
timeout 480 python bench/bench_diad.py --config paper --device cuda --amp \
  --sizes 128 256 --batch-size 16 --repeats 3 "$@"
