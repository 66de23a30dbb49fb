"""``dwancodec decode``: a ``.dwc`` bitstream to audio
(:func:`~dwancodec.commands.files.decode_file`), on the engine ``--backend`` names."""

from __future__ import annotations

import argparse
import sys
import time

from .common import engine_from_args, engine_label, notifier
from .files import STDIO, decode_file


def run_decode(args: argparse.Namespace) -> int:
    engine = engine_from_args(args, notifier(args), purpose="files")  # block graphs if any
    t0 = time.perf_counter()
    h = decode_file(engine, args.input, args.output, getattr(args, "sample_rate", None),
                    not args.quiet)
    dt = time.perf_counter() - t0
    if not args.quiet:
        rate = getattr(args, "sample_rate", None) or h.sample_rate
        name = "stdout" if args.output == STDIO else args.output
        mine = engine.identity  # another than the writer: decode_file found the same codes
        print(f"{name}: {h.duration:.2f} s at {rate} Hz from {h.num_frames} frames "
              f"(n_q {h.n_q}, " + (f"{h.packed_bitrate / 1000:.2f} kbps entropy-coded"
                                   if h.entropy else f"{h.bitrate / 1000:.2f} kbps")
              + (f"; written by {h.model}, decoded by {mine}, same codes"
                 if h.model != mine else "") + f"); {dt:.2f} s "
              f"({dt / max(h.duration, 1e-9):.3f} x real time, {engine_label(engine)})",
              file=sys.stderr if args.output == STDIO else sys.stdout)
    return 0
