"""Reconstruction and adversarial losses (mel filterbanks built here: no torchaudio)."""

from __future__ import annotations

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


def stft_magnitude(x: Tensor, n_fft: int, hop: int, window: Tensor) -> Tensor:
    """``[B, 1, T]`` -> ``[B, n_fft // 2 + 1, frames]`` magnitude."""
    spec = torch.stft(x[:, 0], n_fft, hop, window=window, return_complex=True, center=True)
    return spec.abs().clamp(min=1e-7)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1 at several resolutions (Parallel WaveGAN)."""

    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((512, 128), (256, 64),
                                                                   (128, 32))) -> None:
        super().__init__()
        self.resolutions = resolutions
        for n_fft, _ in resolutions:
            self.register_buffer(f"window_{n_fft}", torch.hann_window(n_fft), persistent=False)

    def forward(self, y_hat: Tensor, y: Tensor) -> Tensor:
        total = y.new_zeros(())
        for n_fft, hop in self.resolutions:
            w = getattr(self, f"window_{n_fft}")
            m_hat, m = stft_magnitude(y_hat, n_fft, hop, w), stft_magnitude(y, n_fft, hop, w)
            sc = torch.linalg.norm(m - m_hat, dim=(1, 2)) / torch.linalg.norm(m, dim=(1, 2))
            total = total + sc.mean() + F.l1_loss(torch.log(m_hat), torch.log(m))
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

    def log_mel(self, x: Tensor, n_fft: int) -> Tensor:
        mag = stft_magnitude(x, n_fft, n_fft // 4, getattr(self, f"window_{n_fft}"))
        return torch.log10((getattr(self, f"fb_{n_fft}") @ mag).clamp(min=1e-5))

    def forward(self, y_hat: Tensor, y: Tensor) -> Tensor:
        total = y.new_zeros(())
        for n_fft, _ in self.scales:
            total = total + F.l1_loss(self.log_mel(y_hat, n_fft), self.log_mel(y, n_fft))
        return total / len(self.scales)


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

