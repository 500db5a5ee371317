#!/usr/bin/env bash
# ±1 spikes at T ≤ 4. For each dataset: `spikeyolo tune` for each neuron type and target T, each result
# evaluated at T = 1, 2, 4, 8 with `spikeyolo val` (mAP50, mAP50-95, rate, SOPs); with CONVERTED=1 also the ANN and
# the plain conversions (the same rows as benchmarks/cost_bccd.sh). docs/results.md "±1 spikes at T ≤ 4".
# Usage: bash benchmarks/tune.sh [bccd|events|oi5 ...]
# Settings (environment): NEURONS ("binary snm"), TIMESTEPS ("4 2"), EPOCHS (6), LR (6e-4), CALIB (64 images),
# IMAGES (train images, default all), CONVERTED (1), OUT (runs/tune), FLAGS (more tune options, e.g. --train-thresholds;
# FLAGS="--label-gain 0" for the docs/results.md rows tuned from the ANN alone, before the labels joined by default)
set -euo pipefail
NEURONS=${NEURONS:-"binary snm"}; TIMESTEPS=${TIMESTEPS:-"4 2"}; EPOCHS=${EPOCHS:-6}; LR=${LR:-6e-4}
CALIB=${CALIB:-64}; CONVERTED=${CONVERTED:-1}; OUT=${OUT:-runs/tune}
mkdir -p "$OUT"
for set in "${@:-bccd}"; do
  case $set in
    bccd) weights=weights/bccd-yolov8n-qcfs.safetensors; data=../shared/datasets/bccd ;;
    events) weights=weights/bccd-events-yolov8n-qcfs.safetensors; data=~/.cache/spikeyolo/events/bccd-saccades ;;
    oi5) weights=runs/oi5/qcfs-from-relu40/weights/best.safetensors; data=../shared/datasets/oi5 ;;  # train_oi5.sh 40 15
    *) echo "unknown set $set: bccd, events or oi5" >&2; exit 2 ;;
  esac
  val=(spikeyolo val --data "$data" --imgsz 320 --timesteps 1,2,4,8 --project "$OUT/$set" --no-ann --exist-ok)
  [ "$CONVERTED" = 1 ] && spikeyolo val --data "$data" --imgsz 320 --weights "$weights" --timesteps 1 --burst 4 \
    --project "$OUT/$set" --name ann --exist-ok
  for neuron in $NEURONS; do
    flags=(--burst 1); [ "$neuron" = snm ] && flags+=(--snm)
    [ "$CONVERTED" = 1 ] && "${val[@]}" --weights "$weights" "${flags[@]}" --name "$neuron-converted"
    for t in $TIMESTEPS; do
      tuned="$OUT/$set/tuned/$neuron-T$t/$(basename "$weights" .safetensors)-snn-tuned-T$t.safetensors"
      spikeyolo tune "$weights" --data "$data" --imgsz 320 --timesteps "$t" "${flags[@]}" --epochs "$EPOCHS" \
        --lr "$LR" --calib-images "$CALIB" ${IMAGES:+--images "$IMAGES"} ${FLAGS:-} \
        --project "$OUT/$set/tuned" --name "$neuron-T$t" --exist-ok
      "${val[@]}" --weights "$tuned" --name "$neuron-tuned-T$t"
    done
  done
done
