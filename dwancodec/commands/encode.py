"""``dwancodec encode``: an audio file to a ``.dwc`` bitstream
(:func:`~dwancodec.commands.files.encode_file`), on the engine ``--backend`` names."""

from __future__ import annotations

import argparse
import sys
import time

from .common import choose_n_q, engine_from_args, engine_label, notifier
from .files import STDIO, encode_file


def run_encode(args: argparse.Namespace) -> int:
    note = notifier(args)
    engine = engine_from_args(args, note, purpose="files")  # block graphs if any
    n_q = choose_n_q(engine, args.n_q, args.bitrate, coded=not args.fixed_rate)
    t0 = time.perf_counter()
    h = encode_file(engine, args.input, args.output, n_q, note, not args.quiet,
                    entropy=not args.fixed_rate)
    dt = time.perf_counter() - t0
    if not args.quiet:
        size = h.file_size
        name = "stdout" if args.output == STDIO else args.output
        coding = (f"{h.packed_bitrate / 1000:.2f} kbps entropy-coded (fixed rate "
                  f"{h.bitrate / 1000:.2f})" if h.entropy else f"{h.bitrate / 1000:.2f} kbps")
        print(f"{name}: {h.num_frames} frames, {h.duration:.2f} s, n_q {h.n_q}/"
              f"{h.num_codebooks}, {coding}, {size} bytes "
              f"({size * 8 / max(h.duration, 1e-9) / 1000:.2f} kbps with header); "
              f"{dt:.2f} s ({dt / max(h.duration, 1e-9):.3f} x real time, "
              f"{engine_label(engine)})",
              file=sys.stderr if args.output == STDIO else sys.stdout)
    return 0
