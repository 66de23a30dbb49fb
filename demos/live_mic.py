"""Hear yourself through the codec: microphone -> encoder -> codes -> decoder -> speaker.

    python demos/live_mic.py [--model DIR] [--bitrate KBPS] [--seconds S]

The plain-API version of ``dwancodec live`` (which adds device choice, a simulated network,
concealment, measured latency and a status line). The shape of it:

- two sounddevice streams (input and output, not one duplex stream); their callbacks only
  move blocks through queues and never wait;
- one worker thread: resample the microphone to the model's rate (soxr, streaming), push it
  into a ``StreamingEncoder``, push the codes (what a sender would transmit) into a
  ``StreamingDecoder``, resample to the speaker's rate, queue for playback.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import threading
import time

import numpy as np
import sounddevice as sd
import soxr
import torch

from dwancodec import StreamingDecoder, StreamingEncoder, load_codec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model bundle (default: the shipped model)")
    ap.add_argument("--bitrate", type=float, default=None, help="kbps (default: all stages)")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()

    torch.set_num_threads(1)  # small per-block calls: one thread is faster and steadier
    codec = load_codec(args.model)
    n_q = codec.n_q_for_bitrate(args.bitrate) if args.bitrate else codec.num_codebooks
    enc, dec = StreamingEncoder(codec, n_q=n_q), StreamingDecoder(codec)
    rate_in = int(sd.query_devices(kind="input")["default_samplerate"])
    rate_out = int(sd.query_devices(kind="output")["default_samplerate"])
    down = soxr.ResampleStream(rate_in, codec.sample_rate, 1, dtype="float32", quality="LQ")
    up = soxr.ResampleStream(codec.sample_rate, rate_out, 1, dtype="float32", quality="LQ")
    print(f"{codec.bitrate(n_q) / 1000:.2f} kbps; mic {rate_in} Hz -> codec "
          f"{codec.sample_rate} Hz -> speaker {rate_out} Hz. Speak!")

    captured: queue.Queue[np.ndarray] = queue.Queue(maxsize=50)
    playback: queue.Queue[np.ndarray] = queue.Queue(maxsize=50)
    pending = np.zeros(0, np.float32)  # touched by the output callback only
    started = False
    counts = {"overruns": 0, "underruns": 0}

    def on_input(indata: np.ndarray, frames: int, t: object, status: object) -> None:
        try:
            captured.put_nowait(indata[:, 0].copy())
        except queue.Full:  # the worker is behind: drop the block
            counts["overruns"] += 1

    def on_output(outdata: np.ndarray, frames: int, t: object, status: object) -> None:
        nonlocal pending, started
        if not started and playback.qsize() < 3:  # start with ~60 ms buffered, not on empty
            outdata.fill(0)
            return
        started = True
        while len(pending) < frames and not playback.empty():
            pending = np.concatenate([pending, playback.get_nowait()])
        n = min(frames, len(pending))
        outdata[:n, 0] = pending[:n]
        outdata[n:] = 0  # not enough decoded audio: silence
        if n < frames:
            counts["underruns"] += 1
        pending = pending[n:]

    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                block = captured.get(timeout=0.1)
            except queue.Empty:
                continue
            codes = enc.push(down.resample_chunk(block)[None])  # [1, n_q, f]: the bitstream
            pcm = dec.push(codes)[0].numpy()                     # [f * hop]
            out = up.resample_chunk(pcm)
            if len(out):
                try:
                    playback.put_nowait(out)
                except queue.Full:
                    counts["overruns"] += 1

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    block_ms = 20
    speaker = sd.OutputStream(samplerate=rate_out, channels=1, dtype="float32",
                              blocksize=rate_out * block_ms // 1000, callback=on_output)
    mic = sd.InputStream(samplerate=rate_in, channels=1, dtype="float32",
                         blocksize=rate_in * block_ms // 1000, callback=on_input)
    with speaker, mic, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops early
        time.sleep(args.seconds)
    stop.set()
    thread.join()
    print(f"done: {counts['underruns']} underruns, {counts['overruns']} overruns")


if __name__ == "__main__":
    main()
