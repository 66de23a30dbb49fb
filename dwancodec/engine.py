"""One streaming interface over two engines: torch (:class:`~dwancodec.model.Codec`) and ONNX
Runtime (:class:`~dwancodec.runtime.OnnxCodec`).

An :class:`Engine` runs whole steps on explicit state for ``B`` independent streams:

- ``encode_step(audio [B, k * hop], state, n_q) -> (codes [B, n_q, k], state)``
- ``decode_step(codes [B, >= n_q, k], n_q, state) -> (audio [B, k * hop], state)``

with ``k = frames_per_step`` (or any whole number of frames where ``any_frames`` is true),
state from ``encoder_state(B)`` / ``decoder_state(B)``, and numpy arrays in and out of the
steps. :class:`StreamingEncoder` / :class:`StreamingDecoder` re-frame input of any length over
any engine, and give their results in the engine's own array type (``engine.output``: torch
tensors on the model's device for the torch engine, numpy for ONNX Runtime).

This module imports neither torch nor onnxruntime: :func:`as_engine` imports the engine a codec
needs (:class:`dwancodec.streaming.engine.TorchEngine` or
:class:`dwancodec.runtime.engine.OrtEngine`).

>>> enc = StreamingEncoder(codec, n_q=4)     # doctest: +SKIP
>>> codes = enc.push(pcm)                    # [1, 4, f] for the f frames pcm completes
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from . import lengths
from .bundled import SIDECAR
from .checks import check_batch_size, check_n_q

Streams = Sequence[int] | Sequence[bool] | np.ndarray | Any | None  # Any: a torch tensor
StateSpecs = dict[str, tuple[tuple[int, ...], str]]


@runtime_checkable
class Engine(Protocol):
    """A codec's streaming steps on explicit state, for a batch of independent streams.

    Geometry: ``sample_rate``, ``hop_length``, ``frames_per_step`` (``k``: frames per step
    call), ``any_frames`` (the steps also take any whole number of frames), ``num_codebooks``
    (``N``, stages the decoder accepts), ``encoder_n_q`` (stages the encoder makes, ``<= N``),
    ``codebook_size``, ``latent_dim``, ``latency_ms``, ``identity`` (``name@hash``),
    ``codes_identity`` (what the codes mean, ``Codec.codes_identity()``; ``""`` for graphs
    exported before it existed) and ``name`` (``"torch"`` or ``"onnx"``). Both engines also have
    ``compatible_identities``, the earlier models whose format-1 ``.dwc`` files the model
    decodes (:meth:`dwancodec.bitstream.Header.check_model`); an engine without it decodes
    only format-1 files it wrote itself, so it is not required here. Likewise
    ``entropy_tables`` (:class:`~dwancodec.bitstream.EntropyTables` or ``None``): the model's
    tables, with which files are written and read entropy-coded (:func:`entropy_tables`).

    State is whatever ``encoder_state`` / ``decoder_state`` return; a step may update it in
    place and returns the state to pass to the next step (the one passed in is then stale).
    Step outputs may be views that the next step on the same state overwrites: copy them to
    keep them.
    """

    name: str
    sample_rate: int
    hop_length: int
    frames_per_step: int
    any_frames: bool
    num_codebooks: int
    encoder_n_q: int
    codebook_size: int
    latent_dim: int
    latency_ms: float
    identity: str
    codes_identity: str

    def encoder_state_spec(self) -> StateSpecs:
        """Key -> (shape without the batch, dtype name) of each encoder state entry."""
        ...

    def decoder_state_spec(self) -> StateSpecs:
        """Key -> (shape without the batch, dtype name) of each decoder state entry."""
        ...

    def encoder_state(self, batch_size: int) -> Any:
        """Zero encoder state for ``batch_size`` streams."""
        ...

    def decoder_state(self, batch_size: int) -> Any:
        """Zero decoder state for ``batch_size`` streams."""
        ...

    def reset_state(self, state: Any, mask: np.ndarray) -> Any:
        """Zero the streams where ``mask`` (``[B]`` bool) is true; returns the state to use."""
        ...

    def state_arrays(self, state: Any) -> Mapping[str, Any]:
        """The state's entries, key -> ``[B, *shape]`` (read-only view)."""
        ...

    def encode_step(self, audio: np.ndarray, state: Any, n_q: int) -> tuple[np.ndarray, Any]:
        """Audio ``[B, k * hop]`` float32 + state -> codes ``[B, n_q, k]`` int64 + state."""
        ...

    def encode_step_latents(self, audio: np.ndarray, state: Any, n_q: int
                            ) -> tuple[np.ndarray, np.ndarray, Any]:
        """As :meth:`encode_step`, also giving the latents ``[B, latent_dim, k]`` float32."""
        ...

    def decode_step(self, codes: np.ndarray, n_q: int, state: Any) -> tuple[np.ndarray, Any]:
        """Codes ``[B, >= n_q, k]`` int64 (the first ``n_q`` stages are used) + state -> audio
        ``[B, k * hop]`` float32 + state."""
        ...

    def check_pcm(self, pcm: Any, batch_size: int) -> np.ndarray:
        """Session input -> float32 ``[B, n]`` (the rules of :func:`dwancodec.checks.check_pcm`)."""
        ...

    def check_codes(self, codes: Any, batch_size: int) -> np.ndarray:
        """Session input -> int64 ``[B, n_q, f]`` (:func:`dwancodec.checks.check_codes`)."""
        ...

    def stream_mask(self, streams: Streams, batch_size: int) -> np.ndarray:
        """``reset(streams)`` argument -> ``[B]`` bool (:func:`dwancodec.checks.stream_mask`)."""
        ...

    def output(self, array: np.ndarray) -> Any:
        """A session result in the engine's array type (numpy, or a torch tensor)."""
        ...

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second of the first ``n_q`` stages (all by default)."""
        ...

    def describe(self) -> str:
        """One line naming the engine and the model, e.g. ``onnx dwancodec-16k@c3d0...``."""
        ...


def as_engine(codec: Any) -> Engine:
    """An :class:`Engine` for ``codec``: an engine (returned as is), a torch
    :class:`~dwancodec.model.Codec`, an :class:`~dwancodec.runtime.OnnxCodec`, or the path of
    an exported ONNX folder. Torch is imported only for a torch codec."""
    if isinstance(codec, (str, Path)):
        from .runtime.engine import OrtEngine
        from .runtime.onnx_codec import OnnxCodec

        return OrtEngine(OnnxCodec(codec))
    if isinstance(codec, Engine):
        return codec
    if hasattr(codec, "encoder_runner") and hasattr(codec, "meta"):  # an OnnxCodec
        from .runtime.engine import OrtEngine

        return OrtEngine(codec)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(codec, torch.nn.Module):
        from .streaming.engine import TorchEngine

        return TorchEngine(codec)
    raise ValueError(f"expected a Codec, an OnnxCodec, an engine or an ONNX folder, got "
                     f"{type(codec).__name__}")


def entropy_tables(engine: Any) -> Any:
    """The entropy tables of ``engine`` (anything :func:`as_engine` takes), or ``None``."""
    return getattr(as_engine(engine), "entropy_tables", None)


def choose_n_q(num_codebooks: int, frame_rate: float, codebook_size: int,
               n_q: int | None = None, bitrate_kbps: float | None = None,
               stage_bits: Sequence[float] | None = None) -> int:
    """Stages to use: ``n_q`` (checked), else the most that fit ``bitrate_kbps`` (see
    :func:`dwancodec.lengths.n_q_for_bitrate`), else all ``num_codebooks``.

    >>> choose_n_q(8, 50.0, 15360), choose_n_q(8, 50.0, 15360, n_q=3)
    (8, 3)
    >>> choose_n_q(8, 50.0, 15360, bitrate_kbps=2.0)
    2
    """
    if n_q is not None:
        return check_n_q(n_q, num_codebooks)
    if bitrate_kbps is not None:
        return lengths.n_q_for_bitrate(bitrate_kbps, frame_rate, codebook_size, num_codebooks,
                                       stage_bits)
    return num_codebooks


class StreamingEncoder:
    """Push PCM ``[B, n]`` at the model rate; get codes ``[B, n_q, f]`` for each completed
    frame (or step of ``frames_per_step`` frames), over any :class:`Engine`.

    ``codec``: a torch :class:`~dwancodec.model.Codec` (results are int64 tensors on its
    device), an :class:`~dwancodec.runtime.OnnxCodec` or an ONNX folder (numpy int64), or an
    engine. Example::

        enc = StreamingEncoder(codec, n_q=4)
        for chunk in chunks:            # any lengths
            codes = enc.push(chunk)     # [1, 4, f], f may be 0
        codes = enc.flush()             # the last partial frame, zero-padded

    The concatenated codes equal the offline ``codec.encode(signal, n_q)``.
    """

    def __init__(self, codec: Any, batch_size: int = 1, n_q: int | None = None) -> None:
        self.engine = as_engine(codec)
        self.codec = getattr(self.engine, "codec", codec)
        self.batch_size = check_batch_size(batch_size)
        e = self.engine
        self.n_q = e.encoder_n_q if n_q is None else check_n_q(n_q, e.encoder_n_q)
        self._step = e.frames_per_step * e.hop_length
        self.reset()

    @property
    def device(self) -> Any:
        """The torch device of the model (``"cpu"`` for ONNX Runtime)."""
        return getattr(self.engine, "device", "cpu")

    @property
    def pending_samples(self) -> int:
        """Samples buffered towards the next (incomplete) frame or step."""
        return int(self._pending.shape[-1])

    @property
    def state(self) -> Mapping[str, Any]:
        """The current state (read-only view; changes with the next push)."""
        return self.engine.state_arrays(self._state)

    def reset(self, streams: Streams = None) -> None:
        """Start over. ``streams``: integer indices or a ``[B]`` bool mask (list, array or
        tensor); ``None`` resets all.

        A stream reset while others have a partial frame buffered has those buffered samples
        zeroed: its new signal starts after ``pending_samples`` samples of silence.
        """
        if streams is None:
            self._state = self.engine.encoder_state(self.batch_size)
            self._pending = np.zeros((self.batch_size, 0), np.float32)
            return
        mask = self.engine.stream_mask(streams, self.batch_size)
        self._state = self.engine.reset_state(self._state, mask)
        self._pending = self._pending.copy()
        self._pending[mask] = 0

    def push(self, pcm: Any, with_latents: bool = False) -> Any:
        """PCM ``[B, n]`` (or ``[B, 1, n]``; ``[n]`` for one stream), any ``n >= 0`` -> codes
        ``[B, n_q, f]`` for the ``f`` frames it completes.

        ``with_latents``: also return the encoder latents ``[B, D, f]`` (before quantization).
        """
        e = self.engine
        pcm = e.check_pcm(pcm, self.batch_size)
        buf = np.concatenate([self._pending, pcm], axis=-1) if self._pending.size else pcm
        n_steps = buf.shape[-1] // self._step
        self._pending = buf[:, n_steps * self._step:]
        k = e.frames_per_step
        codes = np.empty((self.batch_size, self.n_q, n_steps * k), np.int64)
        lat = np.empty((self.batch_size, e.latent_dim, n_steps * k), np.float32) \
            if with_latents else None
        # one call for every ready frame where the engine takes any number, else k at a time
        calls = [(0, n_steps)] if e.any_frames and n_steps else \
            [(i, i + 1) for i in range(n_steps)]
        for a, b in calls:
            x = buf[:, a * self._step:b * self._step]
            if lat is None:
                c, self._state = e.encode_step(x, self._state, self.n_q)
            else:
                c, lat[:, :, a * k:b * k], self._state = e.encode_step_latents(
                    x, self._state, self.n_q)
            codes[:, :, a * k:b * k] = c[:, :self.n_q]
        return e.output(codes) if lat is None else (e.output(codes), e.output(lat))

    def flush(self, with_latents: bool = False) -> Any:
        """Encode the buffered partial frame(s) (zero-padded) and reset the session."""
        frames = -(-self.pending_samples // self.engine.hop_length)
        pad = (-self.pending_samples) % self._step
        res = self.push(np.zeros((self.batch_size, pad), np.float32), with_latents)
        self.reset()
        if isinstance(res, tuple):
            return res[0][..., :frames], res[1][..., :frames]
        return res[..., :frames]


class StreamingDecoder:
    """Push codes ``[B, k, f]`` (any ``f >= 0``, ``1 <= k <= N``); get ``[B, f * hop]`` PCM,
    over any :class:`Engine` (``codec`` as in :class:`StreamingEncoder`).

    With one frame per step (the torch engine, the default export) the decoder adds no
    latency: each frame's ``hop`` samples are final when it is pushed. An export of
    ``frames_per_step = k > 1`` holds codes back until ``k`` frames arrived; ``flush`` pads
    and returns the rest.
    """

    def __init__(self, codec: Any, batch_size: int = 1) -> None:
        self.engine = as_engine(codec)
        self.codec = getattr(self.engine, "codec", codec)
        self.batch_size = check_batch_size(batch_size)
        self.reset()

    @property
    def device(self) -> Any:
        """The torch device of the model (``"cpu"`` for ONNX Runtime)."""
        return getattr(self.engine, "device", "cpu")

    @property
    def state(self) -> Mapping[str, Any]:
        """The current state (read-only view; changes with the next push)."""
        return self.engine.state_arrays(self._state)

    @property
    def pending_frames(self) -> int:
        """Code frames held back until a whole step is available (always 0 for k = 1)."""
        return int(self._pending.shape[-1])

    def reset(self, streams: Streams = None) -> None:
        """Start over; ``streams`` as in :meth:`StreamingEncoder.reset`."""
        if streams is None:
            self._state = self.engine.decoder_state(self.batch_size)
            self._pending = np.zeros((self.batch_size, self.engine.num_codebooks, 0), np.int64)
            self._pending_n_q: int | None = None
            return
        mask = self.engine.stream_mask(streams, self.batch_size)
        self._state = self.engine.reset_state(self._state, mask)
        self._pending = self._pending.copy()
        self._pending[mask] = 0

    def push(self, codes: Any) -> Any:
        """Codes ``[B, k, f]`` (``1 <= k <= N``, any ``f >= 0``) -> PCM ``[B, f' * hop]``
        (``f' = f`` for one frame per step)."""
        e = self.engine
        codes = e.check_codes(codes, self.batch_size)
        b, n_q, f = codes.shape
        hop = e.hop_length
        if f == 0:
            return e.output(np.zeros((b, 0), np.float32))
        if self.pending_frames and n_q != self._pending_n_q:
            raise ValueError(f"codes have {n_q} stages but {self.pending_frames} pending "
                             f"frame(s) have {self._pending_n_q}; change n_q on a step boundary")
        k = e.frames_per_step
        if self.pending_frames:
            full = np.zeros((b, e.num_codebooks, self.pending_frames + f), np.int64)
            full[..., :self.pending_frames] = self._pending
            full[:, :n_q, self.pending_frames:] = codes
        else:
            full = codes
        n_steps = full.shape[-1] // k
        out = np.empty((b, n_steps * k * hop), np.float32)
        calls = [(0, n_steps)] if e.any_frames and n_steps else \
            [(i, i + 1) for i in range(n_steps)]
        for s, t in calls:
            y, self._state = e.decode_step(full[:, :n_q, s * k:t * k], n_q, self._state)
            out[:, s * k * hop:t * k * hop] = y
        rest = full[..., n_steps * k:]
        if rest.shape[-1]:
            self._pending = np.zeros((b, e.num_codebooks, rest.shape[-1]), np.int64)
            self._pending[:, :n_q] = rest[:, :n_q]
            self._pending_n_q = n_q
        else:
            self._pending = self._pending[..., :0]
            self._pending_n_q = None
        return e.output(out)

    def flush(self) -> Any:
        """Decode held-back frames (k > 1 only, zero-padded) and reset; ``[B, n * hop]``."""
        n = self.pending_frames
        out: Any = self.engine.output(np.zeros((self.batch_size, 0), np.float32))
        if n:
            k, n_q = self.engine.frames_per_step, self._pending_n_q or 1
            # zero codes complete the step; keep the audio of the real frames only
            out = self.push(np.zeros((self.batch_size, n_q, k - n), np.int64))
            out = out[:, : n * self.engine.hop_length]
        self.reset()
        return out


# Choosing an engine: ONNX Runtime where the model has graphs ---------------------------------
BACKENDS = ("auto", "onnx", "torch")


def model_graphs(model: str | Path | None = None) -> Path | None:
    """The exported ONNX folder of a model: ``MODEL/onnx/`` or ``MODEL`` itself when it holds
    the sidecar, the shipped graphs for the default model (``None``); ``None`` if absent."""
    from .bundled import shipped_onnx_dir

    if model is None:
        d = shipped_onnx_dir()
        return d if (d / SIDECAR).is_file() else None
    m = Path(model)
    for d in (m / "onnx", m):
        if (d / SIDECAR).is_file():
            return d
    return None


def _bundle_identity(model: str | Path | None) -> str | None:
    """The identity stored in a bundle's safetensors metadata, read without torch (``None``
    where there is none or the file cannot be read: the caller then falls back to torch)."""
    import json

    from .bundled import default_model_dir

    p = Path(default_model_dir() if model is None else model)
    weights = p / "model.safetensors" if p.is_dir() else p
    try:
        with open(weights, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 2 <= n <= 100 << 20:
                return None
            meta = json.loads(f.read(n)).get("__metadata__") or {}
    except (OSError, ValueError, AttributeError):
        return None
    ident = meta.get("identity") if isinstance(meta, dict) else None
    return ident if isinstance(ident, str) else None


PURPOSES = ("stream", "files")


def open_engine(backend: str = "auto", model: str | Path | None = None,
                onnx_dir: str | Path | None = None, device: str = "cpu", threads: int = 1,
                numpy_output: bool = True, int8: bool = False, purpose: str = "stream",
                note: Callable[[str], None] | None = None) -> tuple[Engine, str | None]:
    """The engine ``backend`` names, and a note saying why ``auto`` chose torch although the
    model has graphs (else ``None``).

    ``auto`` (the CLI default): ONNX Runtime when the model has graphs (``onnx_dir``, else
    :func:`model_graphs`) of the same identity as its weights, onnxruntime is installed and
    ``device`` is the CPU; torch otherwise. ``onnx``: those graphs or a ``ValueError``.
    ``torch``: the bundle ``model`` (the shipped default for ``None``) on ``device`` with
    ``threads`` torch threads. ``int8``: the ONNX Runtime engine on the graphs' int8 variant
    (export keeps one only where it meets its accuracy contract, PESQ-WB within 0.05 of
    float32); a ``ValueError`` where there is none or the engine would be torch.

    ``purpose``: ``"stream"`` (live, roundtrip, demo: the step graphs, one frame of latency)
    or ``"files"`` (whole ``.dwc`` files: on ONNX Runtime, the block graphs of
    ``GRAPHS/blocks/`` where the export has them, by the rule of
    :func:`dwancodec.runtime.whole_signal_graphs`; float32 only, so ``int8`` keeps the int8
    step graphs). ``note(msg)`` hears why block graphs were ignored (default: a warning).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} ({', '.join(BACKENDS)})")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r} ({', '.join(PURPOSES)})")
    files = purpose == "files"
    if int8 and backend == "torch":
        raise ValueError("--int8 runs the ONNX Runtime engine's int8 graphs; it cannot be "
                         "combined with --backend torch")
    why = None
    if backend in ("auto", "onnx"):
        graphs = Path(onnx_dir) if onnx_dir is not None else model_graphs(model)
        if backend == "onnx":
            if graphs is None:
                raise ValueError("--backend onnx needs graphs: --onnx-dir DIR (a folder made by "
                                 "`dwancodec export`), or a model folder with onnx/ inside; "
                                 f"{'the default model' if model is None else model} has none")
            return _ort_engine(graphs, threads, int8, files, note), None
        if graphs is not None:  # no graphs: torch, as expected (no note)
            why = _ort_unusable(graphs, model, onnx_dir, device)
            if why is None:
                return _ort_engine(graphs, threads, int8, files, note), None
        if int8:  # asked for int8 graphs: falling back to torch would be a silent change
            raise ValueError("--int8 needs the model's ONNX graphs on the ONNX Runtime engine: "
                             + (why or f"{'the default model' if model is None else model} "
                                       "has no graphs"))
    check_model_path(model)
    _need_torch(backend, model, why)  # one line saying why torch, not an ImportError deep down
    from .api import load_codec
    from .streaming.engine import TorchEngine

    if threads is not None:
        import torch

        torch.set_num_threads(_threads(threads))
    return TorchEngine(load_codec(model, device=device), numpy_output=numpy_output), why


def check_model_path(model: str | Path | None) -> None:
    """A ``FileNotFoundError`` naming what is missing, before any loading: the shipped
    default model (``model`` None) not installed, or no bundle at ``model``."""
    from .bundled import default_model_dir

    if model is None and not (default_model_dir() / "model.safetensors").exists():
        raise FileNotFoundError(
            f"the default model is not installed (expected a bundle at {default_model_dir()}); "
            "pass a model bundle folder with --model DIR")
    if model is not None and not Path(model).exists():
        raise FileNotFoundError(f"no model bundle at {model}")


class NeedsTorch(ModuleNotFoundError):
    """What was asked runs on the torch engine, and torch is not installed; the message says
    why torch was needed and what to do (the CLI prints it as a one-line error, exit 2)."""


def torch_missing() -> bool:
    """Whether torch is not installed. A torch that is installed but broken (a missing
    library) raises its ImportError as it is: not ours to explain."""
    try:
        import torch  # noqa: F401
    except ImportError as e:
        if (e.name or "").partition(".")[0] != "torch":
            raise
        return True
    return False


def _need_torch(backend: str, model: str | Path | None, why: str | None) -> None:
    """Raise :class:`NeedsTorch` where torch cannot be imported, naming the reason the torch
    engine was chosen (``why``: why ``auto`` could not use the graphs it found)."""
    if torch_missing():
        name = "the default model" if model is None else str(model)
        if backend == "torch":
            msg = ("--backend torch runs the torch engine, and torch is not installed: pip "
                   "install torch, or use --backend auto or onnx (the model's ONNX graphs)")
        elif why is not None:
            msg = (f"the torch engine is needed ({why}), and torch is not installed: pip "
                   "install torch")
        else:
            msg = (f"{name} has no ONNX graphs (MODEL/onnx/), so it runs on torch, which is not "
                   "installed: pip install torch, or export its graphs where torch is "
                   "installed (dwancodec export --model MODEL --out MODEL/onnx)")
        raise NeedsTorch(msg, name="torch") from None


def _threads(threads: int) -> int:
    from .checks import check_threads

    return check_threads(threads, "--threads")


def _ort_unusable(graphs: Path, model: str | Path | None, onnx_dir: str | Path | None,
                  device: str) -> str | None:
    """Why ``auto`` cannot use the graphs it found (``None``: it can)."""
    if str(device) != "cpu":
        return f"--device {device}: the ONNX Runtime engine runs on the CPU"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "onnxruntime is not installed"
    if onnx_dir is None:  # graphs found beside the weights: they must be of those weights
        from .runtime.onnx_codec import load_sidecar

        ident = _bundle_identity(model)
        got = load_sidecar(graphs)["model"]["identity"]
        if ident is None or ident != got:
            return f"the graphs in {graphs} are of {got}, not of the weights ({ident})"
    return None


def _ort_engine(graphs: Path, threads: int, int8: bool = False, files: bool = False,
                note: Callable[[str], None] | None = None) -> Engine:
    """The ONNX Runtime engine on ``graphs`` (``files``: on its block graphs where it has them;
    the identity of ``graphs`` is what the caller checked against the weights, and the block
    graphs are checked against ``graphs``)."""
    if not graphs.is_dir():
        raise FileNotFoundError(f"ONNX folder not found: {graphs}")
    try:
        from .runtime import OnnxCodec, OrtEngine, whole_signal_graphs
    except ImportError as e:  # onnxruntime missing
        raise ValueError(f"the onnx backend needs onnxruntime ({e}); pip install "
                         "onnxruntime") from None
    precision = "int8" if int8 else "float32"
    if files:  # opened directly: the step graphs' sessions would be loaded for nothing
        graphs = whole_signal_graphs(graphs, precision, note)
    return OrtEngine(OnnxCodec(graphs, num_threads=_threads(threads or 1), precision=precision))


__all__ = ["BACKENDS", "PURPOSES", "Engine", "NeedsTorch", "StreamingDecoder",
           "StreamingEncoder", "as_engine", "choose_n_q", "model_graphs", "open_engine"]
