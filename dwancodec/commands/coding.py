"""``dwancodec encode | decode | roundtrip | info | demo``: the user-facing codec.

Files of any length are processed with bounded memory: audio is read in blocks
(:func:`~dwancodec.audio.stream_audio`), resampled blockwise, pushed through the streaming
encoder, and the packed frames are written as they come (:class:`~dwancodec.bitstream.DwcWriter`);
decoding reads the (small) ``.dwc`` file, unpacks frames in blocks and writes audio blockwise.

The same functions are usable from Python: :func:`encode_file`, :func:`decode_file`,
:func:`stream_roundtrip`.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import math
import os
import shutil
import stat
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from ..audio import (
    AudioError,
    AudioWriter,
    Notify,
    WavStreamWriter,
    check_output_path,
    probe_audio,
    resampled_length,
    stream_audio,
)
from ..bitstream import (
    PACKET_OVERHEAD,
    DwcFile,
    DwcWriter,
    Header,
    PacketReceiver,
    PacketSender,
    read_dwc,
    read_dwc_from,
)
from ..bundled import demo_clip
from ..checks import check_sample_rate, check_threads
from ..engine import Engine, StreamingDecoder, StreamingEncoder, as_engine, open_engine
from ..engine import choose_n_q as engine_n_q

if TYPE_CHECKING:
    from ..model import Codec

STDIO = "-"                  # input / output path meaning standard input / output
BLOCK_SECONDS = 5.0          # audio read / decoded per block (bounds memory)
PROGRESS_MIN_SECONDS = 30.0  # files shorter than this get no progress bar
COMPARE_MAX_SECONDS = 600.0  # --compare keeps at most this much audio in memory


# Helpers ------------------------------------------------------------------------------------
def _notifier(args: argparse.Namespace) -> Notify:
    def note(msg: str) -> None:
        if not getattr(args, "quiet", False):
            print(f"dwancodec {args.command}: note: {msg}", file=sys.stderr)
    return note


def _set_threads(args: argparse.Namespace) -> None:
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    threads = check_threads(threads, "--threads")
    import torch

    torch.set_num_threads(threads)


def load_model(model: str | None, device: str = "cpu") -> Codec:
    """The bundle at ``model``, or the shipped default model (clear error if not installed)."""
    from ..api import default_model_dir, load_codec

    if model is None and not (default_model_dir() / "model.safetensors").exists():
        raise FileNotFoundError(
            f"the default model is not installed (expected a bundle at {default_model_dir()}); "
            "pass a model bundle folder with --model DIR"
        )
    if model is not None and not Path(model).exists():
        raise FileNotFoundError(f"no model bundle at {model}")
    return load_codec(model, device=device)


def choose_n_q(codec: Codec | Engine, n_q: int | None = None,
               bitrate_kbps: float | None = None) -> int:
    """Stages to use: ``n_q``, or the most that fit ``bitrate_kbps``, or all of them (the rule
    of :func:`dwancodec.engine.choose_n_q`, for a codec or an engine)."""
    n = getattr(codec, "encoder_n_q", None) or codec.num_codebooks
    return engine_n_q(n, codec.sample_rate / codec.hop_length, codec.codebook_size, n_q,
                      bitrate_kbps)


def engine_header(engine: Engine, n_q: int | None = None, source_rate: int = 0) -> Header:
    """:meth:`Header.for_codec` for an engine (torch or ONNX Runtime), 0 frames."""
    q = getattr(engine, "quantizer", {}) or {}
    kind = str(q.get("kind", "fsq"))
    return Header(
        model=engine.identity, sample_rate=int(engine.sample_rate),
        hop_length=int(engine.hop_length),
        n_q=int(engine.num_codebooks if n_q is None else n_q),
        num_codebooks=int(engine.num_codebooks), codebook_size=int(engine.codebook_size),
        kind=kind, levels=tuple(int(v) for v in q.get("levels") or ()) if kind == "fsq" else (),
        source_rate=int(source_rate),
    )


def output_kind(path: str | Path) -> str:
    """How an output is written: ``"stdout"`` (``-``), ``"file"`` (a regular file or a new
    one: written beside it and renamed into place) or ``"stream"`` (a FIFO or a character
    device such as ``/dev/null``: written in place, never replaced). Anything else (a folder,
    a block device, a socket, a broken link) is refused with a message naming it."""
    if str(path) == STDIO:
        return "stdout"
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        if p.is_symlink():
            raise ValueError(f"cannot write {p}: it is a broken symbolic link") from None
        return "file"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return "stream"
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"cannot write {p}: it is a directory")
    kind = "block device" if stat.S_ISBLK(mode) else "socket" if stat.S_ISSOCK(mode) else \
        "special file"
    raise ValueError(f"cannot write {p}: it is a {kind}; dwancodec writes regular files, "
                     "FIFOs, character devices such as /dev/null, or - (standard output)")


def _write_error(p: str | Path, e: OSError) -> OSError | ValueError:
    """A one-line user error naming ``p`` (the path the user gave) for an OSError."""
    reason = e.strerror or str(e)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionError(f"cannot write {p}: {reason}")
    return ValueError(f"cannot write {p}: {reason}")


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same extension); move it into place on success,
    delete it on failure, so an interrupted run never leaves a half-written output. Only for
    regular files (see :func:`output_kind`): a symbolic link keeps pointing at its (replaced)
    target, and errors name ``path``, never the temporary file."""
    p = Path(path)
    if output_kind(p) != "file":
        raise ValueError(f"cannot write {p}: not a regular file (a FIFO, device or -)")
    real = Path(os.path.realpath(p))
    if not real.parent.is_dir():
        raise FileNotFoundError(f"cannot write {p}: folder {p.parent} does not exist")
    if real.exists() and not os.access(real, os.W_OK):
        raise PermissionError(f"cannot write {p}: the file is read-only")
    tmp = real.with_name(f".{real.stem}.{os.getpid()}.partial{real.suffix}")
    try:
        try:
            tmp.open("wb").close()
        except OSError as e:
            raise _write_error(p, e) from None
        try:
            yield tmp
            os.replace(tmp, real)
        except OSError as e:
            if getattr(e, "filename", None) == str(tmp) or str(tmp) in str(e) or e.errno in (
                    errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO):
                raise _write_error(p, e) from None
            raise
        except ValueError as e:
            if str(tmp) in str(e):
                raise type(e)(str(e).replace(str(tmp), str(p))) from None
            raise
    finally:
        if tmp.exists():
            tmp.unlink()


