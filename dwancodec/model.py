"""The codec: causal encoder + residual quantizer + causal ISTFT decoder.

Tensors follow the PyTorch audio convention: audio ``[B, 1, T]`` float32 in ``[-1, 1]``,
codes ``[B, n_q, F]`` int64 with ``F = ceil(T / hop_length)``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from . import lengths
from .config import CodecConfig, get_config
from .nn.decoder import Decoder
from .nn.encoder import Encoder
from .quantization import QuantizerOutput, ResidualQuantizer
from .streaming.state import State, StateSpec, check_state, prefixed, sub_state, zero_state
from .validation import check_audio, check_codes, check_n_q

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class CodecOutput:
    """Training-time result of :meth:`Codec.forward`.

    audio: ``[B, 1, F * hop]`` reconstruction; codes: ``[B, n_q, F]``; latents: ``[B, D, F]``.
    """

    audio: Tensor
    codes: Tensor
    latents: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)


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
        self.decoder = Decoder(config.decoder, config.latent_dim, config.hop_length)

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

    def bitrate(self, n_q: int | None = None) -> float:
        """Bits per second using the first ``n_q`` stages (all by default)."""
        n_q = self.num_codebooks if n_q is None else check_n_q(n_q, self.num_codebooks)
        return lengths.bitrate(self.frame_rate, n_q, self.codebook_size)

    def n_q_for_bitrate(self, kbps: float) -> int:
        """Largest number of stages whose bitrate is at most ``kbps`` (at least 1)."""
        per_stage = self.bitrate(1) / 1000
        if kbps < per_stage:
            raise ValueError(
                f"bitrate {kbps} kbps is below the lowest this model offers ({per_stage:.2f} kbps)"
            )
        return min(self.num_codebooks, int(kbps / per_stage + 1e-9))

    # Offline ----------------------------------------------------------------------------------
    def encode(self, audio: Tensor, n_q: int | None = None) -> Tensor:
        """``[B, 1, T]`` audio -> ``[B, n_q, ceil(T / hop)]`` codes (tail zero-padded)."""
        check_audio(audio)
        n_q = self.num_codebooks if n_q is None else check_n_q(n_q, self.num_codebooks)
        pad = lengths.pad_to_hop(audio.shape[-1], self.hop_length)
        audio = nn.functional.pad(audio, (0, pad))
        state = zero_state(self.encoder_state_spec(), audio.shape[0], audio.device)
        codes, _ = self.encoder_step(audio, state, n_q)
        return codes

    def decode(self, codes: Tensor) -> Tensor:
        """``[B, k, F]`` codes -> ``[B, 1, F * hop]`` audio."""
        check_codes(codes, self.num_codebooks, self.codebook_size)
        state = zero_state(self.decoder_state_spec(), codes.shape[0], codes.device)
        audio, _ = self.decoder_step(codes, state)
        return audio

    def forward(self, audio: Tensor, n_q: int | None = None) -> CodecOutput:
        """Training pass on ``[B, 1, T]`` with ``T`` a multiple of ``hop_length``."""
        latents = self.encoder(audio)
        q: QuantizerOutput = self.quantizer(latents, n_q)
        recon = self.decoder(q.z_q)
        return CodecOutput(recon, q.codes, latents, q.losses, q.metrics)

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
        identity = _identity(self.config, loaded)
        save_file(tensors, str(d / WEIGHTS_FILE), metadata={"identity": identity})
        return d

    @classmethod
    def from_pretrained(cls, path: str | Path, map_location: str | torch.device = "cpu"
                        ) -> Codec:
        """Load a bundle directory (or a ``.safetensors`` file with ``config.json`` beside it)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        p = Path(path)
        weights = p / WEIGHTS_FILE if p.is_dir() else p
        config_path = weights.parent / CONFIG_FILE
        if not weights.exists():
            raise FileNotFoundError(f"no model weights at {weights}")
        if not config_path.exists():
            raise FileNotFoundError(f"no {CONFIG_FILE} beside {weights}")
        model = cls(CodecConfig.load(config_path))
        try:
            tensors = load_file(str(weights), device=str(map_location))
        except (SafetensorError, OSError) as e:
            raise ValueError(f"{weights} is not a valid safetensors file: {e}") from None
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{weights} does not match {config_path}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        return model.eval().to(map_location)

    @classmethod
    def from_config(cls, name_or_path: str | Path, seed: int | None = None) -> Codec:
        """A randomly initialised model from a named config or JSON file."""
        if seed is not None:
            torch.manual_seed(seed)
        return cls(get_config(name_or_path)).eval()

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
            "latency_ms": self.latency_ms,
            "num_codebooks": self.num_codebooks,
            "codebook_size": self.codebook_size,
            "bitrates_kbps": [round(self.bitrate(n) / 1000, 3)
                              for n in range(1, self.num_codebooks + 1)],
            "params": {"encoder": enc, "quantizer": qnt, "decoder": dec},
        }

    def describe_json(self) -> str:
        return json.dumps(self.describe(), indent=2)


def _identity(config: CodecConfig, state: dict[str, Tensor]) -> str:
    h = hashlib.sha256(config.identity_json().encode())
    for k, v in sorted(state.items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return f"{config.name}@{h.hexdigest()[:16]}"
