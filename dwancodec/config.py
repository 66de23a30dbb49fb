"""Model configuration: frozen dataclasses, saved as JSON beside the safetensors weights.

Every size in the model comes from here; nothing is hidden in module defaults. ``CodecConfig``
validates its own geometry (strides vs. ISTFT hop, levels, ...) so that a bad config fails when
it is built, with a message naming the field, not deep inside a forward pass.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUANTIZER_KINDS = ("fsq", "lfq", "ema", "origin")
HEAD_KINDS = ("magphase", "complex", "mdct")
EXCITATION_KINDS = ("none", "harmonic", "tracked", "locked")


@dataclass(frozen=True)
class EncoderConfig:
    """Causal ConvNeXt encoder on the waveform.

    ``strides[0]`` is the stride of the patchifying stem; each later stride is a strided causal
    downsampling conv between stages. ``channels[i]``/``depths[i]`` are the width and number of
    ConvNeXt blocks of stage ``i``, which runs at ``sample_rate / prod(strides[: i + 1])``.
    """

    strides: tuple[int, ...] = (4, 4, 4, 5)
    channels: tuple[int, ...] = (24, 48, 96, 256)
    depths: tuple[int, ...] = (1, 1, 1, 2)
    kernel_size: int = 7
    mlp_ratio: float = 2.0


@dataclass(frozen=True)
class QuantizerConfig:
    """Residual quantizer: ``num_quantizers`` stages of one kind.

    kind: "fsq" (finite scalar quantization, ``levels``), "lfq" (lookup-free, ``lfq_bits``),
    "ema" (VQ with EMA codebook updates and dead-code restart), "origin" (VQ trained by
    codebook + commitment losses). VQ kinds use ``codebook_size`` entries of ``codebook_dim``.
    """

    kind: str = "fsq"
    num_quantizers: int = 8
    levels: tuple[int, ...] = (8, 8, 8, 6, 5)
    lfq_bits: int = 14
    codebook_size: int = 1024
    codebook_dim: int = 8
    ema_decay: float = 0.99
    dead_code_threshold: float = 2.0
    quantizer_dropout: float = 0.5
    # Residual refinement: stage i quantizes ``residual * stage_gain**i`` and its output is
    # scaled back by ``stage_gain**-i``, so later stages start at a finer scale (residual FSQ).
    # 1.0 = v1 (every stage at the same scale; the residual then grows across stages).
    stage_gain: float = 1.0


@dataclass(frozen=True)
class DecoderConfig:
    """Vocos-style causal ConvNeXt backbone at frame rate + ISTFT head.

    The head emits ``hop / istft_hop`` STFT frames per code frame (window ``n_fft``, hop
    ``istft_hop``); ``n_fft`` must be a multiple of ``istft_hop`` so overlap-add is a sum of
    ``n_fft / istft_hop`` shifted copies (exportable, no fold/col2im).
    """

    dim: int = 256
    depth: int = 6
    kernel_size: int = 7
    input_kernel_size: int = 3
    mlp_ratio: float = 3.0
    # A 10 ms synthesis window on 5 ms hops: only 12.7 % of each 20 ms block is extrapolated
    # by windows of the previous code frame (the blind share; 37.7 % with v1's 20 ms window).
    # The issue-12 ablation: with the phase losses this head reaches PESQ-WB 1.52 at 12k steps
    # where v1's head stays at 1.10 (docs/training-log.md).
    n_fft: int = 160
    istft_hop: int = 80
    # What the head predicts per synthesis frame: "magphase" (Vocos: log-magnitude + phase),
    # "complex" (real + imaginary, a linear output) or "mdct" (``istft_hop`` real MDCT
    # coefficients; sine window, time-domain aliasing cancellation, needs n_fft = 2 * istft_hop).
    head: str = "magphase"
    # Causal ConvNeXt blocks on the head's output at the synthesis-frame rate (``istft_hop``),
    # ``coeffs_per_frame`` channels: the linear output layer alone confines the ``U`` frames of
    # a code frame to a ``dim``-dimensional subspace (see ``dwancodec.nn.istft``). No latency.
    # Off by default: 2 blocks gained nothing over the control in 1 CPU hour (training-log
    # round 7).
    subframe_depth: int = 0
    # Experimental (``dwancodec.nn.excitation``): each synthesis frame adds a learned complex
    # filter applied to a band-limited pulse train, so a voice's harmonics line up from frame
    # to frame by construction instead of through learned per-frame phases. f0 and the pulses'
    # phase: "harmonic" predicts f0 (trained against a pitch track of the input, loss "f0")
    # and runs the phase free; "tracked" tracks f0 on the head's own decode (causal, no
    # latency), free phase; "locked" tracked, with the pulses placed where the decode's own
    # pulses are. Not for the "mdct" head (its coefficients are real). Off by default: none
    # of the three beat the control in 1000-4000 warm-start steps, and "locked" costs 5.3x the
    # decoder's ONNX step, mostly its pitch search (training-log round 11).
    excitation: str = "none"


@dataclass(frozen=True)
class CodecConfig:
    """The whole codec. ``latent_dim`` is the width of the encoder output / quantizer input."""

    name: str = "dwancodec-16k"
    sample_rate: int = 16000
    latent_dim: int = 256
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    def __post_init__(self) -> None:
        validate_config(self)

    @property
    def hop_length(self) -> int:
        return math.prod(self.encoder.strides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def identity_json(self) -> str:
        """The JSON a model identity hashes: fields added after the first release are left out
        while they hold their default, so models saved before them keep their identity (and
        their bitstreams and ONNX exports stay valid)."""
        data = self.to_dict()
        for section, name in LATER_FIELDS:
            if data[section][name] == getattr(_DEFAULT_SECTIONS[section], name):
                del data[section][name]
        return json.dumps(data, indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodecConfig:
        return _from_dict(cls, data)

    @classmethod
    def load(cls, path: str | Path) -> CodecConfig:
        """Read a JSON config; ``ValueError`` naming the file and the problem."""
        p = Path(path)
        if p.stat().st_size > 1 << 20:
            raise ValueError(f"config file {p} is not a codec config (larger than 1 MB)")
        try:
            data = json.loads(p.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            raise ValueError(f"config file {p} is not valid JSON: {e}") from None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config file {p}: {e}") from None

    def replace(self, **changes: Any) -> CodecConfig:
        """A copy with top-level fields or dotted sub-fields changed.

        Example: ``cfg.replace(**{"quantizer.kind": "ema", "sample_rate": 24000})``.
        """
        data = self.to_dict()
        for key, value in changes.items():
            *parents, leaf = key.split(".")
            node = data
            for p in parents:
                if p not in node or not isinstance(node[p], dict):
                    raise ValueError(f"unknown config section {p!r} in {key!r}")
                node = node[p]
            if leaf not in node:
                raise ValueError(f"unknown config field {key!r}")
            node[leaf] = value
        return CodecConfig.from_dict(data)


# (section, field) added after dwancodec-16k v1; see CodecConfig.identity_json.
LATER_FIELDS = (("decoder", "head"), ("quantizer", "stage_gain"),
                ("decoder", "subframe_depth"), ("decoder", "excitation"))
_DEFAULT_SECTIONS = {"encoder": EncoderConfig(), "quantizer": QuantizerConfig(),
                     "decoder": DecoderConfig()}


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    nested = {"encoder": EncoderConfig, "quantizer": QuantizerConfig, "decoder": DecoderConfig}
    for name, value in data.items():
        if cls is CodecConfig and name in nested:
            if not isinstance(value, dict):
                raise ValueError(f"config field {name} must be a section (JSON object), got "
                                 f"{value!r:.80}")
            kwargs[name] = _from_dict(nested[name], value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


# Bounds of every numeric field (inclusive), so that a config file can never ask for a model
# too large to build; a model's total size is bounded again by MAX_PARAMETERS (model.py).
BOUNDS: dict[str, tuple[float, float]] = {
    "sample_rate": (1, 768_000), "latent_dim": (1, 4096),
    "encoder.strides": (1, 64), "encoder.channels": (1, 4096), "encoder.depths": (0, 64),
    "encoder.kernel_size": (1, 63), "encoder.mlp_ratio": (0.0625, 16),
    "quantizer.num_quantizers": (1, 64), "quantizer.levels": (2, 65535),
    "quantizer.lfq_bits": (1, 24), "quantizer.codebook_size": (2, 65536),
    "quantizer.codebook_dim": (1, 1024), "quantizer.ema_decay": (0, 1),
    "quantizer.dead_code_threshold": (0, 1e6), "quantizer.quantizer_dropout": (0, 1),
    "decoder.dim": (1, 4096), "decoder.depth": (0, 64), "decoder.kernel_size": (1, 63),
    "decoder.input_kernel_size": (1, 63), "decoder.mlp_ratio": (0.0625, 16),
    "decoder.n_fft": (2, 16384), "decoder.istft_hop": (1, 8192), "decoder.subframe_depth": (0, 64),
}
MAX_TUPLE = 16          # entries of encoder.strides/channels/depths and quantizer.levels
MAX_NAME = 200          # characters of a config name (the model identity adds 17)
MAX_HOP = 1 << 16       # product of encoder.strides
MAX_CODEBOOK = 1 << 24  # product of quantizer.levels


def _check_field(where: str, value: Any, kind: str) -> None:
    """One field against its annotated type (``int``, ``float``, ``str``, ``tuple[int, ...]``)
    and its :data:`BOUNDS`."""
    def bad(expected: str) -> ValueError:
        return ValueError(f"config field {where} must be {expected}, got {value!r:.80}")

    lo, hi = BOUNDS.get(where, (None, None))
    rng = f" in [{lo:g}, {hi:g}]" if lo is not None else ""
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"an integer{rng}")
        if lo is not None and not lo <= value <= hi:
            raise bad(f"an integer{rng}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise bad(f"a number{rng}")
        if lo is not None and not lo <= value <= hi:
            raise bad(f"a number{rng}")
    elif kind.startswith("tuple"):
        if not isinstance(value, tuple) or not 1 <= len(value) <= MAX_TUPLE or any(
                isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise bad(f"a list of 1 to {MAX_TUPLE} integers{rng}")
        if lo is not None and any(not lo <= v <= hi for v in value):
            raise bad(f"a list of 1 to {MAX_TUPLE} integers{rng}")


def check_types(cfg: CodecConfig) -> None:
    """Every field of ``cfg`` has its annotated type and lies within :data:`BOUNDS`; raises
    ``ValueError`` naming the first that does not (``config field decoder.dim must be ...``)."""
    sections = {"encoder": EncoderConfig, "quantizer": QuantizerConfig,
                "decoder": DecoderConfig}
    for f in dataclasses.fields(CodecConfig):
        value = getattr(cfg, f.name)
        if f.name in sections:
            if not isinstance(value, sections[f.name]):
                raise ValueError(f"config field {f.name} must be a section (JSON object), "
                                 f"got {value!r:.80}")
            for g in dataclasses.fields(sections[f.name]):
                _check_field(f"{f.name}.{g.name}", getattr(value, g.name), str(g.type))
        else:
            _check_field(f.name, value, str(f.type))
    if not 1 <= len(cfg.name) <= MAX_NAME or not cfg.name.isascii() \
            or not cfg.name.isprintable() or "@" in cfg.name:
        raise ValueError(f"config field name must be 1 to {MAX_NAME} printable ASCII "
                         f"characters without '@', got {cfg.name!r:.80}")


def validate_config(cfg: CodecConfig) -> None:
    """Raise ``ValueError`` naming the field if a type, a bound or the geometry is wrong."""
    check_types(cfg)
    enc, q, dec = cfg.encoder, cfg.quantizer, cfg.decoder
    if cfg.sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {cfg.sample_rate}")
    n = len(enc.strides)
    if n == 0 or len(enc.channels) != n or len(enc.depths) != n:
        raise ValueError(
            "encoder.strides, encoder.channels and encoder.depths must have the same non-zero "
            f"length, got {len(enc.strides)}, {len(enc.channels)}, {len(enc.depths)}"
        )
    if any(s < 1 for s in enc.strides):
        raise ValueError(f"encoder.strides must be >= 1, got {enc.strides}")
    if cfg.hop_length > MAX_HOP:
        raise ValueError(f"hop length {cfg.hop_length} (product of encoder.strides) is above "
                         f"{MAX_HOP}")
    if q.kind not in QUANTIZER_KINDS:
        raise ValueError(f"quantizer.kind must be one of {QUANTIZER_KINDS}, got {q.kind!r}")
    if q.num_quantizers < 1:
        raise ValueError(f"quantizer.num_quantizers must be >= 1, got {q.num_quantizers}")
    if q.kind == "fsq" and (not q.levels or any(v < 2 for v in q.levels)):
        raise ValueError(f"quantizer.levels must all be >= 2, got {q.levels}")
    if q.kind == "fsq" and math.prod(q.levels) > MAX_CODEBOOK:
        raise ValueError(f"quantizer.levels {q.levels} give {math.prod(q.levels)} codes "
                         f"(at most {MAX_CODEBOOK})")
    if not 1.0 <= q.stage_gain <= 16.0:
        raise ValueError(f"quantizer.stage_gain must be in [1, 16], got {q.stage_gain}")
    if q.kind == "lfq" and not 1 <= q.lfq_bits <= 24:
        raise ValueError(f"quantizer.lfq_bits must be in [1, 24], got {q.lfq_bits}")
    hop = cfg.hop_length
    if hop % dec.istft_hop:
        raise ValueError(
            f"hop length {hop} (product of encoder.strides) must be a multiple of "
            f"decoder.istft_hop={dec.istft_hop}"
        )
    if dec.n_fft % dec.istft_hop or dec.n_fft <= dec.istft_hop:
        raise ValueError(
            f"decoder.n_fft={dec.n_fft} must be a multiple (>= 2x) of "
            f"decoder.istft_hop={dec.istft_hop}"
        )
    if dec.n_fft % 2:
        raise ValueError(f"decoder.n_fft must be even, got {dec.n_fft}")
    if dec.head not in HEAD_KINDS:
        raise ValueError(f"decoder.head must be one of {HEAD_KINDS}, got {dec.head!r}")
    if dec.excitation not in EXCITATION_KINDS:
        raise ValueError(f"decoder.excitation must be one of {EXCITATION_KINDS}, "
                         f"got {dec.excitation!r}")
    if dec.excitation != "none" and dec.head == "mdct":
        raise ValueError(f"decoder.excitation {dec.excitation!r} needs a DFT head ('magphase' "
                         "or 'complex'), got decoder.head 'mdct'")
    if dec.head == "mdct" and dec.n_fft != 2 * dec.istft_hop:
        raise ValueError(
            f"decoder.head 'mdct' needs n_fft = 2 * istft_hop, got n_fft={dec.n_fft}, "
            f"istft_hop={dec.istft_hop}"
        )


def named_configs() -> dict[str, CodecConfig]:
    """The configurations the project ships and tests.

    - ``default``: 16 kHz, 20 ms frames, FSQ 8 stages (~0.7 kbps each).
    - ``lowlatency``: 16 kHz, 10 ms frames (hop 160).
    - ``24k``: 24 kHz, 20 ms frames (hop 480).
    - ``tiny``: a very small 16 kHz model for tests (hop 40).
    """
    default = CodecConfig()
    return {
        "default": default,
        "lowlatency": default.replace(
            name="dwancodec-16k-ll",
            **{"encoder.strides": (4, 4, 2, 5), "decoder.istft_hop": 40, "decoder.n_fft": 80},
        ),
        "24k": default.replace(
            name="dwancodec-24k",
            sample_rate=24000,
            **{"encoder.strides": (4, 4, 5, 6), "decoder.istft_hop": 120, "decoder.n_fft": 240},
        ),
        "tiny": CodecConfig(
            name="dwancodec-tiny",
            latent_dim=16,
            encoder=EncoderConfig(strides=(2, 4, 5), channels=(4, 8, 16), depths=(1, 1, 1)),
            quantizer=QuantizerConfig(num_quantizers=3, levels=(5, 4, 3), codebook_size=32,
                                      codebook_dim=4, lfq_bits=5),
            decoder=DecoderConfig(dim=16, depth=2, n_fft=40, istft_hop=10, mlp_ratio=2.0),
        ),
    }


def get_config(name_or_path: str | Path) -> CodecConfig:
    """A named config (see :func:`named_configs`) or a JSON file."""
    configs = named_configs()
    if isinstance(name_or_path, str) and name_or_path in configs:
        return configs[name_or_path]
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    if not path.exists():
        raise ValueError(
            f"unknown config {str(name_or_path)!r}: not one of {sorted(configs)} and no such file"
        )
    return CodecConfig.load(path)