def _open_stream(path: str | Path) -> BinaryIO:
    """stdout (``-``) or a FIFO / character device opened for writing in place."""
    if str(path) == STDIO:
        return sys.stdout.buffer
    try:
        return open(path, "wb")  # closed by the caller
    except OSError as e:
        raise _write_error(path, e) from None


@contextmanager
def _stream_errors(path: str | Path) -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise ValueError(f"cannot write {'stdout' if str(path) == STDIO else path}: the "
                         "reader closed it (broken pipe)") from None
    except OSError as e:
        raise _write_error("stdout" if str(path) == STDIO else path, e) from None


@contextmanager
def _spooled_stdin() -> Iterator[BinaryIO]:
    """Standard input copied to an anonymous temporary file (audio readers need to seek)."""
    with tempfile.TemporaryFile() as f:
        shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        f.seek(0)
        yield f


def _same_file(a: str | Path, b: str | Path) -> bool:
    if STDIO in (str(a), str(b)):
        return False
    pa, pb = Path(a), Path(b)
    return pa.exists() and pb.exists() and pa.samefile(pb)


class _Progress:
    """A tqdm bar on stderr in seconds of audio (no-op when disabled)."""

    def __init__(self, total_s: float, desc: str, enabled: bool) -> None:
        self.bar = None
        if enabled and total_s >= PROGRESS_MIN_SECONDS:
            from tqdm import tqdm

            self.bar = tqdm(total=round(total_s, 1), desc=desc, unit="s", file=sys.stderr,
                            mininterval=0.5, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio "
                                       "[{elapsed}<{remaining}]")

    def update(self, seconds: float) -> None:
        if self.bar is not None:
            self.bar.update(seconds)

    def close(self, done: bool = True) -> None:
        """Close the bar; at 100 % only when the work is ``done`` (not on an error)."""
        if self.bar is not None:
            if done:
                self.bar.n = self.bar.total
                self.bar.refresh()
            else:
                self.bar.leave = False
            self.bar.close()
            self.bar = None


# Python API -----------------------------------------------------------------------------------
def encode_file(codec: Codec, input_path: str | Path, output_path: str | Path,
                n_q: int | None = None, notify: Notify | None = None,
                progress: bool = False) -> Header:
    """Encode an audio file to ``.dwc`` through the streaming encoder, blockwise.

    ``input_path`` / ``output_path`` may be ``-`` (standard input / output); an output that is
    a FIFO or a character device is written in place, a regular one atomically. Returns the
    final header. The codes equal ``codec.encode(load_audio(input, sr), n_q)``.
    """
    n_q = choose_n_q(codec, n_q)
    if _same_file(input_path, output_path):
        raise ValueError(f"output {output_path} would overwrite the input")
    kind = output_kind(output_path)
    if str(input_path) == STDIO:
        with _spooled_stdin() as f:
            return _encode(codec, f, "stdin", output_path, kind, n_q, notify, progress)
    return _encode(codec, input_path, None, output_path, kind, n_q, notify, progress)


