#!/usr/bin/env bash
# Fetch more real recorded speech from Debian packages and convert it to 16 kHz mono FLAC.
#
#   bash recipes/fetch_extra_speech.sh [TRAIN_DIR] [HELDOUT_DIR]
#       defaults: /work/data-extra/train-16k  /work/data-extra/heldout-16k
#   SPEED=0.9,1.1 bash recipes/fetch_extra_speech.sh /work/data-extra/train-speed /tmp/heldout-speed
#       the same voices played 0.9-1.1 times as fast, resampled from their original rates (so
#       slow-downs keep the 0-8 kHz band; build_extra_speech.speed_factor). Training only: the
#       held-out folder of such a build is not the unseen-voice set.
#
# Output stays outside git: never commit audio. Needs a Debian (bookworm) package source,
# root (or sox/ffmpeg already installed), ~700 MB free in $TMPDIR, and python3 with numpy,
# soundfile and soxr (the project's .venv has them). About 5 min on 2 busy cores; runs
# niced. See recipes/README.md for sources, licences and attribution.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
OUT="${1:-/work/data-extra/train-16k}"
HELD="${2:-/work/data-extra/heldout-16k}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/extra-speech.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

PKGS=(
  fillets-ng-data fillets-ng-data-cs fillets-ng-data-nl
  klettres-data ktuberling-data
  asterisk-core-sounds-ru-g722
)

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi
if ! "$PY" -c 'import numpy, soundfile, soxr' 2>/dev/null; then
  echo "error: $PY lacks numpy/soundfile/soxr; activate the project venv or" \
       "pip install numpy soundfile soxr" >&2
  exit 2
fi

# ffmpeg decodes the G.722 prompts; dpkg-deb ships with dpkg
if ! command -v ffmpeg >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg
fi

mkdir -p "$WORK/debs" "$WORK/root"
( cd "$WORK/debs" && apt-get download "${PKGS[@]}" )
: > "$WORK/versions.txt"
for p in "${PKGS[@]}"; do
  deb=("$WORK"/debs/"${p}"_*.deb)
  mkdir -p "$WORK/root/$p"
  dpkg -x "${deb[0]}" "$WORK/root/$p"
  echo "$p $(dpkg-deb -f "${deb[0]}" Version)" >> "$WORK/versions.txt"
  # keep the package's copyright file next to the data
  mkdir -p "$OUT/licences" "$HELD/licences"
  cp "$WORK/root/$p/usr/share/doc/$p/copyright" "$OUT/licences/$p.copyright"
  cp "$WORK/root/$p/usr/share/doc/$p/copyright" "$HELD/licences/$p.copyright"
done

# clear earlier builds (only our own sub-folders and files)
for d in "$OUT" "$HELD"; do
  rm -rf "$d"/fillets-cs "$d"/fillets-nl "$d"/fillets-en "$d"/klettres "$d"/ktuberling \
         "$d"/ast-ru "$d"/manifest.csv "$d"/segments.csv "$d"/summary.md
done

nice -n 10 "$PY" "$HERE/build_extra_speech.py" --root "$WORK/root" --out "$OUT" \
  --heldout "$HELD" --versions "$WORK/versions.txt" --speed "${SPEED:-1,1}"
cp "$WORK/versions.txt" "$OUT/versions.txt"
du -sh "$OUT" "$HELD"
