#!/usr/bin/env bash
# One GPU loan in one device call: a training burst, the 1080p benchmark, and a GPU-encode -> CPU-decode check.
#
# Prepared here by scripts/prepare_gpu_round.sh (see README "Training"): .whl/ (constriction, crc32c wheels for
# cp312), .traindata/ (JPEG crops, `streamcodec pack-crops`), .carry/init.safetensors (the weights to resume, if
# not the shipped ones, which travel with the tree), .carry/frames/ (1080p frames), .carry/video/ (1080p clips).
# Run on the device machine from the repo root with those four paths carried; results land in $OUT:
# w-*.safetensors (fp32 shards), train.log (with every error), bench.json, bench-$HALF.json (HALF: fp16 or
# bf16 transforms; empty: none; their "pipeline" figures with FRAME_THREADS frames in flight),
# bench-$HALF-compiled.json (the same transforms as torch.compile graphs in mode COMPILE, default "default";
# "reduce-overhead" adds CUDA graphs; empty: not measured), desync.json, gpu.scv,
# and with DESYNC_VIDEOS (carry the 1080p clips in .carry/video) desync-many.json: latents checked across devices.
# MODEL=evc-ss-rdo trains the block-masked model instead (init.safetensors may hold evc-ss weights: the shared
# parts start from them; RANDOM_MASK_STEPS steps with random masks, then variance masks) and benchmarks it
# with RDO passes RDO (0: zero-pass). Keep its fp32 shards apart from the plain model's.
# PHASE (default student: the above) trains a teacher and/or decays it into a student (streamcodec.train.maskdecay):
#   teacher            TEACHER (evc-ll) for TRAIN_SECONDS, from .carry/teacher.safetensors if it is there, else from
#                      scratch; writes $OUT/teacher-*.safetensors (fp16 shards) and benchmarks the teacher
#   maskdecay          mask decay of .carry/teacher.safetensors into evc-$STUDENT$STUDENT for TRAIN_SECONDS, masks at
#                      0 after DECAY_STEPS; writes the pruned student as $OUT/w-*.safetensors
#   teacher+maskdecay  both in one call: TEACHER_SECONDS (default half) of teacher, the rest of mask decay
# (carry is 64 MiB in all with .traindata's 22: an L teacher is 35 MB in fp16, so carry it without init.safetensors.)
set -uo pipefail
TRAIN_SECONDS=${TRAIN_SECONDS:-420} DEVICE=${DEVICE:-cuda} DECODE=${DECODE:-cpu-1t,cpu-2t,cuda}
SIZE=${SIZE:-1920x1080} BENCH_FRAMES=${BENCH_FRAMES:-50} HALF=${HALF-fp16} FRAME_THREADS=${FRAME_THREADS:-2}
COMPILE=${COMPILE-default}
MODEL=${MODEL:-evc-ss} RANDOM_MASK_STEPS=${RANDOM_MASK_STEPS:-3000} RDO=${RDO:-0}
PHASE=${PHASE:-student} TEACHER=${TEACHER:-evc-ll} STUDENT=${STUDENT:-s} DECAY_STEPS=${DECAY_STEPS:-3000}
TEACHER_SECONDS=${TEACHER_SECONDS:-$((TRAIN_SECONDS / 2))}
INIT=.carry/init.safetensors; [ -f "$INIT" ] || INIT=streamcodec/codec/weights/evc-ss.safetensors
case "$MODEL" in *-rdo) masked=(--random-mask-steps "$RANDOM_MASK_STEPS"); rdo=(--rdo "$RDO");; *) masked=(); rdo=();; esac
if [ -z "${NO_WHEELS:-}" ]; then  # NO_WHEELS=1 DEVICE=cpu DECODE=cpu-1t SIZE=320x192 CROP=64 BATCH=2 ...: a CPU dry run
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
sc() { python3 -m streamcodec "$@"; }