def _encode(codec: Codec, source: str | Path | BinaryIO, name: str | None,
            output_path: str | Path, kind: str, n_q: int, notify: Notify | None,
            progress: bool) -> Header:
    import torch

    from ..streaming.session import StreamingEncoder

    info = probe_audio(source, name)
    enc = StreamingEncoder(codec, 1, n_q)
    template = Header.for_codec(codec, n_q, source_rate=info.sample_rate)

    def write(f: BinaryIO) -> Header:
        writer = DwcWriter(f, template)
        length = 0
        bar = _Progress(info.duration, "encode", progress)
        done = False
        try:
            for block, consumed in stream_audio(source, codec.sample_rate, BLOCK_SECONDS,
                                                notify, name):
                length += block.size
                writer.write(enc.push(torch.from_numpy(block)[None])[0].cpu().numpy())
                bar.update(consumed / info.sample_rate)
            if length == 0:
                raise AudioError(f"{info.label} contains no audio samples")
            writer.write(enc.flush()[0].cpu().numpy())
            header = writer.finish(length)
            done = True
        finally:
            bar.close(done)
        return header

    if kind == "file":
        with atomic_output(output_path) as tmp, open(tmp, "wb") as f:
            return write(f)
    buf = io.BytesIO()  # the header is rewritten at the end: a pipe gets the finished file
    header = write(buf)
    with _stream_errors(output_path):
        out = _open_stream(output_path)
        try:
            out.write(buf.getvalue())
            out.flush()
        finally:
            if out is not sys.stdout.buffer:
                out.close()
    return header


def read_dwc_input(input_path: str | Path) -> DwcFile:
    """A verified ``.dwc`` file from a path, or from standard input for ``-``."""
    if str(input_path) == STDIO:
        return read_dwc_from(sys.stdin.buffer, "stdin")
    return read_dwc(input_path)


def decode_file(codec: Codec, input_path: str | Path, output_path: str | Path,
                sample_rate: int | None = None, progress: bool = False) -> Header:
    """Decode a ``.dwc`` file to audio (the original length), blockwise; returns its header.

    ``input_path`` / ``output_path`` may be ``-`` (standard input / output). Standard output,
    a FIFO or a character device gets 16-bit WAV (the extension, if any, must be ``.wav``),
    written in place; a regular file is written atomically, in the format of its extension.
    """
    import torch

    from ..streaming.session import StreamingDecoder

    if sample_rate is not None:
        sample_rate = check_sample_rate(sample_rate, "--sample-rate")
    kind = output_kind(output_path)
    if kind == "file":
        check_output_path(output_path)
    elif Path(str(output_path)).suffix.lower() not in ("", ".wav"):
        raise AudioError(f"cannot write {output_path}: a pipe or device gets WAV only (use "
                         "a .wav name or none)")
    dwc = read_dwc_input(input_path)
    h = dwc.header
    h.check_model(codec)
    dec = StreamingDecoder(codec, 1)
    block_frames = max(1, int(BLOCK_SECONDS * h.frame_rate))
    remaining = h.length
    out_rate = sample_rate or h.sample_rate

    def run(w: AudioWriter | WavStreamWriter) -> None:
        nonlocal remaining
        bar = _Progress(h.duration, "decode", progress)
        done = False
        try:
            for codes in dwc.iter_codes(block_frames):
                pcm = dec.push(torch.from_numpy(codes)[None])[0].cpu().numpy()[:remaining]
                remaining -= pcm.size
                w.write(pcm)
                bar.update(pcm.size / h.sample_rate)
            done = True
        finally:
            bar.close(done)

    if kind == "file":
        with atomic_output(output_path) as tmp, AudioWriter(tmp, h.sample_rate,
                                                             sample_rate) as w:
            run(w)
        return h
    with _stream_errors(output_path):
        out = _open_stream(output_path)
        try:
            with WavStreamWriter(out, h.sample_rate, out_rate,
                                 resampled_length(h.length, h.sample_rate, out_rate)) as ws:
                run(ws)
        finally:
            if out is not sys.stdout.buffer:
                out.close()
    return h


def _np(x: Any) -> np.ndarray:
    """A session result (numpy, or a torch tensor of the torch engine) as numpy."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of arrays into pieces of exactly ``size`` (the last may be shorter)."""
    buf = np.zeros(0, np.float32)
    for b in blocks:
        buf = np.concatenate([buf, b]) if buf.size else b
        n = buf.size // size * size
        for s in range(0, n, size):
            yield buf[s: s + size]
        buf = buf[n:]
    if buf.size:
        yield buf


