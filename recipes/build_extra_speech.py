#!/usr/bin/env python3
"""Convert extra real recorded speech from unpacked Debian packages to 16 kHz FLAC.

Called by ``recipes/fetch_extra_speech.sh`` (which runs ``apt-get download`` and
``dpkg -x``); usable alone as::

    python recipes/build_extra_speech.py --root UNPACKED --out TRAIN_DIR --heldout HELDOUT_DIR \
        [--versions versions.txt]

``UNPACKED`` holds one sub-directory per package (named after the package) with its
unpacked tree. Every recording here was made by people (game voice acting, spoken
letters and words, IVR prompts); nothing is synthesised.

Steps, per original file:
1. decode (soundfile for Ogg Vorbis / WAV, ffmpeg for G.722), mix to mono (the louder
   channel if the mean would cancel), resample to 16 kHz with soxr (VHQ);
2. drop originals below 16 kHz (narrowband), duplicates (same bytes), digital silence,
   and files that are not speech (too short or too little voiced/periodic energy:
   effects, clicks, music stings);
3. trim leading/trailing silence (keep 100 ms of floor);
4. join consecutive prompts of one voice group into files of 12-16 s (longer prompts split
   at the quietest frame), as shared/data/build_data.py does.
Whole voice groups listed in ``HELDOUT`` go to the held-out folder instead of training,
so that folder holds only voices (and languages) that training never sees.

Output: ``<dir>/<source>/<group>/<group>_NNNN.flac`` (16 kHz, mono, 16-bit FLAC) plus
``manifest.csv``, ``segments.csv`` and ``summary.md`` in each of the two folders.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import os
import re
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import soxr

SR = 16000
FRAME = 320  # 20 ms at 16 kHz
FIL = "usr/share/games/fillets-ng"

# --------------------------------------------------------------------------
# Licences and attribution per package (from each package's debian/copyright)
# --------------------------------------------------------------------------
LICENCE = {
    "fillets-ng-data": "GPL-2",
    "fillets-ng-data-cs": "GPL-2",
    "fillets-ng-data-nl": "GPL-2",
    "klettres-data": "GPL-2+",
    "ktuberling-data": "GPL-2+",
    "asterisk-core-sounds-ru-g722": "CC-BY-3.0",
}
ATTRIBUTION = {
    "fillets-ng-data": "Fish Fillets NG: Ivo Danihelka, Pavel Danihelka, ALTAR interactive "
    "and contributors (GPL-2)",
    "klettres-data": "KLettres (KDE Edu): Anne-Marie Mahfouf and the KDE translators who "
    "recorded the sounds (GPL-2+)",
    "ktuberling-data": "KTuberling (KDE Games): Albert Astals Cid, Eric Bischoff and the KDE "
    "translators who recorded the words (GPL-2+)",
    "asterisk-core-sounds-ru-g722": "Asterisk core sounds, Russian: provided by Maxim Topal, "
    "ivrvoice.ru (CC-BY-3.0)",
}
ATTRIBUTION["fillets-ng-data-cs"] = ATTRIBUTION["fillets-ng-data"]
ATTRIBUTION["fillets-ng-data-nl"] = ATTRIBUTION["fillets-ng-data"]

# Voice groups kept out of training entirely (unseen speakers AND unseen language:
# no German, Greek or Hebrew speech exists in shared/data or in the training part here).
HELDOUT = {
    ("klettres", "de"),
    ("ktuberling", "de"),
    ("ktuberling", "el"),
    ("klettres", "he"),
}


@dataclass
class Group:
    """One voice (or one set of voices) of one package: the unit of chunking."""

    source: str  # e.g. "fillets-cs"
    name: str  # e.g. "fillets-cs-small"
    package: str
    lang: str
    speaker: str
    gender: str  # "F", "M", "mixed", or "" -> estimated from F0 later
    files: list[str] = field(default_factory=list)
    decoder: str = "sf"  # "sf" (soundfile) or "g722" (ffmpeg)
    # minimum fraction of voiced among active frames; game sound folders mix speech with
    # grunts and effects (strict), word-list packages hold only words, some of them noisy
    # recordings where noise frames count as active (lenient)
    min_voiced: float = 0.2


# --------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------
def _fillets_fonts(root: str) -> dict[tuple[str, str], str]:
    """(level, dialog id) -> speaking character ("font_small", "font_big", ...)."""
    out: dict[tuple[str, str], str] = {}
    pat = re.compile(r'dialogId\("([^"]+)",\s*"([^"]+)"')
    for f in glob.glob(os.path.join(root, "fillets-ng-data", FIL, "script/*/dialogs*.lua")):
        lvl = f.split(os.sep)[-2]
        with open(f, encoding="utf-8", errors="replace") as fh:
            for m in pat.finditer(fh.read()):
                out[(lvl, m.group(1))] = m.group(2)
    return out


def catalogue(root: str) -> list[Group]:
    """Build the list of voice groups from the unpacked packages under ``root``."""
    groups: list[Group] = []
    fonts = _fillets_fonts(root)
    # --- Fish Fillets NG voice acting: the two fish are one actress / one actor per
    # language (Czech text: the small fish speaks in the feminine); the other characters
    # (statue, vikings, parrot, linux users, ...) are various actors.
    for pkg, lang, src in (
        ("fillets-ng-data-cs", "cs", "fillets-cs"),
        ("fillets-ng-data-nl", "nl", "fillets-nl"),
        ("fillets-ng-data", "en", "fillets-en"),
    ):
        base = os.path.join(root, pkg, FIL, "sound")
        files = sorted(
            glob.glob(os.path.join(base, "*", lang, "*.ogg"))
            + glob.glob(os.path.join(base, "*", "*", lang, "*.ogg"))
        )
        by: dict[str, list[str]] = defaultdict(list)
        for f in files:
            rel = os.path.relpath(f, base).split(os.sep)
            font = fonts.get((rel[0], os.path.splitext(rel[-1])[0]), "")
            key = {"font_small": "small", "font_big": "big"}.get(font, "other")
            by[key].append(f)
        for key, spk, g in (
            ("small", "small fish (one actress)", "F"),
            ("big", "big fish (one actor)", "M"),
            ("other", "other characters (several actors)", "mixed"),
        ):
            if by[key]:
                groups.append(Group(src, f"{src}-{key}", pkg, lang, spk, g, by[key]))
    # --- KLettres: letters and syllables, one recording set per language
    kl = os.path.join(root, "klettres-data", "usr/share/klettres")
    for d in sorted(glob.glob(os.path.join(kl, "*", ""))):
        lang = os.path.basename(os.path.dirname(d))
        files = sorted(glob.glob(os.path.join(d, "alpha", "*.ogg")))
        files += sorted(glob.glob(os.path.join(d, "syllab", "*.ogg")))
        if files:
            groups.append(
                Group(
                    "klettres",
                    f"klettres-{lang}",
                    "klettres-data",
                    lang,
                    f"klettres {lang} voice(s)",
                    "",
                    files,
                    min_voiced=0.05,
                )
            )
    # --- KTuberling: object names, one recording set per language
    kt = os.path.join(root, "ktuberling-data", "usr/share/ktuberling/sounds")
    for d in sorted(glob.glob(os.path.join(kt, "*", ""))):
        lang = os.path.basename(os.path.dirname(d))
        files = sorted(glob.glob(os.path.join(d, "*.ogg")) + glob.glob(os.path.join(d, "*.wav")))
        if files:
            groups.append(
                Group(
                    "ktuberling",
                    f"ktuberling-{lang}",
                    "ktuberling-data",
                    lang,
                    f"ktuberling {lang} voice(s)",
                    "",
                    files,
                    min_voiced=0.05,
                )
            )
    # --- Asterisk Russian prompts (G.722): one professional female voice
    ru = os.path.join(root, "asterisk-core-sounds-ru-g722", "usr/share/asterisk/sounds")
    files = sorted(
        f
        for f in glob.glob(os.path.join(ru, "ru_RU_f_*", "**", "*.g722"), recursive=True)
        if "/silence/" not in f
    )
    if files:
        groups.append(
            Group(
                "ast-ru",
                "ast-ru",
                "asterisk-core-sounds-ru-g722",
                "ru-RU",
                "IvrvoiceRU (Maxim Topal's studio), female",
                "F",
                files,
                "g722",
            )
        )
    return groups


# --------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------
def _to_mono(y: np.ndarray) -> np.ndarray:
    """[T, C] float -> [T]; take the louder channel when the mean would cancel."""
    if y.ndim == 1 or y.shape[0] == 0:
        return y.reshape(-1) if y.ndim == 1 else np.zeros(0)
    m = y.mean(axis=1)
    e = (y**2).mean(axis=0)
    if e.max() > 0 and (m**2).mean() < 0.25 * e.max():
        return y[:, int(np.argmax(e))]
    return m


def speed_factor(md5: str, sr0: int, lo: float, hi: float) -> float:
    """The speed factor of one original file, drawn from its bytes' md5 (reproducible).

    Played ``f`` times as fast, a recording moves its pitch and formants by ``f`` (Ko et al.
    2015): a new voice. Reading ``sr0``-Hz audio as if it were sampled at ``f * sr0`` and
    resampling that to 16 kHz keeps the whole 0-8 kHz band only while ``f * sr0 >= 16000``,
    so ``f`` is drawn uniformly from ``[max(lo, 16000 / sr0), hi]``: a 22.05 kHz original
    can slow down to 0.73, a 16 kHz one (G.722) only speed up. E.g. ``lo, hi = 0.9, 1.1``:
    44.1 kHz -> [0.9, 1.1], 16 kHz -> [1.0, 1.1]. ``(1, 1)``: no perturbation.
    """
    lo = max(lo, SR / sr0)
    if hi <= lo:
        return lo
    u = int(md5[:12], 16) / float(16**12)
    return lo + (hi - lo) * u


def decode(path: str, decoder: str, speed: tuple[float, float] = (1.0, 1.0),
           md5: str = "0") -> tuple[np.ndarray, int]:
    """Return (int16 mono [T] at 16 kHz, original sample rate); with ``speed`` the file is
    played ``speed_factor(...)`` times as fast (see there)."""
    if decoder == "g722":
        r = subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "g722",
                "-i",
                path,
                "-f",
                "s16le",
                "-ac",
                "1",
                "-ar",
                "16000",
                "-",
            ],
            capture_output=True,
            check=True,
        )
        x = np.frombuffer(r.stdout, dtype="<i2").copy()
        f = speed_factor(md5, SR, *speed)
        if f != 1.0:
            y = soxr.resample(x.astype(np.float64) / 32768.0, SR * f, SR, quality="VHQ")
            x = np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)
        return x, 16000
    y, sr = sf.read(path, dtype="float64", always_2d=True)
    x = _to_mono(y)
    f = speed_factor(md5, sr, *speed)
    if sr * f != SR:
        x = soxr.resample(x, sr * f, SR, quality="VHQ")
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16), int(sr)


# --------------------------------------------------------------------------
# Signal helpers (same definitions as shared/data/build_data.py)
# --------------------------------------------------------------------------
def frame_db(x: np.ndarray) -> np.ndarray:
    """Per-20-ms-frame level in dBFS, [T] int16 -> [T // 320]."""
    n = len(x) // FRAME
    if n == 0:
        return np.array([-120.0])
    f = x[: n * FRAME].astype(np.float64).reshape(n, FRAME) / 32768.0
    return 10 * np.log10(np.mean(f * f, axis=1) + 1e-12)


def trim(
    x: np.ndarray, margin_s: float = 0.1, rel_db: float = 40.0, floor_db: float = -55.0
) -> np.ndarray:
    """Trim leading/trailing silence, keeping ``margin_s`` of the original floor."""
    db = frame_db(x)
    thr = max(floor_db, db.max() - rel_db)
    act = np.nonzero(db > thr)[0]
    if len(act) == 0:
        return x[:0]
    m = int(margin_s * SR)
    return x[max(0, act[0] * FRAME - m) : min(len(x), (act[-1] + 1) * FRAME + m)]


def voiced_f0(x: np.ndarray) -> tuple[np.ndarray, int]:
    """F0 (Hz) of the voiced 40 ms frames of [T] int16, and the number of active frames.

    Active: within 30 dB of the loudest frame and above -50 dBFS. Voiced: normalised
    autocorrelation peak > 0.5 between 60 and 450 Hz.
    """
    n, hop = 640, 320
    if len(x) < n:
        return np.zeros(0), 0
    xf = x.astype(np.float64) / 32768.0
    idx = np.arange(0, len(xf) - n, hop)
    fr = np.stack([xf[i : i + n] for i in idx])
    fr = fr - fr.mean(axis=1, keepdims=True)
    lev = 10 * np.log10((fr**2).mean(axis=1) + 1e-12)
    fr = fr[lev > max(-50.0, lev.max() - 30.0)]
    if len(fr) == 0:
        return np.zeros(0), 0
    spec = np.fft.rfft(fr * np.hanning(n), 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :n]
    ac = ac / (ac[:, :1] + 1e-12)
    lo, hi = SR // 450, SR // 60  # 60-450 Hz
    # search only past the first zero crossing (skips the main lobe at lag 0)
    neg = ac < 0
    z = np.where(neg.any(axis=1), np.argmax(neg, axis=1), n)
    lags = np.arange(ac.shape[1])
    masked = np.where((lags >= np.maximum(z, lo)[:, None]) & (lags < hi), ac, -1.0)
    lag = np.argmax(masked, axis=1)
    peak = masked[np.arange(len(ac)), lag]
    return SR / lag[peak > 0.5], len(fr)


def bandwidth_hz(xs: list[np.ndarray], rel_db: float = 40.0) -> float:
    """Highest frequency whose long-term level is within rel_db of the 300-3000 Hz median.

    Same measure as ``bandwidth_hz`` in shared/data/build_data.py (vectorised).
    """
    nfft = 1024
    acc = np.zeros(nfft // 2 + 1)
    cnt = 0
    win = np.hanning(nfft)
    for x in xs:
        if len(x) <= nfft:
            continue
        xf = x.astype(np.float64) / 32768.0
        db = frame_db(x)
        starts = np.arange(0, len(xf) - nfft, nfft // 2)
        fi = np.minimum(starts // FRAME, len(db) - 1)
        starts = starts[db[fi] >= db.max() - 30]
        if len(starts) == 0:
            continue
        fr = np.stack([xf[i : i + nfft] for i in starts]) * win
        acc += (np.abs(np.fft.rfft(fr, axis=1)) ** 2).sum(axis=0)
        cnt += len(starts)
    if cnt == 0:
        return 0.0
    p = 10 * np.log10(acc / cnt + 1e-20)
    f = np.fft.rfftfreq(nfft, 1 / SR)
    k = 5
    ps = np.convolve(np.pad(p, k // 2, mode="edge"), np.ones(k) / k, mode="valid")
    ref = np.median(ps[(f >= 300) & (f <= 3000)])
    above = np.nonzero((ps > ref - rel_db) & (f > 1000))[0]
    return float(f[above[-1]]) if len(above) else 0.0


def chunk_speech(
    items: list[tuple[str, np.ndarray]], target_s: float = 12.0, max_s: float = 16.0
) -> list[tuple[np.ndarray, list[tuple]]]:
    """Join trimmed prompts (in order) into ~target_s chunks; split prompts > max_s."""
    chunks: list[tuple[np.ndarray, list[tuple]]] = []
    pieces = []
    for name, x in items:
        off = 0
        while len(x) - off > max_s * SR:
            lo, hi = off + int(8 * SR), off + int(max_s * SR)
            cut = lo + int(np.argmin(frame_db(x[lo:hi]))) * FRAME + FRAME // 2
            pieces.append((name, x[off:cut], off / SR))
            off = cut
        pieces.append((name, x[off:], off / SR))
    cur: list[np.ndarray] = []
    segs: list[tuple] = []
    n = 0
    for name, x, start in pieces:
        if n and n + len(x) > max_s * SR:
            chunks.append((np.concatenate(cur), segs))
            cur, segs, n = [], [], 0
        segs.append((name, round(start, 3), round(len(x) / SR, 3), round(n / SR, 3)))
        cur.append(x)
        n += len(x)
        if n >= target_s * SR:
            chunks.append((np.concatenate(cur), segs))
            cur, segs, n = [], [], 0
    if cur:
        chunks.append((np.concatenate(cur), segs))
    return chunks


def gender_from_f0(f0: float) -> str:
    """Rough label from median F0; marked '?' because it is an estimate."""
    if f0 <= 0:
        return "?"
    if f0 < 155:
        return "M?"
    if f0 < 265:
        return "F?"
    return "F/child?"


# --------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--root", required=True, help="dir with one unpacked tree per package")
    ap.add_argument("--out", required=True, help="training output dir")
    ap.add_argument("--heldout", required=True, help="held-out (unseen voices) output dir")
    ap.add_argument("--versions", help="file with lines 'package version'")
    ap.add_argument("--speed", default="1,1", metavar="LO,HI",
                    help="speed perturbation from the original rates: each file played f times "
                         "as fast, f drawn per file from its md5 (see speed_factor); 1,1: off")
    args = ap.parse_args()
    try:
        speed = tuple(float(v) for v in args.speed.split(","))
        if len(speed) != 2 or not 0.5 <= speed[0] <= speed[1] <= 2.0:
            raise ValueError
    except ValueError:
        sys.exit(f"--speed: want LO,HI with 0.5 <= LO <= HI <= 2, got {args.speed!r}")

    versions: dict[str, str] = {}
    if args.versions:
        with open(args.versions) as fh:
            for line in fh:
                if line.strip():
                    p, v = line.split()[:2]
                    versions[p] = v

    groups = catalogue(args.root)
    if not groups:
        sys.exit(f"no audio found under {args.root}: packages unpacked?")
    rows: dict[str, list[dict]] = {"train": [], "heldout": []}
    seg_rows: dict[str, list[dict]] = {"train": [], "heldout": []}
    stats = []
    dropped: dict[str, int] = defaultdict(int)
    seen_md5: set[str] = set()
    for g in groups:
        items, rates, f0_list = [], set(), []
        n_dropped_before = sum(dropped.values())
        for f in g.files:
            with open(f, "rb") as fh:
                md5 = hashlib.md5(fh.read()).hexdigest()
            if md5 in seen_md5:
                dropped["duplicate"] += 1
                continue
            seen_md5.add(md5)
            if g.decoder == "sf" and sf.info(f).samplerate < SR:
                dropped["narrowband original (< 16 kHz)"] += 1
                continue
            try:
                x, sr0 = decode(f, g.decoder, speed, md5)
            except (RuntimeError, subprocess.CalledProcessError, sf.LibsndfileError):
                dropped["undecodable"] += 1
                continue
            if np.abs(x.astype(np.int32)).max(initial=0) < 100:  # below -50 dBFS peak
                dropped["digital silence"] += 1
                continue
            x = trim(x)
            if len(x) < 0.3 * SR:
                dropped["shorter than 0.3 s after trimming"] += 1
                continue
            f0v, n_act = voiced_f0(x)
            if len(f0v) < max(3, g.min_voiced * n_act):
                dropped["not speech (little voiced energy: effects/noise)"] += 1
                continue
            rates.add(sr0)
            items.append((os.path.relpath(f, os.path.join(args.root, g.package)), x))
            f0_list.append(f0v)
        n_drop = sum(dropped.values()) - n_dropped_before
        if not items:
            print(f"skip    {g.name}: no usable prompt ({n_drop} dropped)", flush=True)
            continue
        bw = bandwidth_hz([x for _, x in items])
        f0s = np.concatenate(f0_list)
        f0 = float(np.median(f0s)) if len(f0s) else 0.0
        gender = g.gender or gender_from_f0(f0)
        split = "heldout" if (g.source, g.lang) in HELDOUT else "train"
        outdir = args.heldout if split == "heldout" else args.out
        chunks = chunk_speech(items)
        for i, (x, sg) in enumerate(chunks):
            rel = f"{g.source}/{g.name}/{g.name}_{i:04d}.flac"
            path = os.path.join(outdir, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            sf.write(path, x, SR, subtype="PCM_16", format="FLAC")
            rows[split].append(
                dict(
                    file=rel,
                    source=g.source,
                    group=g.name,
                    package=g.package,
                    version=versions.get(g.package, ""),
                    language=g.lang,
                    speaker=g.speaker,
                    gender=gender,
                    orig_sr="/".join(str(r) for r in sorted(rates)),
                    bandwidth_hz=int(bandwidth_hz([x])),
                    group_bandwidth_hz=int(bw),
                    median_f0_hz=round(f0),
                    duration_s=round(len(x) / SR, 3),
                    license=LICENCE[g.package],
                )
            )
            for name, start, dur, off in sg:
                seg_rows[split].append(
                    dict(file=rel, offset_s=off, orig_file=name, orig_start_s=start, dur_s=dur)
                )
        minutes = sum(len(x) for x, _ in chunks) / SR / 60
        stats.append(
            dict(
                split=split,
                source=g.source,
                group=g.name,
                lang=g.lang,
                gender=gender,
                f0=f0,
                bw=bw,
                rates=sorted(rates),
                n_in=len(items),
                n_out=len(chunks),
                minutes=minutes,
                n_drop=n_drop,
                package=g.package,
            )
        )
        print(
            f"{split:7s} {g.name:24s} {g.lang:6s} {gender:8s} f0~{f0:4.0f} Hz "
            f"bw~{bw:5.0f} Hz prompts={len(items):4d} (dropped {n_drop:3d}) files={len(chunks):4d} "
            f"{minutes:6.2f} min sr={sorted(rates)}",
            flush=True,
        )

    fields = list(rows["train"][0].keys())
    for split, outdir in (("train", args.out), ("heldout", args.heldout)):
        os.makedirs(outdir, exist_ok=True)
        with open(os.path.join(outdir, "manifest.csv"), "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows[split])
        with open(os.path.join(outdir, "segments.csv"), "w", newline="") as fh:
            w = csv.DictWriter(
                fh, fieldnames=["file", "offset_s", "orig_file", "orig_start_s", "dur_s"]
            )
            w.writeheader()
            w.writerows(seg_rows[split])
        write_summary(
            os.path.join(outdir, "summary.md"),
            [s for s in stats if s["split"] == split],
            dropped,
            versions,
        )

    print_summary(stats, dropped)
    return 0


def _table(stats: list[dict], key: str) -> list[tuple[str, float, int]]:
    acc: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for s in stats:
        acc[s[key]][0] += s["minutes"]
        acc[s[key]][1] += s["n_out"]
    return sorted(((k, v[0], v[1]) for k, v in acc.items()), key=lambda t: -t[1])


def write_summary(
    path: str, stats: list[dict], dropped: dict[str, int], versions: dict[str, str]
) -> None:
    """Markdown summary: one row per voice group, then minutes per source and language."""
    with open(path, "w") as fh:
        fh.write(
            "| group | package | version | lang | gender | median F0 | bandwidth | "
            "orig. rate | prompts | dropped | files | minutes | licence |\n|" + "---|" * 13 + "\n"
        )
        for s in stats:
            fh.write(
                f"| {s['group']} | {s['package']} | {versions.get(s['package'], '')} | "
                f"{s['lang']} | {s['gender']} | {s['f0']:.0f} Hz | ~{s['bw'] / 1000:.1f} kHz"
                f" | {'/'.join(str(r) for r in s['rates'])} | {s['n_in']} | {s['n_drop']} | "
                f"{s['n_out']} | "
                f"{s['minutes']:.2f} | {LICENCE[s['package']]} |\n"
            )
        for key in ("source", "lang"):
            fh.write(f"\n| {key} | minutes | files |\n|---|---|---|\n")
            for k, m, n in _table(stats, key):
                fh.write(f"| {k} | {m:.2f} | {n} |\n")
        fh.write(f"\nTotal: {sum(s['minutes'] for s in stats):.2f} min.\n")
        if dropped:
            fh.write(
                "\nOriginal files dropped (both folders): "
                + ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items()))
                + "\n"
            )
        fh.write("\nAttribution:\n")
        for p in sorted({s["package"] for s in stats}):
            fh.write(f"- {p}: {ATTRIBUTION[p]}\n")


def print_summary(stats: list[dict], dropped: dict[str, int]) -> None:
    """Print minutes per source and per language for both folders."""
    for split in ("train", "heldout"):
        st = [s for s in stats if s["split"] == split]
        print(
            f"\n== {split}: {sum(s['minutes'] for s in st):.1f} min in "
            f"{sum(s['n_out'] for s in st)} files, {len(st)} voice groups"
        )
        for key in ("source", "lang"):
            print(f"  {'per ' + key:22s} {'min':>7s} {'files':>6s}")
            for k, m, n in _table(st, key):
                print(f"  {k:22s} {m:7.2f} {n:6d}")
    print("\ndropped originals: " + ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items())))


if __name__ == "__main__":
    sys.exit(main())
