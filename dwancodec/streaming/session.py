"""Streaming sessions: push audio of any length, get codes; push codes, get audio.

A session holds the model state between calls and re-frames input internally, so callers can
push 1 sample or 10 seconds at a time. ``B`` independent streams run as one batch; any subset
can be reset without touching the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..checks import check_batch_size
from ..validation import check_codes, check_n_q, check_pcm, stream_mask
from .state import State, reset_streams, zero_state

if TYPE_CHECKING:
    from ..model import Codec

Streams = Sequence[int] | Sequence[bool] | Tensor | np.ndarray | None


class StreamingEncoder:
    """Push PCM ``[B, n]`` at the model rate; get codes ``[B, n_q, f]`` for each completed frame.

    Example::

        enc = StreamingEncoder(codec, n_q=4)
        for chunk in chunks:            # any lengths
            codes = enc.push(chunk)     # [1, 4, f], f may be 0
        codes = enc.flush()             # the last partial frame, zero-padded

    The concatenated codes equal ``codec.encode(signal, n_q)`` exactly.
    """

    def __init__(self, codec: Codec, batch_size: int = 1, n_q: int | None = None) -> None:
        self.codec = codec
        self.batch_size = check_batch_size(batch_size)
        self.n_q = codec.num_codebooks if n_q is None else check_n_q(n_q, codec.num_codebooks)
        self.device = next(codec.parameters()).device
        self.reset()

    @property
    def pending_samples(self) -> int:
        """Samples buffered towards the next (incomplete) frame."""
        return int(self._pending.shape[-1])

    def reset(self, streams: Streams = None) -> None:
        """Start over. ``streams``: integer indices or a ``[B]`` bool mask (list, array or
        tensor); ``None`` resets all.

        A stream reset while others have a partial frame buffered has those buffered samples
        zeroed: its new signal starts after ``pending_samples`` samples of silence.
        """
        if streams is None:
            self._state: State = zero_state(self.codec.encoder_state_spec(), self.batch_size,
                                            self.device)
            self._pending = torch.zeros(self.batch_size, 0, device=self.device)
            return
        mask = stream_mask(streams, self.batch_size, self.device)
        self._state = reset_streams(self._state, mask)
        self._pending = torch.where(mask[:, None], torch.zeros_like(self._pending), self._pending)

    @torch.inference_mode()
    def push(self, pcm: Tensor | np.ndarray) -> Tensor:
        """PCM ``[B, n]`` (or ``[B, 1, n]``; ``[n]`` for one stream), any ``n >= 0`` -> codes
        ``[B, n_q, f]`` for the ``f`` frames it completes."""
        pcm = check_pcm(pcm, self.batch_size).to(self.device)
        buf = torch.cat([self._pending, pcm], dim=-1)
        hop = self.codec.hop_length
        n_ready = (buf.shape[-1] // hop) * hop
        self._pending = buf[:, n_ready:]
        if n_ready == 0:
            return torch.zeros(self.batch_size, self.n_q, 0, dtype=torch.long, device=self.device)
        codes, self._state = self.codec.encoder_step(
            buf[:, None, :n_ready], self._state, self.n_q
        )
        return codes

    def flush(self) -> Tensor:
        """Encode the buffered partial frame (zero-padded) and reset the session."""
        pad = (-self.pending_samples) % self.codec.hop_length
        codes = self.push(torch.zeros(self.batch_size, pad, device=self.device))
        self.reset()
        return codes


class StreamingDecoder:
    """Push codes ``[B, k, f]`` (any ``f >= 0``); get ``[B, f * hop]`` PCM at once.

    The decoder adds no latency: each frame's ``hop`` samples are final when it is pushed.
    """

    def __init__(self, codec: Codec, batch_size: int = 1) -> None:
        self.codec = codec
        self.batch_size = check_batch_size(batch_size)
        self.device = next(codec.parameters()).device
        self.reset()

    def reset(self, streams: Streams = None) -> None:
        """Start over; ``streams`` as in :meth:`StreamingEncoder.reset`."""
        if streams is None:
            self._state: State = zero_state(self.codec.decoder_state_spec(), self.batch_size,
                                            self.device)
            return
        self._state = reset_streams(self._state, stream_mask(streams, self.batch_size,
                                                               self.device))

    @torch.inference_mode()
    def push(self, codes: Tensor | np.ndarray) -> Tensor:
        """Codes ``[B, k, f]`` (``1 <= k <= N``, any ``f >= 0``) -> PCM ``[B, f * hop]``."""
        codes = check_codes(codes, self.codec.num_codebooks, self.codec.codebook_size,
                            self.batch_size)
        if codes.shape[-1] == 0:
            return torch.zeros(self.batch_size, 0, device=self.device)
        audio, self._state = self.codec.decoder_step(codes.to(self.device), self._state)
        return audio[:, 0]

    def flush(self) -> Tensor:
        """Nothing is held back (zero decoder latency); resets and returns ``[B, 0]``."""
        self.reset()
        return torch.zeros(self.batch_size, 0, device=self.device)