@dataclass
class RoundtripResult:
    """Figures from :func:`stream_roundtrip`. ``rtf`` = compute seconds / audio seconds."""

    n_q: int
    num_samples: int
    num_frames: int
    sample_rate: int
    bitrate_bps: float
    packed_bitrate_bps: float
    packet_bitrate_bps: float
    latency_ms: float
    compute_s: float
    cpu_s: float
    wall_s: float
    packets: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    @property
    def rtf(self) -> float:
        """Wall-clock compute time / audio time (< 1: faster than real time)."""
        return self.compute_s / max(self.duration, 1e-9)

    @property
    def cpu_rtf(self) -> float:
        """Process CPU time / audio time (less sensitive to a busy machine than :attr:`rtf`)."""
        return self.cpu_s / max(self.duration, 1e-9)


def stream_roundtrip(codec: Codec | Engine, blocks: Iterable[np.ndarray], n_q: int | None = None,
                     chunk_samples: int | None = None,
                     on_audio: Callable[[np.ndarray], None] | None = None,
                     on_codes: Callable[[np.ndarray], None] | None = None,
                     on_input: Callable[[np.ndarray], None] | None = None) -> RoundtripResult:
    """Live-path simulation: audio chunks -> StreamingEncoder -> packets (one per frame) ->
    PacketReceiver -> StreamingDecoder -> audio, as a sender and receiver would run it (the
    frames that arrive for one input chunk go to the decoder in one call).

    ``codec``: a torch :class:`~dwancodec.model.Codec` or any :class:`~dwancodec.engine.Engine`
    (ONNX Runtime: the CLI default). ``blocks``: mono float32 arrays at ``codec.sample_rate``;
    ``chunk_samples``: size of the
    pieces pushed into the encoder (default one hop). ``on_audio`` receives the decoded audio
    (trimmed to the input length), ``on_codes`` the codes ``[n_q, f]`` as they come out of the
    receiver, ``on_input`` the input chunks.
    """
    engine = as_engine(codec)
    n_q = choose_n_q(engine, n_q)
    chunk = chunk_samples or engine.hop_length
    if chunk < 1:
        raise ValueError(f"chunk size must be at least 1 sample, got {chunk}")
    enc, dec = StreamingEncoder(engine, 1, n_q), StreamingDecoder(engine, 1)
    sender = PacketSender(engine.codebook_size, frames_per_packet=1)
    receiver = PacketReceiver(engine.codebook_size, engine.num_codebooks)
    length = frames = emitted = packet_bytes = sent = 0
    compute = cpu = 0.0
    t_wall = time.perf_counter()

    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def spent(t0: tuple[float, float]) -> None:
        nonlocal compute, cpu
        compute += time.perf_counter() - t0[0]
        cpu += time.process_time() - t0[1]

    def through(codes: Any) -> None:
        """Sender -> packets -> receiver -> one decoder call for the frames that arrived."""
        nonlocal frames, emitted, packet_bytes, sent
        t0 = clock()
        packets = sender.push(_np(codes[0]))
        arrived = []
        for pkt in packets:
            got = receiver.receive(pkt)
            if got.codes is None or got.status != "ok":  # cannot happen on a lossless link
                raise RuntimeError(f"packet {got.seq}: {got.status} {got.error or ''}")
            arrived.append(got.codes)
        if not arrived:
            spent(t0)
            return
        got_codes = np.concatenate(arrived, axis=1)
        pcm = _np(dec.push(got_codes[None])[0])
        spent(t0)
        sent += len(packets)
        packet_bytes += sum(len(p) for p in packets)
        frames += got_codes.shape[1]
        if on_codes is not None:
            on_codes(got_codes)
        pcm = pcm[: max(0, length - emitted)]
        emitted += pcm.size
        if on_audio is not None and pcm.size:
            on_audio(pcm)

    for piece in _rechunk(blocks, chunk):
        length += piece.size
        if on_input is not None:
            on_input(piece)
        t0 = clock()
        codes = enc.push(np.ascontiguousarray(piece)[None])
        spent(t0)
        through(codes)
    if length == 0:
        raise AudioError("the input contains no audio samples")
    t0 = clock()
    codes = enc.flush()
    spent(t0)
    through(codes)
    duration = length / engine.sample_rate
    h = engine_header(engine, n_q)
    s = receiver.stats
    return RoundtripResult(
        n_q=n_q, num_samples=length, num_frames=frames, sample_rate=engine.sample_rate,
        bitrate_bps=h.bitrate, packed_bitrate_bps=h.packed_bitrate,
        packet_bitrate_bps=packet_bytes * 8 / duration, latency_ms=engine.latency_ms,
        compute_s=compute, cpu_s=cpu, wall_s=time.perf_counter() - t_wall,
        packets={"sent": sent, "received": s.received,
                 "lost": s.lost, "reordered": s.reordered, "corrupt": s.corrupt},
    )


SCORES = (("pesq_wb", "pesq", "PESQ-WB"), ("stoi", "pystoi", "STOI"))  # optional packages


