"""Torch-free codec on ONNX Runtime: load an exported folder, run the step graphs.

``OnnxCodec(folder)`` reads the sidecar written by ``dwancodec export`` and opens the graphs with
latency-oriented session options (``num_threads`` intra-op threads, default 1; sequential
execution; all graph optimizations). Each :class:`StepRunner` owns preallocated input, output
and double-buffered state arrays bound once with IO binding, so a streaming step allocates
nothing: the state written by one call is the input of the next.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

try:
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "dwancodec.runtime needs onnxruntime: pip install onnxruntime numpy soundfile soxr"
    ) from e

from ..bundled import shipped_onnx_dir
from .checks import DTYPES, check_audio, check_codes, check_n_q, check_state

SIDECAR = "dwancodec_onnx.json"  # same name as dwancodec.export.onnx_export.SIDECAR
FORMAT = "dwancodec-onnx"
SUPPORTED_VERSIONS = (1,)

StateSpecs = dict[str, tuple[tuple[int, ...], str]]


def load_sidecar(directory: str | Path) -> dict[str, Any]:
    """Read and sanity-check ``directory/dwancodec_onnx.json``."""
    d = Path(directory)
    path = d / SIDECAR if d.is_dir() else d
    if not path.exists():
        raise FileNotFoundError(
            f"no {SIDECAR} in {d}: export the model first with "
            "`dwancodec export --model BUNDLE --out DIR`"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a DwanCodec ONNX sidecar (format {FORMAT!r})")
    if meta.get("format_version") not in SUPPORTED_VERSIONS:
        raise ValueError(f"{path} has format version {meta.get('format_version')}; this "
                         f"runtime reads {SUPPORTED_VERSIONS}")
    return meta


def session_options(num_threads: int = 1, optimization: str = "all") -> ort.SessionOptions:
    """Latency-oriented options: ``num_threads`` intra-op threads, sequential execution."""
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = num_threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    levels = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {sorted(levels)}, got {optimization!r}")
    so.graph_optimization_level = levels[optimization]
    so.log_severity_level = 3
    return so


def _specs(entries: list[dict[str, Any]]) -> StateSpecs:
    return {e["key"]: (tuple(e["shape"]), e["dtype"]) for e in entries}


def zero_state(spec: StateSpecs, batch_size: int) -> dict[str, np.ndarray]:
    return {k: np.zeros((batch_size, *shape), DTYPES[dt]) for k, (shape, dt) in spec.items()}


class StepRunner:
    """One step graph at a fixed batch size, with preallocated, IO-bound buffers.

    ``inputs``: the non-state inputs (name -> array, filled in place by the caller before
    :meth:`run`); ``outputs``: the non-state outputs (name -> array, valid until the next run);
    :attr:`state`: the state the next call will read (key -> array, may be edited in place).
    """

    def __init__(self, session: ort.InferenceSession, spec: StateSpecs,
                 inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
        self.session = session
        self.spec = spec
        self.inputs = inputs
        self.outputs = outputs
        batch = next(iter(outputs.values())).shape[0]
        self._states = [zero_state(spec, batch), zero_state(spec, batch)]
        self._bindings = []
        for p in (0, 1):
            io = session.io_binding()
            for name, arr in inputs.items():
                io.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(arr))
            for name, arr in outputs.items():
                io.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(arr))
            for k in spec:
                io.bind_ortvalue_input(f"state_in.{k}",
                                       ort.OrtValue.ortvalue_from_numpy(self._states[p][k]))
                io.bind_ortvalue_output(f"state_out.{k}",
                                        ort.OrtValue.ortvalue_from_numpy(self._states[1 - p][k]))
            self._bindings.append(io)
        self._current = 0

    @property
    def state(self) -> dict[str, np.ndarray]:
        return self._states[self._current]

    def run(self) -> dict[str, np.ndarray]:
        self.session.run_with_iobinding(self._bindings[self._current])
        self._current ^= 1
        return self.outputs

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Zero the state (of the streams where ``mask`` [B] is true)."""
        for t in self.state.values():
            if mask is None:
                t.fill(0)
            else:
                t[mask] = 0


