"""Streaming sessions on ONNX Runtime, with the API of :mod:`dwancodec.streaming.session`.

Push PCM of any length, get codes for each completed frame; push codes, get audio at once. The
sessions re-frame input exactly like the torch sessions, hold the state in preallocated buffers
(see :class:`~dwancodec.runtime.onnx_codec.StepRunner`) and run ``B`` streams as one batch, any
subset of which can be reset.

With an export of ``frames_per_step = k > 1`` the graphs take ``k`` frames per call, so the
encoder holds audio back until ``k`` frames are complete and the decoder holds codes back until
``k`` frames arrived (``k - 1`` frames of extra latency each); ``flush`` pads and returns the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..checks import check_batch_size, check_codes, check_n_q, check_pcm, stream_mask
from .onnx_codec import OnnxCodec

Streams = Sequence[int] | Sequence[bool] | np.ndarray | None


def _codec(codec: OnnxCodec | str | Path) -> OnnxCodec:
    return codec if isinstance(codec, OnnxCodec) else OnnxCodec(codec)


class OnnxStreamingEncoder:
    """Push PCM ``[B, n]`` (float, model rate); get codes ``[B, n_q, f]`` int64.

    Example::

        enc = OnnxStreamingEncoder(OnnxCodec("exported/"), n_q=4)
        for chunk in chunks:            # any lengths
            codes = enc.push(chunk)     # [1, 4, f], f may be 0
        codes = enc.flush()             # the last partial frame, zero-padded
    """

    def __init__(self, codec: OnnxCodec | str | Path, batch_size: int = 1,
                 n_q: int | None = None) -> None:
        self.codec = _codec(codec)
        self.batch_size = check_batch_size(batch_size)
        self.runner = self.codec.encoder_runner(batch_size)
        self.n_q = self.codec.encoder_n_q if n_q is None else check_n_q(n_q,
                                                                         self.codec.encoder_n_q)
        self._step = self.codec.frames_per_step * self.codec.hop_length
        self._audio_in = self.runner.inputs["audio"][:, 0]  # [B, k * hop] view
        self._codes_out = self.runner.outputs["codes"]
        self._latents_out = self.runner.outputs["latents"]
        self.reset()

    @property
    def pending_samples(self) -> int:
        """Samples buffered towards the next (incomplete) step."""
        return int(self._pending.shape[-1])

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The current state (read-only view; changes with the next push)."""
        return self.runner.state

    def reset(self, streams: Streams = None) -> None:
        """Start over. ``streams``: integer indices or a ``[B]`` bool mask (list or array);
        ``None`` resets all.

        A stream reset while others have a partial frame buffered has those buffered samples
        zeroed: its new signal starts after ``pending_samples`` samples of silence.
        """
        if streams is None:
            self.runner.reset()
            self._pending = np.zeros((self.batch_size, 0), np.float32)
            return
        mask = stream_mask(streams, self.batch_size)
        self.runner.reset(mask)
        self._pending = self._pending.copy()
        self._pending[mask] = 0

    def push(self, pcm: np.ndarray, with_latents: bool = False
             ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """PCM ``[B, n]`` -> codes ``[B, n_q, f]`` for the ``f`` frames completed by it.

        ``with_latents``: also return the encoder latents ``[B, D, f]`` (before quantization).
        """
        pcm = check_pcm(pcm, self.batch_size)
        buf = np.concatenate([self._pending, pcm], axis=-1) if self._pending.size else pcm
        n_steps = buf.shape[-1] // self._step
        self._pending = buf[:, n_steps * self._step:]
        k = self.codec.frames_per_step
        out = np.empty((self.batch_size, self.n_q, n_steps * k), np.int64)
        lat = np.empty((self.batch_size, self.codec.latent_dim, n_steps * k), np.float32) \
            if with_latents else None
        for i in range(n_steps):
            np.copyto(self._audio_in, buf[:, i * self._step:(i + 1) * self._step])
            self.runner.run()
            out[:, :, i * k:(i + 1) * k] = self._codes_out[:, :self.n_q]
            if lat is not None:
                lat[:, :, i * k:(i + 1) * k] = self._latents_out
        return out if lat is None else (out, lat)

    def flush(self, with_latents: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Encode the buffered partial frame(s) (zero-padded) and reset the session."""
        hop = self.codec.hop_length
        frames = -(-self.pending_samples // hop)
        pad = (-self.pending_samples) % self._step
        res = self.push(np.zeros((self.batch_size, pad), np.float32), with_latents)
        self.reset()
        if isinstance(res, tuple):
            return res[0][..., :frames], res[1][..., :frames]
        return res[..., :frames]


class OnnxStreamingDecoder:
    """Push codes ``[B, k, f]`` (any ``f >= 0``, ``1 <= k <= N``); get ``[B, f * hop]`` PCM.

    With one frame per step (the default export) the decoder adds no latency: each frame's
    ``hop`` samples are final when it is pushed.
    """

    def __init__(self, codec: OnnxCodec | str | Path, batch_size: int = 1) -> None:
        self.codec = _codec(codec)
        self.batch_size = check_batch_size(batch_size)
        self.runner = self.codec.decoder_runner(batch_size)
        self._codes_in = self.runner.inputs["codes"]
        self._n_q_in = self.runner.inputs["n_q"]
        self._audio_out = self.runner.outputs["audio"][:, 0]
        self.reset()

    @property
    def state(self) -> dict[str, np.ndarray]:
        return self.runner.state

    @property
    def pending_frames(self) -> int:
        """Code frames held back until a whole step is available (always 0 for k = 1)."""
        return int(self._pending.shape[-1])

    def reset(self, streams: Streams = None) -> None:
        """Start over; ``streams`` as in :meth:`OnnxStreamingEncoder.reset`."""
        if streams is None:
            self.runner.reset()
            self._pending = np.zeros((self.batch_size, self.codec.num_codebooks, 0), np.int64)
            self._pending_n_q: int | None = None
            return
        mask = stream_mask(streams, self.batch_size)
        self.runner.reset(mask)
        self._pending = self._pending.copy()
        self._pending[mask] = 0

    def push(self, codes: np.ndarray) -> np.ndarray:
        """Codes ``[B, k, f]`` (``1 <= k <= N``, any ``f >= 0``) -> PCM ``[B, f' * hop]``
        (``f' = f`` for one frame per step)."""
        codes = check_codes(codes, self.codec.num_codebooks, self.codec.codebook_size,
                            self.batch_size)
        b, n_q, f = codes.shape
        if f == 0:
            return np.zeros((self.batch_size, 0), np.float32)
        if self.pending_frames and n_q != self._pending_n_q:
            raise ValueError(f"codes have {n_q} stages but {self.pending_frames} pending "
                             f"frame(s) have {self._pending_n_q}; change n_q on a step boundary")
        k = self.codec.frames_per_step
        if self.pending_frames:
            full = np.zeros((b, self.codec.num_codebooks, self.pending_frames + f), np.int64)
            full[..., :self.pending_frames] = self._pending
            full[:, :n_q, self.pending_frames:] = codes
        else:
            full = codes
        n_steps = full.shape[-1] // k
        hop = self.codec.hop_length
        out = np.empty((b, n_steps * k * hop), np.float32)
        self._n_q_in[...] = n_q
        for i in range(n_steps):
            self._codes_in[:, :n_q] = full[:, :n_q, i * k:(i + 1) * k]
            self.runner.run()
            out[:, i * k * hop:(i + 1) * k * hop] = self._audio_out
        rest = full[..., n_steps * k:]
        if rest.shape[-1]:
            self._pending = np.zeros((b, self.codec.num_codebooks, rest.shape[-1]), np.int64)
            self._pending[:, :n_q] = rest[:, :n_q]
            self._pending_n_q = n_q
        else:
            self._pending = self._pending[..., :0]
            self._pending_n_q = None
        return out

    def flush(self) -> np.ndarray:
        """Decode held-back frames (k > 1 only, zero-padded) and reset; ``[B, n * hop]``."""
        n = self.pending_frames
        out = np.zeros((self.batch_size, 0), np.float32)
        if n:
            k, n_q = self.codec.frames_per_step, self._pending_n_q or 1
            # zero codes complete the step; keep the audio of the real frames only
            out = self.push(np.zeros((self.batch_size, n_q, k - n), np.int64))
            out = out[:, : n * self.codec.hop_length]
        self.reset()
        return out