def available_scores() -> list[str]:
    """The optional scores whose package can be imported (``pesq_wb``, ``stoi``)."""
    out = []
    for name, module, _ in SCORES:
        try:
            import_module(module)
        except ImportError:
            continue
        out.append(name)
    return out


def _missing_scores_note(note: Notify) -> None:
    missing = [(label, module) for name, module, label in SCORES
               if name not in available_scores()]
    if missing:
        note(f"{' and '.join(lbl for lbl, _ in missing)} left out: "
             f"{', '.join(m for _, m in missing)} not installed (pip install "
             "'dwancodec[all]')")


def _scores(ref: np.ndarray, est: np.ndarray, sr: int, note: Notify) -> dict[str, float]:
    """SI-SDR and mel distance, plus PESQ-WB and STOI when their packages are installed (left
    out otherwise: never a ``nan`` for a missing package)."""
    from .. import metrics

    out = {"si_sdr": metrics.si_sdr(ref, est), "mel_distance": metrics.mel_distance(ref, est, sr)}
    for name, fn in (("pesq_wb", metrics.pesq_wb), ("stoi", metrics.stoi)):
        if name not in available_scores():
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out[name] = fn(ref, est, sr)
        for w in caught:
            note(str(w.message))
    return out


def _fmt(value: float | None, spec: str, width: int = 0) -> str:
    """A score, or ``n/a`` (right-aligned to ``width``) when it could not be computed."""
    text = format(value, spec) if value is not None and math.isfinite(value) else "n/a"
    return text.rjust(width)


# Handlers -------------------------------------------------------------------------------------
def run_encode(args: argparse.Namespace) -> int:
    _set_threads(args)
    codec = load_model(args.model, args.device)
    n_q = choose_n_q(codec, args.n_q, args.bitrate)
    t0 = time.perf_counter()
    h = encode_file(codec, args.input, args.output, n_q, _notifier(args), not args.quiet)
    dt = time.perf_counter() - t0
    if not args.quiet:
        size = h.file_size
        name = "stdout" if args.output == STDIO else args.output
        print(f"{name}: {h.num_frames} frames, {h.duration:.2f} s, n_q {h.n_q}/"
              f"{h.num_codebooks}, {h.bitrate / 1000:.2f} kbps, {size} bytes "
              f"({size * 8 / max(h.duration, 1e-9) / 1000:.2f} kbps with header); "
              f"{dt:.2f} s ({dt / max(h.duration, 1e-9):.3f} x real time)",
              file=sys.stderr if args.output == STDIO else sys.stdout)
    return 0


def run_decode(args: argparse.Namespace) -> int:
    _set_threads(args)
    codec = load_model(args.model, args.device)
    t0 = time.perf_counter()
    h = decode_file(codec, args.input, args.output, getattr(args, "sample_rate", None),
                    not args.quiet)
    dt = time.perf_counter() - t0
    if not args.quiet:
        rate = getattr(args, "sample_rate", None) or h.sample_rate
        name = "stdout" if args.output == STDIO else args.output
        print(f"{name}: {h.duration:.2f} s at {rate} Hz from {h.num_frames} frames "
              f"(n_q {h.n_q}, {h.bitrate / 1000:.2f} kbps); {dt:.2f} s "
              f"({dt / max(h.duration, 1e-9):.3f} x real time)",
              file=sys.stderr if args.output == STDIO else sys.stdout)
    return 0


