#!/usr/bin/env bash
# Train the three BCCD models of docs/results.md with one recipe: SiLU, ReLU and QCFS (L=4).
# Stage 2: 15 more epochs with the same settings for all: QCFS L=4 (the shipped model) and L=16 fine-tuned from
# the ReLU model, SiLU and ReLU continued as themselves. SKIP_STAGE1=1 runs stage 2 only.
# Usage: bash benchmarks/train_bccd.sh [epochs] [imgsz] [device] [fine-tune epochs]
set -euo pipefail
EPOCHS=${1:-30}; IMGSZ=${2:-320}; DEVICE=${3:-cpu}; FINETUNE=${4:-15}
DATA=${BCCD:-../shared/datasets/bccd}
common=(--data "$DATA" --epochs "$EPOCHS" --imgsz "$IMGSZ" --batch 16 --device "$DEVICE" --project runs/bccd)
finetune=(--data "$DATA" --epochs "$FINETUNE" --imgsz "$IMGSZ" --batch 16 --device "$DEVICE" --project runs/bccd)
# STAGE2_SETTINGS=warmup_epochs=0 gives docs/results.md's warm-up-free stage 2 (name the runs apart with SUFFIX=-nw)
SUFFIX=${SUFFIX:-}
if [ "${SKIP_STAGE1:-0}" != 1 ]; then
  spikeyolo train "${common[@]}" --model yolov8n-relu --levels 4 --name qcfs
  # L = 8 (docs/results.md: 0.730 mAP50): spikeyolo train "${common[@]}" --model yolov8n-relu --levels 8 --name qcfs-l8
  spikeyolo train "${common[@]}" --model yolov8n --levels 0 --name silu
  spikeyolo train "${common[@]}" --model yolov8n-relu --levels 0 --name relu
fi
spikeyolo train "${finetune[@]}" --from runs/bccd/relu/weights/best.pt --levels 4 --name qcfs-ft$SUFFIX ${STAGE2_SETTINGS:-}
spikeyolo train "${finetune[@]}" --from runs/bccd/relu/weights/best.pt --levels 16 --name qcfs-ft-l16$SUFFIX ${STAGE2_SETTINGS:-}
# docs/results.md also has L = 8: --levels 8 --name qcfs-ft-l8
spikeyolo train "${finetune[@]}" --from runs/bccd/silu/weights/best.pt --levels 0 --name silu-ft$SUFFIX ${STAGE2_SETTINGS:-}
spikeyolo train "${finetune[@]}" --from runs/bccd/relu/weights/best.pt --levels 0 --name relu-ft$SUFFIX ${STAGE2_SETTINGS:-}
# The Spiking-YOLO-style leaky-ReLU Tiny YOLO (ANN, for the channel / layer / IBT conversion table)
if [ "${WITH_LEAKY:-0}" = 1 ]; then
  spikeyolo train "${common[@]}" --model tiny-yolo-leaky --levels 0 --name leaky
fi
