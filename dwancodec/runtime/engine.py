"""The ONNX Runtime :class:`~dwancodec.engine.Engine`: an :class:`OnnxCodec`'s step graphs.

Each state is an :class:`OrtState`: one :class:`~dwancodec.runtime.onnx_codec.StepRunner`
(preallocated, IO-bound input, output and double-buffered state arrays at one batch size), so
a step copies its input into the bound buffer, runs, and allocates nothing. Torch-free.

This module does not import :mod:`~dwancodec.runtime.onnx_codec` (which imports it), so there
is no import circle: it only calls the codec's methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import checks, lengths

if TYPE_CHECKING:
    from .onnx_codec import OnnxCodec, StepRunner


class OrtState:
    """The state of ``B`` streams on one step graph: a runner that holds it (in place)."""

    def __init__(self, runner: StepRunner) -> None:
        self.runner = runner

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Key -> ``[B, *shape]``: what the next step reads (may be edited in place)."""
        return self.runner.state


class OrtEngine:
    """:class:`~dwancodec.engine.Engine` over an :class:`OnnxCodec` (numpy in and out).

    The step graphs take exactly ``frames_per_step`` frames per call (``any_frames`` is
    false); results of the sessions are numpy arrays.
    """

    name = "onnx"
    any_frames = False

    def __init__(self, codec: OnnxCodec) -> None:
        self.codec = codec
        self.sample_rate = codec.sample_rate
        self.hop_length = codec.hop_length
        self.frames_per_step = codec.frames_per_step
        self.num_codebooks = codec.num_codebooks
        self.encoder_n_q = codec.encoder_n_q
        self.codebook_size = codec.codebook_size
        self.latent_dim = codec.latent_dim
        self.latency_ms = codec.latency_ms
        self.identity = codec.identity
        self.codes_identity = codec.codes_identity
        self.compatible_identities = codec.compatible_identities
        self.entropy_tables = codec.entropy_tables
        q = codec.meta.get("quantizer")
        self.quantizer: dict[str, Any] = q if isinstance(q, dict) else {}

    # State ------------------------------------------------------------------------------------
    def encoder_state_spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return dict(self.codec.encoder_state_spec)

    def decoder_state_spec(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return dict(self.codec.decoder_state_spec)

    def encoder_state(self, batch_size: int) -> OrtState:
        return OrtState(self.codec.encoder_runner(batch_size))

    def decoder_state(self, batch_size: int) -> OrtState:
        return OrtState(self.codec.decoder_runner(batch_size))

    def reset_state(self, state: OrtState, mask: np.ndarray) -> OrtState:
        state.runner.reset(mask)
        return state

    def state_arrays(self, state: OrtState) -> Mapping[str, np.ndarray]:
        return state.arrays

    # Steps ------------------------------------------------------------------------------------
    def encode_step(self, audio: np.ndarray, state: OrtState, n_q: int
                    ) -> tuple[np.ndarray, OrtState]:
        """``[B, k * hop]`` -> codes ``[B, n_q, k]`` (a view of the bound output)."""
        r = state.runner
        np.copyto(r.inputs["audio"][:, 0], audio)
        r.run()
        return r.outputs["codes"][:, :n_q], state

    def encode_step_latents(self, audio: np.ndarray, state: OrtState, n_q: int
                            ) -> tuple[np.ndarray, np.ndarray, OrtState]:
        codes, state = self.encode_step(audio, state, n_q)
        return codes, state.runner.outputs["latents"], state

    def decode_step(self, codes: np.ndarray, n_q: int, state: OrtState
                    ) -> tuple[np.ndarray, OrtState]:
        """Codes ``[B, >= n_q, k]`` -> audio ``[B, k * hop]`` (a view of the bound output)."""
        r = state.runner
        r.inputs["codes"][:, :n_q] = codes[:, :n_q]
        r.inputs["n_q"][...] = n_q
        r.run()
        return r.outputs["audio"][:, 0], state

    # Inputs and outputs -----------------------------------------------------------------------
    def check_pcm(self, pcm: Any, batch_size: int) -> np.ndarray:
        return checks.check_pcm(pcm, batch_size)

    def check_codes(self, codes: Any, batch_size: int) -> np.ndarray:
        return checks.check_codes(codes, self.num_codebooks, self.codebook_size, batch_size)

    def stream_mask(self, streams: Any, batch_size: int) -> np.ndarray:
        return checks.stream_mask(streams, batch_size)

    def output(self, array: np.ndarray) -> np.ndarray:
        return array

    def bitrate(self, n_q: int | None = None) -> float:
        n_q = self.num_codebooks if n_q is None else checks.check_n_q(n_q, self.num_codebooks)
        return lengths.bitrate(self.sample_rate / self.hop_length, n_q, self.codebook_size)

    def describe(self) -> str:
        return f"onnx {self.identity} ({self.codec.directory})"