def run_roundtrip(args: argparse.Namespace) -> int:
    note = _notifier(args)
    codec = _open_engine(args, note)
    n_q = choose_n_q(codec, args.n_q, args.bitrate)
    if not math.isfinite(args.chunk_ms) or args.chunk_ms <= 0:
        raise ValueError(f"--chunk-ms must be positive, got {args.chunk_ms}")
    chunk = max(1, round(args.chunk_ms * codec.sample_rate / 1000))
    info = probe_audio(args.input)
    if _same_file(args.input, args.output):
        raise ValueError(f"output {args.output} would overwrite the input")
    if output_kind(args.output) != "file":
        raise ValueError(f"cannot write {args.output}: roundtrip writes a regular file (use "
                         "decode for a pipe or device)")
    check_output_path(args.output)
    keep = int(COMPARE_MAX_SECONDS * codec.sample_rate) if args.compare else 0
    ref: list[np.ndarray] = []
    est: list[np.ndarray] = []
    held = [0, 0]

    def keep_ref(x: np.ndarray) -> None:
        if held[0] < keep:
            ref.append(x[: keep - held[0]].copy())
            held[0] += ref[-1].size

    bar = _Progress(info.duration, "roundtrip", not args.quiet)
    done = False
    with atomic_output(args.output) as tmp, AudioWriter(tmp, codec.sample_rate) as w:
        def on_audio(y: np.ndarray) -> None:
            w.write(y)
            bar.update(y.size / codec.sample_rate)
            if held[1] < keep:
                est.append(y[: keep - held[1]].copy())
                held[1] += est[-1].size

        blocks = (b for b, _ in stream_audio(args.input, codec.sample_rate, BLOCK_SECONDS,
                                             note))
        try:
            r = stream_roundtrip(codec, blocks, n_q, chunk, on_audio=on_audio,
                                 on_input=keep_ref if keep else None)
            done = True
        finally:
            bar.close(done)
    lines = {
        "input": f"{args.input} ({r.duration:.2f} s, {info.sample_rate} Hz, "
                 f"{info.channels} ch)",
        "model": f"{codec.identity} ({codec.sample_rate} Hz, hop {codec.hop_length})",
        "engine": _engine_line(codec, args),
        "bitrate": f"{r.bitrate_bps / 1000:.3f} kbps (n_q {n_q} of {codec.num_codebooks}); "
                   f"packed {r.packed_bitrate_bps / 1000:.3f} kbps; "
                   f"{r.packet_bitrate_bps / 1000:.3f} kbps as 1-frame packets "
                   f"(+{PACKET_OVERHEAD} bytes each)",
        "latency": f"{r.latency_ms:.1f} ms algorithmic (one {codec.hop_length}-sample frame); "
                   f"chunks of {chunk} samples ({1000 * chunk / codec.sample_rate:.1f} ms)",
        "speed": f"real-time factor {r.rtf:.4f} ({_speed(r.rtf)}); CPU-time RTF "
                 f"{r.cpu_rtf:.4f}; {r.compute_s:.2f} s compute, {r.wall_s:.2f} s wall, "
                 f"{_engine_threads(codec, args)} {_engine_label(codec)} thread(s)",
        "output": str(args.output),
    }
    if args.compare:
        if held[0] < r.num_samples:
            note(f"--compare scores the first {COMPARE_MAX_SECONDS:.0f} s only")
        scores = _scores(np.concatenate(ref), np.concatenate(est), codec.sample_rate, note)
        _missing_scores_note(note)
        parts = [f"{label} {_fmt(scores[name], '.3f')}" for name, _, label in SCORES
                 if name in scores]
        lines["scores"] = ", ".join([*parts, f"SI-SDR {_fmt(scores['si_sdr'], '.2f')} dB",
                                     f"mel distance {_fmt(scores['mel_distance'], '.3f')}"])
    if not args.quiet or args.compare:
        for k, v in lines.items():
            print(f"{k + ':':9s} {v}")
    return 0


def _open_engine(args: argparse.Namespace, note: Notify) -> Engine:
    """The engine ``--backend`` names (``auto``: ONNX Runtime when the model has graphs; a
    note says why it fell back to torch), with ``--threads`` threads."""
    threads = check_threads(getattr(args, "threads", 1) or 1, "--threads")
    engine, why = open_engine(getattr(args, "backend", None) or "auto", args.model, None,
                              getattr(args, "device", "cpu") or "cpu", threads)
    if why is not None:
        note(f"torch engine: {why}")
    return engine


def _engine_label(engine: Engine) -> str:
    return "ONNX Runtime" if engine.name == "onnx" else "torch"


def _engine_threads(engine: Engine, args: argparse.Namespace) -> int:
    return _threads() if engine.name == "torch" else int(getattr(args, "threads", 1) or 1)


def _engine_line(engine: Engine, args: argparse.Namespace) -> str:
    other = "torch" if engine.name == "onnx" else "onnx"
    return (f"{_engine_label(engine)} ({engine.name}), {_engine_threads(engine, args)} "
            f"thread(s); --backend {other} for the other")


def _speed(rtf: float) -> str:
    if rtf <= 0:
        return "instant"
    return f"{1 / rtf:.1f}x faster than real time" if rtf < 1 else \
        f"{rtf:.1f}x slower than real time"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _config_summary(name: str) -> dict[str, Any]:
    from ..config import get_config
    from ..model import Codec

    codec = Codec(get_config(name))
    d = codec.describe()
    d["config"] = name
    return d


def _print_model(d: dict[str, Any]) -> None:
    params = d["params"]
    total = sum(params.values())
    rates = ", ".join(f"{r:g}" for r in d["bitrates_kbps"])
    for k, v in [
        ("name", d["name"]), ("identity", d.get("identity", "(a config only: no weights)")),
        ("sample rate", f"{d['sample_rate']} Hz"),
        ("hop", f"{d['hop_length']} samples ({d['frame_rate']:g} frames/s)"),
        ("latency", f"{d['latency_ms']:.1f} ms algorithmic ({d['latency_samples']} samples)"),
        ("head", f"{d['head']}; blind share {100 * d['blind_share']:.1f} % (output "
                 "extrapolated beyond the input seen)"),
        ("quantizer", f"{d['num_codebooks']} stages x {d['codebook_size']} codes"),
        ("bitrates", f"{rates} kbps (n_q = 1..{d['num_codebooks']})"),
        ("params", f"{total / 1e6:.3f} M (encoder {params['encoder'] / 1e6:.3f} M, quantizer "
                   f"{params['quantizer'] / 1e6:.3f} M, decoder {params['decoder'] / 1e6:.3f} M)"),
    ]:
        print(f"{k + ':':13s} {v}")


