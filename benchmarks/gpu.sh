#!/usr/bin/env bash
# On a GPU, in one go: the fused backend's equality tests, the benchmark at the GPU
# configurations (fp32 and fp16 convolutions), the mAP of fp16 convolutions, and the webcam path.
# Usage: bash benchmarks/gpu.sh [device]      (writes runs/bench/gpu-*/benchmark.json, runs/bccd-val/gpu-*,
# runs/bench/live-gpu-*/webcam.mp4)
set -euo pipefail
DEVICE=${1:-0}
DATA=${BCCD:-../shared/datasets/bccd}
W=weights/bccd-yolov8n-qcfs.safetensors
mkdir -p runs/bench
pytest -q -m gpu
for precision in fp32 fp16; do
  spikeyolo benchmark --device "$DEVICE" --precision $precision --imgsz 320,640 --timesteps 1,4,8,16 --batch 1,16 \
    --repeats 7 --project runs/bench --name gpu-$precision --exist-ok
  python benchmarks/bench_table.py runs/bench/gpu-$precision/benchmark.json
  spikeyolo val --weights $W --data "$DATA" --imgsz 320 --device "$DEVICE" --precision $precision --burst 4 \
    --timesteps 1,2,4,8 --project runs/bccd-val --name gpu-burst4-$precision --exist-ok
done
for precision in fp32 fp16; do
  spikeyolo webcam --source demo/bccd_pan.mp4 --headless --project runs/bench --name live-gpu-$precision \
    --exist-ok --device "$DEVICE" --precision $precision
done
