#!/usr/bin/env bash
# README "Results": ANN vs SNN on BCCD test for the models of benchmarks/train_bccd.sh.
#   1. the QCFS model, converted with QCFS thresholds, T = 1..64 (binary) and T = 1..8 (bursts of up to 4)
#   2. the ReLU and the leaky-ReLU (IBT) ANNs, channel-wise vs layer-wise normalization, T = 32..256
# Usage: bash benchmarks/convert_bccd.sh [device]
# Then: python benchmarks/ship_weights.py runs/bccd/qcfs/weights/best.safetensors weights/bccd-yolov8n-qcfs.safetensors \
#         runs/bccd-val/qcfs/report.json runs/bccd-val/qcfs-burst4/report.json
set -euo pipefail
DEVICE=${1:-cpu}
DATA=${BCCD:-../shared/datasets/bccd}
W=runs/bccd
common=(--data "$DATA" --imgsz 320 --batch 16 --device "$DEVICE" --project runs/bccd-val)
spikeyolo val "${common[@]}" --weights $W/qcfs/weights/best.safetensors --timesteps 1,2,4,8,16,32,64 --name qcfs
spikeyolo val "${common[@]}" --weights $W/qcfs/weights/best.safetensors --timesteps 1,2,4,8 --burst 4 --name qcfs-burst4
for model in relu leaky; do
  [ -f $W/$model/weights/best.safetensors ] || { echo "skip $model: not trained"; continue; }
  for mode in channel layer; do
    spikeyolo val "${common[@]}" --weights $W/$model/weights/best.safetensors --mode $mode \
      --timesteps 32,64,128,256 --name $model-$mode
  done
done
