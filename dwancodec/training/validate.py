"""Validation at every bitrate: mel distance, multi-res STFT distance, SI-SDR, STOI, PESQ-WB."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from ..model import Codec
from .losses import MultiResolutionSTFTLoss, MultiScaleMelLoss, si_sdr_torch

if TYPE_CHECKING:
    from .logger import MetricLogger


def frame_modulation(recon: Tensor, hop: int) -> float:
    """How much the decoded power swings with the position inside a code frame: the standard
    deviation, over the ``hop`` offsets, of the mean power at that offset divided by the mean
    power. Speech has no preferred phase relative to the frame grid, so the input scores about
    0.05 (chance) on 9 x 4 s; a head whose sub-frames disagree in gain buzzes at the frame rate
    (default-v1: 0.5, a 50 Hz amplitude modulation that PESQ punishes)."""
    t = recon.shape[-1] // hop * hop
    power = recon[..., :t].double().pow(2).reshape(-1, hop).mean(0)
    return float(power.std() / (power.mean() + 1e-12))


def pesq_stoi(ref: np.ndarray, est: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """PESQ-WB (16 kHz) and STOI of one clip; NaN where the scorer refuses (e.g. silence)."""
    from pesq import pesq
    from pystoi import stoi

    from ..audio import resample

    r16, e16 = resample(ref, sample_rate, 16000), resample(est, sample_rate, 16000)
    try:
        p = float(pesq(16000, r16, e16, "wb"))
    except Exception as e:  # pesq raises on silent or too-short input
        warnings.warn(f"PESQ failed: {e}", stacklevel=2)
        p = float("nan")
    s = float(stoi(ref, est, sample_rate, extended=False))
    return p, s


@torch.no_grad()
def validate(model: Codec, batch: Tensor, with_pesq_stoi: bool = True,
             logger: MetricLogger | None = None, step: int = 0) -> dict[str, float]:
    """Scores of ``decode(encode(batch))`` at each number of stages, keys ``<metric>.nq<N>``."""
    model.eval()
    sr = model.sample_rate
    mel_loss = MultiScaleMelLoss(sr).to(batch.device)
    stft_loss = MultiResolutionSTFTLoss().to(batch.device)
    scores: dict[str, float] = {}
    codes = model.encode(batch)
    for n_q in range(1, model.num_codebooks + 1):
        recon = model.decode(codes[:, :n_q])[..., : batch.shape[-1]]
        tag = f"nq{n_q}"
        scores[f"mel.{tag}"] = float(mel_loss(recon, batch))
        scores[f"stft.{tag}"] = float(stft_loss(recon, batch))
        scores[f"si_sdr.{tag}"] = float(si_sdr_torch(batch, recon).mean())
        scores[f"frame_mod.{tag}"] = frame_modulation(recon, model.hop_length)
        if with_pesq_stoi:
            pairs = [pesq_stoi(r[0].cpu().numpy(), e[0].cpu().numpy(), sr)
                     for r, e in zip(batch, recon, strict=True)]
            scores[f"pesq.{tag}"] = float(np.nanmean([p for p, _ in pairs]))
            scores[f"stoi.{tag}"] = float(np.nanmean([s for _, s in pairs]))
        if logger is not None and n_q in (1, model.num_codebooks // 2, model.num_codebooks):
            x = recon[0, 0].cpu().numpy()
            logger.audio(f"audio/decoded_{tag}", x, sr, step)
    if logger is not None:
        logger.scalars("val", scores, step)
        ref = batch[0, 0].cpu().numpy()
        logger.audio("audio/input", ref, sr, step)
        signals = {"input": ref}
        for n_q in sorted({1, max(1, model.num_codebooks // 2), model.num_codebooks}):
            recon = model.decode(codes[:1, :n_q])[0, 0, : batch.shape[-1]].cpu().numpy()
            signals[f"decoded, {model.bitrate(n_q) / 1000:.2f} kbps"] = recon
        logger.spectrograms("spectrogram", signals, sr, step)
    return scores
