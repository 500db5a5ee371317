#!/usr/bin/env bash
# Train the three BCCD models of README "Results" with one recipe: SiLU, ReLU and QCFS (L=4).
# Usage: bash benchmarks/train_bccd.sh [epochs] [imgsz] [device]
set -euo pipefail
EPOCHS=${1:-30}; IMGSZ=${2:-320}; DEVICE=${3:-cpu}
DATA=${BCCD:-../shared/datasets/bccd}
common=(--data "$DATA" --epochs "$EPOCHS" --imgsz "$IMGSZ" --batch 16 --device "$DEVICE" --project runs/bccd)
spikeyolo train "${common[@]}" --model yolov8n-relu --levels 4 --name qcfs
# L = 8 (README: 0.730 mAP50): spikeyolo train "${common[@]}" --model yolov8n-relu --levels 8 --name qcfs-l8
spikeyolo train "${common[@]}" --model yolov8n --levels 0 --name silu
spikeyolo train "${common[@]}" --model yolov8n-relu --levels 0 --name relu
# The Spiking-YOLO-style leaky-ReLU Tiny YOLO (ANN, for the channel / layer / IBT conversion table)
if [ "${WITH_LEAKY:-0}" = 1 ]; then
  spikeyolo train "${common[@]}" --model tiny-yolo-leaky --levels 0 --name leaky
fi
