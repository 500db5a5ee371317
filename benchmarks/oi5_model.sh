#!/usr/bin/env bash
# Issue 18: the natural-image model, README "Natural images: oi5". The official COCO YOLOv5n (../shared/weights,
# read without unpickling, mapped onto ultralytics' v5u; the anchor-free head initialized) is fine-tuned on oi5 as
# a SiLU ANN; that model then teaches its own QCFS version (`spikeyolo train --teacher`: its outputs join the
# labels' loss), which is converted and evaluated with bursts, signed neurons with memory and binary IF.
# Usage: bash benchmarks/oi5_model.sh [silu epochs] [qcfs epochs] [imgsz]
# Environment: TEACHER_FLAGS (default "--teacher T": the teacher is the SiLU model; "" trains QCFS without one),
# QCFS_NAME (qcfs-teacher), STAGES ("import silu qcfs val").
set -euo pipefail
SILU_EPOCHS=${1:-30}; QCFS_EPOCHS=${2:-15}; IMGSZ=${3:-320}
DATA=${OI5:-../shared/datasets/oi5}; STAGES=${STAGES:-"import silu qcfs val"}; QCFS_NAME=${QCFS_NAME:-qcfs-teacher}
common=(--data "$DATA" --imgsz "$IMGSZ" --batch 16 --project runs/oi5)
COCO=runs/oi5/yolov5n-coco.safetensors
SILU=runs/oi5/silu$SILU_EPOCHS/weights/best.safetensors
QCFS=runs/oi5/$QCFS_NAME/weights/best.safetensors
TEACHER_FLAGS=${TEACHER_FLAGS-"--teacher $SILU"}
mkdir -p runs/oi5
for stage in $STAGES; do
  case $stage in
    import) spikeyolo import ../shared/weights/yolov5n-v6.1-coco.pt --out $COCO --imgsz "$IMGSZ" ;;
    silu) spikeyolo train "${common[@]}" --from $COCO --levels 0 --epochs "$SILU_EPOCHS" --name silu$SILU_EPOCHS \
            exist_ok=True ;;
    qcfs) spikeyolo train "${common[@]}" --from $SILU $TEACHER_FLAGS --levels 4 --epochs "$QCFS_EPOCHS" \
            --name "$QCFS_NAME" lr0=0.002 warmup_epochs=0 exist_ok=True ;;
    val)
      v=(spikeyolo val --data "$DATA" --imgsz "$IMGSZ" --weights $QCFS --project runs/oi5-val)
      "${v[@]}" --timesteps 1,2,4,8 --burst 4 --name "$QCFS_NAME-burst4"
      "${v[@]}" --timesteps 1,2,4,8,16,32 --burst 1 --snm --no-ann --name "$QCFS_NAME-snm"
      "${v[@]}" --timesteps 1,2,4,8,16,32 --burst 1 --no-ann --name "$QCFS_NAME-binary" ;;
    *) echo "unknown stage $stage: import, silu, qcfs or val" >&2; exit 2 ;;
  esac
done
