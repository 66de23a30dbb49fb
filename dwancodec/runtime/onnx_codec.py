"""Torch-free codec on ONNX Runtime: load an exported folder, run the step graphs.

``OnnxCodec(folder)`` reads the sidecar written by ``dwancodec export`` and opens the graphs with
latency-oriented session options (``num_threads`` intra-op threads, default 1; sequential
execution; all graph optimizations). Each :class:`StepRunner` owns preallocated input, output
and double-buffered state arrays bound once with IO binding, so a streaming step allocates
nothing: the state written by one call is the input of the next.

An export may hold a second, complete export of the same model in ``blocks/`` (:data:`BLOCKS`):
the same step at many frames per call (25 by default), for whole signals, where a one-frame
call per 20 ms would cost most of the time in per-call overhead. The streaming state does not
depend on the frames per call, so the two exports have the same state and the same codes but
at rounding ties. :func:`whole_signal_graphs` is the one rule that picks the folder a whole
signal is coded on (``.dwc`` files, :meth:`OnnxCodec.encode` / :meth:`OnnxCodec.decode`); live
use always runs the step graphs (their latency is one frame).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

try:
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "dwancodec.runtime needs onnxruntime: pip install onnxruntime numpy soundfile soxr"
    ) from e

from ..bitstream.container import check_compatible, is_codes_identity
from ..bitstream.entropy import EntropyTables, find_tables
from ..bundled import BLOCKS, SIDECAR, shipped_onnx_dir
from ..checks import (
    DTYPES,
    MAX_SAMPLE_RATE,
    check_audio,
    check_batch_size,
    check_codes,
    check_length,
    check_n_q,
    check_offline_audio,
    check_sample_rate,
    check_state,
    check_threads,
)
from ..engine import StreamingDecoder, StreamingEncoder
from ..lengths import n_q_for_bitrate
from .engine import OrtEngine

FORMAT = "dwancodec-onnx"
SUPPORTED_VERSIONS = (1,)
GRAPH_NAMES = ("encoder_step", "decoder_step", "encoder_full", "decoder_full")
MAX_STATE_ENTRIES = 4096
MAX_STATE_ELEMENTS = 1 << 24   # per stream, all state entries together (64 MB of float32)
MAX_STEP_SAMPLES = 1 << 22     # frames_per_step * hop_length
BLOCK_FRAMES = 250             # whole-array coding runs the graphs on blocks of this many frames
# what must be equal for block graphs to stand in for the step graphs (besides the state)
PAIR_GEOMETRY = ("sample_rate", "hop_length", "latency_samples", "num_codebooks", "encoder_n_q",
                 "codebook_size", "latent_dim")

StateSpecs = dict[str, tuple[tuple[int, ...], str]]


def load_sidecar(directory: str | Path) -> dict[str, Any]:
    """Read ``directory/dwancodec_onnx.json`` and check every field a runtime uses (types,
    ranges, sizes, graph files inside the folder); ``ValueError`` naming the first bad one."""
    d = Path(directory)
    path = d / SIDECAR if d.is_dir() else d
    if not path.exists():
        raise FileNotFoundError(
            f"no {SIDECAR} in {d}: export the model first with "
            "`dwancodec export --model BUNDLE --out DIR`"
        )
    if path.stat().st_size > 64 << 20:
        raise ValueError(f"{path} is not a DwanCodec ONNX sidecar (larger than 64 MB)")
    try:
        meta = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a DwanCodec ONNX sidecar (format {FORMAT!r})")
    if meta.get("format_version") not in SUPPORTED_VERSIONS \
            or isinstance(meta.get("format_version"), bool):
        raise ValueError(f"{path} has format version {meta.get('format_version')!r}; this "
                         f"runtime reads {SUPPORTED_VERSIONS}")
    _check_sidecar(meta, path)
    return meta


def _check_sidecar(meta: dict[str, Any], path: Path) -> None:
    def bad(msg: str) -> ValueError:
        return ValueError(f"{path} is corrupt: {msg}")

    def integer(obj: dict[str, Any], key: str, lo: int, hi: int, where: str = "") -> int:
        v = obj.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise bad(f"{where}{key} must be an integer in [{lo}, {hi}], got {v!r}")
        return v

    def text(obj: dict[str, Any], key: str, where: str = "", limit: int = 255) -> str:
        v = obj.get(key)
        if not isinstance(v, str) or not 1 <= len(v) <= limit or not v.isprintable():
            raise bad(f"{where}{key} must be a printable string of 1-{limit} characters, "
                      f"got {v!r:.80}")
        return v

    model = meta.get("model")
    if not isinstance(model, dict):
        raise bad(f"model must be an object, got {type(model).__name__}")
    text(model, "name", "model.")
    text(model, "identity", "model.")
    codes = model.get("codes", "")  # absent in graphs exported before codes identities
    if not isinstance(codes, str) or (codes and not is_codes_identity(codes)):
        raise bad(f"model.codes must be 16 lower-case hex digits, got {codes!r:.80}")
    # absent in sidecars written before the exporter recorded it: no earlier models
    check_compatible(model.get("compatible", []), f"{path} is corrupt: model.compatible")
    check = integer
    check(meta, "sample_rate", 1, MAX_SAMPLE_RATE)
    hop = check(meta, "hop_length", 1, 1 << 20)
    k = check(meta, "frames_per_step", 1, 1000)
    if k * hop > MAX_STEP_SAMPLES:
        raise bad(f"frames_per_step x hop_length = {k * hop} samples per step (at most "
                  f"{MAX_STEP_SAMPLES})")
    n = check(meta, "num_codebooks", 1, 255)
    check(meta, "encoder_n_q", 1, n)
    check(meta, "codebook_size", 2, 1 << 24)
    latent = check(meta, "latent_dim", 1, 1 << 16)
    if latent * k > MAX_STEP_SAMPLES:
        raise bad(f"latent_dim x frames_per_step = {latent * k} (at most {MAX_STEP_SAMPLES})")
    check(meta, "latency_samples", 0, 1 << 30)
    ms = meta.get("latency_ms")
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms < 1e9:
        raise bad(f"latency_ms must be a number >= 0, got {ms!r}")
    for side in ("encoder_state", "decoder_state"):
        entries = meta.get(side)
        if not isinstance(entries, list) or len(entries) > MAX_STATE_ENTRIES:
            raise bad(f"{side} must be a list of at most {MAX_STATE_ENTRIES} entries")
        keys: set[str] = set()
        total = 0
        for i, e in enumerate(entries):
            where = f"{side}[{i}]."
            if not isinstance(e, dict):
                raise bad(f"{side}[{i}] must be an object")
            key = text(e, "key", where)
            if key in keys:
                raise bad(f"{side} lists {key!r} twice")
            keys.add(key)
            shape = e.get("shape")
            if not isinstance(shape, list) or len(shape) > 8 or any(
                    isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 1 << 24
                    for v in shape):
                raise bad(f"{where}shape must be a list of at most 8 sizes in [0, 2^24], got "
                          f"{shape!r:.80}")
            total += math.prod(shape)
            if total > MAX_STATE_ELEMENTS:
                raise bad(f"{side} holds more than {MAX_STATE_ELEMENTS} values per stream")
            if not isinstance(e.get("dtype"), str) or e["dtype"] not in DTYPES:
                raise bad(f"{where}dtype must be one of {sorted(DTYPES)}, got "
                          f"{e.get('dtype')!r:.80}")
    graphs = meta.get("graphs")
    if not isinstance(graphs, dict):
        raise bad(f"graphs must be an object, got {type(graphs).__name__}")
    for name, g in graphs.items():
        if name not in GRAPH_NAMES:
            raise bad(f"unknown graph {name!r:.80} (expected {', '.join(GRAPH_NAMES)})")
        if not isinstance(g, dict):
            raise bad(f"graphs.{name} must be an object")
        for field in ("file", "optimized"):
            v = g.get(field)
            if v is None and field == "optimized":
                continue
            if not isinstance(v, str) or not _plain_file_name(v):
                raise bad(f"graphs.{name}.{field} must be the name of an .onnx file in the "
                          f"folder, got {v!r:.80}")
        sums = g.get("sha256")
        if sums is not None and (not isinstance(sums, dict) or len(sums) > 4 or any(
                not isinstance(f, str) or not _plain_file_name(f) or not isinstance(h, str)
                or len(h) != 64 or any(c not in "0123456789abcdef" for c in h)
                for f, h in sums.items())):
            raise bad(f"graphs.{name}.sha256 must map .onnx file names in the folder to "
                      f"hex SHA-256 digests, got {sums!r:.80}")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks): the sidecar records it for every graph
    file that export verified, and the runtime opens a graph only if it matches."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _plain_file_name(name: str) -> bool:
    """A bare ``*.onnx`` file name: no folder part, no ``..``, nothing absolute."""
    return (name.endswith(".onnx") and name == Path(name).name and "/" not in name
            and "\\" not in name and name not in (".onnx", "..") and name.isprintable()
            and not name.startswith("."))


def _model_names(meta: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    m = meta["model"]
    return str(m["identity"]), str(m.get("codes", "")), tuple(m.get("compatible", ()))


def check_block_pair(steps: dict[str, Any], blocks: dict[str, Any], block_dir: str | Path
                     ) -> str | None:
    """May the block graphs (sidecar ``blocks``, in ``block_dir``) code whole signals in place
    of the step graphs (sidecar ``steps``)?

    ``None``: yes. A note (why not) where they name another model: another identity, codes
    identity or ``compatible`` list (block graphs left behind by an export of another model,
    say); they are then ignored, which costs only speed. A ``ValueError`` naming the folder
    where they name the same model but another streaming state (keys, shapes, dtypes) or
    geometry: the state of a step does not depend on its frames per call, so such a pair is a
    broken export, never something to run.
    """
    mine, theirs = _model_names(steps), _model_names(blocks)
    if mine != theirs:
        what = "; ".join(f"{n} {list(b) if n == 'compatible' else b or '(none)'}, not "
                         f"{list(a) if n == 'compatible' else a or '(none)'}"
                         for n, a, b in zip(("identity", "codes", "compatible"), mine, theirs,
                                            strict=True) if a != b)
        return (f"block graphs in {block_dir} ignored: they name another model than the step "
                f"graphs ({what}); coding on the step graphs, slower (re-export the model to "
                "remake them)")
    for side in ("encoder_state", "decoder_state"):
        a, b = _specs(steps[side]), _specs(blocks[side])
        if a != b:
            diff = sorted(set(a) ^ set(b)) or sorted(k for k in a if a[k] != b[k])
            raise ValueError(
                f"{block_dir}: the block graphs' {side.replace('_', ' ')} differs from the step "
                f"graphs' ({len(a)} vs {len(b)} entries; first difference {diff[0]!r}), but "
                "the streaming state does not depend on the frames per call: a broken export; "
                f"re-export the model, or remove {block_dir}")
    for key in PAIR_GEOMETRY:
        if steps[key] != blocks[key]:
            raise ValueError(f"{block_dir}: the block graphs have {key} {blocks[key]}, the step "
                             f"graphs {steps[key]}: a broken export; re-export the model, or "
                             f"remove {block_dir}")
    return None


def whole_signal_graphs(directory: str | Path, precision: str = "float32",
                        note: Callable[[str], None] | None = None) -> Path:
    """The exported folder a whole signal is coded on (``.dwc`` files, offline
    ``encode`` / ``decode``): ``directory/blocks/`` where the export has block graphs of the
    same model that take more frames per call than its step graphs, else ``directory``.

    The one place this choice is made. Block graphs are float32 only, so ``precision="int8"``
    keeps the (int8) step graphs. No ``blocks/`` folder (exports made with ``--no-blocks`` or
    before it existed): the step graphs, without a note. Block graphs of another model:
    ``note(why)`` (default :func:`warnings.warn`) and the step graphs. Block graphs of the same
    model with another state or geometry: ``ValueError`` (:func:`check_block_pair`).
    """
    d = Path(directory)
    b = d / BLOCKS
    if precision == "int8" or not (b / SIDECAR).is_file():
        return d
    steps, blocks = load_sidecar(d), load_sidecar(b)
    why = check_block_pair(steps, blocks, b)
    if why is not None:
        (note or (lambda m: warnings.warn(m, stacklevel=3)))(why)
        return d
    return b if blocks["frames_per_step"] > steps["frames_per_step"] else d


def session_options(num_threads: int = 1, optimization: str = "all") -> ort.SessionOptions:
    """Latency-oriented options: ``num_threads`` intra-op threads, sequential execution."""
    num_threads = check_threads(num_threads, "num_threads")
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
    """Zeros ``[batch_size, *shape]`` of each entry's dtype."""
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

    Streaming: :meth:`streaming_encoder` / :meth:`streaming_decoder` (the sessions of
    :mod:`dwancodec.engine` over :meth:`engine`). Steps on explicit state: :meth:`encoder_step` /
    :meth:`decoder_step` with :meth:`initial_encoder_state` / :meth:`initial_decoder_state`.

    ``blocks``: whole signals (:meth:`encode`, :meth:`decode` without full-sequence graphs, and
    ``.dwc`` files through :func:`dwancodec.commands.files.encode_file`) run on the export's
    block graphs where it has them (:meth:`whole_signal_codec`); ``False`` keeps them on the
    step graphs. Streaming sessions always run the step graphs.
    """

    def __init__(self, directory: str | Path | None = None, num_threads: int = 1,
                 use_full_graphs: bool = True, optimization: str = "all",
                 precision: str = "float32", blocks: bool = True) -> None:
        if precision not in ("float32", "int8"):
            raise ValueError(f"precision must be 'float32' or 'int8', got {precision!r}")
        if not isinstance(blocks, bool):
            raise ValueError(f"blocks must be True or False, got {blocks!r}")
        self.precision = precision  # "int8": the export's int8 step graphs where it has them
        self.blocks = blocks
        self.optimization = optimization
        self._whole: OnnxCodec | None = None  # opened by whole_signal_codec() on first use
        if directory is None:
            directory = shipped_onnx_dir()
            if not (directory / SIDECAR).exists():
                raise FileNotFoundError(f"the default model's ONNX graphs are not installed at "
                                        f"{directory}; pass a folder made by `dwancodec export`")
        self.directory = Path(directory)
        self.meta = load_sidecar(self.directory)
        # the tables files are entropy-coded with (.dwc format 3); None: fixed-rate files
        self.entropy_tables: EntropyTables | None = find_tables(self.directory)
        self.options = session_options(num_threads, optimization)
        self.num_threads = int(num_threads)
        self.encoder_state_spec: StateSpecs = _specs(self.meta["encoder_state"])
        self.decoder_state_spec: StateSpecs = _specs(self.meta["decoder_state"])
        graphs = self.meta["graphs"]
        if not isinstance(use_full_graphs, bool):
            raise ValueError(f"use_full_graphs must be True or False, got {use_full_graphs!r}")
        for name in ("encoder_step", "decoder_step"):
            if name not in graphs:
                raise ValueError(f"{self.directory / SIDECAR} lists no {name} graph")
        self._sessions: dict[str, ort.InferenceSession] = {}
        self.use_full_graphs = use_full_graphs and "encoder_full" in graphs \
            and "decoder_full" in graphs
        if precision == "int8" and not any("int8" in graphs[n] for n in graphs):
            raise ValueError(f"{self.directory} has no int8 graphs (`dwancodec export` keeps "
                             "them only where they meet their accuracy contract)")
        self.session("encoder_step")
        self.session("decoder_step")

    # Sessions -------------------------------------------------------------------------------
    def session(self, name: str) -> ort.InferenceSession:
        """The ONNX Runtime session of graph ``name`` (opened on first use). ``ValueError``
        if its file is not a valid ONNX graph or does not have the inputs and outputs the
        sidecar describes."""
        if name not in self._sessions:
            g = self.meta["graphs"].get(name)
            if g is None:
                raise ValueError(f"this export has no {name} graph (re-export with "
                                 "--full-sequence for the offline graphs)")
            path = self.directory / (g.get("optimized") or g["file"])
            q = g.get("int8") if self.precision == "int8" else None
            if q is not None:  # int8 where the export has it (float32 elsewhere)
                if not isinstance(q, dict) or not isinstance(q.get("file"), str) \
                        or not _plain_file_name(q["file"]):
                    raise ValueError(f"graphs.{name}.int8.file must be the name of an .onnx "
                                     "file in the folder")
                path = self.directory / q["file"]
            if not path.exists():
                raise FileNotFoundError(f"missing graph file {path}")
            root = self.directory.resolve()
            if not path.resolve().is_relative_to(root) or not path.resolve().is_file():
                raise ValueError(f"graph file {path} is not a file inside {root}")
            want = (g.get("sha256") or {}).get(path.name)
            if g.get("sha256") and want is None:
                raise ValueError(f"{path.name} is not among the files export verified for "
                                 f"{name} ({', '.join(sorted(g['sha256']))}): re-export")
            if want is not None and file_sha256(path) != want:
                raise ValueError(f"{path} is not the file that export verified (its SHA-256 "
                                 f"differs from {SIDECAR}'s): re-export the model")
            try:
                sess = ort.InferenceSession(str(path), self.options,
                                            providers=["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime's own error types (InvalidProtobuf, Fail, ...)
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise ValueError(f"{path} is not a valid ONNX graph ({type(e).__name__}: "
                                 f"{first[:200]})") from None
            self._check_io(name, path, sess)
            self._sessions[name] = sess
        return self._sessions[name]

    def _check_io(self, name: str, path: Path, sess: ort.InferenceSession) -> None:
        """The graph's inputs/outputs must be the ones the sidecar's state specs and geometry
        give (names, dtypes, fixed sizes), so that a step never fails inside ONNX Runtime."""
        enc = name.startswith("encoder")
        spec = self.encoder_state_spec if enc else self.decoder_state_spec
        k = self.frames_per_step if name.endswith("_step") else None
        hop = self.hop_length
        want_in: dict[str, tuple[list[int | None], str]] = {}
        want_out: dict[str, tuple[list[int | None], str]] = {}
        if enc:
            want_in["audio"] = ([None, 1, k * hop if k else None], "float")
            want_out["codes"] = ([None, self.encoder_n_q, k], "int64")
            want_out["latents"] = ([None, self.latent_dim, k], "float")
        else:
            want_in["codes"] = ([None, self.num_codebooks, k], "int64")
            want_in["n_q"] = ([], "int64")
            want_out["audio"] = ([None, 1, k * hop if k else None], "float")
        for key, (shape, dtype) in spec.items():
            want_in[f"state_in.{key}"] = ([None, *shape], dtype.replace("32", ""))
            want_out[f"state_out.{key}"] = ([None, *shape], dtype.replace("32", ""))
        for what, got_list, want in (("input", sess.get_inputs(), want_in),
                                     ("output", sess.get_outputs(), want_out)):
            got = {a.name: a for a in got_list}
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            if missing or extra:
                raise ValueError(f"{path} does not match {SIDECAR}: {what}s missing "
                                 f"{missing[:3]}, unexpected {extra[:3]}")
            for n, (shape, dtype) in want.items():
                a = got[n]
                dims = list(a.shape)
                ok = len(dims) == len(shape) and all(
                    w is None or not isinstance(d, int) or d == w for d, w in zip(dims, shape,
                                                                                  strict=False))
                if not ok or f"({dtype})" not in a.type.replace("tensor(", "("):
                    raise ValueError(f"{path} does not match {SIDECAR}: {what} {n} is "
                                     f"{a.type} {dims}, the sidecar gives {dtype} {shape}")

    # Geometry ------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.meta["model"]["name"])

    @property
    def identity(self) -> str:
        return str(self.meta["model"]["identity"])

    @property
    def codes_identity(self) -> str:
        """What the codes mean (``Codec.codes_identity()``); ``""`` in older exports."""
        return str(self.meta["model"].get("codes", ""))

    @property
    def compatible_identities(self) -> tuple[str, ...]:
        """Identities of earlier models whose format-1 ``.dwc`` files this model decodes (same
        codes): the sidecar's ``model.compatible``, copied at export from the bundle's
        safetensors metadata (``Codec.compatible_identities``); ``()`` in older exports."""
        return tuple(self.meta["model"].get("compatible", ()))

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
        return n_q_for_bitrate(kbps, self.frame_rate, self.codebook_size, self.encoder_n_q)

    # Runners -------------------------------------------------------------------------------
    def encoder_runner(self, batch_size: int) -> StepRunner:
        """A :class:`StepRunner` for ``encoder_step`` (input ``audio``; outputs ``codes``,
        ``latents``)."""
        k, b = self.frames_per_step, check_batch_size(batch_size)
        return StepRunner(
            self.session("encoder_step"), self.encoder_state_spec,
            {"audio": np.zeros((b, 1, k * self.hop_length), np.float32)},
            {"codes": np.zeros((b, self.encoder_n_q, k), np.int64),
             "latents": np.zeros((b, self.latent_dim, k), np.float32)},
        )

    def decoder_runner(self, batch_size: int) -> StepRunner:
        """A :class:`StepRunner` for ``decoder_step`` (inputs ``codes`` [B, N, k], ``n_q``;
        output ``audio``)."""
        k, b = self.frames_per_step, check_batch_size(batch_size)
        return StepRunner(
            self.session("decoder_step"), self.decoder_state_spec,
            {"codes": np.zeros((b, self.num_codebooks, k), np.int64),
             "n_q": np.array(self.num_codebooks, dtype=np.int64)},
            {"audio": np.zeros((b, 1, k * self.hop_length), np.float32)},
        )

    # Steps on explicit state -----------------------------------------------------------------
    def initial_encoder_state(self, batch_size: int = 1) -> dict[str, np.ndarray]:
        return zero_state(self.encoder_state_spec, check_batch_size(batch_size))

    def initial_decoder_state(self, batch_size: int = 1) -> dict[str, np.ndarray]:
        return zero_state(self.decoder_state_spec, check_batch_size(batch_size))

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
    def whole_signal_codec(self) -> OnnxCodec:
        """The codec whole signals are coded on: the block graphs of ``directory/blocks/``
        (same model, same state, ``k > 1`` frames per call; opened once, with this codec's
        threads) where :func:`whole_signal_graphs` picks them, else this codec (no
        ``blocks/``, ``blocks=False``, or int8 precision: block graphs are float32 only).

        Their codes equal the step graphs' but at rounding ties (README "How it works"), and
        their audio agrees to float32 rounding; a stale ``blocks/`` of another model is
        ignored with a warning.
        """
        if self._whole is None:
            d = whole_signal_graphs(self.directory, self.precision) if self.blocks \
                else self.directory
            self._whole = self if d == self.directory else OnnxCodec(
                d, self.num_threads, use_full_graphs=False, optimization=self.optimization,
                blocks=False)
            if self._whole is not self:  # the same model's: the step export's tables
                self._whole.entropy_tables = self.entropy_tables
        return self._whole

    def _as_batch(self, audio: str | Path | np.ndarray, sample_rate: int | None) -> np.ndarray:
        """A file (read at the model rate) or an array in an offline layout -> ``[B, T]``."""
        from ..audio import load_audio, resample

        if isinstance(audio, (str, Path)):
            x, _ = load_audio(audio, self.sample_rate)
            if x.size == 0:
                raise ValueError(f"{audio} contains no audio samples")
            return x[None]
        if sample_rate is not None:
            sample_rate = check_sample_rate(sample_rate)
        x = check_offline_audio(audio)
        if sample_rate is not None and sample_rate != self.sample_rate:
            x = np.stack([resample(a, sample_rate, self.sample_rate) for a in x])
            if x.shape[-1] == 0:
                raise ValueError(f"audio is empty after resampling {sample_rate} Hz -> "
                                 f"{self.sample_rate} Hz")
        return x

    def encode(self, audio: str | Path | np.ndarray, n_q: int | None = None,
               sample_rate: int | None = None) -> np.ndarray:
        """A file, or audio ``[T]``, ``[C, T]`` (``C <= 8`` channels, downmixed) or
        ``[B, 1, T]`` -> codes ``[B, n_q, ceil(T / hop)]`` (``B = 1`` but for ``[B, 1, T]``).

        Arrays are at the model rate unless ``sample_rate`` says otherwise; integer PCM is
        scaled to ``[-1, 1]``. Long inputs run in blocks (bounded memory) on the full-sequence
        graphs where exported, else the signal is streamed through :meth:`whole_signal_codec`
        (the block graphs where the export has them). Equals streaming the signal through
        :meth:`streaming_encoder` (but at rounding ties where the graphs differ).
        """
        n_q = self.encoder_n_q if n_q is None else check_n_q(n_q, self.encoder_n_q)
        x = self._as_batch(audio, sample_rate)
        if self.use_full_graphs:
            pad = -x.shape[-1] % self.hop_length
            x = np.pad(x, ((0, 0), (0, pad)))[:, None]
            state = self.initial_encoder_state(x.shape[0])
            block = BLOCK_FRAMES * self.hop_length
            out = []
            for i in range(0, x.shape[-1], block):
                codes, _, state = self.encoder_step(x[..., i:i + block], state, n_q)
                out.append(codes)
            return np.concatenate(out, axis=-1)
        enc = StreamingEncoder(OrtEngine(self.whole_signal_codec()), x.shape[0], n_q)
        return np.concatenate([enc.push(x), enc.flush()], axis=-1)

    def decode(self, codes: np.ndarray, length: int | None = None) -> np.ndarray:
        """Codes ``[B, n_q, F]`` (or ``[n_q, F]``) -> audio ``[B, F * hop]`` float32.

        ``length`` (``None`` or an integer ``>= 0``) trims the output to that many samples.
        Long inputs run in blocks (bounded memory) on the full-sequence graphs where exported,
        else through :meth:`whole_signal_codec` (the block graphs where the export has them).
        """
        length = check_length(length)
        if isinstance(codes, np.ndarray) and codes.ndim == 2:
            codes = codes[None]
        codes = check_codes(codes, self.num_codebooks, self.codebook_size)
        if codes.shape[-1] == 0:
            return np.zeros((codes.shape[0], 0), np.float32)
        if self.use_full_graphs:
            state = self.initial_decoder_state(codes.shape[0])
            out = []
            for i in range(0, codes.shape[-1], BLOCK_FRAMES):
                audio, state = self.decoder_step(codes[..., i:i + BLOCK_FRAMES], state)
                out.append(audio[:, 0])
            audio = np.concatenate(out, axis=-1)
        else:
            dec = StreamingDecoder(OrtEngine(self.whole_signal_codec()), codes.shape[0])
            audio = np.concatenate([dec.push(codes), dec.flush()], axis=-1)
        return audio if length is None else audio[:, :length]

    # Streaming sessions ------------------------------------------------------------------------
    def engine(self) -> OrtEngine:
        """This codec as an :class:`~dwancodec.engine.Engine` (numpy in and out)."""
        return OrtEngine(self)

    def streaming_encoder(self, batch_size: int = 1, n_q: int | None = None
                          ) -> StreamingEncoder:
        """A :class:`~dwancodec.engine.StreamingEncoder` on this codec (numpy results)."""
        return StreamingEncoder(OrtEngine(self), batch_size, n_q)

    def streaming_decoder(self, batch_size: int = 1) -> StreamingDecoder:
        """A :class:`~dwancodec.engine.StreamingDecoder` on this codec (numpy results)."""
        return StreamingDecoder(OrtEngine(self), batch_size)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "identity": self.identity, "codes": self.codes_identity,
            "compatible": list(self.compatible_identities),
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length, "frame_rate": self.frame_rate,
            "latency_ms": self.latency_ms, "frames_per_step": self.frames_per_step,
            "num_codebooks": self.num_codebooks, "encoder_n_q": self.encoder_n_q,
            "codebook_size": self.codebook_size, "num_threads": self.num_threads,
            "graphs": sorted(self.meta["graphs"]),
        }
