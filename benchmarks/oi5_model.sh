#!/usr/bin/env bash
# The natural-image model, docs/results.md "Natural images: oi5". The official COCO YOLOv5n (../shared/weights,
# read without unpickling) mapped onto ultralytics' v5u (backbone and neck carried, the anchor-free head new):
#   silu          SiLU ANN fine-tuned on oi5, labels only (30 epochs)                     → runs/oi5/silu30
#   silu-teacher  then with the checkpoint's own anchor head as teacher (15 more epochs)   → runs/oi5/silu-coco-teacher
#   qcfs          QCFS (L = 4) from that, the anchor head still teaching (15 epochs)       → runs/oi5/qcfs-silu-coco-teacher
#   val           the QCFS model converted: bursts of up to 4, SNM and binary IF at T = 1 … 32
#   tune          (not in the default stages) ±1 spikes tuned for T = 4 with `spikeyolo tune`, then evaluated at
#                 T = 1, 2, 4, 8; env: NEURONS=binary|snm (binary), LEVELS=4|8 (the QCFS model: 4), EPOCHS (3),
#                 IMAGES (train images: 296; "all": the 600), GAIN (the labels' gain: 0)
#   tune-snm      (not in the default stages) as tune with NEURONS=snm GAIN=0.1 (SNM with the labels)
# The comparison rows (docs/results.md): STAGES=qcfs-plain (QCFS from silu30, no teacher), qcfs-self (taught by silu30
# itself), qcfs-direct (QCFS from silu30 with the anchor-head teacher), qcfs8 (as qcfs, L = 8 levels) and val8
# (its SNN); the zero-shot reference: python benchmarks/yolov5_zero_shot.py.
# Usage: bash benchmarks/oi5_model.sh            (all: import silu silu-teacher qcfs val)
#        STAGES="qcfs val" bash benchmarks/oi5_model.sh
set -euo pipefail
DATA=${OI5:-../shared/datasets/oi5}; STAGES=${STAGES:-"import silu silu-teacher qcfs val"}
PT=../shared/weights/yolov5n-v6.1-coco.pt
common=(--data "$DATA" --imgsz 320 --batch 16 --project runs/oi5)
qcfs=(--levels 4 --epochs 15 lr0=0.002 warmup_epochs=0 exist_ok=True)
COCO=runs/oi5/yolov5n-coco/yolov5n-v6.1-coco.safetensors
best() { echo "runs/oi5/$1/weights/best.safetensors"; }
mkdir -p runs/oi5
for stage in $STAGES; do
  case $stage in
    import) spikeyolo import $PT --project runs/oi5 --name yolov5n-coco --exist-ok --imgsz 320 ;;
    silu) spikeyolo train "${common[@]}" --from $COCO --levels 0 --epochs 30 --name silu30 exist_ok=True ;;
    silu-teacher) spikeyolo train "${common[@]}" --from "$(best silu30)" --teacher $PT --levels 0 --epochs 15 \
                    --name silu-coco-teacher exist_ok=True ;;
    qcfs) spikeyolo train "${common[@]}" --from "$(best silu-coco-teacher)" --teacher $PT "${qcfs[@]}" \
            --name qcfs-silu-coco-teacher ;;
    qcfs8) spikeyolo train "${common[@]}" --from "$(best silu-coco-teacher)" --teacher $PT "${qcfs[@]}" --levels 8 \
             --name qcfs8-silu-coco-teacher ;;
    qcfs-plain) spikeyolo train "${common[@]}" --from "$(best silu30)" "${qcfs[@]}" --name qcfs-plain ;;
    qcfs-self) spikeyolo train "${common[@]}" --from "$(best silu30)" --teacher "$(best silu30)" "${qcfs[@]}" \
                 --name qcfs-teacher ;;
    qcfs-direct) spikeyolo train "${common[@]}" --from "$(best silu30)" --teacher $PT "${qcfs[@]}" \
                   --name qcfs-coco-teacher ;;
    val|val8)  # val8: the L = 8 model of stage qcfs8, bursts of up to 8
      model=qcfs-silu-coco-teacher; levels=4; [ "$stage" = val8 ] && model=qcfs8-silu-coco-teacher && levels=8
      v=(spikeyolo val --data "$DATA" --imgsz 320 --weights "$(best $model)" --project runs/oi5-val)
      tag=oi5; [ "$stage" = val8 ] && tag=oi5-L8
      "${v[@]}" --timesteps 1,2,4,8 --burst $levels --name $tag-burst$levels
      "${v[@]}" --timesteps 1,2,4,8,16,32 --burst 1 --snm --no-ann --name $tag-snm
      "${v[@]}" --timesteps 1,2,4,8,16,32 --burst 1 --no-ann --name $tag-binary ;;
    tune|tune-snm)  # ±1 spikes tuned for T = 4 (tune-snm: SNM with the labels, the row made first)
      neurons=${NEURONS:-binary}; gain=${GAIN:-0}; epochs=${EPOCHS:-3}; images=${IMAGES:-296}; levels=${LEVELS:-4}
      [ "$stage" = tune-snm ] && neurons=snm && gain=0.1
      model=qcfs-silu-coco-teacher; [ "$levels" = 8 ] && model=qcfs8-silu-coco-teacher
      name=$neurons-L$levels-T4-e$epochs-i$images-g$gain
      tuned=runs/tune/oi5/$name/best-snn-tuned-T4.safetensors
      limit=(); [ "$images" = all ] || limit=(--images "$images")
      snm=(); [ "$neurons" = snm ] && snm=(--snm)
      spikeyolo tune "$(best $model)" --data "$DATA" --imgsz 320 --timesteps 4 --burst 1 "${snm[@]}" \
        --epochs "$epochs" "${limit[@]}" --label-gain "$gain" --project runs/tune/oi5 --name "$name" --exist-ok
      spikeyolo val --data "$DATA" --imgsz 320 --timesteps 1,2,4,8 --no-ann --weights "$tuned" --project runs/oi5-val \
        --name "oi5-$name" ;;
    *) echo "unknown stage $stage (import silu silu-teacher qcfs val tune tune-snm qcfs8 val8 qcfs-plain qcfs-self qcfs-direct)" >&2; exit 2 ;;
  esac
done
