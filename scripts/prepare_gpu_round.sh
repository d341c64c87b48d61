#!/usr/bin/env bash
# Build what scripts/gpu_round.sh carries to the device machine (all git-ignored), from ../shared/data and PyPI:
#   .whl/                    constriction and crc32c wheels for the device's CPython 3.12 (it has neither; nothing
#                            there needs PyAV: frames and clips are read through OpenCV)
#   .traindata/              the compact training set: 3 random 512x512 JPEG q95 crops per image (pack-crops)
#   .carry/frames/           FRAMES (default 4) 1080p frames of pan_1080p.mp4 as JPEG q95: bench input, desync-check
#   .carry/video/            the three 1080p clips of DESYNC_VIDEOS (issue 10's GPU -> CPU count)
#   .carry/init.safetensors  only with INIT=path: weights other than the shipped ones, which travel with the tree
# and prints the bytes a call carries (tracked tree + these) against the device's 64 MiB. Run from a checkout
# with the project installed in .venv (PYTHON= to use another interpreter); a session's local state may be gone,
# so a GPU session starts with this, then:
#   run(command="OUT=$OUT bash scripts/gpu_round.sh", carry=[".whl", ".traindata", ".carry"])
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data} FRAMES=${FRAMES:-4} PYTHON=${PYTHON:-.venv/bin/python}
CLIPS="pan_1080p cockatoo_up1080 mmtracking_street_1920x1080"
mkdir -p .whl .carry/frames .carry/video
rm -f .whl/*.whl .carry/frames/* .carry/video/*
# the versions installed here, so that both machines code with the same entropy coder
pins=$("$PYTHON" -c "from importlib.metadata import version as v; print(f\"constriction=={v('constriction')} crc32c=={v('crc32c')}\")")
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux1_x86_64 -d .whl $pins
[ -n "$(ls .traindata 2> /dev/null)" ] || "$PYTHON" -m streamcodec pack-crops "$DATA/train" .traindata
"$PYTHON" - "$DATA/video/pan_1080p.mp4" .carry/frames "$FRAMES" << 'PY'
import sys

import cv2

from streamcodec.io import open_source

with open_source(sys.argv[1], frames=int(sys.argv[3])) as source:
    for frame in source:
        path = f"{sys.argv[2]}/pan_{frame.index:03d}.jpg"
        if not cv2.imwrite(path, frame.image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f"cannot write {path}")
PY
for clip in $CLIPS; do cp "$DATA/video/$clip.mp4" .carry/video/; done
rm -f .carry/init.safetensors
[ -z "${INIT:-}" ] || cp "$INIT" .carry/init.safetensors
total=$( (git ls-files -z | xargs -0 cat; find .whl .traindata .carry -type f -exec cat {} +) | wc -c)
echo "a call carries $((total / 1048576)) MiB of 64 (tracked tree, .whl, .traindata, .carry)"
[ "$total" -le $((64 * 1048576)) ] || { echo "over the device's 64 MiB: carry fewer clips or frames" >&2; exit 1; }
