"""``dwancodec export``: write the ONNX step graphs + sidecar for the torch-free runtime."""

from __future__ import annotations

import argparse
import sys

from .export import DEFAULT_BLOCK_FRAMES, SIDECAR, export_onnx


def run(args: argparse.Namespace) -> int:
    """Export ``--model`` (or a random-weight ``--config``) to ``--out``; 0 on success."""
    from ..api import load_codec
    from ..model import Codec

    quiet = getattr(args, "quiet", False)

    def note(msg: str) -> None:
        if not quiet:
            print(f"dwancodec export: {msg}", file=sys.stderr)

    if args.model is None and args.config is not None:
        codec = Codec.from_config(args.config, seed=0)
        note(f"config {args.config!r} with random weights (seed 0): for tests and timing only")
    else:
        codec = load_codec(args.model, args.config)
    result = export_onnx(
        codec, args.out, frames_per_step=args.frames_per_step, n_q=args.n_q,
        full_sequence=args.full_sequence, opset=args.opset, optimize=not args.no_optimize,
        exporter=getattr(args, "exporter", "dynamo"),
        int8=not args.no_optimize and not getattr(args, "no_int8", False),
        int8_data=getattr(args, "int8_data", None), log=note,
        block_frames=None if getattr(args, "no_blocks", False) else getattr(
            args, "block_frames", DEFAULT_BLOCK_FRAMES),
    )
    if not quiet:
        for f in result.files:
            print(f"{f}  {f.stat().st_size / 1e6:.2f} MB")
        print(f"model {result.sidecar['model']['identity']}, sidecar {result.directory / SIDECAR}"
              + (f"; block graphs ({result.blocks.sidecar['frames_per_step']} frames per call) "
                 f"in {result.blocks.directory}" if result.blocks is not None else ""))
    return 0
