#!/usr/bin/env bash
# The everyday-object model, docs/results.md "COCO's 80 classes": the official COCO YOLOv5n (../shared/weights, read
# without unpickling) with its own anchor head, self-distilled into QCFS on oi5's 600 train photos (no labels).
#   import   the checkpoint as spikeyolo weights, anchor head carried (the teacher's rows)   → runs/coco80/teacher
#   teacher  the teacher as an ANN on oi5 val and coco-tiny (benchmarks/ann_val.py)          → runs/coco80/val/teacher-*.json
#   distill  QCFS L = 8 taught by the teacher, 90 epochs (resumable: run the stage again)     → runs/coco80/distill-L8
#   more     70 more epochs started from that student (--init, lr 2e-4: a warm restart of the cosine)
#                                                                                         → runs/coco80/distill-L8-more
#   last     25 more epochs started from that (--init, lr 1e-4)                        → runs/coco80/distill-L8-third
#   mixup    90 more epochs started from that (--init, lr 2e-4), half the samples blended with a second (--mixup 0.5)
#                                                                                         → runs/coco80/distill-L8-mixup
#   val      its ANN and SNN (bursts of up to 8) at T = 1, 2, 4 on oi5 val and coco-tiny       → runs/coco80/val/*
#   ship     weights/coco80-yolov5n-qcfs.safetensors with what val measured (GPL-3.0, the teacher's license)
#   tune     ±1 spikes tuned for T = 4 on oi5's train photos, then val at T = 1, 2, 4 (env NEURONS: binary (IF, 0/1
#            spikes, default) or snm (signed neurons, ±1 spikes); EPOCHS: 12, IMAGES: 600 (all), FEATURE: 1 (the
#            weight of the layer-by-layer loss): the defaults made the table's rows, ~40 min each; TUNE_FROM: the
#            weights to tune, default the shipped ones; the run is named NEURONS-T4-eEPOCHS-fwFEATURE, with -RUN where
#            TUNE_FROM is a run's runs/coco80/RUN/weights/last.safetensors)
#   L4       a student for one spike per step at T = 4: the shipped one re-quantized to L = 4 (--init, its λ kept) and
#            taught 20 more epochs (lr 2e-4, --mixup 0.5)                                   → runs/coco80/distill-L4
#   L4val    its ANN and SNN (bursts of up to 4) at T = 1, 2, 4 on oi5 val and coco-tiny   → runs/coco80/val/L4-*
#            (then its ±1 rows: STAGES=tune NEURONS=snm TUNE_FROM=runs/coco80/distill-L4/weights/last.safetensors)
#   webcam   `webcam --headless` frames per second on demo/bccd_pan.mp4: the new default beside the BCCD model
# Usage: bash benchmarks/coco80_model.sh                 (import teacher distill more last mixup val ship)
#        STAGES="tune webcam" bash benchmarks/coco80_model.sh
set -euo pipefail
OI5=${OI5:-../shared/datasets/oi5}; TINY=${TINY:-../shared/datasets/coco-tiny}
STAGES=${STAGES:-"import teacher distill more last mixup val ship"}
PT=../shared/weights/yolov5n-v6.1-coco.pt
TEACHER=runs/coco80/teacher/yolov5n-v6.1-coco.safetensors
FIRST=runs/coco80/distill-L8/weights/last.safetensors
SECOND=runs/coco80/distill-L8-more/weights/last.safetensors
THIRD=runs/coco80/distill-L8-third/weights/last.safetensors
STUDENT=runs/coco80/distill-L8-mixup/weights/last.safetensors
FOUR=runs/coco80/distill-L4/weights/last.safetensors
SHIPPED=weights/coco80-yolov5n-qcfs.safetensors
mkdir -p runs/coco80/val
for stage in $STAGES; do
  case $stage in
    import) spikeyolo import $PT --anchor-head --imgsz 320 --project runs/coco80 --name teacher --exist-ok ;;
    teacher) for data in "$OI5" "$TINY"; do
               python benchmarks/ann_val.py $TEACHER "$data" --out "runs/coco80/val/teacher-$(basename "$data").json"
             done ;;
    distill) spikeyolo distill $PT --photos "$OI5/train2017" --levels 8 --epochs 90 --imgsz 320 \
               --project runs/coco80 --name distill-L8 --exist-ok ;;
    more) spikeyolo distill $PT --photos "$OI5/train2017" --levels 8 --epochs 70 --lr 2e-4 --imgsz 320 --init $FIRST \
            --project runs/coco80 --name distill-L8-more --exist-ok ;;
    last) spikeyolo distill $PT --photos "$OI5/train2017" --levels 8 --epochs 25 --lr 1e-4 --imgsz 320 --init $SECOND \
            --project runs/coco80 --name distill-L8-third --exist-ok ;;
    mixup) spikeyolo distill $PT --photos "$OI5/train2017" --levels 8 --epochs 90 --lr 2e-4 --mixup 0.5 --imgsz 320 \
             --init $THIRD --project runs/coco80 --name distill-L8-mixup --exist-ok ;;
    L4) spikeyolo distill $PT --photos "$OI5/train2017" --levels 4 --epochs 20 --lr 2e-4 --mixup 0.5 --imgsz 320 \
          --init $SHIPPED --project runs/coco80 --name distill-L4 --exist-ok ;;
    L4val) for data in "$OI5" "$TINY"; do
             spikeyolo val --weights $FOUR --data "$data" --imgsz 320 --timesteps 1,2,4 --project runs/coco80/val \
               --name "L4-$(basename "$data")" --exist-ok
           done ;;
    val) for data in "$OI5" "$TINY"; do
           spikeyolo val --weights $STUDENT --data "$data" --imgsz 320 --timesteps 1,2,4 --project runs/coco80/val \
             --name "bursts-$(basename "$data")" --exist-ok
         done ;;
    ship) python benchmarks/ship_weights.py $STUDENT $SHIPPED runs/coco80/val/bursts-oi5/report.json \
            runs/coco80/val/bursts-coco-tiny/report.json --license GPL-3.0 \
            --source "yolov5n-v6.1-coco.pt: the official ultralytics/yolov5 v6.1 release (COCO, 80 classes), sha256 4f180cf23ba0717ada0badd6c685026d73d48f184d00fc159c2641284b2ac0a3" \
            --note "self-distilled into QCFS L = 8 on oi5's 600 train photos (no labels), 90 + 70 + 25 + 90 epochs (the last with --mixup 0.5): bash benchmarks/coco80_model.sh" ;;
    tune) epochs=${EPOCHS:-12}; images=${IMAGES:-600}; neurons=${NEURONS:-binary}; feature=${FEATURE:-1}
          flags=(--burst 1 --feature-weight "$feature"); [ "$neurons" = snm ] && flags+=(--snm)
          from=${TUNE_FROM:-$SHIPPED}; run=$neurons-T4-e$epochs-fw$feature
          case $from in runs/coco80/*/weights/last.safetensors) run=$run-$(basename "$(dirname "$(dirname "$from")")") ;; esac
          spikeyolo tune "$from" --data "$OI5" --imgsz 320 --timesteps 4 "${flags[@]}" --epochs "$epochs" \
            --images "$images" --project runs/coco80/tune --name "$run" --exist-ok
          tuned=runs/coco80/tune/$run/$(basename "$from" .safetensors)-snn-tuned-T4.safetensors
          for data in "$OI5" "$TINY"; do
            spikeyolo val --weights "$tuned" --data "$data" --imgsz 320 --timesteps 1,2,4 --no-ann \
              --project runs/coco80/val --name "$run-$(basename "$data")" --exist-ok
          done ;;
    webcam) for weights in $SHIPPED weights/bccd-yolov8n-qcfs.safetensors; do
              spikeyolo webcam --source demo/bccd_pan.mp4 --headless --weights $weights --project runs/coco80/webcam \
                --name "$(basename $weights .safetensors)" --exist-ok
            done ;;
    *) echo "unknown stage $stage (import teacher distill more last mixup val ship L4 L4val tune webcam)" >&2; exit 2 ;;
  esac
done
