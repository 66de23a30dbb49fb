"""Turn a training bundle into the model shipped inside the package.

Usage (from the repo root, venv active)::

    python recipes/ship_check.py .checkpoints/default-v1/bundle-best   # the ship rule first
    python recipes/ship_model.py .checkpoints/default-v1/bundle-best

Writes ``dwancodec/assets/default/``: ``config.json`` + ``model.safetensors`` with float16
weights (half the bytes; loading casts them back to float32 and the file's identity is that of
the rounded model), and ``onnx/``: the streaming step pair exported from exactly those weights
(``dwancodec export``), whose float16-exact initializers are stored as float16 too (lossless,
see ``dwancodec.export.store_exact_half``), plus their int8 variant where it meets its accuracy
contract on the validation speech (``--int8-data``; PESQ-WB within 0.05 of float32, see
``dwancodec.export.quantize``), and ``onnx/blocks/``: the same weights exported at 25 frames
per call (float32, its own sidecar), on which ``dwancodec encode`` / ``decode`` code whole
files (``dwancodec.runtime.whole_signal_graphs``). Prints the sizes and how much the rounding
moved the decoded audio on a test clip.

Where the new model has the codes of a model it replaces (``--previous``, repeatable; by
default the one installed at ``--out``: a decoder-only update), it lists that model and the
ones it listed as ``compatible``, so ``.dwc`` files of format 1 that they wrote still decode
(format-2 files carry the codes identity and need no list). The entropy tables
(``entropy.safetensors``) are the replaced model's where the codes are the same, else fitted
on ``--entropy-data``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from dwancodec.api import default_model_dir
from dwancodec.audio import load_audio
from dwancodec.bitstream.entropy import FILE as ENTROPY_FILE
from dwancodec.commands.entropy import fit_entropy
from dwancodec.export import DEFAULT_BLOCK_FRAMES, export_onnx
from dwancodec.export.quantize import DEFAULT_VAL_DIR
from dwancodec.model import Codec

CLIP = Path(__file__).resolve().parents[1] / "dwancodec" / "assets" / "demo" / "speech_fr.flac"


def rounding_effect(full: Codec, half: Codec) -> tuple[float, float]:
    """(share of codes that differ, max |audio difference|) of the two models on the demo clip."""
    audio, _ = load_audio(CLIP, full.sample_rate)
    x = torch.from_numpy(audio[: len(audio) // full.hop_length * full.hop_length])[None, None]
    with torch.inference_mode():
        c_full, c_half = full.encode(x), half.encode(x)
        diff = float((full.decode(c_full) - half.decode(c_full)).abs().max())
    return float((c_full != c_half).float().mean()), diff


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", help="a training bundle (config.json + model.safetensors)")
    p.add_argument("--out", default=str(default_model_dir()), help="(default: %(default)s)")
    p.add_argument("--int8-data", default=str(DEFAULT_VAL_DIR),
                   help="speech for the int8 contract (default: %(default)s)")
    p.add_argument("--entropy-data", default="../shared/data/train-16k",
                   help="audio the entropy tables are fitted on when the codes are new "
                        "(default: %(default)s, what the model trained on)")
    p.add_argument("--previous", action="append", default=None,
                   help="a model this one replaces (repeatable; default: the one at --out)")
    args = p.parse_args()

    full = Codec.from_pretrained(args.bundle)
    out = Path(args.out)
    previous = [Path(d) for d in args.previous or [out]]
    prevs = [Codec.from_pretrained(d) for d in previous if (d / "model.safetensors").exists()]
    with tempfile.TemporaryDirectory() as tmp:  # build aside, then replace: never half a model
        stage = Path(tmp) / "default"
        full.save_pretrained(stage, dtype=torch.float16)
        half = Codec.from_pretrained(stage)
        lineage = [i for prev in prevs if prev.codes_identity() == half.codes_identity()
                   for i in (prev.identity(), *prev.compatible_identities)]
        if lineage:
            half.compatible_identities = tuple(
                dict.fromkeys(i for i in lineage if i != half.identity()))
            half.save_pretrained(stage, dtype=torch.float16)  # float16-exact: same identity
        print(f"codes {half.codes_identity()}; decodes format-1 files of: "
              f"{', '.join(half.compatible_identities) or '(no earlier model)'}")
        # entropy tables: the replaced model's where the codes are the same (files it wrote
        # decode as they are), else fitted anew on the training speech (`fit-entropy`)
        same = [prev for prev in prevs if prev.entropy_tables is not None
                and prev.entropy_tables.codes == half.codes_identity()]
        if same:
            same[0].entropy_tables.save(stage / ENTROPY_FILE)
        else:
            tables, fit = fit_entropy(half, [args.entropy_data], progress=True)
            tables.save(stage / ENTROPY_FILE)
            print(f"entropy tables fitted on {args.entropy_data}: "
                  f"{fit.kbps(half.num_codebooks):.2f} kbps at n_q {half.num_codebooks}")
        half = Codec.from_pretrained(stage)  # with its tables, which the export copies
        print(f"entropy tables {half.entropy_tables.identity()}")
        export_onnx(half, stage / "onnx", try_offline=False, int8=True,
                    int8_data=args.int8_data, block_frames=DEFAULT_BLOCK_FRAMES, log=print)
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(stage, out)
    codes_changed, audio_diff = rounding_effect(full, half)
    sizes = {f.relative_to(out): f.stat().st_size for f in sorted(out.rglob("*")) if f.is_file()}
    for name, size in sizes.items():
        print(f"{size / 1e6:8.2f} MB  {name}")
    print(f"{sum(sizes.values()) / 1e6:8.2f} MB  in all")
    print(f"model {half.identity()}; float16 rounding changed {100 * codes_changed:.2f} % of the "
          f"demo clip's codes and the decoded audio by at most {audio_diff:.2e} (same codes)")
    return int(not np.isfinite(audio_diff))


if __name__ == "__main__":
    raise SystemExit(main())
