"""Discriminators and the ``Adversary`` that owns them and their optimizer."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from .losses import (
    compress,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)

Features = list[Tensor]


class STFTDiscriminator(nn.Module):
    """2-D conv net on a complex STFT (real and imaginary as channels), as EnCodec's MS-STFT-D."""

    def __init__(self, n_fft: int, hop: int, channels: int = 32) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(2, c, (3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 9), stride=(1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1))),
        ])
        self.out = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: Tensor) -> tuple[Tensor, Features]:
        spec = torch.stft(x[:, 0], self.n_fft, self.hop, window=self.window,
                          return_complex=True)  # [B, F, frames]
        h = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, frames, F]
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            feats.append(h)
        return self.out(h), feats


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's period discriminator: the waveform folded into ``[T / p, p]``."""

    def __init__(self, period: int, channels: int = 32) -> None:
        super().__init__()
        self.period = period
        c = channels
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, c, (5, 1), (3, 1), padding=(2, 0))),
            weight_norm(nn.Conv2d(c, 2 * c, (5, 1), (3, 1), padding=(2, 0))),
            weight_norm(nn.Conv2d(2 * c, 4 * c, (5, 1), (3, 1), padding=(2, 0))),
            weight_norm(nn.Conv2d(4 * c, 4 * c, (5, 1), 1, padding=(2, 0))),
        ])
        self.out = weight_norm(nn.Conv2d(4 * c, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: Tensor) -> tuple[Tensor, Features]:
        b, _, t = x.shape
        pad = (-t) % self.period
        h = F.pad(x, (0, pad), mode="reflect").reshape(b, 1, -1, self.period)
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            feats.append(h)
        return self.out(h), feats


class SpectralDiscriminator1d(nn.Module):
    """A CPU-cheap STFT discriminator: 1-D convs over STFT frames with frequency as channels.

    Input: the power-compressed complex STFT (real, imaginary: ``2 * (n_fft // 2 + 1)``
    channels) so it sees phase. A 2-D conv net over the same STFT costs ~30x more on a CPU
    because it keeps ``channels`` feature maps at every frequency.
    """

    def __init__(self, n_fft: int, hop: int, channels: int = 64) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c, n_in = channels, 2 * (n_fft // 2 + 1)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv1d(n_in, 2 * c, 3, padding=1)),
            weight_norm(nn.Conv1d(2 * c, 2 * c, 5, padding=2, groups=4)),
            weight_norm(nn.Conv1d(2 * c, 2 * c, 5, stride=2, padding=2, groups=4)),
            weight_norm(nn.Conv1d(2 * c, 2 * c, 3, padding=1)),
        ])
        self.out = weight_norm(nn.Conv1d(2 * c, 1, 3, padding=1))

    def forward(self, x: Tensor) -> tuple[Tensor, Features]:
        spec = torch.stft(x[:, 0], self.n_fft, self.hop, window=self.window,
                          return_complex=True)  # [B, F, frames]
        c = compress(spec)  # |X|^0.3 e^{i angle X} as [B, F, frames, 2]
        h = torch.cat([c[..., 0], c[..., 1]], dim=1)
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            feats.append(h)
        return self.out(h), feats


def build_discriminators(names: tuple[str, ...], sample_rate: int, channels: int = 32
                         ) -> nn.ModuleList:
    """``mrstft``: 2-D STFT discriminators at 3 resolutions scaled to the rate; ``stft1d``: the
    cheap 1-D ones (:class:`SpectralDiscriminator1d`) at the same resolutions; ``mpd``: periods
    2, 3, 5, 7, 11. ``channels`` sizes each (the 1-D ones use twice as many)."""
    scale = sample_rate / 16000
    ds: list[nn.Module] = []
    for name in names:
        if name == "mrstft":
            for n_fft in (1024, 512, 256):
                n = int(n_fft * scale)
                ds.append(STFTDiscriminator(n, n // 4, channels))
        elif name == "stft1d":
            for n_fft in (1024, 512, 256):
                n = int(n_fft * scale)
                ds.append(SpectralDiscriminator1d(n, n // 4, channels))
        elif name == "mpd":
            ds += [PeriodDiscriminator(p, channels) for p in (2, 3, 5, 7, 11)]
        else:
            raise ValueError(f"unknown discriminator {name!r}; choose mrstft, stft1d or mpd")
    return nn.ModuleList(ds)


class Adversary(nn.Module):
    """Owns the discriminators and their optimizer.

    ``discriminator_step(real, fake)`` updates the discriminators (fake is detached);
    ``generator_losses(real, fake)`` returns the adversarial and feature-matching losses for
    the generator (gradients flow into ``fake`` only).
    """

    def __init__(self, names: tuple[str, ...], sample_rate: int, lr: float,
                 betas: tuple[float, float], loss_kind: str = "hinge", channels: int = 32
                 ) -> None:
        super().__init__()
        self.discriminators = build_discriminators(names, sample_rate, channels)
        self.loss_kind = loss_kind
        self.optimizer = torch.optim.AdamW(self.discriminators.parameters(), lr=lr, betas=betas)

    def _run(self, x: Tensor) -> tuple[list[Tensor], list[Features]]:
        logits, feats = [], []
        for d in self.discriminators:
            lg, ft = d(x)
            logits.append(lg)
            feats.append(ft)
        return logits, feats

    def discriminator_step(self, real: Tensor, fake: Tensor, grad_clip: float,
                           sync: Callable[[list[nn.Parameter]], None] | None = None
                           ) -> dict[str, Tensor]:
        """One optimizer step of the discriminators; ``sync`` averages gradients across
        data-parallel ranks before clipping."""
        self.optimizer.zero_grad(set_to_none=True)
        r, _ = self._run(real)
        f, _ = self._run(fake.detach())
        loss = discriminator_loss(r, f, self.loss_kind)
        loss.backward()
        if sync is not None:
            sync(list(self.discriminators.parameters()))
        grad_norm = nn.utils.clip_grad_norm_(self.discriminators.parameters(), grad_clip)
        self.optimizer.step()
        return {"discriminator": loss.detach(), "grad_norm_disc": grad_norm.detach()}

    def generator_losses(self, real: Tensor, fake: Tensor) -> dict[str, Tensor]:
        with torch.no_grad():
            _, real_feats = self._run(real)
        fake_logits, fake_feats = self._run(fake)
        return {
            "adversarial": generator_adversarial_loss(fake_logits, self.loss_kind),
            "feature_matching": feature_matching_loss(real_feats, fake_feats),
        }
