#!/usr/bin/env bash
# Toward a natural-image model (not yet shippable): the official COCO YOLOv5n (../shared/weights, read
# without unpickling) mapped onto v5u with ReLU, fine-tuned on oi5 as an ANN, then with QCFS (L = 4), then evaluated.
# 320 px, oi5 val mAP50: SiLU ANN (10 epochs) 0.14, QCFS from it (8) 0.04 at best; ReLU ANN (10) 0.063,
# QCFS from it (6) 0.047; ReLU ANN (40) 0.128; QCFS from it: docs/results.md "Natural images: oi5".
# Usage: bash benchmarks/train_oi5.sh [ann epochs] [qcfs epochs] [imgsz] [device]
set -euo pipefail
ANN_EPOCHS=${1:-10}; QCFS_EPOCHS=${2:-6}; IMGSZ=${3:-320}; DEVICE=${4:-cpu}
DATA=${OI5:-../shared/datasets/oi5}
common=(--data "$DATA" --imgsz "$IMGSZ" --batch 16 --device "$DEVICE" --project runs/oi5)
mkdir -p runs/oi5
spikeyolo import ../shared/weights/yolov5n-v6.1-coco.pt --project runs/oi5 --name yolov5n-coco-relu --exist-ok \
  --imgsz "$IMGSZ" --activation 'nn.ReLU()'
spikeyolo train "${common[@]}" --from runs/oi5/yolov5n-coco-relu/yolov5n-v6.1-coco.safetensors --levels 0 --epochs "$ANN_EPOCHS" --name relu
spikeyolo train "${common[@]}" --from runs/oi5/relu/weights/best.safetensors --levels 4 --epochs "$QCFS_EPOCHS" \
  --name qcfs-from-relu lr0=0.002 warmup_epochs=0
spikeyolo val --data "$DATA" --imgsz "$IMGSZ" --weights runs/oi5/qcfs-from-relu/weights/best.safetensors \
  --timesteps 1,2,4 --project runs/oi5-val --name burst4
spikeyolo val --data "$DATA" --imgsz "$IMGSZ" --weights runs/oi5/qcfs-from-relu/weights/best.safetensors \
  --timesteps 1,2,4,8,16,32 --burst 1 --snm --no-ann --project runs/oi5-val --name snm
