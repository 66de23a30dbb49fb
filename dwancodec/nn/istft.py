"""Zero-latency streaming overlap-add head: ISTFT (magnitude + phase, or complex) or IMDCT.

Alignment (the deliberate choice): code frame ``t`` yields ``U = hop / istft_hop`` synthesis
frames; sub-frame ``u`` is a window of ``n_fft`` samples that starts at sample
``t * hop + u * istft_hop``. Overlap-add therefore finalises output ``[t * hop, (t + 1) * hop)``
as soon as code frame ``t`` is decoded: every window that overlaps those samples starts at or
before them. The tail of each window reaches up to ``n_fft - istft_hop`` samples into the future
(the network learns to predict it, as in FocalCodec-Stream); that tail is the carried state
``tail`` and is not output until later frames complete it. The head adds **no** latency, unlike
the centred ISTFT (which would delay by ``n_fft - istft_hop``).

Before the first frame we behave as if earlier frames were silent, so the overlap-add envelope
used for normalisation is the steady-state one everywhere and offline == streaming.

No complex tensors: the inverse real DFT (``irfft``) is a matmul with a fixed basis that also
folds in the synthesis window, so the graph exports to ONNX as MatMul/Mul/Pad/Add.

What a synthesis frame is made of (``DecoderConfig.head``):

- ``magphase``: Vocos. ``exp(log-magnitude)`` and a phase per bin; a non-linear map, and the
  phase is only defined modulo 2 pi, which makes it hard to learn with regression losses.
- ``complex``: real and imaginary parts per bin straight from the linear layer (the frame is a
  linear function of the features, so waveform and complex-spectrum losses have plain
  gradients).
- ``mdct``: ``istft_hop`` real MDCT coefficients per frame (StreamCodec); a sine window with
  ``n_fft = 2 * istft_hop`` satisfies Princen-Bradley, so the overlap-add envelope is 1 and
  time-domain aliasing cancels between neighbouring frames.

All three end in the same windowed overlap-add, so the streaming state is the same ``tail``.

Sub-frame refinement (``DecoderConfig.subframe_depth``): the linear output layer maps one trunk
vector to all ``U`` synthesis frames of a code frame, so those ``U * coeffs_per_frame`` numbers
lie in a ``dim``-dimensional affine subspace (rank 256 for 648 outputs in the default). Causal
ConvNeXt blocks at the synthesis-frame rate (``coeffs_per_frame`` channels) on the raw output
lift that limit and let each synthesis frame see the ones before it. They only look back, and
the frames of code frame ``t`` come from code frame ``t`` alone, so they add no latency; their
state is each block's depthwise-conv cache (``refine.N.dwconv.cache``).

The blind share (:func:`dwancodec.lengths.blind_share`) says how much of the output this
zero-latency alignment makes the network extrapolate; shorter windows lower it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..streaming.state import State, Stateful, StateSpec, prefixed, sub_state
from .convnext import ConvNeXtBlock
from .excitation import HarmonicExcitation


def irfft_basis(n_fft: int, window: Tensor) -> Tensor:
    """``[2 * (n_fft // 2 + 1), n_fft]`` matrix B with ``cat(re, im) @ B == irfft(re + i im) * w``.

    irfft: ``x[n] = (1/N) (X_0 + 2 sum_{k=1}^{N/2-1} Re(X_k e^{2 pi i k n / N}) + X_{N/2} (-1)^n)``;
    the imaginary parts of the DC and Nyquist bins are ignored, as ``torch.fft.irfft`` does.
    """
    n_bins = n_fft // 2 + 1
    k = torch.arange(n_bins, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * k * n / n_fft
    scale = torch.full((n_bins, 1), 2.0 / n_fft, dtype=torch.float64)
    scale[0] = scale[-1] = 1.0 / n_fft
    cos_part = scale * torch.cos(angle)
    sin_part = -scale * torch.sin(angle)
    sin_part[0] = 0.0
    sin_part[-1] = 0.0
    basis = torch.cat([cos_part, sin_part], dim=0) * window.to(torch.float64)[None, :]
    return basis.to(torch.float32)


def imdct_basis(hop: int, window: Tensor) -> Tensor:
    """``[hop, 2 * hop]`` matrix M with ``coeffs @ M`` = windowed inverse MDCT of one frame.

    ``y[n] = w[n] * (2 / N) sum_k X_k cos(pi / N (n + 1/2 + N / 2)(k + 1/2))`` with ``N = hop``;
    with a Princen-Bradley window (``w[n]^2 + w[n + N]^2 = 1``, e.g. the sine window) and the
    matching analysis, overlap-adding these frames at hop ``N`` reconstructs the signal exactly.
    """
    n_coef = hop
    k = torch.arange(n_coef, dtype=torch.float64)[:, None]
    n = torch.arange(2 * hop, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi / hop * (n + 0.5 + hop / 2) * (k + 0.5)) * (2.0 / hop)
    return (basis * window.to(torch.float64)[None, :]).to(torch.float32)


def sine_window(n: int) -> Tensor:
    """``sin(pi (i + 1/2) / n)``: Princen-Bradley for hop ``n / 2`` (the MDCT window)."""
    i = torch.arange(n, dtype=torch.float64)
    return torch.sin(math.pi * (i + 0.5) / n).to(torch.float32)


def ola_envelope(window: Tensor, hop: int) -> Tensor:
    """Steady-state overlap-add sum of ``window`` at ``hop``: ``[hop]`` (period of the envelope).

    >>> ola_envelope(torch.hann_window(8), 2)
    tensor([2., 2.])
    """
    return window.reshape(-1, hop).sum(dim=0)


class ISTFTHead(Stateful):
    """``[B, dim, F]`` backbone features -> ``[B, F * hop]`` audio.

    State ``tail``: ``[n_fft - istft_hop]``, the overlap-add samples after the last emitted one;
    with ``refine_depth`` blocks also ``refine.N.dwconv.cache``: ``[coeffs_per_frame, 6]``;
    with an excitation also its state (:class:`HarmonicExcitation`) under ``excitation.``.
    """

    def __init__(self, dim: int, hop_length: int, n_fft: int, istft_hop: int,
                 kind: str = "magphase", refine_depth: int = 0, excitation: str = "none",
                 sample_rate: int = 16000) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.istft_hop = istft_hop
        self.kind = kind
        self.frames_per_code = hop_length // istft_hop
        self.overlap = n_fft // istft_hop  # R: windows covering each output sample
        self.n_bins = n_fft // 2 + 1
        if kind == "mdct":
            self.coeffs_per_frame = istft_hop
            window = sine_window(n_fft)
            basis = imdct_basis(istft_hop, window)
            inv_envelope = torch.ones(istft_hop)  # Princen-Bradley: the frames sum to 1
        else:
            self.coeffs_per_frame = 2 * self.n_bins
            window = torch.hann_window(n_fft, periodic=True)
            basis = irfft_basis(n_fft, window)
            inv_envelope = 1.0 / ola_envelope(window, istft_hop)
        self.out = nn.Linear(dim, self.frames_per_code * self.coeffs_per_frame)
        # mlp ratio 2 at 4x the frame rate: each block costs about one trunk block.
        self.refine = nn.ModuleList(
            ConvNeXtBlock(self.coeffs_per_frame, 7, 2.0, layer_scale=1.0 / refine_depth)
            for _ in range(refine_depth)
        )
        self.excitation = (
            HarmonicExcitation(dim, self.frames_per_code, n_fft, istft_hop, sample_rate,
                               tracked=excitation == "tracked",
                               locked=excitation == "locked")
            if excitation != "none" else None)
        self.register_buffer("basis", basis, persistent=False)
        self.register_buffer("inv_envelope", inv_envelope, persistent=False)

    def state_spec(self) -> dict[str, StateSpec]:
        spec = {"tail": StateSpec((self.n_fft - self.istft_hop,))}
        spec.update(self.children_state_spec(
            (f"refine.{i}", b) for i, b in enumerate(self.refine)))
        if self.excitation is not None:
            spec.update(prefixed("excitation", self.excitation.state_spec()))
        return spec

    def raw_frames(self, x: Tensor, state: State, new_state: State) -> Tensor:
        """Features ``[B, dim, F]`` -> the network's per-synthesis-frame output
        ``[B, F * U, coeffs_per_frame]`` (log-magnitude and phase for ``magphase``), refined by
        the sub-frame blocks whose new caches go into ``new_state``."""
        b, _, f = x.shape
        h = self.out(x.transpose(1, 2)).reshape(b, f * self.frames_per_code,
                                                self.coeffs_per_frame)
        if len(self.refine):
            h = h.transpose(1, 2)  # [B, C, F * U]: the blocks convolve over synthesis frames
            for i, block in enumerate(self.refine):
                h = self.step_child(f"refine.{i}", block, h, state, new_state)
            h = h.transpose(1, 2)
        return h

    def coefficients_of(self, h: Tensor) -> Tensor:
        """Raw frames ``[B, n, coeffs_per_frame]`` -> the basis input (``cat(re, im)`` of the
        spectrum, or MDCT coefficients), same shape."""
        if self.kind != "magphase":
            return h
        log_mag, phase = h.split(self.n_bins, dim=-1)
        # exp keeps magnitudes positive; the clip avoids overflow early in training (as Vocos).
        mag = torch.exp(log_mag).clamp(max=1e2)
        return torch.cat([mag * torch.cos(phase), mag * torch.sin(phase)], dim=-1)

    def run(self, x: Tensor, state: State, teacher: Tensor | None = None
            ) -> tuple[Tensor, State, Tensor | None]:
        """(audio ``[B, F * hop]``, new state, predicted log2 f0 ``[B, F * U]`` or ``None``
        without the excitation). ``teacher``: see :meth:`HarmonicExcitation.run`."""
        new_state: State = {}
        coeffs = self.coefficients_of(self.raw_frames(x, state, new_state))
        log_f0 = None
        ex = self.excitation
        if ex is not None and ex.tracked:
            # f0 from this head's own decode: overlap-add it first, track, then add the
            # filtered pulses through their own overlap-add (same window, own tail).
            y, ola = self.overlap_add(coeffs @ self.basis, state)
            new_state.update(ola)
            ex_state = sub_state(state, "excitation")
            harm, _, s = ex.run_tracked(x, ex_state, y)
            y_harm, ola = self.overlap_add(harm @ self.basis, ex_state)
            new_state.update(prefixed("excitation", s | ola))
            return y + y_harm, new_state, None
        if ex is not None:
            harm, log_f0, s = ex.run(x, sub_state(state, "excitation"), teacher)
            coeffs = coeffs + harm
            new_state.update(prefixed("excitation", s))
        y, ola = self.overlap_add(coeffs @ self.basis, state)
        new_state.update(ola)
        return y, new_state, log_f0

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        y, new_state, _ = self.run(x, state)
        return y, new_state

    def overlap_add(self, frames: Tensor, state: State) -> tuple[Tensor, State]:
        """Windowed synthesis frames ``[B, n, n_fft]`` (``U`` per code frame) + carried tail
        -> ``[B, n * istft_hop]`` finished samples + new tail."""
        b, n, _ = frames.shape  # n synthesis frames, each n_fft windowed samples
        r, h = self.overlap, self.istft_hop
        pieces = frames.reshape(b, n, r, h)
        # Overlap-add as R shifted sums: piece r of frame i lands in output block i + r.
        acc = sum(F.pad(pieces[:, :, j], (0, 0, j, r - 1 - j)) for j in range(r))
        acc = acc.reshape(b, (n + r - 1) * h)
        acc = acc + F.pad(state["tail"], (0, n * h))
        y = acc[:, : n * h].reshape(b, n, h) * self.inv_envelope
        return y.reshape(b, n * h), {"tail": acc[:, n * h:]}
