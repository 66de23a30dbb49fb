"""``dwancodec decode``: a ``.dwc`` bitstream to audio
(:func:`~dwancodec.commands.files.decode_file`)."""

from __future__ import annotations

import argparse
import sys
import time

from .common import load_model, set_threads
from .files import STDIO, decode_file


def run_decode(args: argparse.Namespace) -> int:
    set_threads(args)
    codec = load_model(args.model, args.device)
    t0 = time.perf_counter()
    h = decode_file(codec, args.input, args.output, getattr(args, "sample_rate", None),
                    not args.quiet)
    dt = time.perf_counter() - t0
    if not args.quiet:
        rate = getattr(args, "sample_rate", None) or h.sample_rate
        name = "stdout" if args.output == STDIO else args.output
        mine = codec.identity()  # another than the writer: decode_file found the same codes
        print(f"{name}: {h.duration:.2f} s at {rate} Hz from {h.num_frames} frames "
              f"(n_q {h.n_q}, {h.bitrate / 1000:.2f} kbps"
              + (f"; written by {h.model}, decoded by {mine}, same codes"
                 if h.model != mine else "") + f"); {dt:.2f} s "
              f"({dt / max(h.duration, 1e-9):.3f} x real time)",
              file=sys.stderr if args.output == STDIO else sys.stdout)
    return 0
