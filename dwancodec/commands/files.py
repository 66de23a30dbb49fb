"""The file API of the codec commands: ``.dwc`` in and out, audio in and out, pipes.

Files of any length are processed with bounded memory: audio is read in blocks
(:func:`~dwancodec.audio.stream_audio`), resampled blockwise, pushed through the streaming
encoder, and the frames are written as they come (:class:`~dwancodec.bitstream.DwcWriter`:
entropy-coded one block at a time where the model has entropy tables, else packed at a fixed
rate); decoding reads the (small) ``.dwc`` file, unpacks frames in blocks and writes audio
blockwise.
Outputs are written atomically (:func:`atomic_output`) or in place for a pipe or device
(:func:`output_kind`); ``-`` is standard input / output.

Both run on any engine (:mod:`dwancodec.engine`): a torch ``Codec``, an ``OnnxCodec`` (no
torch needed) or an :class:`~dwancodec.engine.Engine`, through the shared streaming sessions.

Usable from Python: :func:`encode_file`, :func:`decode_file`, :func:`read_dwc_input`.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

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
from ..bitstream import DwcFile, DwcWriter, Header, read_dwc, read_dwc_from
from ..checks import check_sample_rate
from ..engine import Engine, StreamingDecoder, StreamingEncoder, as_engine, entropy_tables
from .common import BLOCK_SECONDS, Progress, as_numpy, choose_n_q

if TYPE_CHECKING:
    from ..model import Codec
    from ..runtime import OnnxCodec

STDIO = "-"                  # input / output path meaning standard input / output


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


def same_file(a: str | Path, b: str | Path) -> bool:
    if STDIO in (str(a), str(b)):
        return False
    pa, pb = Path(a), Path(b)
    return pa.exists() and pb.exists() and pa.samefile(pb)


def file_engine(codec: Codec | OnnxCodec | Engine | str | Path) -> Engine:
    """The engine a whole file is coded on: an :class:`~dwancodec.runtime.OnnxCodec` (or an
    exported folder) codes it on its block graphs where its export has them
    (:meth:`~dwancodec.runtime.OnnxCodec.whole_signal_codec`: many frames per call, the same
    codes but at rounding ties); a torch ``Codec`` or an engine as given
    (:func:`~dwancodec.engine.as_engine`): an engine is what its caller chose to run."""
    if isinstance(codec, (str, Path)):
        from ..runtime import OnnxCodec

        codec = OnnxCodec(codec)
    whole = getattr(codec, "whole_signal_codec", None)
    return as_engine(whole() if callable(whole) else codec)


def encode_file(codec: Codec | OnnxCodec | Engine, input_path: str | Path, output_path: str | Path,
                n_q: int | None = None, notify: Notify | None = None,
                progress: bool = False, entropy: bool = True) -> Header:
    """Encode an audio file to ``.dwc`` through the streaming encoder, blockwise.

    ``codec``: a torch :class:`~dwancodec.model.Codec`, an
    :class:`~dwancodec.runtime.OnnxCodec` (coded on its block graphs where it has them,
    :func:`file_engine`) or any :class:`~dwancodec.engine.Engine`. ``input_path`` /
    ``output_path`` may be ``-`` (standard input / output); an output that is a FIFO or a
    character device is written in place, a regular one atomically. ``n_q``: stages (default
    all the encoder makes). Returns the final header (:meth:`Header.for_engine`: the model and
    codes identities). The codes ``[n_q, F]`` are the engine's streaming encoder's; for a
    torch ``Codec`` they equal ``codec.encode(load_audio(input, sr), n_q)``, and the engines
    (and step and block graphs) agree but at rounding ties.

    ``entropy``: write the codes entropy-coded (``.dwc`` format 3) with the model's entropy
    tables where it has them (:func:`~dwancodec.engine.entropy_tables`), as by default;
    ``False``, or a model without tables: packed at the fixed rate (format 2).
    """
    engine = file_engine(codec)
    n_q = choose_n_q(engine, n_q)
    if same_file(input_path, output_path):
        raise ValueError(f"output {output_path} would overwrite the input")
    kind = output_kind(output_path)
    if str(input_path) == STDIO:
        with _spooled_stdin() as f:
            return _encode(engine, f, "stdin", output_path, kind, n_q, notify, progress,
                           entropy)
    return _encode(engine, input_path, None, output_path, kind, n_q, notify, progress, entropy)


def _encode(engine: Engine, source: str | Path | BinaryIO, name: str | None,
            output_path: str | Path, kind: str, n_q: int, notify: Notify | None,
            progress: bool, entropy: bool) -> Header:
    info = probe_audio(source, name)
    enc = StreamingEncoder(engine, 1, n_q)
    template, tables = Header.for_file(engine, n_q, info.sample_rate, entropy)

    def write(f: BinaryIO) -> Header:
        writer = DwcWriter(f, template, tables)
        length = 0
        bar = Progress(info.duration, "encode", progress)
        done = False
        try:
            for block, consumed in stream_audio(source, engine.sample_rate, BLOCK_SECONDS,
                                                notify, name):
                length += block.size
                writer.write(as_numpy(enc.push(block[None]))[0])  # [n_q, f] for [1, n]
                bar.update(consumed / info.sample_rate)
            if length == 0:
                raise AudioError(f"{info.label} contains no audio samples")
            writer.write(as_numpy(enc.flush())[0])  # the last partial frame (step), padded
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


def decode_file(codec: Codec | OnnxCodec | Engine, input_path: str | Path, output_path: str | Path,
                sample_rate: int | None = None, progress: bool = False) -> Header:
    """Decode a ``.dwc`` file to audio (the original length), blockwise; returns its header.

    ``codec``: as in :func:`encode_file` (a torch ``Codec``, an ``OnnxCodec`` or an engine); it
    must decode the file (:meth:`Header.check_model`: the model that wrote it, or one of the
    same codes), else a ``ValueError`` and nothing is written. ``input_path`` /
    ``output_path`` may be ``-`` (standard input / output). Standard output, a FIFO or a
    character device gets 16-bit WAV (the extension, if any, must be ``.wav``), written in
    place; a regular file is written atomically, in the format of its extension, resampled to
    ``sample_rate`` (default: the model's).
    """
    engine = file_engine(codec)
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
    h.check_model(engine)  # before any output is opened: a refusal writes nothing
    dwc = dwc.with_tables(entropy_tables(engine))  # format 3: every block verified here
    dec = StreamingDecoder(engine, 1)
    block_frames = max(1, int(BLOCK_SECONDS * h.frame_rate))
    remaining = h.length
    out_rate = sample_rate or h.sample_rate

    def run(w: AudioWriter | WavStreamWriter) -> None:
        bar = Progress(h.duration, "decode", progress)
        done = False

        def emit(pcm: Any) -> None:  # [1, n] -> the first `remaining` samples
            nonlocal remaining
            y = as_numpy(pcm)[0, :remaining]
            remaining -= y.size
            w.write(y)
            bar.update(y.size / h.sample_rate)

        try:
            for codes in dwc.iter_codes(block_frames):  # [n_q, f]
                emit(dec.push(codes[None]))
            emit(dec.flush())  # frames an engine of k > 1 frames per step held back
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


__all__ = ["atomic_output", "decode_file", "encode_file", "file_engine", "output_kind",
           "read_dwc_input"]
