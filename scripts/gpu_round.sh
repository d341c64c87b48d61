#!/usr/bin/env bash
# One GPU loan in one device call: a training burst, the 1080p benchmark, and a GPU-encode -> CPU-decode check.
#
# Prepared here (see README "Training"): .whl/ (constriction, crc32c wheels for cp312), .traindata/ (JPEG crops,
# `streamcodec pack-crops`), .carry/init.safetensors (the weights to resume), .carry/frames/ (1080p frames).
# Run on the device machine from the repo root with those four paths carried; results land in $OUT:
# w-*.safetensors (fp32 shards), train.log (with every error), bench.json, desync.json, gpu.scv.
set -uo pipefail
TRAIN_SECONDS=${TRAIN_SECONDS:-420} DEVICE=${DEVICE:-cuda} DECODE=${DECODE:-cpu-1t,cpu-2t,cuda}
SIZE=${SIZE:-1920x1080} BENCH_FRAMES=${BENCH_FRAMES:-50}
if [ -z "${NO_WHEELS:-}" ]; then  # NO_WHEELS=1 DEVICE=cpu DECODE=cpu-1t SIZE=320x192 ...: a dry run on a CPU machine
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
sc() { python3 -m streamcodec "$@"; }

sc train --device "$DEVICE" --model evc-ss --init-weights .carry/init.safetensors --data .traindata \
  --crop 256 --batch 16 --lr 2e-4 --warmup 300 --time-limit "$TRAIN_SECONDS" --checkpoint /tmp/run/checkpoint.pt \
  --log-every 200 --save-every 1e9 --export "$OUT/w.safetensors" --export-dtype fp32 --shard-mb 15 \
  2>&1 | tee "$OUT/train.log"
sc export "$OUT"/w*.safetensors --out /tmp/evc-ss.safetensors || cp .carry/init.safetensors /tmp/evc-ss.safetensors

frame=$(ls .carry/frames/* | head -1)
sc bench --device "$DEVICE" --weights /tmp/evc-ss.safetensors --input "$frame" --size "$SIZE" --frames "$BENCH_FRAMES" --json \
  > "$OUT/bench.json" 2>> "$OUT/train.log"
sc desync-check .carry/frames --weights /tmp/evc-ss.safetensors --frames 4 --scale "$SIZE" --encode "$DEVICE" \
  --decode "$DECODE" --save-stream "$OUT/gpu.scv" --json > "$OUT/desync.json" 2>> "$OUT/train.log"

cat "$OUT/bench.json" "$OUT/desync.json"; tail -5 "$OUT/train.log"
