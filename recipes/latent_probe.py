"""Is the phase in the latent? Trains a model with its quantizer taken out of the path and
watches the loud-bin phase error (issue 12, round 14).

The error split (``recipes/error_split.py --hop 80 --detail``) puts most of the remaining
PESQ-WB gap in the absolute phase of the loud bins below 2 kHz, and no loss aimed at them has
moved it (round 13: 0.62 -> 0.60 rad in 8000 steps). Two explanations predict different things:

- the 8 x 5 FSQ dimensions at 50 Hz do not carry that phase: then a decoder fed a wider,
  unrounded latent learns it, and the error falls;
- the decoder (or the loss) cannot produce it from any latent: then it does not.

Modes (``--mode``):

- ``bypass``: the decoder gets the encoder's output itself (256 dimensions, no rounding): the
  widest latent this encoder has, the ceiling of the whole autoencoder with this recipe;
- ``unrounded``: every FSQ stage passes its bounded value through without rounding (the same
  8 x 5 dimensions, no quantization noise; ``recipes/quantizer_ceiling.py`` measures this
  untrained);
- ``side``: the coded path stays, and a side path adds a learned 1 x 1 projection of the
  encoder's output (all 256 dimensions, unrounded) to the decoder's input. Its weights start
  at 0, so the run starts from the source model's exact function (``bypass`` starts from a
  decoder that has never seen the unquantized latent, PESQ-WB 1.2) and anything it gains is
  information the codes do not carry;
- ``coded``: nothing taken out: the control, validated the same way (phase errors per band).

The run takes a finished run's ``train_config.json`` (the control: same recipe, data order and
seed, with the quantizer) and changes only the save folder, the step count and the quantizer
path. Validation (every ``val_every`` steps, EMA weights) scores the 9 x 4 s validation
segments through the same path: PESQ-WB, STOI, SI-SDR, mel distance, and the loud-bin phase
errors (``loud_phase_errors``). Step 0 is scored before training, with the coded path (n_q 8)
beside it. Checkpoints every ``save_every`` steps; rerunning the same command resumes exactly.
The model this trains cannot code (its decoder learned a path the bitstream does not have), so
it writes no bundle.

Usage (repo root, venv active)::

    python recipes/latent_probe.py /work/runs/ship-la/train_config.json \\
        --mode side --steps 18000 --save /work/runs/probe-side
    # a side run's checkpoint at every n_q, with its side path and with it zeroed:
    python recipes/latent_probe.py /work/runs/ship-la/train_config.json \\
        --report /work/runs/probe-side/step-00003750.pt
    # a bundle's loud-bin phase error per band (where in frequency the phase is lost):
    python recipes/latent_probe.py /work/runs/ship-la/train_config.json \\
        --bands dwancodec/assets/default
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dwancodec.config import CodecConfig
from dwancodec.model import Codec
from dwancodec.quantization.base import QuantizerOutput
from dwancodec.quantization.fsq import FSQ
from dwancodec.training.checkpoint import load_checkpoint
from dwancodec.training.config import TrainConfig, build_train_config, load_train_config_file
from dwancodec.training.losses import MultiScaleMelLoss, anti_wrap, si_sdr_torch
from dwancodec.training.trainer import Trainer, validation_batch
from dwancodec.training.validate import pesq_stoi


def loud_phase_errors(ref: Tensor, est: Tensor, sample_rate: int, n_fft: int = 160,
                      hop: int = 80, cutoff_hz: float = 2000.0, within_db: float = 20.0,
                      low_hz: float = 0.0) -> dict[str, float]:
    """``[B, T]`` reference and estimate -> the phase errors of the loud low-band bins.

    Bins from ``low_hz`` up to below ``cutoff_hz`` (DC excluded) whose reference magnitude is
    within ``within_db`` of its frame's peak; each bin's anti-wrapped error weighted by the
    reference magnitude (radians): ``ip`` the instantaneous phase, ``gd`` the group delay
    (difference across bins), ``iaf`` the instantaneous frequency (difference across frames).
    A random phase scores ~pi/2 in ``ip``. Worked example: the estimate ``ref`` itself
    gives 0 for all three.
    """
    window = torch.hann_window(n_fft, dtype=torch.float64)
    sx = torch.stft(ref.double(), n_fft, hop, window=window, return_complex=True)
    sy = torch.stft(est.double(), n_fft, hop, window=window, return_complex=True)
    mag = sx.abs()
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None] * sample_rate / n_fft
    peak = mag.amax(dim=1, keepdim=True).clamp_min(1e-9)
    loud = ((freqs >= low_hz) & (freqs < cutoff_hz)
            & (20 * torch.log10(mag.clamp_min(1e-9) / peak) > -within_db))
    loud[..., 0, :] = False  # the DC bin of a real signal is real: its "phase" is only a sign
    px, py = sx.angle(), sy.angle()

    def mean(diff: Tensor, mask: Tensor, w: Tensor) -> float:
        w = w * mask
        return float((anti_wrap(diff) * w).sum() / w.sum().clamp_min(1e-12))

    both_f = loud[:, 1:] & loud[:, :-1]
    both_t = loud[..., 1:] & loud[..., :-1]
    return {
        "ip": mean(py - px, loud, mag),
        "gd": mean(py.diff(dim=1) - px.diff(dim=1), both_f, mag[:, 1:]),
        "iaf": mean(py.diff(dim=2) - px.diff(dim=2), both_t, mag[..., 1:]),
    }


BAND_EDGES = (100, 400, 700, 1000, 1300, 1600, 2000, 4000)


def phase_errors_by_band(ref: Tensor, est: Tensor, sample_rate: int,
                         edges: tuple[int, ...] = BAND_EDGES) -> dict[str, dict[str, float]]:
    """``[B, T]`` -> band ``"lo-hi"`` (``[edges[i], edges[i+1])``) -> its loud-bin ``ip``,
    ``gd`` and ``iaf`` errors (rad; :func:`loud_phase_errors`)."""
    return {f"{lo}-{hi}": loud_phase_errors(ref, est, sample_rate, cutoff_hz=hi, low_hz=lo)
            for lo, hi in itertools.pairwise(edges)}


def phase_error_by_band(ref: Tensor, est: Tensor, sample_rate: int,
                        edges: tuple[int, ...] = BAND_EDGES, kind: str = "ip"
                        ) -> dict[str, float]:
    """``[B, T]`` -> the loud-bin IP error (rad) in each band ``[edges[i], edges[i+1])``, keys
    ``"lo-hi"``. The error of a voice's harmonic k is about k times the error of its
    fundamental, so a pulse placed a little off costs the high harmonics most; ~pi/2 (1.57)
    is a random phase. ``kind="gd"`` or ``"iaf"`` gives the group-delay (between neighbouring
    bins) or the phase-advance (between neighbouring frames) error instead: a pulse moved by
    the same delay in every frame is a GD error of ``2 pi d / n_fft`` per bin and no IAF
    error; one moved differently frame to frame is an IAF error that grows with frequency."""
    return {band: errs[kind]
            for band, errs in phase_errors_by_band(ref, est, sample_rate, edges).items()}


def _unrounded(self: FSQ, z: Tensor) -> QuantizerOutput:
    """FSQ.forward without the rounding: the bounded value passes through (gradient intact)."""
    bounded = self.bound(z.transpose(1, 2))
    return QuantizerOutput((bounded / self.half_width).transpose(1, 2), self._indices(bounded))


def take_out_quantizer(model: Codec, mode: str) -> Codec:
    """Patch ``model`` in place so that its training ``forward`` skips the rounding (``side``:
    adds the module ``probe_side``, a parameter the caller's optimizer must be given)."""
    if mode == "coded":  # the control: the model as it codes, with the probe's validation
        return model
    if mode == "side":
        if not hasattr(model, "probe_side"):
            dim = model.config.latent_dim
            # Its own random stream: the global one also draws the quantizer dropout, which
            # must stay paired with the control's.
            with torch.random.fork_rng(devices=[]):
                side = torch.nn.Conv1d(dim, dim, 1)
            torch.nn.init.zeros_(side.weight)
            torch.nn.init.zeros_(side.bias)
            model.probe_side = side.to(next(model.parameters()).device)
        coded = model.quantizer.forward

        def with_side(z: Tensor, n_q: int | None = None) -> QuantizerOutput:
            out = coded(z, n_q)
            return QuantizerOutput(out.z_q + model.probe_side(z), out.codes, out.losses,
                                   out.metrics)
        model.quantizer.forward = with_side  # type: ignore[method-assign]
    elif mode == "bypass":
        def bypass(z: Tensor, n_q: int | None = None) -> QuantizerOutput:
            codes = torch.zeros(z.shape[0], 1, z.shape[-1], dtype=torch.long, device=z.device)
            return QuantizerOutput(z, codes)
        model.quantizer.forward = bypass  # type: ignore[method-assign]
    elif mode == "unrounded":
        for stage in model.quantizer.stages:
            if not isinstance(stage.quantizer, FSQ):
                raise SystemExit("latent_probe: --mode unrounded needs an FSQ quantizer")
            q = stage.quantizer
            q.forward = _unrounded.__get__(q)  # type: ignore[method-assign]
    else:
        raise SystemExit(
            f"latent_probe: unknown mode {mode!r} (side, bypass, unrounded or coded)")
    return model


@torch.no_grad()
def score(model: Codec, batch: Tensor, coded: bool = False, n_q: int | None = None
          ) -> dict[str, float]:
    """``[B, 1, T]`` segments -> scores of the decode (the patched path, or the codes) with the
    first ``n_q`` stages (all by default)."""
    model.eval()
    sr = model.sample_rate
    if coded:
        recon = model.decode(model.encode(batch, n_q))[..., : batch.shape[-1]]
    else:
        recon = model(batch, n_q).audio[..., : batch.shape[-1]]
    pairs = [pesq_stoi(r[0].numpy(), e[0].numpy(), sr) for r, e in zip(batch, recon, strict=True)]
    out = {"pesq": float(np.nanmean([p for p, _ in pairs])),
           "stoi": float(np.nanmean([s for _, s in pairs])),
           "si_sdr": float(si_sdr_torch(batch, recon).mean()),
           "mel": float(MultiScaleMelLoss(sr)(recon, batch))}
    out |= {f"phase_{k}": v for k, v in loud_phase_errors(batch[:, 0], recon[:, 0], sr).items()}
    out |= {f"ip_{k}": v for k, v in phase_error_by_band(batch[:, 0], recon[:, 0], sr).items()}
    return out


@torch.no_grad()
def side_report(state: dict[str, Any], batch: Tensor) -> list[dict[str, object]]:
    """A ``side`` run's loaded checkpoint (``load_checkpoint``; its averaged weights) at each
    number of stages, decoded with its side path and with the side path zeroed: how much the
    decoder leans on it."""
    model = take_out_quantizer(Codec(CodecConfig.from_dict(state["model_config"])), "side")
    model.load_state_dict(state["ema"] if state.get("ema") is not None else state["model"])
    model.eval()
    rows: list[dict[str, object]] = []
    side = {k: v.clone() for k, v in model.probe_side.state_dict().items()}
    for n_q in range(1, model.num_codebooks + 1):
        row: dict[str, object] = {"step": int(state["step"]), "n_q": n_q}
        for name, zero in (("with side", False), ("side zeroed", True)):
            model.probe_side.load_state_dict(
                {k: torch.zeros_like(v) for k, v in side.items()} if zero else side)
            row[name] = score(model, batch, n_q=n_q)
        rows.append(row)
    model.probe_side.load_state_dict(side)
    return rows


class ProbeTrainer(Trainer):
    """The trainer with the quantizer taken out of the path, validation through that path."""

    def __init__(self, cfg: TrainConfig, mode: str, **kw: Any) -> None:
        super().__init__(cfg, **kw)
        self.mode = mode
        take_out_quantizer(self.model, mode)
        if mode == "side":  # the new parameters join the optimizer, schedule and average
            self.build_optimizer()
            if self.ema is not None:
                self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.history = cfg.checkpoint_dir / "probe.jsonl"

    def inference_model(self) -> Codec:
        if self.ema is None:
            return self.model
        with torch.random.fork_rng(devices=[]):  # as Trainer.inference_model: stay paired
            model = take_out_quantizer(Codec(self.model.config), self.mode)
        model.load_state_dict(self.ema)
        return model

    def export_bundle(self, name: str) -> Path:
        return self.ckpt_dir  # no bundle: this model cannot code (module docstring)

    def record(self, row: dict[str, float | int | str]) -> None:
        print(json.dumps(row), flush=True)
        with self.history.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def run_validation(self) -> dict[str, float] | None:
        batch = self.val_batch()
        if batch is None:
            return None
        scores = score(self.inference_model().eval(), batch)
        if self.logger is not None:
            self.logger.scalars("val", scores, self.step)
        self.record({"step": self.step, "path": self.mode} | scores)
        return scores


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("train_config", help="a run's train_config.json (the control)")
    p.add_argument("--mode", choices=["side", "bypass", "unrounded", "coded"], default="side")
    p.add_argument("--steps", type=int, default=8000, help="cosine length (default 8000)")
    p.add_argument("--save", help="run folder (outside git)")
    p.add_argument("--report", metavar="CHECKPOINT",
                   help="no training: a side run's checkpoint at every n_q, with its side "
                        "path and with it zeroed, on the config's validation segments")
    p.add_argument("--bands", metavar="BUNDLE",
                   help="no training: a bundle's loud-bin IP, GD and IAF errors per band "
                        "(coded, every stage) on the config's validation segments")
    args = p.parse_args()
    base = load_train_config_file(args.train_config)
    if args.bands:
        model = Codec.from_pretrained(args.bands).eval()
        batch = validation_batch(build_train_config(base), model.hop_length)
        with torch.no_grad():
            recon = model.decode(model.encode(batch))[..., : batch.shape[-1]]
        row = {"bundle": args.bands, "model": model.identity()}
        for band, errs in phase_errors_by_band(batch[:, 0], recon[:, 0],
                                               model.sample_rate).items():
            # "ip" keys stay bare, as the round-14 rows have them
            row |= {(band if kind == "ip" else f"{kind}_{band}"): v for kind, v in errs.items()}
        print(json.dumps(row))
        return None
    if args.report:
        state = load_checkpoint(Path(args.report))
        hop = CodecConfig.from_dict(state["model_config"]).hop_length
        batch = validation_batch(build_train_config(base), hop)
        for row in side_report(state, batch):
            print(json.dumps(row), flush=True)
        return None
    if not args.save:
        p.error("--save is required to train")
    base |= {"save_dir": args.save, "experiment_name": Path(args.save).name,
             "max_steps": args.steps}
    cfg = build_train_config(base)
    trainer = ProbeTrainer(cfg, args.mode, progress=False)
    if not trainer.resume():
        cfg.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        batch = trainer.val_batch()
        if batch is not None:
            model = trainer.inference_model()
            trainer.record({"step": 0, "path": "coded n_q 8"} | score(
                Codec.from_pretrained(cfg.init_from) if cfg.init_from else model, batch,
                coded=True))
            trainer.record({"step": 0, "path": args.mode} | score(model, batch))
    trainer.fit()
    return None


if __name__ == "__main__":
    sys.exit(main())
