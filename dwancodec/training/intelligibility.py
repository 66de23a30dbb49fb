"""A differentiable STOI: short-time objective intelligibility (Taal et al. 2011) as a loss.

STOI correlates the temporal envelopes of one-third-octave bands (150 Hz to 4.3 kHz) of the
decode and the reference over 384 ms segments. It is one of the two measures that gate
shipping (recipes/ship_check.py), and the one the PESQ loss (perceptual.PesqLoss) costs
(training-log round 19): PESQ-WB's asymmetric disturbance rewards a quieter decode, which
flattens envelopes. As a loss term STOI holds them.

The steps, as ``pystoi.stoi`` computes them, with the differences below:

1. Frames of 25.6 ms (Hann, matlab's ``hanning``), hop half of that, with a zero-padded FFT
   whose bins are 19.5 Hz apart. STOI resamples to 10 kHz and takes 256 / 512 points; at
   16 kHz the same frames are 410 / 819 points (the bins are 16000 / 819 = 19.54 Hz apart
   against 10000 / 512 = 19.53 Hz), so no resampler is needed: the bands end at 4.3 kHz,
   under 10 kHz's Nyquist.
2. Frames whose reference energy is more than 40 dB under the loudest are dropped. pystoi
   drops them from the waveform and frames it again; here the spectral frames are dropped
   directly (the same frames to within the re-framing). Frames of digital silence (under
   -100 dB re full scale) are dropped too: pystoi keeps them and scores a silent clip 0.
3. Band envelopes ``sqrt(OBM @ |X|^2)`` for 15 bands at ``150 * 2^(k/3)`` Hz.
4. Every window of 30 frames: the decode's envelope scaled to the reference's energy per band,
   clipped at ``(1 + 10^(15/20))`` times the reference's; then the correlation over time of
   the two, averaged over bands and windows.

``forward`` returns ``1 - STOI`` averaged over the items that have 30 frames left after step 2
(a silent training crop adds nothing). tests/test_intelligibility.py measures the agreement
with ``pystoi``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

N_BANDS = 15
MIN_FREQ = 150.0  # centre of the lowest band (Hz)
SEGMENT = 30  # frames per intermediate-intelligibility window (384 ms)
BETA_DB = -15.0  # lower signal-to-distortion bound of the clipping
DYN_RANGE_DB = 40.0  # frames this far under the loudest are silent
SILENCE_DB = -100.0  # and frames under this are silent whatever the loudest
STOI_RATE = 10000  # STOI's own rate; its 256-point frame is 25.6 ms
STOI_FRAME, STOI_FFT = 256, 512


def frame_geometry(sample_rate: int) -> tuple[int, int, int]:
    """``(frame, hop, n_fft)`` at ``sample_rate`` for STOI's 25.6 ms frames and 19.5 Hz bins.

    Worked examples: 10000 -> (256, 128, 512), STOI's own; 16000 -> (410, 205, 819).
    """
    frame = round(STOI_FRAME * sample_rate / STOI_RATE)
    return frame, frame // 2, round(STOI_FFT * sample_rate / STOI_RATE)


def third_octave_matrix(sample_rate: int, n_fft: int) -> Tensor:
    """``[15, n_fft // 2 + 1]`` 0/1 band matrix, bins assigned to edges as pystoi's
    ``thirdoct`` does (each edge moved to its nearest bin, upper edge exclusive)."""
    f = torch.linspace(0, sample_rate, n_fft + 1, dtype=torch.float64)[: n_fft // 2 + 1]
    obm = torch.zeros(N_BANDS, f.numel())
    for k in range(N_BANDS):
        lo = MIN_FREQ * 2.0 ** ((2 * k - 1) / 6)
        hi = MIN_FREQ * 2.0 ** ((2 * k + 1) / 6)
        obm[k, int(torch.argmin((f - lo) ** 2)):int(torch.argmin((f - hi) ** 2))] = 1
    return obm


class StoiLoss(nn.Module):
    """``1 - STOI`` of a decode against its reference, differentiable in the decode.

    ``forward(y_hat, y)``: ``[B, 1, T]`` or ``[B, T]`` decode and reference at ``sample_rate``
    -> scalar, the mean over the items STOI can score (0 when none can). ``stoi(y_hat, y)`` ->
    ``[B]`` per item, NaN for an item with fewer than 30 speech frames (about 0.4 s of speech;
    pystoi returns 1e-5 there, with a warning).
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        super().__init__()
        if sample_rate < 2 * MIN_FREQ * 2.0 ** (29 / 6):  # the top band's upper edge
            raise ValueError(f"STOI's bands reach 4.3 kHz; sample_rate {sample_rate} is too low")
        self.frame, self.hop, self.n_fft = frame_geometry(sample_rate)
        self.register_buffer("obm", third_octave_matrix(sample_rate, self.n_fft),
                             persistent=False)
        window = torch.hann_window(self.frame + 2, periodic=False)[1:-1]  # matlab hanning
        self.register_buffer("window", window, persistent=False)

    def envelopes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, T]`` -> band envelopes ``[B, 15, frames]`` and frame energies ``[B, frames]``
        in dB."""
        frames = x.unfold(-1, self.frame, self.hop) * self.window
        spec = torch.fft.rfft(frames, n=self.n_fft).abs().square()  # [B, frames, bins]
        env = (spec @ self.obm.T).clamp_min(1e-20).sqrt().transpose(1, 2)
        energy_db = 10 * torch.log10(frames.square().sum(-1) + 1e-20)
        return env, energy_db

    def stoi(self, y_hat: Tensor, y: Tensor) -> Tensor:
        """``[B, 1, T]`` or ``[B, T]`` decode and reference -> ``[B]`` STOI per item."""
        if y_hat.shape != y.shape:
            raise ValueError(f"decode and reference differ in shape: {tuple(y_hat.shape)} vs "
                             f"{tuple(y.shape)}")
        y_hat, y = y_hat.reshape(y.shape[0], -1), y.reshape(y.shape[0], -1)
        if y.shape[-1] < self.frame + self.hop:
            raise ValueError(f"STOI needs at least {self.frame + self.hop} samples, got "
                             f"{y.shape[-1]}")
        env_hat, _ = self.envelopes(y_hat)
        env, energy = self.envelopes(y)
        speech = (energy > energy.amax(-1, keepdim=True) - DYN_RANGE_DB) & (energy > SILENCE_DB)
        clip = 1 + 10 ** (-BETA_DB / 20)
        scores = []
        for b in range(y.shape[0]):
            keep = speech[b]
            if int(keep.sum()) < SEGMENT:
                scores.append(y.new_full((), math.nan))
                continue
            x = env[b][:, keep].unfold(-1, SEGMENT, 1)  # [15, J, 30]
            d = env_hat[b][:, keep].unfold(-1, SEGMENT, 1)
            d = d * x.norm(dim=-1, keepdim=True) / (d.norm(dim=-1, keepdim=True) + 1e-12)
            d = torch.minimum(d, x * clip)
            d = d - d.mean(-1, keepdim=True)
            x = x - x.mean(-1, keepdim=True)
            corr = (d * x).sum(-1) / (d.norm(dim=-1) * x.norm(dim=-1) + 1e-12)
            scores.append(corr.mean())
        return torch.stack(scores)

    def forward(self, y_hat: Tensor, y: Tensor) -> Tensor:
        """``[B, 1, T]`` decode and reference -> scalar ``1 - STOI``, the batch mean."""
        scores = self.stoi(y_hat, y)
        ok = ~scores.isnan()
        if not ok.any():
            return y_hat.sum() * 0  # (keeps the graph: a batch of silent crops)
        return 1 - scores[ok].mean()

