#!/usr/bin/env bash
# The event-camera model of docs/results.md "Event camera": build the saccade event version of BCCD, train a QCFS
# detector on its event frames, convert it and report mAP against T on the held-out recordings' frames.
# Usage: bash benchmarks/train_events.sh [epochs] [device]
set -euo pipefail
EPOCHS=${1:-15}; DEVICE=${2:-cpu}
EVENTS=${EVENTS:-$HOME/.cache/spikeyolo/events/bccd-saccades}
[ -f "$EVENTS/events.json" ] || python benchmarks/make_event_bccd.py "${BCCD:-../shared/datasets/bccd}" "$EVENTS"
spikeyolo train --data "$EVENTS" --model yolov8n-relu --levels 4 --epochs "$EPOCHS" --imgsz 320 --batch 16 \
  --device "$DEVICE" --project runs/events --name qcfs
common=(--weights runs/events/qcfs/weights/best.safetensors --data "$EVENTS" --imgsz 320 --device "$DEVICE"
        --project runs/events-val)
spikeyolo val "${common[@]}" --timesteps 1,2,4,8 --burst 4 --name events-burst4
spikeyolo val "${common[@]}" --timesteps 1,2,4,8,16 --no-ann --burst 1 --name events-binary
spikeyolo val "${common[@]}" --timesteps 1,2,4,8,16 --no-ann --snm --burst 1 --name events-snm
# Then: python benchmarks/ship_weights.py runs/events/qcfs/weights/best.safetensors weights/bccd-events-yolov8n-qcfs.safetensors \
#         runs/events-val/events-burst4/report.json runs/events-val/events-binary/report.json runs/events-val/events-snm/report.json
