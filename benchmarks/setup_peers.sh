#!/usr/bin/env bash
# Install the reference codecs that benchmarks/quality.py compares DwanCodec against:
#   - Opus:    opus-tools (opusenc/opusdec) and ffmpeg (built with libopus on Debian)
#   - Codec 2: the `codec2` package (c2enc/c2dec command-line tools)
# Debian/Ubuntu only (apt). Idempotent: does nothing when everything is already there.
# Run as root, or as a user with sudo:  bash benchmarks/setup_peers.sh
set -euo pipefail

need=()
command -v opusenc >/dev/null 2>&1 && command -v opusdec >/dev/null 2>&1 || need+=(opus-tools)
command -v ffmpeg  >/dev/null 2>&1 || need+=(ffmpeg)
command -v c2enc   >/dev/null 2>&1 && command -v c2dec   >/dev/null 2>&1 || need+=(codec2)

if [ ${#need[@]} -eq 0 ]; then
    echo "setup_peers: opusenc, opusdec, ffmpeg, c2enc and c2dec are already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_peers: apt-get not found; install these packages with your package manager:" \
         "${need[*]}" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup_peers: run as root (or install sudo) to apt-get install: ${need[*]}" >&2
        exit 1
    fi
fi

echo "setup_peers: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"

for tool in opusenc opusdec ffmpeg c2enc c2dec; do
    command -v "$tool" >/dev/null 2>&1 || { echo "setup_peers: $tool still missing" >&2; exit 1; }
done
encoders="$(ffmpeg -hide_banner -encoders 2>/dev/null || true)"
if ! grep -q libopus <<<"$encoders"; then
    echo "setup_peers: note: this ffmpeg has no libopus encoder (opusenc is used instead)" >&2
fi
echo "setup_peers: done ($(opusenc --version 2>&1 | head -n1); codec2 $(dpkg-query -W -f='${Version}' codec2 2>/dev/null || echo '?'))"
