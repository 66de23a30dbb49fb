#!/usr/bin/env bash
# Installs the peer neural codecs timed by benchmarks/peers.py into an ISOLATED venv
# (default .venv-peers at the repository root; never the project venv).
#
#   bash benchmarks/setup_peer_models.sh [VENV_DIR]
#
# torch==2.13.0 (the CPU build the project uses) goes in FIRST; the peer packages then go in with
# --no-deps plus their few runtime deps by hand, because their metadata would pull another torch:
#   encodec 0.1.1   requires torch, torchaudio, einops, numpy. torchaudio has no release for
#                   torch 2.13 and is only used by encodec's audio I/O helpers (encodec/utils.py
#                   imports it at module level), so peers.py puts an empty placeholder module
#                   named torchaudio in sys.modules before importing encodec; the model never
#                   calls it.
#   moshi 0.2.13    pins torch<2.10 and pulls bitsandbytes, sphn, aiohttp, sounddevice ...; Mimi
#                   (moshi.models.compression + moshi.modules) needs only torch, numpy, einops,
#                   safetensors, huggingface_hub (imported by the loaders module) and
#                   sentencepiece (imported by moshi.models.loaders).
#   snac 1.2.1      requires torch, numpy, einops, huggingface_hub.
# Not installed: descript-audio-codec (DAC) needs descript-audiotools, which needs torchaudio
# at import time throughout; WavTokenizer is not on PyPI.
# Idempotent; weights are never downloaded (peers.py builds every model with random weights).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${1:-$REPO/.venv-peers}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
# keep the venv out of git even where the repository's .gitignore does not list it
echo '*' > "$VENV/.gitignore"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)

"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" "numpy<2.3" einops "safetensors<0.8" "huggingface_hub<1.0" "sentencepiece<0.3" psutil
"${PIP[@]}" --no-deps "encodec==0.1.1" "moshi==0.2.13" "snac==1.2.1"

"$VENV/bin/python" - <<'EOF'
import sys, types
import torch
assert torch.__version__.startswith("2.13.0"), f"wrong torch in the peers venv: {torch.__version__}"
sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # as benchmarks/peers.py
import encodec, snac  # noqa: F401
from moshi.models import compression  # noqa: F401
print(f"peers venv ok: torch {torch.__version__}, encodec, moshi (Mimi), snac")
EOF
