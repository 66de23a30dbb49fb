"""Reconstruction and adversarial losses (mel filterbanks built here: no torchaudio)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def hz_to_mel(f: Tensor) -> Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: Tensor) -> Tensor:
    return 700.0 * (10 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> Tensor:
    """Triangular HTK-mel filters ``[n_mels, n_fft // 2 + 1]`` (area-normalised, like Slaney)."""
    f_max = f_max or sample_rate / 2
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(f_min, dtype=torch.float64)),
                                     hz_to_mel(torch.tensor(f_max, dtype=torch.float64)),
                                     n_mels + 2, dtype=torch.float64))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lower) / (centre - lower)
    down = (upper - freqs[None]) / (upper - centre)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)
    fb = fb * (2.0 / (upper - lower))  # equal area per filter
    return fb.float()


def _stft(x: Tensor, n_fft: int, hop: int, window: Tensor) -> Tensor:
    """``[B, 1, T]`` -> complex ``[B, n_fft // 2 + 1, frames]``."""
    return torch.stft(x[:, 0], n_fft, hop, window=window, return_complex=True, center=True)


class Spectra:
    """STFTs of output and target, computed once per ``(n_fft, hop)`` and shared by the losses
    of one step: the mel, MR-STFT and complex STFT losses all look at 512/128, 256/64 and
    128/32 (mel with hop ``n_fft // 4``), so without sharing each of those STFTs and its
    backward pass ran three times. Same ops on the same inputs, so the losses are the same.

    ``complex(n_fft, hop, window)`` -> ``(S_hat, S)`` complex ``[B, n_fft // 2 + 1, frames]``;
    ``magnitude(...)`` -> their magnitudes, clamped at 1e-7 (the logs take them).
    Windows must be Hann windows of ``n_fft`` (every loss here uses one).
    """

    def __init__(self, y_hat: Tensor, y: Tensor) -> None:
        self.y_hat, self.y = y_hat, y
        self._complex: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}
        self._magnitude: dict[tuple[int, int], tuple[Tensor, Tensor]] = {}

    def complex(self, n_fft: int, hop: int, window: Tensor) -> tuple[Tensor, Tensor]:
        key = (n_fft, hop)
        if key not in self._complex:
            self._complex[key] = (_stft(self.y_hat, n_fft, hop, window),
                                  _stft(self.y, n_fft, hop, window))
        return self._complex[key]

    def magnitude(self, n_fft: int, hop: int, window: Tensor) -> tuple[Tensor, Tensor]:
        key = (n_fft, hop)
        if key not in self._magnitude:
            s_hat, s = self.complex(n_fft, hop, window)
            self._magnitude[key] = (s_hat.abs().clamp(min=1e-7), s.abs().clamp(min=1e-7))
        return self._magnitude[key]


class _MultiResolution(nn.Module):
    """Holds ``(n_fft, hop)`` resolutions and their Hann windows (``window_<n_fft>``)."""

    def __init__(self, resolutions: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.resolutions = resolutions
        for n_fft, _ in resolutions:
            self.register_buffer(f"window_{n_fft}", torch.hann_window(n_fft), persistent=False)

    def windows(self) -> list[tuple[int, int, Tensor]]:
        return [(n, h, getattr(self, f"window_{n}")) for n, h in self.resolutions]


class MultiResolutionSTFTLoss(_MultiResolution):
    """Spectral convergence + log-magnitude L1 at several resolutions (Parallel WaveGAN)."""

    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((512, 128), (256, 64),
                                                                   (128, 32))) -> None:
        super().__init__(resolutions)

    def forward(self, y_hat: Tensor, y: Tensor, spectra: Spectra | None = None) -> Tensor:
        """``[B, 1, T]`` output and target -> scalar; ``spectra`` shares STFTs between losses."""
        spectra = spectra or Spectra(y_hat, y)
        total = y.new_zeros(())
        for n_fft, hop, w in self.windows():
            m_hat, m = spectra.magnitude(n_fft, hop, w)
            sc = torch.linalg.norm(m - m_hat, dim=(1, 2)) / torch.linalg.norm(m, dim=(1, 2))
            total = total + sc.mean() + F.l1_loss(torch.log(m_hat), torch.log(m))
        return total / len(self.resolutions)


