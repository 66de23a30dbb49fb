"""The torch :class:`~dwancodec.engine.Engine`: :meth:`Codec.encoder_step` /
:meth:`Codec.decoder_step` on a state dict of tensors.

Steps take numpy in and give numpy out (the shared sessions buffer in numpy); the state stays
a dict of tensors on the model's device, and :meth:`TorchEngine.output` turns session results
into tensors on that device, so the torch sessions give tensors as they always did. The steps
take any whole number of frames (``any_frames``): a session passes every ready frame in one
call, exactly as the offline :meth:`Codec.encode` does for the whole signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .. import validation
from .state import State, reset_streams, zero_state

if TYPE_CHECKING:
    from ..model import Codec


def _spec(spec: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(s.shape), str(s.dtype).removeprefix("torch.")) for k, s in spec.items()}


class TorchEngine:
    """:class:`~dwancodec.engine.Engine` over a torch :class:`~dwancodec.model.Codec`.

    ``numpy_output``: session results as numpy arrays instead of tensors (the live path).
    """

    name = "torch"
    frames_per_step = 1
    any_frames = True

    def __init__(self, codec: Codec, numpy_output: bool = False) -> None:
        self.codec = codec.eval()
        self.numpy_output = numpy_output
        self.device = next(codec.parameters()).device
        self.sample_rate = int(codec.sample_rate)
        self.hop_length = int(codec.hop_length)
        self.num_codebooks = int(codec.num_codebooks)
        self.encoder_n_q = self.num_codebooks
        self.codebook_size = int(codec.codebook_size)
        self.latent_dim = int(codec.config.latent_dim)
        self.latency_ms = float(codec.latency_ms)
        self.identity = codec.identity()
        self.codes_identity = codec.codes_identity()
        self.compatible_identities = tuple(codec.compatible_identities)
        self.entropy_tables = getattr(codec, "entropy_tables", None)
        q = codec.config.quantizer
        self.quantizer: dict[str, Any] = {"kind": q.kind, "levels": list(q.levels)}

    # State ------------------------------------------------------------------------------------
    def encoder_state_spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return _spec(self.codec.encoder_state_spec())

    def decoder_state_spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return _spec(self.codec.decoder_state_spec())

    def encoder_state(self, batch_size: int) -> State:
        return zero_state(self.codec.encoder_state_spec(), batch_size, self.device)

    def decoder_state(self, batch_size: int) -> State:
        return zero_state(self.codec.decoder_state_spec(), batch_size, self.device)

    def reset_state(self, state: State, mask: np.ndarray) -> State:
        return reset_streams(state, torch.from_numpy(np.asarray(mask)).to(self.device))

    def state_arrays(self, state: State) -> Mapping[str, Tensor]:
        return state

    # Steps ------------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_step(self, audio: np.ndarray, state: State, n_q: int
                    ) -> tuple[np.ndarray, State]:
        """``[B, k * hop]`` -> codes ``[B, n_q, k]`` (``Codec.encoder_step``)."""
        x = torch.from_numpy(np.ascontiguousarray(audio)).to(self.device)[:, None]
        codes, state = self.codec.encoder_step(x, state, n_q)
        return codes.cpu().numpy(), state

    @torch.inference_mode()
    def encode_step_latents(self, audio: np.ndarray, state: State, n_q: int
                            ) -> tuple[np.ndarray, np.ndarray, State]:
        """As :meth:`encode_step` (the same two calls as ``Codec.encoder_step``), with the
        latents ``[B, D, k]``."""
        from .state import prefixed, sub_state

        x = torch.from_numpy(np.ascontiguousarray(audio)).to(self.device)[:, None]
        latents, new = self.codec.encoder.step(x, sub_state(state, "encoder"))
        codes = self.codec.quantizer.encode(latents, n_q)
        return (codes.cpu().numpy(), latents.float().cpu().numpy(),
                prefixed("encoder", new))  # type: ignore[return-value]

    @torch.inference_mode()
    def decode_step(self, codes: np.ndarray, n_q: int, state: State
                    ) -> tuple[np.ndarray, State]:
        """Codes ``[B, >= n_q, k]`` -> audio ``[B, k * hop]`` (``Codec.decoder_step``)."""
        c = torch.from_numpy(np.ascontiguousarray(codes[:, :n_q])).to(self.device)
        audio, state = self.codec.decoder_step(c, state)
        return audio[:, 0].float().cpu().numpy(), state

    # Inputs and outputs -----------------------------------------------------------------------
    def check_pcm(self, pcm: Any, batch_size: int) -> np.ndarray:
        return validation.as_numpy(validation.check_pcm(pcm, batch_size))

    def check_codes(self, codes: Any, batch_size: int) -> np.ndarray:
        return validation.as_numpy(validation.check_codes(codes, self.num_codebooks,
                                                          self.codebook_size, batch_size))

    def stream_mask(self, streams: Any, batch_size: int) -> np.ndarray:
        return validation.stream_mask(streams, batch_size).numpy()

    def output(self, array: np.ndarray) -> Tensor | np.ndarray:
        if self.numpy_output:
            return array
        return torch.from_numpy(array).to(self.device)

    def bitrate(self, n_q: int | None = None) -> float:
        return float(self.codec.bitrate(n_q))

    def describe(self) -> str:
        return f"torch {self.identity}"
