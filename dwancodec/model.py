"""The codec: causal encoder + residual quantizer + causal ISTFT decoder.

Tensors follow the PyTorch audio convention: audio ``[B, 1, T]`` float32 in ``[-1, 1]``,
codes ``[B, n_q, F]`` int64 with ``F = ceil(T / hop_length)``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from . import lengths
from .bitstream.container import check_compatible
from .bitstream.entropy import EntropyTables, find_tables
from .config import CodecConfig, get_config
from .nn.decoder import Decoder
from .nn.encoder import Encoder
from .nn.pitch import pitch_track
from .quantization import QuantizerOutput, ResidualQuantizer
from .streaming.state import State, StateSpec, check_state, prefixed, sub_state, zero_state
from .validation import check_audio, check_codes, check_device, check_n_q

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class CodecOutput:
    """Training-time result of :meth:`Codec.forward`.

    audio: ``[B, 1, F * hop]`` reconstruction; codes: ``[B, n_q, F]``; latents: ``[B, D, F]``;
    n_active: ``[B]`` stages each item was decoded from (None for a single-stage quantizer).
    """

    audio: Tensor
    codes: Tensor
    latents: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)
    n_active: Tensor | None = None


class Codec(nn.Module):
    """Neural audio codec with explicit streaming state.

    Offline: :meth:`encode` / :meth:`decode`. Streaming: :meth:`encoder_step` /
    :meth:`decoder_step` on whole frames with state from :meth:`encoder_state_spec` /
    :meth:`decoder_state_spec` (see :mod:`dwancodec.streaming` for sessions that accept any
    chunk size). Offline is the streaming step started from a zero state.
    """

    def __init__(self, config: CodecConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.encoder, config.latent_dim)
        self.quantizer = ResidualQuantizer(config.quantizer, config.latent_dim)
        self.decoder = Decoder(config.decoder, config.latent_dim, config.hop_length,
                               config.sample_rate)
        # Identities of earlier models whose streams this one decodes (same codes_identity()),
        # for format-1 .dwc files, which name only the full identity. Kept in the safetensors
        # metadata, not in the config: it describes history, not the model.
        self.compatible_identities: tuple[str, ...] = ()
        # The bundle's entropy tables (entropy.safetensors), with which files are written
        # entropy-coded (.dwc format 3); None: fixed-rate files.
        self.entropy_tables: EntropyTables | None = None

    # Geometry ---------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def num_codebooks(self) -> int:
        return self.quantizer.num_quantizers

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def latency_samples(self) -> int:
        return lengths.algorithmic_latency(self.hop_length)

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.sample_rate

    @property
    def blind_share(self) -> float:
        """Share of the decoded output that the head extrapolates beyond what the encoder has
        seen (see :func:`dwancodec.lengths.blind_share`): 0.38 for default-v1's head."""
        dec = self.config.decoder
        return lengths.blind_share(self.hop_length, dec.n_fft, dec.istft_hop,
                                   window="sine" if dec.head == "mdct" else "hann")

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second using the first ``n_q`` stages (all by default)."""
        n_q = self.num_codebooks if n_q is None else check_n_q(n_q, self.num_codebooks)
        return lengths.bitrate(self.frame_rate, n_q, self.codebook_size)

    def n_q_for_bitrate(self, kbps: float) -> int:
        """Largest number of stages whose bitrate is at most ``kbps`` (at least 1)."""
        return lengths.n_q_for_bitrate(kbps, self.frame_rate, self.codebook_size,
                                       self.num_codebooks)

    # Offline ----------------------------------------------------------------------------------
    def encode(self, audio: Tensor, n_q: int | None = None) -> Tensor:
        """``[B, 1, T]`` audio -> ``[B, n_q, ceil(T / hop)]`` codes (tail zero-padded)."""
        audio = check_audio(audio)
        n_q = self.num_codebooks if n_q is None else check_n_q(n_q, self.num_codebooks)
        pad = lengths.pad_to_hop(audio.shape[-1], self.hop_length)
        audio = nn.functional.pad(audio, (0, pad))
        state = zero_state(self.encoder_state_spec(), audio.shape[0], audio.device)
        codes, _ = self.encoder_step(audio, state, n_q)
        return codes

    def decode(self, codes: Tensor) -> Tensor:
        """``[B, k, F]`` integer codes (tensor or numpy) -> ``[B, 1, F * hop]`` audio (``F = 0``
        gives ``[B, 1, 0]``)."""
        device = next(self.parameters()).device
        codes = check_codes(codes, self.num_codebooks, self.codebook_size).to(device)
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], 1, 0, device=device)
        state = zero_state(self.decoder_state_spec(), codes.shape[0], codes.device)
        audio, _ = self.decoder_step(codes, state)
        return audio

    def forward(self, audio: Tensor, n_q: int | None = None) -> CodecOutput:
        """Training pass on ``[B, 1, T]`` with ``T`` a multiple of ``hop_length``."""
        latents = self.encoder(audio)
        q: QuantizerOutput = self.quantizer(latents, n_q)
        state = self.decoder.initial_state(audio.shape[0], audio.device)
        dec = self.config.decoder
        teacher = target = conf = None
        if dec.excitation == "harmonic":
            target, conf = pitch_track(audio[:, 0], self.sample_rate, dec.istft_hop, dec.n_fft)
            if self.training:  # teacher forcing on the clearly periodic frames
                teacher = torch.where(conf > 0.5, target, torch.full_like(target, math.nan))
        recon, _, log_f0 = self.decoder.run(q.z_q, state, teacher)
        losses, metrics = dict(q.losses), dict(q.metrics)
        if log_f0 is not None and target is not None and conf is not None:
            # The excitation's f0 learns from the input's pitch track, weighted by how
            # periodic each frame is (unvoiced frames teach nothing about f0).
            err = (log_f0 - target).abs()
            losses["f0"] = (err * conf).sum() / conf.sum().clamp_min(1.0)
            metrics["voiced"] = conf.mean()
        return CodecOutput(recon, q.codes, latents, losses, metrics, q.n_active)

    # Streaming steps --------------------------------------------------------------------------
    def encoder_state_spec(self) -> dict[str, StateSpec]:
        return prefixed("encoder", self.encoder.state_spec())  # type: ignore[return-value]

    def decoder_state_spec(self) -> dict[str, StateSpec]:
        return prefixed("decoder", self.decoder.state_spec())  # type: ignore[return-value]

    def encoder_step(self, audio: Tensor, state: State, n_q: int | None = None
                     ) -> tuple[Tensor, State]:
        """``[B, 1, k * hop]`` audio + state -> ``[B, n_q, k]`` codes + new state."""
        latents, new = self.encoder.step(audio, sub_state(state, "encoder"))
        codes = self.quantizer.encode(latents, n_q)
        return codes, prefixed("encoder", new)  # type: ignore[return-value]

    def decoder_step(self, codes: Tensor, state: State) -> tuple[Tensor, State]:
        """``[B, n_q, k]`` codes + state -> ``[B, 1, k * hop]`` audio + new state."""
        z_q = self.quantizer.decode(codes)
        audio, new = self.decoder.step(z_q, sub_state(state, "decoder"))
        return audio, prefixed("decoder", new)  # type: ignore[return-value]

    def check_encoder_state(self, state: State, batch: int) -> None:
        check_state(self.encoder_state_spec(), state, batch)

    def check_decoder_state(self, state: State, batch: int) -> None:
        check_state(self.decoder_state_spec(), state, batch)

    # Persistence ------------------------------------------------------------------------------
    def identity(self) -> str:
        """``name@sha256[:16]`` of the config JSON and the weights: names a bitstream's model."""
        return _identity(self.config, self.state_dict())

    def codes_identity(self) -> str:
        """16 hex digits naming what the codes mean: sha256 of the encoder and quantizer (their
        config sections, the sample rate and latent size, their weights). Two models with the
        same codes identity emit the same codes for the same audio and read codes as the same
        latents, so a stream of one decodes with the other: a decoder-only fine-tune keeps it.

        Example: the default ``dwancodec-16k@5543c1de...`` (decoder fine-tuned twice) has the
        codes identity ``d6b1ebbb68bfb3d1`` of ``dwancodec-16k@2f8e8507...``, whose encoder and
        quantizer it kept; any change to those moves it.
        """
        return _codes_identity(self.config, self.state_dict())

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (no pickle) into ``directory``.

        ``dtype=torch.float16`` halves the file; weights are cast back to float32 on load, and
        the stored identity is that of the rounded weights, i.e. of the model a user loads.
        """
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.config.save(d / CONFIG_FILE)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        tensors = state if dtype is None else {
            k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        loaded = {k: v.to(state[k].dtype) for k, v in tensors.items()}  # what from_pretrained sees
        meta = {"identity": _identity(self.config, loaded),
                "codes": _codes_identity(self.config, loaded),
                "compatible": json.dumps(list(self.compatible_identities))}
        save_file(tensors, str(d / WEIGHTS_FILE), metadata=meta)
        return d

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu"
                        ) -> Codec:
        """Load a bundle directory (or a ``.safetensors`` file with ``config.json`` beside it).

        Everything is checked before the model is built: the device, the config's types and
        bounds, and every tensor name, shape and kind in the safetensors header against the
        ones the config gives; a mismatch is a ``ValueError`` naming the tensor, and nothing
        larger than the file is ever allocated.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        device = check_device(map_location)
        p = Path(path)
        weights = p / WEIGHTS_FILE if p.is_dir() else p
        config_path = weights.parent / CONFIG_FILE
        if not weights.exists():
            raise FileNotFoundError(f"no model weights at {weights}")
        if not weights.is_file():
            raise ValueError(f"model weights {weights} are not a file")
        if not config_path.exists():
            raise FileNotFoundError(f"no {CONFIG_FILE} beside {weights}")
        config = CodecConfig.load(config_path)
        header = read_safetensors_header(weights)
        expected = expected_tensors(config)
        _compare_tensors(header, expected, weights, config_path)
        compatible = read_compatible(weights)
        model = cls(config)
        try:
            tensors = load_file(str(weights), device="cpu")
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{weights} is not a valid safetensors file: {e}") from None
        model.load_state_dict(tensors, strict=True)
        model.compatible_identities = compatible
        model.entropy_tables = find_tables(weights.parent)
        return model.eval().to(device)

    @classmethod
    def from_config(cls, name_or_path: str | Path, seed: int | None = None) -> Codec:
        """A randomly initialised model from a named config or JSON file (at most
        :data:`MAX_PARAMETERS` values)."""
        config = get_config(name_or_path)
        expected_tensors(config)  # refuses a config too large to build, before building it
        if seed is not None:
            torch.manual_seed(seed)
        return cls(config).eval()

    def describe(self) -> dict[str, object]:
        """Geometry, size and bitrates, for ``dwancodec info``."""
        enc = sum(p.numel() for p in self.encoder.parameters())
        dec = sum(p.numel() for p in self.decoder.parameters())
        qnt = sum(p.numel() for p in self.quantizer.parameters())
        return {
            "name": self.config.name,
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "frame_rate": self.frame_rate,
            "latency_samples": self.latency_samples,
            "latency_ms": self.latency_ms,
            "blind_share": round(self.blind_share, 4),
            "head": f"{self.config.decoder.head}, window {self.config.decoder.n_fft}, "
                    f"hop {self.config.decoder.istft_hop}"
                    + (f", {self.config.decoder.excitation} excitation"
                       if self.config.decoder.excitation != "none" else ""),
            "num_codebooks": self.num_codebooks,
            "codebook_size": self.codebook_size,
            "bitrates_kbps": [round(self.bitrate(n) / 1000, 3)
                              for n in range(1, self.num_codebooks + 1)],
            "params": {"encoder": enc, "quantizer": qnt, "decoder": dec},
        }

    def describe_json(self) -> str:
        return json.dumps(self.describe(), indent=2)