# Resolutions of the ``stft_hr`` loss: windows long enough to resolve the harmonics of a voice
# (bin spacing 15.6 / 7.8 Hz at 16 kHz, Hann main lobe 62 / 31 Hz, under the 100-250 Hz between
# the harmonics of adult speech). The MR-STFT loss's longest window (512, main lobe 125 Hz)
# blurs neighbouring harmonics into one lobe, so it cannot tell a harmonic comb from its
# smeared envelope: recipes/error_split.py finds that fine structure is where PESQ is lost.
HARMONIC_RESOLUTIONS: tuple[tuple[int, int], ...] = ((1024, 256), (2048, 512))


class LowBandHarmonicLoss(_MultiResolution):
    """Power-compressed magnitude MSE below ``cutoff`` Hz at harmonic resolution, relative to
    the target's power: ``mean((|S_hat|^c - |S|^c)^2) / mean(|S|^2c)`` over the bins below
    the cutoff, averaged over :data:`HARMONIC_RESOLUTIONS`.

    Why: the training objective ranks the low-band harmonic fine structure last
    (``recipes/error_split.py --losses``, training-log round 11): mel and MR-STFT give more for
    the true envelope on the decode's fine structure (+0.32 PESQ-WB) than for the true fine
    structure on the decode's envelope (+0.85). Of the candidates scored on those hybrids,
    this one prefers the fine structure most (3.4x: 0.062 -> 0.038 against 0.055 at 1024).
    The compression (c = 0.3, as the complex STFT loss) keeps the harmonic peaks in charge
    without letting the valleys between them dominate, which sank ``stft_hr``'s log term.
    """

    def __init__(self, sample_rate: int, cutoff: float = 2000.0, power: float = 0.3,
                 resolutions: tuple[tuple[int, int], ...] = HARMONIC_RESOLUTIONS) -> None:
        super().__init__(resolutions)
        self.sample_rate, self.cutoff, self.power = sample_rate, cutoff, power

    def forward(self, y_hat: Tensor, y: Tensor, spectra: Spectra | None = None) -> Tensor:
        """``[B, 1, T]`` output and target -> scalar."""
        spectra = spectra or Spectra(y_hat, y)
        total = y.new_zeros(())
        for n_fft, hop, w in self.windows():
            m_hat, m = spectra.magnitude(n_fft, hop, w)
            bins = int(self.cutoff * n_fft / self.sample_rate)
            # (floor 1e-5: the gradient of x**0.3 grows without bound at 0)
            a = m_hat[:, :bins].clamp_min(1e-5) ** self.power
            b = m[:, :bins].clamp_min(1e-5) ** self.power
            total = total + ((a - b) ** 2).mean() / (b * b).mean().clamp_min(1e-12)
        return total / len(self.resolutions)


