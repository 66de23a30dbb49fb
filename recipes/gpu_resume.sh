#!/usr/bin/env bash
# Prepared for a session that is lent the GPU machine (device tool): resume a CPU run there in
# bf16 with a large batch for at most 9 minutes, bring the checkpoint back, resume on CPU.
#
# Here, before the call:   bash recipes/gpu_resume.sh pack RUN_DIR      (fills .gpu/, git-ignored)
# Device call (run tool):  command "bash recipes/gpu_resume.sh device", carry [".gpu"],
#                          timeout_s 600
# Here, after it:          bash recipes/gpu_resume.sh unpack RUN_DIR FILES_AT
#
# .gpu/ must stay under the 64 MiB the device tool carries: the newest checkpoint (~44 MB with
# optimizer state for the 3.7 M-parameter default, 58 MB with EMA weights) and a 16-bit FLAC
# subset of the training data (speech-wb voices only, capped by GPU_DATA_MB and by what the
# checkpoint leaves). Not yet run on a device: no session of this
# task was lent one when it was written.
set -euo pipefail
cmd=${1:?pack|device|unpack}
case $cmd in
pack)
    run=${2:?RUN_DIR}
    rm -rf .gpu && mkdir -p .gpu/run .gpu/data
    ckpt=$(cat "$run/latest.txt")
    cp "$run/$ckpt" "$run/train_config.json" .gpu/run/
    echo "$ckpt" > .gpu/run/latest.txt
    # the carry limit is 64 MiB in all: the data gets what the checkpoint leaves (a run with
    # EMA weights has a 58 MB checkpoint, which leaves ~5 MB of audio)
    room=$(( 63 * 1024 * 1024 - $(stat -c %s "$run/$ckpt") - 65536 ))
    budget=$(( ${GPU_DATA_MB:-12} * 1024 * 1024 )); used=0
    [ "$budget" -gt "$room" ] && budget=$room
    [ "$budget" -gt 0 ] || { echo "checkpoint too large for the 64 MiB carry" >&2; exit 2; }
    for f in ../shared/data/train-16k/speech-wb/ast-{en,es,it}/*.flac; do
        size=$(stat -c %s "$f"); [ $((used + size)) -gt $budget ] && break
        cp "$f" .gpu/data/; used=$((used + size))
    done
    du -sh .gpu ;;
device)
    pip install -q torch numpy soundfile soxr safetensors tqdm 2>&1 | tail -1
    pip install -q --no-deps -e . 2>&1 | tail -1
    PYTHONUNBUFFERED=1 dwancodec train --train-data-path .gpu/data --save .gpu/run \
        --config .gpu/run/train_config.json --resume --device cuda --precision bf16 \
        --batch-size 64 --num-workers 8 --log csv --quiet --set max_minutes=8 \
        --set val_every=1000000000 --set save_every=1000000000
    ckpt=$(cat .gpu/run/latest.txt)
    cp ".gpu/run/$ckpt" .gpu/run/latest.txt "$OUT/" ;;
unpack)
    run=${2:?RUN_DIR}; from=${3:?FILES_AT}
    ckpt=$(cat "$from/latest.txt")
    cp "$from/$ckpt" "$run/" && cp "$from/latest.txt" "$run/latest.txt"
    echo "resume on CPU with the same command plus --resume (batch size is the run's own)" ;;
*) echo "usage: $0 pack RUN_DIR | device | unpack RUN_DIR FILES_AT" >&2; exit 2 ;;
esac
