"""Training configuration: one frozen dataclass; JSON/TOML files and CLI flags compose onto it."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Phase-aware terms are on by default since the issue-12 ablation (today the anti-wrapping
# phase losses; waveform L1 and complex STFT are named losses at weight 0): without any, no
# head geometry got past PESQ-WB 1.10 (v1 trained on mel + STFT magnitudes only; its weights
# are spelled out in recipes/scratch.sh "base").
# Round 9 moved weight from waveform L1 (10 -> 1) and the complex STFT (15 -> 5), regressions
# on phase-bearing values that damp the harmonics where the phase is uncertain, to the MR-STFT
# magnitudes (1 -> 5). Round 10 took both regressions to 0 (the anti-wrapping phase losses
# alone hold the phase): the same quality as round 9's weights from the same start (full
# clips: PESQ-WB within 0.02, STOI +0.001, mel -0.001; 0.2-0.5 dB less SI-SDR) for a step
# 12 % cheaper (two losses fewer), so the same CPU buys more steps.
# These are the shipped model's last weights (docs/training-log.md, rounds 9-12).
DEFAULT_LOSS_WEIGHTS: dict[str, float] = {
    "waveform_l1": 0.0,
    "stft": 5.0,
    # MR-STFT at harmonic resolution (1024 and 2048 points; losses.HARMONIC_RESOLUTIONS).
    "stft_hr": 0.0,
    # Low-band harmonic loss (losses.LowBandHarmonicLoss): compressed magnitudes below 2 kHz at
    # harmonic resolution, the structure the rest of the objective ranks last (round 11). At 30
    # it beat the same restart without it by 0.02-0.07 PESQ-WB at n_q 1-5, level at 6-8 (round 12).
    "lowband": 30.0,
    "mel": 15.0,
    "complex_stft": 0.0,
    "phase_ip": 1.0,
    "phase_gd": 1.0,
    "phase_iaf": 1.0,
    "residual": 0.0,
    "frame_mod": 0.0,
    # PESQ-WB's disturbance, 0.1 D + 0.0309 A in raw-MOS points (perceptual.PesqLoss, 16 kHz):
    # the metric's own masking, equalisation and asymmetry, which the log-spectral losses lack.
    "pesq": 0.0,
    # Log-mel L1 on the bands of ``mel_guard_bands_hz`` alone (losses.BandMelLoss): holds the
    # bands PESQ-WB and STOI do not hear against the pesq loss (round 20).
    "mel_guard": 0.0,
    # 1 - STOI (intelligibility.StoiLoss): holds the band envelopes STOI scores, which the pesq
    # loss's asymmetric term flattens (round 20).
    "stoi": 0.0,
    # octaves of f0 error of the harmonic excitation (decoder.excitation "harmonic" only)
    "f0": 1.0,
    "commitment": 0.25,
    "codebook": 1.0,
    "entropy": 0.1,
    "adversarial": 1.0,
    "feature_matching": 2.0,
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the model config.

    ``loss_weights`` keys are the loss names, which are also the log names.
    """

    experiment_name: str = "dwancodec"
    model_config: str = "default"
    train_data: tuple[str, ...] = ()
    # One factor per train_data folder on how often its audio is drawn (empty: 1 each, every
    # second of audio equally likely), e.g. to keep a small set's share next to a large one.
    train_data_repeat: tuple[float, ...] = ()
    val_data: tuple[str, ...] = ()
    save_dir: str = ""
    sample_rate: int = 16000
    batch_size: int = 16
    segment_seconds: float = 1.0
    num_workers: int = 2
    lr: float = 1e-3
    lr_disc: float = 2e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 1e-2
    warmup_steps: int = 500
    max_steps: int = 200_000
    min_lr_ratio: float = 0.05
    grad_clip: float = 10.0
    gan_start_step: int = 20_000
    # Steps after gan_start_step in which only the discriminators train: a GAN bolted onto a
    # trained generator otherwise feeds it the gradients of a random discriminator first.
    disc_warmup_steps: int = 0
    adversarial_loss: str = "hinge"
    discriminators: tuple[str, ...] = ("mrstft",)
    # Discriminators see a random crop of this many seconds of each segment (0: all of it):
    # their cost grows with the length, and short crops judge local texture just as well.
    disc_segment_seconds: float = 0.0
    disc_channels: int = 32
    # A bundle folder or checkpoint whose model weights start the run (fresh optimizer);
    # tensors whose shape differs (e.g. a new head) keep their initialisation.
    init_from: str = ""
    # Stop (and checkpoint) after this many wall-clock minutes of training (0: no limit), e.g.
    # a lent GPU for a fixed time; resuming later continues exactly.
    max_minutes: float = 0.0
    # Train the decoder only: the encoder and the quantizer keep their weights (no gradient,
    # no optimizer state), so an FSQ/LFQ model's codes do not change (a VQ-EMA codebook still
    # moves) and the step skips the encoder's backward pass (0.79x the CPU of a full step on
    # the default model). For fine-tunes that must keep the tokens: as a recipe it is a little
    # worse per step than training everything (training-log round 9, run q).
    freeze_encoder: bool = False
    # Learning-rate multiplier of the decoder's excitation filter (decoder.excitation): at the
    # full rate its Adam steps, sized like every weight's while its gradient is mostly noise
    # (the pulses' phase is unrelated to the target's), add noise to the output
    # (docs/training-log.md round 11).
    excitation_lr_scale: float = 1.0
    # Upper edge of the low-band harmonic loss ("lowband"): the error split puts most of the
    # lost PESQ below 1 kHz (+0.79 of +1.09), so the band it weighs is a choice to measure.
    lowband_cutoff_hz: float = 2000.0
    # (n_fft, hop) of the anti-wrapping phase losses (each term the mean over them). 320/80
    # alone is the shipped recipe; adding 1024/256 (each harmonic's own phase advance) bought
    # nothing in round 12.
    phase_resolutions: tuple[tuple[int, int], ...] = ((320, 80),)
    # Each bin's phase error is weighted by the target's magnitude to this power. The gradient
    # of a bin's phase with respect to the output spectrum scales as 1 / |S_hat|, so at 0.3
    # (nearly flat) the near-silent bins, whose phase is noise, supply most of the gradient;
    # at 1 every bin's pull on the spectrum is about equal, and the loud low-band bins, where
    # the decode's phase error is 0.62 rad against pi/2 for a random phase, get their share.
    # Round 13 (run lp1): at 1 that error fell to 0.60 rad in 8000 steps, with no PESQ gain.
    phase_weight_power: float = 0.3
    # Weight of the asymmetric disturbance inside the "pesq" loss (P.862: 0.0309; 0 keeps only
    # the symmetric one). The asymmetric term charges added energy up to 12x more than missing
    # energy, so it also rewards a decode for being quieter wherever it is unsure.
    pesq_asymmetry_weight: float = 0.0309
    # Where the "mel_guard" loss looks: below STOI's lowest band (150 Hz), where P.862.2's input
    # filter leaves PESQ-WB deaf, and above 7 kHz, which PESQ-WB hardly hears (round 18).
    mel_guard_bands_hz: tuple[tuple[float, float], ...] = ((0.0, 150.0), (7000.0, 8000.0))
    # When above 0, the "mel_guard" loss scores only the batch items decoded from at most this
    # many stages (quantizer dropout draws the count per item), so its weight falls on the low
    # bitrates alone: every fine-tune of round 20 lost mel there first (0: every item).
    mel_guard_max_stages: int = 0
    # When above 1, the "pesq" and "stoi" losses score only the batch items decoded from at
    # least this many stages: the low bitrates, where every round-20 fine-tune lost mel and
    # gained least PESQ-WB, are then trained by the other losses alone.
    perceptual_min_stages: int = 1
    # The weight, as a fraction, of the items below ``perceptual_min_stages`` in the pesq and
    # stoi losses (0: off them, the round-21 rule). Round 22: off them, n_q 1 paid for the
    # high stages' STOI; on every item alike, n_q 7 paid. The loss is then
    # ``L(high items) + perceptual_low_weight x L(low items)``.
    perceptual_low_weight: float = 0.0
    loss_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LOSS_WEIGHTS))
    ema_decay: float = 0.0
    precision: str = "fp32"
    device: str = ""
    threads: int = 0
    seed: int = 0
    log: str = "tensorboard"
    log_every: int = 25
    val_every: int = 1000
    save_every: int = 250
    keep_last: int = 3
    val_segments: int = 16
    val_segment_seconds: float = 3.0
    val_pesq_stoi: bool = True
    gain_db_range: tuple[float, float] = (-12.0, 3.0)
    noise_snr_db: tuple[float, float] = (-1.0, -1.0)
    silence_threshold_db: float = -50.0
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.segment_seconds <= 0:
            raise ValueError(f"segment_seconds must be > 0, got {self.segment_seconds}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.log not in ("tensorboard", "wandb", "csv"):
            raise ValueError(f"log must be tensorboard, wandb or csv, got {self.log!r}")
        if self.adversarial_loss not in ("hinge", "lsgan"):
            raise ValueError(f"adversarial_loss must be hinge or lsgan, got "
                             f"{self.adversarial_loss!r}")
        if not 0 < self.lowband_cutoff_hz <= self.sample_rate / 2:
            raise ValueError(f"lowband_cutoff_hz must be in (0, {self.sample_rate / 2:g}], "
                             f"got {self.lowband_cutoff_hz}")
        if self.train_data_repeat and len(self.train_data_repeat) != len(self.train_data):
            raise ValueError(f"train_data_repeat has {len(self.train_data_repeat)} factors for "
                             f"{len(self.train_data)} train_data folders")
        if not self.phase_resolutions or any(
                len(r) != 2 or not 0 < r[1] <= r[0] for r in self.phase_resolutions):
            raise ValueError("phase_resolutions must be (n_fft, hop) pairs with 0 < hop <= "
                             f"n_fft, got {self.phase_resolutions}")
        if self.disc_warmup_steps < 0:
            raise ValueError(f"disc_warmup_steps must be >= 0, got {self.disc_warmup_steps}")
        if not 0 <= self.phase_weight_power <= 4:
            raise ValueError(f"phase_weight_power must be in [0, 4], got "
                             f"{self.phase_weight_power}")
        unknown = set(self.loss_weights) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; "
                             f"known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        if not 0 <= self.pesq_asymmetry_weight <= 1:
            raise ValueError(f"pesq_asymmetry_weight must be in [0, 1], got "
                             f"{self.pesq_asymmetry_weight}")
        if self.loss_weights.get("mel_guard", 0) > 0 and (not self.mel_guard_bands_hz or any(
                len(b) != 2 or not 0 <= b[0] < b[1] <= self.sample_rate / 2
                for b in self.mel_guard_bands_hz)):
            raise ValueError(f"mel_guard_bands_hz must be (low, high) pairs in Hz with 0 <= low "
                             f"< high <= {self.sample_rate / 2:g}, got {self.mel_guard_bands_hz}")
        if self.perceptual_min_stages < 1:
            raise ValueError(f"perceptual_min_stages must be >= 1 (1: every item), got "
                             f"{self.perceptual_min_stages}")
        if not 0.0 <= self.perceptual_low_weight <= 1.0:
            raise ValueError(f"perceptual_low_weight must be in [0, 1] (a fraction of the "
                             f"high-stage items' weight), got {self.perceptual_low_weight}")
        if self.mel_guard_max_stages < 0:
            raise ValueError(f"mel_guard_max_stages must be >= 0 (0: every item), got "
                             f"{self.mel_guard_max_stages}")
        if self.loss_weights.get("pesq", 0) > 0 and self.sample_rate != 16000:
            raise ValueError(f"the pesq loss models PESQ-WB at 16000 Hz; sample_rate is "
                             f"{self.sample_rate} (set loss_weights.pesq to 0)")

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.save_dir or f".checkpoints/{self.experiment_name}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    def replace(self, **changes: Any) -> TrainConfig:
        return build_train_config(self.to_dict(), changes)


def _element_type(name: str) -> Any:
    """The element type of a tuple field, from its annotation (``tuple[float, ...]`` ->
    ``float``; ``tuple[tuple[int, int], ...]`` -> ``tuple``): an empty default has none to
    copy, and ``--set train_data_repeat=1,0.5`` must still give floats."""
    element = typing.get_args(typing.get_type_hints(TrainConfig)[name])[0]
    return typing.get_origin(element) or element


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Convert strings from ``--set KEY=VALUE`` and lists from JSON to the field's type."""
    if isinstance(default, tuple):
        if isinstance(value, str):
            # a tuple of tuples comes as JSON ([[320, 80], [1024, 256]]), a flat one as a,b,c
            value = (json.loads(value) if value.lstrip().startswith("[")
                     else [v for v in value.split(",") if v])
        convert = _element_type(name)
        return tuple(convert(v) for v in value)
    if isinstance(default, dict):
        if isinstance(value, str):
            value = json.loads(value)
        if name == "loss_weights":
            return {**DEFAULT_LOSS_WEIGHTS, **{k: float(v) for k, v in value.items()}}
        return dict(value)
    if isinstance(default, bool) and isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(value, str) and not isinstance(default, str):
        return type(default)(value)
    return value


def build_train_config(base: dict[str, Any] | None = None,
                       overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults <- ``base`` (a loaded file) <- ``overrides`` (flags); unknown keys are errors."""
    defaults = TrainConfig().to_dict()
    merged = dict(defaults)
    for source in (base or {}, overrides or {}):
        for key, value in source.items():
            if key not in defaults:
                raise ValueError(f"unknown training config field {key!r}")
            if value is not None:
                merged[key] = _coerce(key, value, defaults[key])
    return TrainConfig(**merged)


def load_train_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML file as a dict (validated when built)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such config file: {p}")
    text = p.read_text()
    try:
        return tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"cannot parse {p}: {e}") from None