def run_info(args: argparse.Namespace) -> int:
    if args.file is None and args.model is None and args.config is None:
        from ..config import named_configs

        rows = [_config_summary(n) for n in named_configs()]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'config':11s} {'rate':>6s} {'hop':>4s} {'latency':>8s} {'blind':>6s} "
              f"{'params':>8s} {'stages':>6s} {'kbps per stage':>14s} {'max kbps':>8s}")
        for d in rows:
            print(f"{d['config']:11s} {d['sample_rate']:6d} {d['hop_length']:4d} "
                  f"{d['latency_ms']:6.1f}ms {100 * d['blind_share']:5.1f}% "
                  f"{sum(d['params'].values()) / 1e6:7.3f}M "
                  f"{d['num_codebooks']:6d} {d['bitrates_kbps'][0]:14.3f} "
                  f"{d['bitrates_kbps'][-1]:8.3f}")
        return 0
    out: dict[str, Any] = {}
    if args.file is not None:
        dwc = read_dwc_input(args.file)  # verifies checksums, padding and every frame
        d = dwc.header.describe()
        size = dwc.header.file_size
        d["file_bitrate_bps"] = size * 8 / d["duration_s"] if d["duration_s"] else 0.0
        d["checksum"] = "ok"
        d["frames_valid"] = True
        out["file"] = d
    codec = None
    if args.model is not None:
        codec = load_model(args.model)
        d = codec.describe()
        d["identity"] = codec.identity()
        out["model"] = d
    if args.config is not None:
        out["config"] = _config_summary(args.config)
    if codec is not None and args.file is not None:
        dwc.header.check_model(codec)
        out["file"]["model_matches"] = True
    if args.json:
        print(json.dumps(out if len(out) > 1 else next(iter(out.values())), indent=2))
        return 0
    if "file" in out:
        d = out["file"]
        print(f"{args.file}: dwancodec bitstream, format version {d['format_version']}")
        for k, v in [
            ("model", d["model"] + ("  (matches --model)" if d.get("model_matches") else "")),
            ("sample rate", f"{d['sample_rate']} Hz (source {d['source_rate']} Hz)"),
            ("frames", f"{d['num_frames']} x {d['hop_length']} samples "
                       f"({d['frame_rate']:g} frames/s)"),
            ("duration", f"{d['duration_s']:.3f} s ({d['length_samples']} samples)"),
            ("quantizer", f"{d['quantizer']} {tuple(d['levels']) or ''} "
                          f"K={d['codebook_size']}, n_q {d['n_q']} of {d['num_codebooks']}"),
            ("bitrate", f"{d['bitrate_bps'] / 1000:.3f} kbps (codes); packed "
                        f"{d['frame_bits']} bits/frame = {d['packed_bitrate_bps'] / 1000:.3f} "
                        f"kbps; file {d['file_bitrate_bps'] / 1000:.3f} kbps"),
            ("size", f"{d['file_bytes']} bytes (header {d['header_bytes']}, payload "
                     f"{d['payload_bytes']}, checksum 4)"),
            ("checksum", f"{d['checksum']} (header and payload CRC32; every frame holds a "
                         "valid code combination)"),
        ]:
            print(f"  {k + ':':12s} {v}")
    if "model" in out:
        print(f"model bundle {args.model}:")
        _print_model(out["model"])
    if "config" in out:
        print(f"config {args.config}:")
        _print_model(out["config"])
    return 0