class MultiScaleMelLoss(nn.Module):
    """Log-mel L1 at several window sizes (DAC's multi-scale mel loss)."""

    def __init__(self, sample_rate: int,
                 scales: tuple[tuple[int, int], ...] = ((32, 5), (64, 10), (128, 20),
                                                        (256, 40), (512, 80), (1024, 80))
                 ) -> None:
        super().__init__()
        self.scales = scales
        for n_fft, n_mels in scales:
            self.register_buffer(f"fb_{n_fft}", mel_filterbank(n_fft, n_mels, sample_rate),
                                 persistent=False)
            self.register_buffer(f"window_{n_fft}", torch.hann_window(n_fft), persistent=False)

    def forward(self, y_hat: Tensor, y: Tensor, spectra: Spectra | None = None) -> Tensor:
        """``[B, 1, T]`` output and target -> scalar; ``spectra`` shares STFTs between losses."""
        spectra = spectra or Spectra(y_hat, y)
        total = y.new_zeros(())
        for n_fft, _ in self.scales:
            fb = getattr(self, f"fb_{n_fft}")
            m_hat, m = spectra.magnitude(n_fft, n_fft // 4, getattr(self, f"window_{n_fft}"))
            total = total + F.l1_loss(torch.log10((fb @ m_hat).clamp(min=1e-5)),
                                      torch.log10((fb @ m).clamp(min=1e-5)))
        return total / len(self.scales)


class BandMelLoss(nn.Module):
    """Log-mel L1 on the mel bands whose centre lies in one of ``bands_hz``: a guard for the
    bands another loss is blind to. ``[B, 1, T]`` output and target -> scalar.

    Why: the PESQ loss (perceptual.PesqLoss) buys PESQ-WB and pays in mel distance. In a
    6000-step restart most of that cost was below 150 Hz (P.862.2's input filter removes that
    band, and STOI starts at 150 Hz) and some above 7 kHz (training-log round 19: +17 % log-mel
    L1 at 0-150 Hz); short fine-tunes pay at 1.5-7 kHz instead, at the low stages (round 20),
    which ``bands_hz=((0, 8000),)`` covers. The full mel loss gives the default bands 9 of 80
    shares at one of six scales, too little to hold them against a loss that moves the rest.
    This one scores them alone, on the mel distance's own geometry (512-point Hann, hop 128,
    80 HTK mels at 16 kHz; ``metrics.mel_distance``), so its weight says how hard they are
    held.

    Worked example at 16 kHz, 512 / 80 mels: bands ``((0, 150), (7000, 8000))`` keep 9 of the
    80 mel bands, the 6 centred below 150 Hz and the 3 centred from 7 kHz up (HTK mels are
    narrow at the bottom and wide at the top).
    """

    def __init__(self, sample_rate: int, bands_hz: tuple[tuple[float, float], ...],
                 n_fft: int = 512, n_mels: int = 80) -> None:
        super().__init__()
        fb = mel_filterbank(n_fft, n_mels, sample_rate)
        freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
        centre = (fb * freqs).sum(1) / fb.sum(1).clamp_min(1e-12)
        keep = torch.zeros(n_mels, dtype=torch.bool)
        for lo, hi in bands_hz:
            keep |= (centre >= lo) & (centre < hi)
        if not keep.any():
            raise ValueError(f"no mel band of {n_mels} at n_fft {n_fft} has its centre in "
                             f"{bands_hz} Hz")
        self.n_fft = n_fft
        self.register_buffer("fb", fb[keep], persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def n_bands(self) -> int:
        """How many mel bands the guard scores."""
        return self.fb.shape[0]

    def forward(self, y_hat: Tensor, y: Tensor, spectra: Spectra | None = None,
                items: Tensor | None = None) -> Tensor:
        """``[B, 1, T]`` output and target -> scalar; ``spectra`` shares STFTs between losses.
        ``items`` (``[B]`` bool) scores those batch items alone (0, with a graph, if none)."""
        spectra = spectra or Spectra(y_hat, y)
        m_hat, m = spectra.magnitude(self.n_fft, self.n_fft // 4, self.window)
        err = (torch.log10((self.fb @ m_hat).clamp(min=1e-5))
               - torch.log10((self.fb @ m).clamp(min=1e-5))).abs()
        if items is None:
            return err.mean()
        if not bool(items.any()):
            return err.sum() * 0
        return err[items].mean()


def discriminator_loss(real: list[Tensor], fake: list[Tensor], kind: str) -> Tensor:
    """Hinge: ``relu(1 - D(x)) + relu(1 + D(G(z)))``; LSGAN: ``(D(x) - 1)^2 + D(G(z))^2``."""
    loss = real[0].new_zeros(())
    for r, f in zip(real, fake, strict=True):
        if kind == "hinge":
            loss = loss + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        else:
            loss = loss + ((r - 1) ** 2).mean() + (f**2).mean()
    return loss / len(real)


def generator_adversarial_loss(fake: list[Tensor], kind: str) -> Tensor:
    loss = fake[0].new_zeros(())
    for f in fake:
        loss = loss + (F.relu(1 - f).mean() if kind == "hinge" else ((f - 1) ** 2).mean())
    return loss / len(fake)


def feature_matching_loss(real_feats: list[list[Tensor]], fake_feats: list[list[Tensor]]
                          ) -> Tensor:
    """Mean L1 between discriminator features, relative to the real features' scale."""
    loss, n = real_feats[0][0].new_zeros(()), 0
    for rs, fs in zip(real_feats, fake_feats, strict=True):
        for r, f in zip(rs, fs, strict=True):
            loss = loss + F.l1_loss(f, r.detach()) / (r.detach().abs().mean() + 1e-5)
            n += 1
    return loss / max(n, 1)


def si_sdr_torch(ref: Tensor, est: Tensor) -> Tensor:
    """Scale-invariant SDR in dB per item, ``[B, 1, T]`` -> ``[B]``."""
    ref, est = ref.flatten(1), est.flatten(1)
    ref = ref - ref.mean(1, keepdim=True)
    est = est - est.mean(1, keepdim=True)
    alpha = (est * ref).sum(1, keepdim=True) / (ref.pow(2).sum(1, keepdim=True) + 1e-8)
    target = alpha * ref
    return 10 * torch.log10(target.pow(2).sum(1) / ((est - target).pow(2).sum(1) + 1e-8) + 1e-8)



def compress(spec: Tensor, power: float = 0.3, eps: float = 1e-9) -> Tensor:
    """Power-law compressed complex spectrum ``|X|^p e^{i angle X}`` (MP-SENet / APNet2)
    as ``[..., 2]`` real; ``eps`` keeps the gradient of ``|X|^p`` finite at 0."""
    mag2 = spec.real.square() + spec.imag.square() + eps
    scale = mag2.pow((power - 1) / 2)  # |X|^(p - 1)
    return torch.stack([spec.real * scale, spec.imag * scale], dim=-1)


class ComplexSTFTLoss(_MultiResolution):
    """Multi-resolution MSE between power-compressed complex spectra, plus the same on the
    compressed magnitudes: a spectral loss that sees phase (the magnitude-only losses let
    neighbouring windows add with unrelated phases)."""

    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((512, 128), (256, 64),
                                                                   (128, 32)),
                 power: float = 0.3) -> None:
        super().__init__(resolutions)
        self.power = power

    def forward(self, y_hat: Tensor, y: Tensor, spectra: Spectra | None = None) -> Tensor:
        """``[B, 1, T]`` output and target -> scalar; ``spectra`` shares STFTs between losses."""
        spectra = spectra or Spectra(y_hat, y)
        total = y.new_zeros(())
        for n_fft, hop, w in self.windows():
            s_hat, s = spectra.complex(n_fft, hop, w)
            c_hat, c = compress(s_hat, self.power), compress(s, self.power)
            mag_hat, mag = c_hat.norm(dim=-1), c.norm(dim=-1)
            total = total + F.mse_loss(c_hat, c) + F.mse_loss(mag_hat, mag)
        return total / len(self.resolutions)


class FrameModulationLoss(nn.Module):
    """Penalises a buzz at the code frame rate: the L1 distance between the log power
    profiles of output and target over the position inside a code frame.

    The profile pools the batch: ``p[o] = mean_{b, f} x[b, f * hop + o]^2``, then averages
    ``hop / bins`` neighbouring offsets (``bins`` is cut to ``gcd(hop, bins)``). Pooling and
    binning keep the target's profile close to flat (speech has no preferred phase relative to
    the frame grid), so the loss mostly sees the decoder's own swing: the dip at each block
    start where the previous frame's windows extrapolate (the "blind share"). Example: hop 320,
    bins 16 -> 16 bins of 20 samples; a decoder whose first 5 ms of every block is 6 dB low
    scores about 0.35 more than a flat one.
    """

    def __init__(self, hop: int, bins: int = 16) -> None:
        super().__init__()
        # gcd: bins must divide the hop (tiny test configs have hops like 40).
        self.hop, self.bins = hop, math.gcd(hop, bins)

    def profile(self, x: Tensor) -> Tensor:
        """``[B, 1, T]`` -> ``[bins]`` log mean power per position bin inside a frame."""
        t = x.shape[-1] // self.hop * self.hop
        power = x[..., :t].reshape(-1, self.hop).square().mean(0)
        return torch.log(power.reshape(self.bins, -1).mean(-1) + 1e-8)

    def forward(self, y_hat: Tensor, y: Tensor) -> Tensor:
        return (self.profile(y_hat) - self.profile(y)).abs().mean()


def anti_wrap(x: Tensor) -> Tensor:
    """APNet's anti-wrapping function ``|x - 2 pi round(x / 2 pi)|``: phase error in [0, pi]."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


class PhaseLoss(_MultiResolution):
    """APNet's anti-wrapping phase losses on the STFT of output and target: instantaneous
    phase (``ip``), group delay (``gd``, phase difference along frequency) and instantaneous
    angular frequency (``iaf``, along time). Bins are weighted by the target's magnitude to
    ``power``, because the phase of near-silent bins is noise that no decoder can match; a
    bin's phase gradient scales as ``1 / |S_hat|``, so at the default 0.3 the quiet bins
    still supply most of it, and at 1 each bin pulls on the spectrum about equally
    (``TrainConfig.phase_weight_power``).

    With several ``resolutions`` each term is their mean. At 320/80 (50 Hz bins) a bin of a
    low voice holds parts of two harmonics, so its phase advance is not one harmonic's
    frequency; at 1024/256 (15.6 Hz) it is the harmonic's own. Adding 1024/256 was a test of
    whether drifting harmonic frequencies smear the peaks (``recipes/harmonic_probe.py``): it
    bought nothing (training-log round 12, run lph), so the default is 320/80 alone."""

    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((320, 80),),
                 power: float = 0.3) -> None:
        super().__init__(resolutions)
        self.power = power

    def forward(self, y_hat: Tensor, y: Tensor, spectra: Spectra | None = None
                ) -> dict[str, Tensor]:
        """``[B, 1, T]`` output and target -> ``{"phase_ip", "phase_gd", "phase_iaf"}``."""
        spectra = spectra or Spectra(y_hat, y)

        def mean(err: Tensor, wt: Tensor) -> Tensor:
            return (err * wt).sum() / (wt.sum() + 1e-9)

        out = {k: y.new_zeros(()) for k in ("phase_ip", "phase_gd", "phase_iaf")}
        for n_fft, hop, w in self.windows():
            s_hat, s = spectra.complex(n_fft, hop, w)
            p_hat, p = torch.angle(s_hat), torch.angle(s)
            weight = s.abs().pow(self.power).detach()
            w_f = torch.minimum(weight[:, 1:], weight[:, :-1])
            w_t = torch.minimum(weight[..., 1:], weight[..., :-1])
            out["phase_ip"] = out["phase_ip"] + mean(anti_wrap(p_hat - p), weight)
            out["phase_gd"] = out["phase_gd"] + mean(
                anti_wrap(torch.diff(p_hat, dim=1) - torch.diff(p, dim=1)), w_f)
            out["phase_iaf"] = out["phase_iaf"] + mean(
                anti_wrap(torch.diff(p_hat, dim=2) - torch.diff(p, dim=2)), w_t)
        return {k: v / len(self.resolutions) for k, v in out.items()}
