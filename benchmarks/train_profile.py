"""Where a training step's CPU time goes: forward, each loss, backward, the GAN steps.

    python benchmarks/train_profile.py [--threads 1] [--batch 8] [--seconds 1.0] [--reps 5]

Times (median of ``--reps``) for the default model on random speech-like input, one line per
part, with the ratio of a GAN step (cheap 1-D and 2-D STFT discriminators, the multi-period one;
width ``--disc-channels``) to a reconstruction step, measured in the same run. ``--compile``
also times the step under ``torch.compile``.
Figures, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from dwancodec.config import get_config
from dwancodec.model import Codec
from dwancodec.training.discriminators import Adversary
from dwancodec.training.losses import (
    ComplexSTFTLoss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    PhaseLoss,
    Spectra,
)


def timed(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm-up (allocator, kernels)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--config", default="default")
    ap.add_argument("--head", default="", help="override decoder.head (magphase/complex/mdct)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--disc-channels", type=int, default=32,
                    help="discriminator width (TrainConfig.disc_channels; the 1-D ones use 2x)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = get_config(args.config)
    if args.head:
        cfg = cfg.replace(**{"decoder.head": args.head, "decoder.n_fft": 160})
    model = Codec(cfg).train()
    hop = model.hop_length
    t = round(args.seconds * cfg.sample_rate / hop) * hop
    x = torch.randn(args.batch, 1, t) * 0.1
    mel, stft = MultiScaleMelLoss(cfg.sample_rate), MultiResolutionSTFTLoss()
    cplx, phase = ComplexSTFTLoss(), PhaseLoss()
    rows: list[tuple[str, float]] = []

    rows.append(("forward (encoder + quantizer + decoder)", timed(lambda: model(x), args.reps)))
    y = model(x).audio.detach().requires_grad_()
    for name, loss in [("mel loss (6 scales)", mel), ("MR-STFT loss (3 scales)", stft),
                       ("complex STFT loss (3 scales)", cplx),
                       ("phase losses IP+GD+IAF", lambda a, b: sum(phase(a, b).values()))]:
        rows.append((f"{name}: forward + backward",
                     timed(lambda loss=loss: loss(y, x).backward(), args.reps)))

    def recon_step(losses: tuple = (mel, stft)) -> None:
        model.zero_grad(set_to_none=True)
        out = model(x)
        total = sum(f(out.audio, x) for f in losses)
        total.backward()

    def phase_step(shared: bool = True) -> None:
        """The trainer's recipe; ``shared``: one STFT per resolution for all losses, as the
        trainer does (``Spectra``); ``False``: each loss its own, as before."""
        model.zero_grad(set_to_none=True)
        out = model(x)
        spectra = Spectra(out.audio, x) if shared else None
        total = (mel(out.audio, x, spectra) + stft(out.audio, x, spectra)
                 + cplx(out.audio, x, spectra))
        total = total + sum(phase(out.audio, x).values()) + (out.audio - x).abs().mean()
        total.backward()

    base = timed(recon_step, args.reps)
    rows.append(("reconstruction step, v1 recipe (mel + MR-STFT)", base))
    separate = timed(lambda: phase_step(shared=False), args.reps)
    rows.append(("reconstruction step + phase-aware losses, an STFT per loss", separate))
    full = timed(phase_step, args.reps)
    rows.append(("reconstruction step + phase-aware losses, shared STFTs", full))
    if args.compile:
        compiled = torch.compile(model)

        def compiled_step() -> None:
            model.zero_grad(set_to_none=True)
            out = compiled(x)
            (mel(out.audio, x) + stft(out.audio, x)).backward()

        t0 = time.perf_counter()
        compiled_step()
        rows.append(("torch.compile: first step (compilation)", time.perf_counter() - t0))
        rows.append(("torch.compile: reconstruction step, v1 recipe",
                     timed(compiled_step, args.reps)))

    for disc, crop in [("mrstft", 1.0), ("stft1d", 1.0), ("stft1d", 0.5), ("mpd", 0.5)]:
        adv = Adversary((disc,), cfg.sample_rate, 2e-4, (0.8, 0.99),
                        channels=args.disc_channels)
        n = round(crop * t)

        def gan_step(adv: Adversary = adv, n: int = n) -> None:
            model.zero_grad(set_to_none=True)
            out = model(x)
            real, fake = x[..., :n], out.audio[..., :n]
            adv.discriminator_step(real, fake, 10.0)
            g = adv.generator_losses(real, fake)
            spectra = Spectra(out.audio, x)
            total = (mel(out.audio, x, spectra) + stft(out.audio, x, spectra)
                     + cplx(out.audio, x, spectra) + sum(phase(out.audio, x).values())
                     + g["adversarial"] + g["feature_matching"])
            total.backward()

        s = timed(gan_step, max(2, args.reps // 2))
        rows.append((f"GAN step ({disc} x{args.disc_channels}, on {crop:g} s), phase-aware losses",
                     s))

    print(f"default model, batch {args.batch} x {args.seconds:g} s, {args.threads} thread(s)")
    for name, sec in rows:
        print(f"  {name:66s} {1000 * sec:8.0f} ms  {sec / base:5.2f}x")
    print(f"  (x = ratio to the v1 reconstruction step; audio-seconds per second of that step: "
          f"{args.batch * args.seconds / base:.1f})")


if __name__ == "__main__":
    main()
