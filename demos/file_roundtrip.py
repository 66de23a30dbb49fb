"""Encode an audio file to codes and back, offline and streaming, with the plain Python API.

    python demos/file_roundtrip.py speech.wav decoded.wav [--model DIR] [--bitrate KBPS]

Shows: ``DwanCodec`` (files/arrays in, codes out, and back), and the streaming sessions
(``StreamingEncoder`` / ``StreamingDecoder``) fed 20 ms at a time, as a live sender and
receiver would use them; the two paths give the same codes and the same audio.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dwancodec import DwanCodec, StreamingDecoder, StreamingEncoder
from dwancodec.audio import load_audio, save_audio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--model", default=None, help="model bundle (default: the shipped model)")
    ap.add_argument("--bitrate", type=float, default=None, help="kbps (default: all stages)")
    args = ap.parse_args()

    torch.set_num_threads(1)  # small streaming calls: one thread is faster and steadier
    codec = DwanCodec(checkpoint_path=args.model)  # the default model when --model is None
    model = codec.model
    n_q = model.n_q_for_bitrate(args.bitrate) if args.bitrate else model.num_codebooks
    print(f"model {model.identity()}: {model.sample_rate} Hz, {model.frame_rate:g} frames/s, "
          f"{n_q} of {model.num_codebooks} stages = {model.bitrate(n_q) / 1000:.2f} kbps, "
          f"algorithmic latency {model.latency_ms:.1f} ms")

    # Offline: a whole file at once.
    codes = codec.encode(args.input, n_q=n_q)        # [1, n_q, frames] int64
    audio, rate = codec.decode(codes)                 # [1, frames * hop] float32
    print(f"offline:   {codes.shape[-1]} frames -> {audio.shape[-1] / rate:.2f} s of audio")

    # Streaming: 20 ms chunks in, codes out as soon as a frame is complete; codes in, audio out
    # at once (the decoder adds no latency).
    x, _ = load_audio(args.input, model.sample_rate)  # [T] float32 at the model's rate
    enc, dec = StreamingEncoder(model, n_q=n_q), StreamingDecoder(model)
    chunk = model.sample_rate // 50
    stream_codes, pieces = [], []
    for i in range(0, len(x), chunk):
        c = enc.push(x[i: i + chunk][None])           # [1, n_q, f], f >= 0
        stream_codes.append(c)
        pieces.append(dec.push(c))                    # [1, f * hop]
    c = enc.flush()                                   # the last partial frame, zero-padded
    stream_codes.append(c)
    pieces.append(dec.push(c))
    streamed = torch.cat(pieces, dim=-1)
    same_codes = torch.equal(torch.cat(stream_codes, dim=-1), codes)
    diff = (streamed - audio).abs().max().item()
    print(f"streaming: same codes as offline: {same_codes}; max audio difference {diff:.2e}")

    save_audio(args.output, audio[0, : len(x)].numpy().astype(np.float32), rate)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