# Loading: the safetensors header against the config, before anything is allocated ----------
MAX_PARAMETERS = 1 << 30    # values in a model's state dict (4 GB of float32)
MAX_HEADER_BYTES = 100 << 20
_ST_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2,
                "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}
_KIND = {"B": "bool", "U": "int", "I": "int", "F": "float"}


def read_safetensors_header(path: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (safetensors dtype, shape) from a file's header, with every entry checked
    against the file size (reads only the header). ``ValueError`` if the file is not a valid
    safetensors file."""
    p = Path(path)
    size = p.stat().st_size

    def bad(msg: str) -> ValueError:
        return ValueError(f"{p} is not a valid safetensors file: {msg}")

    with open(p, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise bad(f"{size} bytes, shorter than the 8-byte header length")
        n = int.from_bytes(head, "little")
        if not 2 <= n <= min(size - 8, MAX_HEADER_BYTES):
            raise bad(f"header length {n} does not fit the file ({size} bytes)")
        raw = f.read(n)
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise bad(f"header is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise bad("header is not a JSON object")
    data_size = size - 8 - n
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, e in meta.items():
        if name == "__metadata__":
            continue
        if not isinstance(e, dict) or e.get("dtype") not in _ST_ITEMSIZE:
            raise bad(f"tensor {name!r:.80} has no known dtype")
        shape, offsets = e.get("shape"), e.get("data_offsets")
        if not isinstance(shape, list) or any(
                isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in shape):
            raise bad(f"tensor {name!r:.80} has an invalid shape {shape!r:.80}")
        if not isinstance(offsets, list) or len(offsets) != 2 or any(
                isinstance(v, bool) or not isinstance(v, int) for v in offsets) \
                or not 0 <= offsets[0] <= offsets[1] <= data_size:
            raise bad(f"tensor {name!r:.80} has data offsets {offsets!r:.80} outside the file")
        if offsets[1] - offsets[0] != math.prod(shape) * _ST_ITEMSIZE[e["dtype"]]:
            raise bad(f"tensor {name!r:.80}: {offsets[1] - offsets[0]} bytes for shape "
                      f"{shape} {e['dtype']}")
        out[name] = (e["dtype"], tuple(shape))
    return out


class _LargeOnMeta(TorchFunctionMode):
    """Factory calls of :data:`_META_MIN` values or more make meta tensors (shape, no memory);
    smaller ones stay on the CPU, so that building a model allocates a few kB at most.

    (A whole build under ``torch.device("meta")`` would do too, but its first use imports
    torch._dynamo, which costs seconds on every command.)"""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and kwargs.get("device") is None:
            size = kwargs.get("size")
            if size is None:
                size = args[0] if func is torch.full or (
                    len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size))) else args
            try:
                numel = math.prod(int(v) for v in size)
            except (TypeError, ValueError):
                numel = 0
            if numel >= _META_MIN:
                kwargs["device"] = "meta"
        return func(*args, **kwargs)


_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn}
_META_MIN = 4096


@functools.lru_cache(maxsize=8)
def expected_tensors(config: CodecConfig) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (kind ``float``/``int``/``bool``, shape) of ``Codec(config)``'s state
    dict, found without allocating its large tensors (they are made on the meta device).
    ``ValueError`` above :data:`MAX_PARAMETERS` values."""
    try:
        with _LargeOnMeta():
            model = Codec(config)
    except (RuntimeError, NotImplementedError):  # an init mixing devices: all on meta
        with torch.device("meta"):
            model = Codec(config)
    state = model.state_dict()
    total = sum(t.numel() for t in state.values())
    if total > MAX_PARAMETERS:
        raise ValueError(f"config {config.name!r} asks for {total:,} parameters (at most "
                         f"{MAX_PARAMETERS:,}); check the sizes in its config")
    return {k: ("float" if t.is_floating_point() else "bool" if t.dtype == torch.bool
                else "int", tuple(t.shape)) for k, t in state.items()}


def _compare_tensors(header: dict[str, tuple[str, tuple[int, ...]]],
                     expected: dict[str, tuple[str, tuple[int, ...]]], weights: Path,
                     config_path: Path) -> None:
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{weights} does not match {config_path}: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    for k, (kind, shape) in expected.items():
        dtype, got = header[k]
        if got != shape:
            raise ValueError(f"{weights} does not match {config_path}: tensor {k} has shape "
                             f"{list(got)} in the file, the config gives {list(shape)}")
        if _KIND[dtype[0]] != kind:
            raise ValueError(f"{weights} does not match {config_path}: tensor {k} is {dtype} "
                             f"in the file, the config gives a {kind} tensor")


def _hash_tensors(h: Any, state: dict[str, Tensor]) -> None:
    for k, v in sorted(state.items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())


def _identity(config: CodecConfig, state: dict[str, Tensor]) -> str:
    h = hashlib.sha256(config.identity_json().encode())
    _hash_tensors(h, state)
    return f"{config.name}@{h.hexdigest()[:16]}"


# VQ-EMA training statistics: they move while the codebook they summarise does not.
_CODE_STATS = (".cluster_size", ".embed_sum")


def _codes_identity(config: CodecConfig, state: dict[str, Tensor]) -> str:
    full = json.loads(config.identity_json())
    space = {k: full[k] for k in ("sample_rate", "latent_dim", "encoder", "quantizer")}
    h = hashlib.sha256(b"dwancodec codes\n" + json.dumps(space, sort_keys=True).encode())
    _hash_tensors(h, {k: v for k, v in state.items()
                      if k.startswith(("encoder.", "quantizer.")) and not k.endswith(_CODE_STATS)})
    return h.hexdigest()[:16]


def read_compatible(weights: str | Path) -> tuple[str, ...]:
    """The ``compatible`` list of a bundle's safetensors metadata: identities of earlier models
    with the same codes (``()`` where there is none); ``ValueError`` if it is malformed (the
    check the ONNX sidecar's list gets too: :func:`dwancodec.bitstream.check_compatible`)."""
    from safetensors import SafetensorError, safe_open

    try:
        meta = safe_open(str(weights), "np").metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights} is not a valid safetensors file: {e}") from None
    raw = meta.get("compatible")
    if raw is None:
        return ()
    try:
        items = json.loads(raw)
    except json.JSONDecodeError:
        items = raw  # not JSON: the check below names it
    return check_compatible(items, f"{weights}: metadata 'compatible'")