class OnnxCodec:
    """The codec on ONNX Runtime only (numpy in, numpy out; no torch).

    >>> codec = OnnxCodec("exported/")                      # doctest: +SKIP
    >>> codes = codec.encode("speech.wav", n_q=4)           # [1, 4, F] int64
    >>> audio = codec.decode(codes)                         # [1, F * hop] float32

    Streaming: :meth:`streaming_encoder` / :meth:`streaming_decoder` (see
    :mod:`dwancodec.runtime.session`). Steps on explicit state: :meth:`encoder_step` /
    :meth:`decoder_step` with :meth:`initial_encoder_state` / :meth:`initial_decoder_state`.
    """

    def __init__(self, directory: str | Path | None = None, num_threads: int = 1,
                 use_full_graphs: bool = True, optimization: str = "all") -> None:
        if directory is None:
            directory = shipped_onnx_dir()
            if not (directory / SIDECAR).exists():
                raise FileNotFoundError(f"the default model's ONNX graphs are not installed at "
                                        f"{directory}; pass a folder made by `dwancodec export`")
        self.directory = Path(directory)
        self.meta = load_sidecar(self.directory)
        self.num_threads = num_threads
        self.options = session_options(num_threads, optimization)
        self.encoder_state_spec: StateSpecs = _specs(self.meta["encoder_state"])
        self.decoder_state_spec: StateSpecs = _specs(self.meta["decoder_state"])
        graphs = self.meta["graphs"]
        for name in ("encoder_step", "decoder_step"):
            if name not in graphs:
                raise ValueError(f"{self.directory / SIDECAR} lists no {name} graph")
        self._sessions: dict[str, ort.InferenceSession] = {}
        self.use_full_graphs = use_full_graphs and "encoder_full" in graphs \
            and "decoder_full" in graphs
        self.session("encoder_step")
        self.session("decoder_step")

    # Sessions -------------------------------------------------------------------------------
    def session(self, name: str) -> ort.InferenceSession:
        """The ONNX Runtime session of graph ``name`` (opened on first use)."""
        if name not in self._sessions:
            g = self.meta["graphs"].get(name)
            if g is None:
                raise ValueError(f"this export has no {name} graph (re-export with "
                                 "--full-sequence for the offline graphs)")
            path = self.directory / (g.get("optimized") or g["file"])
            if not path.exists():
                raise FileNotFoundError(f"missing graph file {path}")
            self._sessions[name] = ort.InferenceSession(str(path), self.options,
                                                        providers=["CPUExecutionProvider"])
        return self._sessions[name]

    # Geometry ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.meta["model"]["name"])

    @property
    def identity(self) -> str:
        return str(self.meta["model"]["identity"])

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def hop_length(self) -> int:
        return int(self.meta["hop_length"])

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def frames_per_step(self) -> int:
        return int(self.meta["frames_per_step"])

    @property
    def num_codebooks(self) -> int:
        """Stages the decoder accepts (``N``)."""
        return int(self.meta["num_codebooks"])

    @property
    def encoder_n_q(self) -> int:
        """Stages the exported encoder produces (``<= N``)."""
        return int(self.meta["encoder_n_q"])

    @property
    def codebook_size(self) -> int:
        return int(self.meta["codebook_size"])

    @property
    def latent_dim(self) -> int:
        return int(self.meta["latent_dim"])

    @property
    def latency_samples(self) -> int:
        return int(self.meta["latency_samples"])

    @property
    def latency_ms(self) -> float:
        return float(self.meta["latency_ms"])

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second using the first ``n_q`` stages (all by default)."""
        n_q = self.num_codebooks if n_q is None else check_n_q(n_q, self.num_codebooks)
        return self.frame_rate * n_q * math.log2(self.codebook_size)

    def n_q_for_bitrate(self, kbps: float) -> int:
        """Largest number of encoder stages whose bitrate is at most ``kbps`` (at least 1)."""
        per_stage = self.bitrate(1) / 1000
        if kbps < per_stage:
            raise ValueError(
                f"bitrate {kbps} kbps is below the lowest this model offers ({per_stage:.2f} kbps)"
            )
        return min(self.encoder_n_q, int(kbps / per_stage + 1e-9))

    # Runners -------------------------------------------------------------------------------
    def encoder_runner(self, batch_size: int) -> StepRunner:
        """A :class:`StepRunner` for ``encoder_step`` (input ``audio``; outputs ``codes``,
        ``latents``)."""
        k, b = self.frames_per_step, _check_batch(batch_size)
        return StepRunner(
            self.session("encoder_step"), self.encoder_state_spec,
            {"audio": np.zeros((b, 1, k * self.hop_length), np.float32)},
            {"codes": np.zeros((b, self.encoder_n_q, k), np.int64),
             "latents": np.zeros((b, self.latent_dim, k), np.float32)},
        )

    def decoder_runner(self, batch_size: int) -> StepRunner:
        """A :class:`StepRunner` for ``decoder_step`` (inputs ``codes`` [B, N, k], ``n_q``;
        output ``audio``)."""
        k, b = self.frames_per_step, _check_batch(batch_size)
        return StepRunner(
            self.session("decoder_step"), self.decoder_state_spec,
            {"codes": np.zeros((b, self.num_codebooks, k), np.int64),
             "n_q": np.array(self.num_codebooks, dtype=np.int64)},
            {"audio": np.zeros((b, 1, k * self.hop_length), np.float32)},
        )

    # Steps on explicit state -----------------------------------------------------------------
    def initial_encoder_state(self, batch_size: int = 1) -> dict[str, np.ndarray]:
        return zero_state(self.encoder_state_spec, _check_batch(batch_size))

    def initial_decoder_state(self, batch_size: int = 1) -> dict[str, np.ndarray]:
        return zero_state(self.decoder_state_spec, _check_batch(batch_size))

    def encoder_step(self, audio: np.ndarray, state: dict[str, np.ndarray],
                     n_q: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``[B, 1, k * hop]`` audio + state -> codes ``[B, n_q, k]``, latents ``[B, D, k]``,
        new state (``k = frames_per_step``; the full graph, if exported, takes any ``k``)."""
        audio = check_audio(audio)
        n_q = self.encoder_n_q if n_q is None else check_n_q(n_q, self.encoder_n_q)
        step = self.frames_per_step * self.hop_length
        name = "encoder_step"
        if audio.shape[-1] != step:
            if not (self.use_full_graphs and audio.shape[-1] % self.hop_length == 0):
                raise ValueError(
                    f"audio must have {step} samples per step ({self.frames_per_step} frame(s) "
                    f"of {self.hop_length}), got {audio.shape[-1]}"
                )
            name = "encoder_full"
        check_state(self.encoder_state_spec, state, audio.shape[0])
        out = self._run(name, {"audio": audio}, state)
        new = {k: out[f"state_out.{k}"] for k in self.encoder_state_spec}
        return out["codes"][:, :n_q], out["latents"], new

    def decoder_step(self, codes: np.ndarray, state: dict[str, np.ndarray]
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Codes ``[B, n_q, k]`` + state -> audio ``[B, 1, k * hop]`` + new state."""
        codes = check_codes(codes, self.num_codebooks, self.codebook_size)
        b, n_q, f = codes.shape
        name = "decoder_step"
        if f != self.frames_per_step:
            if not self.use_full_graphs or f == 0:
                raise ValueError(f"codes must have {self.frames_per_step} frame(s) per step, "
                                 f"got {f}")
            name = "decoder_full"
        check_state(self.decoder_state_spec, state, b)
        full = np.zeros((b, self.num_codebooks, f), np.int64)
        full[:, :n_q] = codes
        out = self._run(name, {"codes": full, "n_q": np.array(n_q, dtype=np.int64)}, state)
        return out["audio"], {k: out[f"state_out.{k}"] for k in self.decoder_state_spec}

    def _run(self, name: str, feeds: dict[str, np.ndarray], state: dict[str, np.ndarray]
             ) -> dict[str, np.ndarray]:
        sess = self.session(name)
        feeds = {**feeds, **{f"state_in.{k}": np.ascontiguousarray(v) for k, v in state.items()}}
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, feeds), strict=True))

    # Whole arrays -------------------------------------------------------------------------------
    def _as_batch(self, audio: str | Path | np.ndarray, sample_rate: int | None) -> np.ndarray:
        from ..audio import load_audio, resample, to_float_mono

        if isinstance(audio, (str, Path)):
            x, _ = load_audio(audio, self.sample_rate)
            return x[None]
        if not isinstance(audio, np.ndarray):
            raise ValueError(f"audio must be a file path or a numpy array, got "
                             f"{type(audio).__name__}")
        if audio.ndim == 3 and audio.shape[1] == 1:
            audio = audio[:, 0]
        if audio.ndim == 1:
            audio = audio[None]
        if audio.ndim != 2:
            raise ValueError(f"audio must be [T], [B, T] or [B, 1, T], got {audio.shape}")
        if audio.dtype.kind != "f":
            audio = np.stack([to_float_mono(a) for a in audio])  # integer PCM is scaled
        if audio.shape[0] == 0 or audio.shape[-1] == 0:
            raise ValueError(f"audio is empty: shape {tuple(audio.shape)}")
        if not np.isfinite(audio).all():
            raise ValueError("audio contains NaN or Inf values")
        if sample_rate is not None and sample_rate != self.sample_rate:
            audio = np.stack([resample(a.astype(np.float32), sample_rate, self.sample_rate)
                              for a in audio])
        return audio.astype(np.float32, copy=False)

    def encode(self, audio: str | Path | np.ndarray, n_q: int | None = None,
               sample_rate: int | None = None) -> np.ndarray:
        """A file, ``[T]``, ``[B, T]`` or ``[B, 1, T]`` audio -> codes ``[B, n_q, ceil(T/hop)]``.

        Arrays are at the model rate unless ``sample_rate`` says otherwise; integer PCM is
        scaled to ``[-1, 1]``. Equals streaming the signal through :meth:`streaming_encoder`.
        """
        x = self._as_batch(audio, sample_rate)
        n_q = self.encoder_n_q if n_q is None else check_n_q(n_q, self.encoder_n_q)
        if self.use_full_graphs:
            pad = -x.shape[-1] % self.hop_length
            x = np.pad(x, ((0, 0), (0, pad)))[:, None]
            codes, _, _ = self.encoder_step(x, self.initial_encoder_state(x.shape[0]), n_q)
            return codes
        enc = self.streaming_encoder(x.shape[0], n_q)
        return np.concatenate([enc.push(x), enc.flush()], axis=-1)

    def decode(self, codes: np.ndarray, length: int | None = None) -> np.ndarray:
        """Codes ``[B, n_q, F]`` (or ``[n_q, F]``) -> audio ``[B, F * hop]`` float32.

        ``length`` trims the output to that many samples.
        """
        if isinstance(codes, np.ndarray) and codes.ndim == 2:
            codes = codes[None]
        codes = check_codes(codes, self.num_codebooks, self.codebook_size)
        if codes.shape[-1] == 0:
            return np.zeros((codes.shape[0], 0), np.float32)
        if self.use_full_graphs:
            audio, _ = self.decoder_step(codes, self.initial_decoder_state(codes.shape[0]))
            audio = audio[:, 0]
        else:
            dec = self.streaming_decoder(codes.shape[0])
            audio = np.concatenate([dec.push(codes), dec.flush()], axis=-1)
        return audio if length is None else audio[:, :length]

    # Sessions ----------------------------------------------------------------------------------
    def streaming_encoder(self, batch_size: int = 1, n_q: int | None = None) -> Any:
        from .session import OnnxStreamingEncoder

        return OnnxStreamingEncoder(self, batch_size, n_q)

    def streaming_decoder(self, batch_size: int = 1) -> Any:
        from .session import OnnxStreamingDecoder

        return OnnxStreamingDecoder(self, batch_size)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "identity": self.identity, "sample_rate": self.sample_rate,
            "hop_length": self.hop_length, "frame_rate": self.frame_rate,
            "latency_ms": self.latency_ms, "frames_per_step": self.frames_per_step,
            "num_codebooks": self.num_codebooks, "encoder_n_q": self.encoder_n_q,
            "codebook_size": self.codebook_size, "num_threads": self.num_threads,
            "graphs": sorted(self.meta["graphs"]),
        }


def _check_batch(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)