train() {  # one training run with its own checkpoint, exported as fp32 shards
  sc train --device "$DEVICE" --data .traindata --crop "${CROP:-256}" --crop-candidates "${CROP_CANDIDATES:-3}" \
    --batch "${BATCH:-16}" --lr 2e-4 \
    --log-every "${LOG_EVERY:-200}" --save-every 1e9 --export-dtype fp32 --shard-mb 15 "$@" 2>&1 | tee -a "$OUT/train.log"
}
teacher=.carry/teacher.safetensors decay_seconds=$TRAIN_SECONDS
case "$PHASE" in
  student)
    train --model "$MODEL" "${masked[@]}" --init-weights "$INIT" --warmup 300 \
      --time-limit "$TRAIN_SECONDS" --checkpoint /tmp/run/checkpoint.pt --export "$OUT/w.safetensors" ;;
  teacher|teacher+maskdecay)
    [ "$PHASE" = teacher ] && TEACHER_SECONDS=$TRAIN_SECONDS
    resume=(); [ -f "$teacher" ] && resume=(--init-weights "$teacher" --warmup 300)
    train --model "$TEACHER" "${resume[@]}" --time-limit "$TEACHER_SECONDS" --checkpoint /tmp/teacher/checkpoint.pt \
      --export "$OUT/teacher.safetensors" --export-dtype fp16  # 35 MB: what the next call carries back
    sc export "$OUT"/teacher*.safetensors --out /tmp/teacher.safetensors --dtype fp32 2>> "$OUT/train.log"
    teacher=/tmp/teacher.safetensors decay_seconds=$((TRAIN_SECONDS - TEACHER_SECONDS)) ;;
  maskdecay) ;;
  *) echo "unknown PHASE $PHASE" >&2; exit 2 ;;
esac
case "$PHASE" in
  *maskdecay)
    MODEL=evc-$STUDENT$STUDENT
    train --mask-decay --teacher "$teacher" --student-widths "$STUDENT" --decay-steps "$DECAY_STEPS" \
      --time-limit "$decay_seconds" --checkpoint /tmp/decay/checkpoint.pt --export "$OUT/w.safetensors" ;;
  teacher) MODEL=$TEACHER ;;
esac
if [ "$PHASE" = teacher ]; then cp /tmp/teacher.safetensors /tmp/model.safetensors
elif ! sc export "$OUT"/w*.safetensors --out /tmp/model.safetensors 2>> "$OUT/train.log"; then
  echo "no trained weights to export: the figures below are of $INIT" | tee -a "$OUT/train.log"
  cp "$INIT" /tmp/model.safetensors
fi

frame=$(ls .carry/frames/* 2> /dev/null | head -1)
[ -n "$frame" ] || { echo "no frames in .carry/frames: carry them (see the top of this script)" | tee -a "$OUT/train.log"; exit 2; }
# bench.json (fp32), bench-$HALF.json (half-precision transforms), bench-$HALF-compiled.json (those as
# torch.compile graphs in mode COMPILE; empty: not measured)
for setting in fp32 $HALF ${COMPILE:+${HALF:-fp32}+compiled}; do
  precision=${setting%+compiled} suffix=$([ "$setting" = fp32 ] || echo "-${setting/+/-}") compile=()
  [ "$setting" = "$precision" ] || compile=(--compile "$COMPILE")
  sc bench --device "$DEVICE" --model "$MODEL" "${rdo[@]}" --weights /tmp/model.safetensors --input "$frame" --size "$SIZE" \
    --frames "$BENCH_FRAMES" --precision "$precision" "${compile[@]}" --frame-threads "$FRAME_THREADS" --json \
    > "$OUT/bench$suffix.json" 2>> "$OUT/train.log"
done
sc desync-check .carry/frames --model "$MODEL" --weights /tmp/model.safetensors --frames 4 --scale "$SIZE" --encode "$DEVICE" \
  --decode "$DECODE" --save-stream "$OUT/gpu.scv" --json > "$OUT/desync.json" 2>> "$OUT/train.log"

if [ -n "${DESYNC_VIDEOS:-}" ]; then  # issue 10's 1,000-frame count: GPU-encoded, latents checked on the host's CPUs
  # e.g. DESYNC_VIDEOS=".carry/video/pan_1080p.mp4 .carry/video/cockatoo_up1080.mp4 .carry/video/mmtracking_street_1920x1080.mp4"
  # (233 frames) x 5 qualities = 1,165 coded 1080p frames; about 1 min to encode and 4-5 min to check on 16 cores:
  # give TRAIN_SECONDS=0 or a short burst in the same call.
  sc desync-check $DESYNC_VIDEOS --model "$MODEL" --weights /tmp/model.safetensors --frames 1000 --scale "$SIZE" \
    --qps "${DESYNC_QPS:-0,16,32,48,63}" --encode "$DEVICE" --decode "${DESYNC_DECODE:-cpu-2t}" --latents-only \
    --workers "${DESYNC_WORKERS:-8}" --json > "$OUT/desync-many.json" 2>> "$OUT/train.log"
  cat "$OUT/desync-many.json"
fi
cat "$OUT/bench.json" "$OUT/desync.json"; tail -5 "$OUT/train.log"
