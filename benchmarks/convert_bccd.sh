#!/usr/bin/env bash
# docs/results.md: ANN vs SNN on BCCD test for the models of benchmarks/train_bccd.sh.
#   1. the QCFS model (qcfs-ft), converted with QCFS thresholds: T = 1..8 (bursts of up to 4), T = 1..32
#      (signed neurons with memory) and T = 1..64 (binary IF)
#   2. the ReLU and the leaky-ReLU (IBT) ANNs, channel-wise vs layer-wise normalization, T = 32..256
# Usage: bash benchmarks/convert_bccd.sh [device]
# Then: python benchmarks/ship_weights.py runs/bccd/qcfs-ft/weights/best.safetensors weights/bccd-yolov8n-qcfs.safetensors \
#         runs/bccd-val/qcfs-ft-burst4/report.json runs/bccd-val/qcfs-ft-snm/report.json runs/bccd-val/qcfs-ft/report.json
set -euo pipefail
DEVICE=${1:-cpu}
DATA=${BCCD:-../shared/datasets/bccd}
W=runs/bccd
common=(--data "$DATA" --imgsz 320 --batch 16 --device "$DEVICE" --project runs/bccd-val)
Q=$W/qcfs-ft/weights/best.safetensors
spikeyolo val "${common[@]}" --weights $Q --timesteps 1,2,4,8 --burst 4 --name qcfs-ft-burst4
spikeyolo val "${common[@]}" --weights $Q --timesteps 1,2,4,8,16,32 --snm --burst 1 --name qcfs-ft-snm
spikeyolo val "${common[@]}" --weights $Q --timesteps 1,2,4,8,16,32,64 --burst 1 --name qcfs-ft
for model in relu leaky; do
  [ -f $W/$model/weights/best.safetensors ] || { echo "skip $model: not trained"; continue; }
  for mode in channel layer; do
    spikeyolo val "${common[@]}" --weights $W/$model/weights/best.safetensors --mode $mode \
      --timesteps 32,64,128,256 --name $model-$mode
  done
done
