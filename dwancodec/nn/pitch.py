"""Pitch track of the input: the training target of the harmonic excitation's f0.

Normalised cross-correlation (NCCF, as in RAPT): for each synthesis frame ``i`` (window
``[i * hop, i * hop + n_fft)``), a ``win``-sample segment centred on the window is correlated
with the same segment ``tau`` samples earlier, for lags between ``sr / f0_max`` and
``sr / f0_min``. The period is the *shortest* lag whose correlation is a local peak within 10 %
of the best one: a periodic signal also correlates at 2, 3, ... periods, and taking the best
lag alone gives octave errors. A parabola through the peak refines the lag below a sample.

Only a target: it looks up to ``win / 2`` samples past the window (the decoder never runs it),
and it needs no gradient. ``confidence`` (0 for unvoiced or silent frames, 1 for clearly
periodic ones) weights the f0 loss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from .excitation import F0_MAX, F0_MIN


@torch.no_grad()
def pitch_track(audio: Tensor, sample_rate: int, hop: int, n_fft: int, win: int | None = None
                ) -> tuple[Tensor, Tensor]:
    """``[B, T]`` audio -> (log2 f0 ``[B, n]``, confidence ``[B, n]`` in [0, 1]), ``n = T // hop``.

    Example: a 200 Hz sawtooth at 16 kHz gives ``log2 f0 ~ 7.64`` (200 Hz) and confidence 1.
    """
    t = audio.shape[-1]
    n = t // hop
    win = win or 2 * n_fft
    lag_max = math.ceil(sample_rate / F0_MIN)
    x = audio.float()
    centre = n_fft // 2
    # buffer of frame i: samples [i*hop + centre - win/2 - lag_max, i*hop + centre + win/2)
    left = lag_max + win // 2 - centre
    right = win // 2 + centre + hop
    xp = F.pad(x, (max(left, 0), right))[:, max(-left, 0):]
    buf = xp.unfold(1, win + lag_max, hop)[:, :n]  # [B, n, win + lag_max]
    return nccf_pitch(buf, win, lag_max, sample_rate)


@torch.no_grad()
def correlate(seg: Tensor, buf: Tensor, lag_max: int, direct: bool = False) -> Tensor:
    """``r[..., s] = sum_m seg[..., m] * buf[..., m + s]`` for ``s`` in ``[0, lag_max]``.

    By FFT, or (``direct``) as a gather of the shifted windows and a matmul: the form ONNX
    exports (its exporters have no ``rfft``); a streaming step analyses one or two buffers,
    so its cost does not matter there. Long inputs go through in chunks of 64 buffers.
    """
    win = seg.shape[-1]
    if not direct:
        size = 1 << (win + lag_max + win - 1).bit_length()
        r = torch.fft.irfft(torch.conj(torch.fft.rfft(seg, size)) * torch.fft.rfft(buf, size),
                            size)
        return r[..., : lag_max + 1]
    idx = torch.arange(lag_max + 1, device=buf.device)[:, None] \
        + torch.arange(win, device=buf.device)[None, :]  # [lag_max + 1, win]
    if torch.onnx.is_in_onnx_export() or buf.shape[-2] <= 64:
        return (buf[..., idx] @ seg[..., None]).squeeze(-1)
    return torch.cat([correlate(seg[..., i: i + 64, :], buf[..., i: i + 64, :], lag_max, True)
                      for i in range(0, buf.shape[-2], 64)], dim=-2)


@torch.no_grad()
def nccf_pitch(buf: Tensor, win: int, lag_max: int, sample_rate: int, direct: bool = False
               ) -> tuple[Tensor, Tensor]:
    """Buffers ``[..., n, win + lag_max]`` (the analysed segment is the last ``win`` samples,
    the ``lag_max`` before it the lags' past) -> (log2 f0 ``[..., n]``, confidence
    ``[..., n]``). ``direct``: see :func:`correlate`."""
    lag_min = math.floor(sample_rate / F0_MAX)
    seg = buf[..., lag_max:]  # [..., win]: the segment itself
    r = correlate(seg, buf, lag_max, direct)  # lag tau = lag_max - s
    sq = F.pad(torch.cumsum(buf * buf, dim=-1), (1, 0))
    e_buf = sq[..., win: win + lag_max + 1] - sq[..., : lag_max + 1]  # energy of buf[s:s+win]
    e_seg = sq[..., -1:] - sq[..., lag_max: lag_max + 1]
    nccf = r / torch.sqrt(e_buf * e_seg + 1e-9)
    nccf = nccf.flip(-1)  # index = lag
    lags = nccf[..., lag_min: lag_max + 1]  # [..., L]
    best = lags.max(dim=-1, keepdim=True).values
    inner = lags[..., 1:-1]
    peak = (inner >= lags[..., :-2]) & (inner >= lags[..., 2:]) & (inner >= 0.9 * best)
    idx = peak.float().argmax(dim=-1)  # first (shortest) qualifying peak
    has_peak = peak.any(dim=-1)
    idx = torch.where(has_peak, idx, lags[..., 1:-1].argmax(dim=-1)) + 1
    c = lags.gather(-1, idx[..., None]).squeeze(-1)
    lo = lags.gather(-1, (idx - 1)[..., None]).squeeze(-1)
    hi = lags.gather(-1, (idx + 1)[..., None]).squeeze(-1)
    denom = lo - 2 * c + hi
    shift = torch.where(denom.abs() > 1e-6, 0.5 * (lo - hi) / denom, torch.zeros_like(c))
    lag = (idx + lag_min).float() + shift.clamp(-0.5, 0.5)
    log_f0 = torch.log2(sample_rate / lag).clamp(math.log2(F0_MIN), math.log2(F0_MAX))
    loud = e_seg.squeeze(-1) > win * 1e-6  # below about -60 dBFS rms: silence
    confidence = ((c - 0.5) / 0.35).clamp(0, 1) * loud
    return log_f0, confidence
