"""A differentiable PESQ-WB disturbance: ITU-T P.862's psychoacoustic model as a training loss.

PESQ-WB (P.862.2) scores a decode from two disturbances of its loudness against the
reference's, per 32 ms frame and Bark band: a symmetric one (any audible difference) and an
asymmetric one (energy the reference does not have, e.g. noise filling the valleys between a
voice's harmonics). ``MOS_raw = 4.5 - 0.1 D - 0.0309 A``. The mel and STFT losses weigh every
log-magnitude error alike; PESQ forgives what the ear masks (a dead zone of a quarter of the
smaller loudness), ignores linear filtering and slow gain changes (it equalises them away
before comparing), and charges added energy up to 12 times more than missing energy. Training on
the model itself is what Martin-Donas et al. 2018 (PMSQE, IEEE SPL 25(11)) do for speech
enhancement; this is our own implementation of the P.862 steps, with the differences below.

The steps, as in P.862's ``pesq_psychoacoustic_model`` (16 kHz, wideband):

1. Level: each signal scaled so that its mean power between 350 and 3250 Hz is 1e7.
2. The wideband input filter (P.862.2's high-pass), as its power response on the bins.
3. Hann-windowed 512-point power spectra, hop 256; bins summed into 49 Bark bands (with P.862's
   per-band correction and ``Sp``).
4. Frequency equalisation of the reference toward the decode (per band, over speech frames,
   clamped to [0.01, 100]); gain equalisation of the decode toward the reference (per frame,
   smoothed 0.2 / 0.8 across frames, clamped to [3e-4, 5]).
5. Zwicker loudness per band (zero below the hearing threshold).
6. Disturbance = loudness difference with a dead zone of 0.25 x the smaller loudness; the
   asymmetric one multiplies it by ``((P_deg + 50) / (P_ref + 50)) ** 1.2`` (0 below 3, at
   most 12). Per frame: a width-weighted L2 (D) and L1 (A) over bands 1-48, divided by
   ``((audible reference power + 1e5) / 1e7) ** 0.04``, at most 45.
7. Time: an L6 over 20-frame "syllables" (half overlapping), then an L2 over them.

Left out, because a training pair is already aligned and the loss must be smooth: P.862's
time alignment (the codec's output is sample-aligned with its input), its re-alignment of
bad intervals, and the level alignment's exact IIR (here a brick-wall band on the bins).
So the raw score here tracks PESQ's on aligned pairs, not exactly (tests/test_perceptual.py
measures its correlation with the ``pesq`` package's).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# P.862 constants for 16 kHz (pesqpar.h / pesq.h of the reference implementation).
BANDS_PER_BARK_16K: tuple[int, ...] = (
    1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
    3, 3, 3, 3, 4, 3, 4, 5, 4, 5, 6, 6, 7, 8, 9, 9, 12, 12, 15, 16, 18, 21, 25, 20)
CENTRE_BARK_16K: tuple[float, ...] = (
    0.078672, 0.316341, 0.636559, 0.961246, 1.290450, 1.624217, 1.962597, 2.305636,
    2.653383, 3.005889, 3.363201, 3.725371, 4.092449, 4.464486, 4.841533, 5.223642,
    5.610866, 6.003256, 6.400869, 6.803755, 7.211971, 7.625571, 8.044611, 8.469146,
    8.899232, 9.334927, 9.776288, 10.223374, 10.676242, 11.134952, 11.599563, 12.070135,
    12.546731, 13.029408, 13.518232, 14.013264, 14.514566, 15.022202, 15.536238, 16.056736,
    16.583761, 17.117382, 17.657663, 18.204674, 18.758478, 19.319147, 19.886751, 20.461355,
    21.043034)
WIDTH_BARK_16K: tuple[float, ...] = (
    0.157344, 0.317994, 0.322441, 0.326934, 0.331474, 0.336061, 0.340697, 0.345381,
    0.350114, 0.354897, 0.359729, 0.364611, 0.369544, 0.374529, 0.379565, 0.384653,
    0.389794, 0.394989, 0.400236, 0.405538, 0.410894, 0.416306, 0.421773, 0.427297,
    0.432877, 0.438514, 0.444209, 0.449962, 0.455774, 0.461645, 0.467577, 0.473569,
    0.479621, 0.485736, 0.491912, 0.498151, 0.504454, 0.510819, 0.517250, 0.523745,
    0.530308, 0.536934, 0.543629, 0.550390, 0.557220, 0.564119, 0.571085, 0.578125,
    0.585232)
POW_DENS_CORRECTION_16K: tuple[float, ...] = (
    100.000000, 99.999992, 100.000000, 100.000008, 100.000008, 100.000015, 99.999992,
    99.999969, 50.000027, 100.000000, 99.999969, 100.000015, 99.999947, 100.000061,
    53.047077, 110.000046, 117.991989, 65.000000, 68.760147, 69.999931, 71.428818,
    75.000038, 76.843384, 80.968781, 88.646126, 63.864388, 68.155350, 72.547775,
    75.584831, 58.379192, 80.950836, 64.135651, 54.384785, 73.821884, 64.437073,
    59.176456, 65.521278, 61.399822, 58.144047, 57.004543, 64.126297, 54.311001,
    61.114979, 55.077751, 56.849335, 55.628868, 53.137054, 54.985844, 79.546974)
ABS_THRESH_POWER_16K: tuple[float, ...] = (
    51286152.0, 2454709.5, 70794.59375, 4897.788574, 1174.897705, 389.045166, 104.71286,
    45.70882, 17.782795, 9.772372, 4.897789, 3.090296, 1.905461, 1.258925, 0.977237,
    0.724436, 0.562341, 0.457088, 0.389045, 0.331131, 0.295121, 0.269153, 0.25704,
    0.251189, 0.251189, 0.251189, 0.251189, 0.263027, 0.288403, 0.30903, 0.338844,
    0.371535, 0.398107, 0.436516, 0.467735, 0.489779, 0.501187, 0.501187, 0.512861,
    0.524807, 0.524807, 0.524807, 0.512861, 0.47863, 0.42658, 0.371535, 0.363078,
    0.416869, 0.537032)
SP_16K = 6.910853e-6
SL_16K = 1.866055e-1
# P.862.2's wideband input filter (one biquad: b0, b1, b2, a1, a2; pesqmain.h).
WB_INPUT_FILTER_16K: tuple[float, ...] = (2.740826, -5.4816519, 2.740826, -1.9444777, 0.94597794)
N_FFT = 512
HOP = 256
TARGET_POWER = 1e7
D_WEIGHT, A_WEIGHT = 0.1, 0.0309
SYLLABLE_FRAMES = 20


def biquad_power_response(coeffs: tuple[float, ...], n_fft: int) -> Tensor:
    """|H(f)|^2 of ``y = b0 x + b1 x' + b2 x'' - a1 y' - a2 y''`` at the ``n_fft // 2 + 1``
    bins: ``[n_fft // 2 + 1]`` (float64). At DC a high-pass gives 0."""
    b0, b1, b2, a1, a2 = coeffs
    w = 2 * math.pi * torch.arange(n_fft // 2 + 1, dtype=torch.float64) / n_fft
    z1, z2 = torch.exp(-1j * w), torch.exp(-2j * w)
    h = (b0 + b1 * z1 + b2 * z2) / (1 + a1 * z1 + a2 * z2)
    return h.abs() ** 2


def bark_matrix(n_fft: int = N_FFT) -> Tensor:
    """``[n_fft // 2 + 1, 49]``: bin k's power into its Bark band, times the band's correction
    and ``Sp``. Bin 0 (DC, zeroed by P.862) and the Nyquist bin belong to no band."""
    m = torch.zeros(n_fft // 2 + 1, len(BANDS_PER_BARK_16K), dtype=torch.float64)
    k = 0
    for band, n in enumerate(BANDS_PER_BARK_16K):
        for _ in range(n):
            if k > 0:
                m[k, band] = POW_DENS_CORRECTION_16K[band] * SP_16K
            k += 1
    return m


def modified_zwicker_power() -> Tensor:
    """``[49]``: Zwicker's 0.23, raised below 4 Bark by ``min(6 / (c + 2), 2) ** 0.15``."""
    c = torch.tensor(CENTRE_BARK_16K, dtype=torch.float64)
    h = torch.where(c < 4, 6 / (c + 2), torch.ones_like(c)).clamp(max=2.0)
    return 0.23 * h ** 0.15


class PesqLoss(nn.Module):
    """``0.1 D + 0.0309 A``, PESQ-WB's disturbance (``4.5 - MOS_raw``), as a loss.
    ``asymmetry_weight`` replaces A's 0.0309 (0: the symmetric disturbance alone).

    ``forward(y_hat, y)``: ``[B, 1, T]`` or ``[B, T]`` decode and reference at 16 kHz ->
    scalar, the batch mean. ``disturbance(y_hat, y)`` -> ``[B]`` per item. ``T`` must hold at
    least one 512-sample frame. A reference with no power in 350-3250 Hz (silence) scores 0:
    PESQ has nothing to compare it with.
    """

    def __init__(self, sample_rate: int = 16000, asymmetry_weight: float = A_WEIGHT) -> None:
        super().__init__()
        if sample_rate != 16000:
            raise ValueError(f"PesqLoss models PESQ-WB at 16000 Hz, got sample_rate={sample_rate}")
        self.asymmetry_weight = asymmetry_weight
        freqs = torch.arange(N_FFT // 2 + 1, dtype=torch.float64) * sample_rate / N_FFT
        window = torch.hann_window(N_FFT, dtype=torch.float64)
        # Mean power per sample in the level band, from the one-sided power spectrum (Parseval:
        # sum_n (x w)^2 = (2 / N) sum_k |X_k|^2 over a real signal's positive bins).
        level = ((freqs >= 350) & (freqs <= 3250)).double() * 2 / (N_FFT * (window ** 2).sum())
        self.register_buffer("window", window.float(), persistent=False)
        self.register_buffer("level_band", level.float(), persistent=False)
        self.register_buffer("input_filter", biquad_power_response(
            WB_INPUT_FILTER_16K, N_FFT).float(), persistent=False)
        self.register_buffer("bark", bark_matrix().float(), persistent=False)
        self.register_buffer("thresh", torch.tensor(ABS_THRESH_POWER_16K), persistent=False)
        self.register_buffer("zwicker", modified_zwicker_power().float(), persistent=False)
        width = torch.tensor(WIDTH_BARK_16K)
        width[0] = 0.0  # P.862's per-frame norms skip band 0
        self.register_buffer("width", width, persistent=False)

    def bark_spectra(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, T]`` -> (Bark power ``[B, frames, 49]`` after steps 1-3, band power ``[B]``)."""
        frames = x.unfold(-1, N_FFT, HOP) * self.window  # [B, F, 512]
        power = torch.fft.rfft(frames).abs().square()  # [B, F, 257]
        band = (power * self.level_band).sum(-1).mean(-1)  # [B]
        scaled = power * (TARGET_POWER / band.clamp_min(1e-12))[:, None, None]
        return (scaled * self.input_filter) @ self.bark, band

    def audible(self, bark: Tensor, factor: float = 1.0) -> Tensor:
        """Power of the bands above ``factor`` x the hearing threshold, bands 1-48: ``[B, F]``."""
        loud = (bark > self.thresh * factor)[..., 1:]
        return (bark[..., 1:] * loud).sum(-1)

    def loudness(self, bark: Tensor) -> Tensor:
        """Zwicker loudness (sone) per band, 0 at or below the threshold: ``[B, F, 49]``."""
        t, g = self.thresh, self.zwicker
        ratio = (0.5 + 0.5 * bark / t).clamp_min(1.0)  # 1 below threshold: loudness 0
        return SL_16K * (t / 0.5) ** g * (ratio ** g - 1)

    def disturbance(self, y_hat: Tensor, y: Tensor) -> Tensor:
        """``0.1 D + 0.0309 A`` per item: ``[B]`` (``4.5 -`` it is PESQ's raw MOS)."""
        if y_hat.dim() == 3:
            y_hat, y = y_hat[:, 0], y[:, 0]
        if y_hat.shape != y.shape or y.dim() != 2:
            raise ValueError(f"PesqLoss needs [B, T] or [B, 1, T] pairs of one shape, got "
                             f"{tuple(y_hat.shape)} and {tuple(y.shape)}")
        if y.shape[-1] < N_FFT:
            raise ValueError(f"PesqLoss needs at least {N_FFT} samples, got {y.shape[-1]}")
        ref, ref_band = self.bark_spectra(y.float())
        deg, _ = self.bark_spectra(y_hat.float())
        t = self.thresh
        # Step 4a: the reference's bands toward the decode's, from the speech frames' powers.
        speech = (self.audible(ref, 100.0) >= 1e7).unsqueeze(-1)  # [B, F, 1]
        n_frames = ref.shape[1]
        avg_ref = (ref * (ref > 100 * t) * speech).sum(1, keepdim=True) / n_frames
        avg_deg = (deg * (deg > 100 * t) * speech).sum(1, keepdim=True) / n_frames
        ref = ref * ((avg_deg + 1000) / (avg_ref + 1000)).clamp(0.01, 100.0)
        # Step 4b: the decode's gain toward the reference's, per frame, smoothed across frames.
        audible_ref = self.audible(ref)
        raw = (audible_ref + 5e3) / (self.audible(deg) + 5e3)  # [B, F]
        scales = [raw[:, 0]]
        for f in range(1, n_frames):
            scales.append(0.2 * scales[-1] + 0.8 * raw[:, f])
        # (the clamp applies to what is used, not to the running value: as P.862 does)
        scale = torch.stack(scales, 1).clamp(3e-4, 5.0)
        deg = deg * scale.unsqueeze(-1)
        # Steps 5-6: loudness, dead zone, asymmetry.
        l_ref, l_deg = self.loudness(ref), self.loudness(deg)
        diff = l_deg - l_ref
        dead = 0.25 * torch.minimum(l_ref, l_deg)
        d = torch.sign(diff) * (diff.abs() - dead).clamp_min(0.0)
        asym = ((deg + 50) / (ref + 50)) ** 1.2
        asym = torch.where(asym < 3.0, torch.zeros_like(asym), asym.clamp(max=12.0))
        total_w = self.width.sum()
        # (the floors keep the gradients of the roots finite at 0, and are small enough that a
        # perfect decode scores 4.5 to 1e-6 after the 1/6-th root below)
        d_frame = ((((d * self.width) ** 2).sum(-1) / total_w + 1e-20).sqrt() * total_w)
        a_frame = (d * asym).abs().mul(self.width).sum(-1)
        weight = ((audible_ref + 1e5) / 1e7) ** 0.04
        d_frame = (d_frame / weight).clamp(max=45.0)
        a_frame = (a_frame / weight).clamp(max=45.0)
        score = (D_WEIGHT * self.aggregate(d_frame, 6.0)
                 + self.asymmetry_weight * self.aggregate(a_frame, 6.0))
        return torch.where(ref_band > 1e-10, score, torch.zeros_like(score))

    @staticmethod
    def aggregate(frames: Tensor, p_syllable: float) -> Tensor:
        """P.862's ``Lpq_weight``: an Lp over 20-frame syllables starting every 10 frames (a
        syllable past the end counts its missing frames as 0), then an L2 over syllables.
        ``[B, F]`` -> ``[B]``."""
        n = frames.shape[1]
        starts = range(0, n, SYLLABLE_FRAMES // 2)
        padded = torch.nn.functional.pad(frames, (0, SYLLABLE_FRAMES))
        syl = torch.stack([padded[:, s:s + SYLLABLE_FRAMES] for s in starts], 1)  # [B, S, 20]
        per = ((syl ** p_syllable).mean(-1) + 1e-30) ** (1 / p_syllable)
        return ((per ** 2).mean(-1) + 1e-20).sqrt()

    def forward(self, y_hat: Tensor, y: Tensor) -> Tensor:
        """``[B, 1, T]`` decode and reference -> scalar (batch mean of :meth:`disturbance`)."""
        return self.disturbance(y_hat, y).mean()
