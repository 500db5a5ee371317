#!/usr/bin/env bash
# The cost tables of docs/results.md "Cost, counted honestly": the shipped BCCD models on BCCD test frames and on the
# held-out saccade event frames (build those first: python benchmarks/make_event_bccd.py), three neuron types
# each, every T in one run, then the tables printed from the reports.
# Usage: bash benchmarks/cost_bccd.sh [frames|events|both]
set -euo pipefail
which="${1:-both}"
events="${EVENTS:-$HOME/.cache/spikeyolo/events/bccd-saccades}"
run() {  # NAME WEIGHTS DATA ARGS...
  local name="$1" weights="$2" data="$3"; shift 3
  spikeyolo val --weights "$weights" --data "$data" --imgsz 320 --project runs/cost --name "$name" "$@" >/dev/null
}
table() {  # PREFIX
  python benchmarks/report_table.py "SNN burst ≤ 4=runs/cost/$1-burst/report.json" \
    "SNN SNM (±1 spikes)=runs/cost/$1-snm/report.json" "SNN binary IF=runs/cost/$1-binary/report.json"
}
for kind in frames events; do
  [[ "$which" == both || "$which" == "$kind" ]] || continue
  if [[ $kind == frames ]]; then w=weights/bccd-yolov8n-qcfs.safetensors; d=../shared/datasets/bccd; else
    w=weights/bccd-events-yolov8n-qcfs.safetensors; d="$events"; fi
  rm -rf runs/cost/$kind-*
  long=1,2,4,8,16,32; [[ $kind == events ]] && long=1,2,4,8,16  # 216 event frames: 3x the images
  run $kind-burst "$w" "$d" --timesteps 1,2,4,8
  run $kind-snm "$w" "$d" --timesteps 1,2,4,8,16 --snm --burst 1 --no-ann
  run $kind-binary "$w" "$d" --timesteps "$long" --burst 1 --no-ann
  echo "## $kind"; table $kind
done