def run_demo(args: argparse.Namespace) -> int:
    note = _notifier(args)
    source = Path(args.input) if args.input else demo_clip()
    codec = _open_engine(args, note)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir} exists and is not a folder")
    audio = np.concatenate([b for b, _ in stream_audio(source, codec.sample_rate, BLOCK_SECONDS,
                                                      note)] or [np.zeros(0, np.float32)])
    if audio.size == 0:
        raise AudioError(f"{source} contains no audio samples")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = source.stem
    with AudioWriter(out_dir / f"{stem}_original.wav", codec.sample_rate) as w:
        w.write(audio)
    sr = codec.sample_rate
    chunk = codec.hop_length * max(1, round(0.02 * sr / codec.hop_length))  # ~20 ms
    print(f"dwancodec demo: {source.name} ({audio.size / sr:.2f} s) through {codec.identity} "
          f"on the {_engine_label(codec)} engine, streamed in {1000 * chunk / sr:.0f} ms chunks")
    scored = available_scores()
    _missing_scores_note(note)
    print(f"{'n_q':>3s} {'kbps':>6s} {'.dwc bytes':>10s} {'latency':>8s} {'RTF':>7s} "
          f"{'CPU RTF':>7s} " + ("PESQ-WB " if "pesq_wb" in scored else "")
          + ("STOI  " if "stoi" in scored else "") + f"{'SI-SDR':>7s}  file")
    codes: list[np.ndarray] = []
    for n_q in range(1, codec.encoder_n_q + 1):
        name = f"{stem}_{codec.bitrate(n_q) / 1000:.2f}kbps_nq{n_q}"
        decoded: list[np.ndarray] = []
        codes = []
        r = stream_roundtrip(codec, [audio], n_q, chunk, on_audio=decoded.append,
                             on_codes=codes.append)
        y = np.concatenate(decoded)
        with AudioWriter(out_dir / f"{name}.wav", sr) as w:
            w.write(y)
        with (out_dir / f"{name}.dwc").open("wb") as f:
            dw = DwcWriter(f, engine_header(codec, n_q, source_rate=sr))
            for c in codes:
                dw.write(c)
            dw.finish(audio.size)
        size = (out_dir / f"{name}.dwc").stat().st_size
        s = _scores(audio, y, sr, note if n_q == 1 else (lambda m: None))
        cols = (_fmt(s["pesq_wb"], ".3f", 7) + " " if "pesq_wb" in s else "") + \
            (_fmt(s["stoi"], ".3f", 5) + " " if "stoi" in s else "")
        print(f"{n_q:3d} {r.bitrate_bps / 1000:6.2f} {size:10d} {r.latency_ms:6.1f}ms "
              f"{r.rtf:7.4f} {r.cpu_rtf:7.4f} {cols}{_fmt(s['si_sdr'], '.2f', 7)}  "
              f"{out_dir / name}.wav")
    print(f"decoded files and .dwc bitstreams are in {out_dir}/ (RTF: wall-clock compute time / "
          f"audio time with {_engine_threads(codec, args)} {_engine_label(codec)} thread(s), "
          "< 1 is faster than real time; CPU RTF: the same with process CPU time; latency: "
          "algorithmic)")
    # the last loop pass streamed every stage: the other engine on the same clip, same codes?
    _demo_other_line(codec, args, audio, chunk, np.concatenate(codes, axis=-1), note)
    return 0


def _demo_other_line(engine: Engine, args: argparse.Namespace, audio: np.ndarray, chunk: int,
                     ref_codes: np.ndarray, note: Notify) -> None:
    """The same clip through the other engine (torch after ONNX Runtime, or the reverse), all
    stages: its speed, and how many codes agree with ``ref_codes`` (``[N, frames]``, the
    stream of every stage on ``engine``). A note says why when it cannot run."""
    other = "torch" if engine.name == "onnx" else "onnx"
    threads = _engine_threads(engine, args)
    try:
        alt, _ = open_engine(other, args.model, None, getattr(args, "device", "cpu") or "cpu",
                             threads)
    except (ValueError, FileNotFoundError, ImportError) as e:
        note(f"the {'torch' if other == 'torch' else 'ONNX Runtime'} path was not run: {e}")
        return
    if alt.identity != engine.identity:
        note(f"the {_engine_label(alt)} path was not run: it holds {alt.identity}, not "
             f"{engine.identity}")
        return
    enc, dec = StreamingEncoder(alt, 1), StreamingDecoder(alt, 1)
    codes: list[np.ndarray] = []
    t0 = time.perf_counter()
    for i in range(0, audio.size, chunk):
        c = _np(enc.push(audio[None, i:i + chunk]))
        codes.append(c)
        dec.push(c)
    codes.append(_np(enc.flush()))
    rtf = (time.perf_counter() - t0) / (audio.size / engine.sample_rate)
    got = np.concatenate(codes, -1)[0]
    frames = min(got.shape[-1], ref_codes.shape[-1])
    same = float((got[:, :frames] == ref_codes[:, :frames]).mean()) if frames else 1.0
    label = "ONNX Runtime path (torch-free" if other == "onnx" else "torch path (--backend torch"
    print(f"{label}, {_engine_threads(alt, args)} thread(s), all {alt.encoder_n_q} stages, "
          f"{1000 * chunk / engine.sample_rate:.0f} ms chunks): RTF {rtf:.4f} "
          f"({1 / max(rtf, 1e-9):.0f}x faster than real time); {100 * same:.2f} % of codes "
          f"equal to the {_engine_label(engine)} engine's")


__all__ = ["atomic_output", "available_scores", "choose_n_q", "decode_file", "encode_file",
           "engine_header", "load_model", "output_kind", "read_dwc_input", "stream_roundtrip"]
