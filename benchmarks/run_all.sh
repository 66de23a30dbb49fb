#!/usr/bin/env bash
# Regenerates every table and figure of docs/benchmarks.md with one command:
#
#   bash benchmarks/run_all.sh
#
# Environment (all optional):
#   MODEL=path/to/bundle   DwanCodec bundle (default: the shipped dwancodec/assets/default; if it
#                          is not installed, speed/latency use random 'default' weights and the
#                          quality run is skipped: random weights score nothing meaningful)
#   CLIPS=folder           quality clips: a folder of 16 kHz speech files, relative to where
#                          you run the script or absolute (required unless SKIP has quality)
#   HELDOUT=folder         optional: a second quality run (DwanCodec and Opus) on clips of
#                          voices no training saw (e.g. recipes/fetch_extra_speech.sh's
#                          heldout-16k); its table replaces the quality-heldout block
#   OUT=folder             raw outputs (default: benchmarks/results)
#   REPS=3 AUDIO_SECONDS=10  speed: interleaved repetitions, seconds of audio per measurement
#                          (not SECONDS: bash counts its own run time in that variable)
#   THREADS=1,2            speed: torch / ONNX Runtime thread counts
#   SKIP="quality latency" parts not to rerun (speed, quality, latency); their blocks in the doc
#                          are refreshed from the outputs already in OUT, if any
#                          (the machine block stays as it is when speed is skipped: it
#                          describes the machine the speed table was timed on)
#   PEERS_SETUP=0          do not create .venv-peers when missing (peers are then left out)
#
# Run from the project venv (`. .venv/bin/activate`); everything runs under `nice -n 10`.
# Steps: speed (benchmarks/peers.py: DwanCodec via benchmarks/speed.py's workers + peers in
# .venv-peers), quality (benchmarks/quality.py), latency (benchmarks/latency.py); then the
# blocks between <!-- BEGIN x --> / <!-- END x --> markers in docs/benchmarks.md are replaced by
# the new tables, and the PNGs are copied to docs/figures/.
set -euo pipefail
CALLER_DIR="$PWD"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
OUT="${OUT:-$REPO/benchmarks/results}"
CLIPS="${CLIPS:-}"
if [ -n "$CLIPS" ] && [ "${CLIPS#/}" = "$CLIPS" ]; then CLIPS="$CALLER_DIR/$CLIPS"; fi
HELDOUT="${HELDOUT:-}"
if [ -n "$HELDOUT" ] && [ "${HELDOUT#/}" = "$HELDOUT" ]; then HELDOUT="$CALLER_DIR/$HELDOUT"; fi
REPS="${REPS:-3}"
SECONDS_AUDIO="${AUDIO_SECONDS:-10}"
THREADS="${THREADS:-1,2}"
SKIP="${SKIP:-}"
PY="${PYTHON:-python}"
NICE=(nice -n 10)
mkdir -p "$OUT" docs/figures

if [ -z "${MODEL:-}" ] && [ -f dwancodec/assets/default/model.safetensors ]; then
    MODEL="$REPO/dwancodec/assets/default"
fi
MODEL_ARGS=()
if [ -n "${MODEL:-}" ]; then MODEL_ARGS=(--model "$MODEL"); fi
skip() { [[ " $SKIP " == *" $1 "* ]]; }
if ! skip quality && { [ -z "$CLIPS" ] || [ ! -d "$CLIPS" ]; }; then
    echo "run_all.sh: the quality step needs CLIPS=folder of 16 kHz speech clips (got" \
         "'${CLIPS}'), or leave it out with SKIP=quality" >&2
    exit 2
fi
if [ -n "$HELDOUT" ] && [ ! -d "$HELDOUT" ]; then
    echo "run_all.sh: HELDOUT='${HELDOUT}' is not a folder of clips" >&2
    exit 2
fi

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "python: $($PY -c 'import sys; print(sys.version.split()[0])'), torch $($PY -c 'import torch; print(torch.__version__)'), onnxruntime $($PY -c 'import onnxruntime; print(onnxruntime.__version__)')"
    if [ -n "${MODEL:-}" ]; then
        echo "model: $($PY -c "from dwancodec.api import load_codec; print(load_codec('$MODEL').identity())") ($MODEL)"
    else
        echo "model: none installed: config 'default' with random weights"
    fi
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

if ! skip speed; then
    if [ ! -x .venv-peers/bin/python ] && [ "${PEERS_SETUP:-1}" = 1 ]; then
        bash benchmarks/setup_peer_models.sh
    fi
    "${NICE[@]}" "$PY" benchmarks/peers.py "${MODEL_ARGS[@]}" --reps "$REPS" \
        --seconds "$SECONDS_AUDIO" --threads "$THREADS" --out "$OUT/speed"
fi

if ! skip quality; then
    if [ -n "${MODEL:-}" ]; then
        "${NICE[@]}" "$PY" benchmarks/quality.py --clips "$CLIPS" "${MODEL_ARGS[@]}" \
            --out "$OUT/quality"
    else
        echo "quality: skipped (no model bundle: random weights would score nothing)" >&2
        NODOC="quality"
    fi
    # Unseen voices: the val clips are mostly the training voices (docs/benchmarks.md)
    if [ -n "$HELDOUT" ] && [ -n "${MODEL:-}" ]; then
        "${NICE[@]}" "$PY" benchmarks/quality.py --clips "$HELDOUT" "${MODEL_ARGS[@]}" \
            --codecs dwancodec,opus --out "$OUT/quality-heldout"
    fi
fi

if ! skip latency; then
    "${NICE[@]}" "$PY" benchmarks/latency.py "${MODEL_ARGS[@]}" --out "$OUT/latency" || \
        echo "latency: an algorithmic check did not match (see the table)" >&2
fi

for fig in speed quality; do
    if [[ " ${NODOC:-} " != *" $fig "* ]] && [ -f "$OUT/$fig/$fig.png" ]; then
        cp "$OUT/$fig/$fig.png" "docs/figures/$fig.png"
    fi
done
if [ -n "$HELDOUT" ] && [ -f "$OUT/quality-heldout/quality.png" ]; then
    cp "$OUT/quality-heldout/quality.png" docs/figures/quality-heldout.png
fi
"$PY" - "$OUT" "${NODOC:-} $SKIP" <<'EOF'
import re
import sys
from pathlib import Path

out, skip = Path(sys.argv[1]), sys.argv[2].split()
doc = Path("docs/benchmarks.md")
text = doc.read_text()
blocks = {"machine": out / "machine.txt", "speed": out / "speed" / "speed.md",
          "quality": out / "quality" / "quality.md", "latency": out / "latency" / "latency.md",
          "quality-heldout": out / "quality-heldout" / "quality.md"}
for name, path in blocks.items():
    if name.split("-")[0] in skip or not path.exists():
        continue
    if name == "machine" and "speed" in skip:
        continue  # the machine block describes the machine the speed table was timed on
    body = path.read_text().strip()
    # quality.md links its figure beside it; in docs/ the figure is figures/<block>.png
    body = body.replace("](quality.png)", f"](figures/{name}.png)")
    if name == "machine":
        body = "```\n" + body + "\n```"
    pat = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(\n<!-- END {name} -->)", re.S)
    if not pat.search(text):
        sys.exit(f"docs/benchmarks.md has no BEGIN/END {name} markers")
    text = pat.sub(lambda m: m.group(1) + body + m.group(2), text)
doc.write_text(text)
print(f"updated {doc}")
EOF
