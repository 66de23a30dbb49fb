"""The training loop: one ordered step (discriminator, then generator), exact resume, DDP.

Data parallelism (``torchrun``) averages gradients with one flat all-reduce per model per step
(``sync_gradients``), so the same code runs on CPU (gloo) and GPUs (nccl) and the discriminators,
which see two forwards per step, need no DDP wrapper tricks.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler

from ..config import CodecConfig, get_config
from ..model import Codec
from .checkpoint import (
    atomic_save,
    atomic_write_text,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    set_rng_state,
)
from .config import TrainConfig
from .data import AudioCorpus, Augment, SegmentDataset, validation_segments
from .discriminators import Adversary
from .intelligibility import StoiLoss
from .logger import MetricLogger
from .losses import (
    HARMONIC_RESOLUTIONS,
    BandMelLoss,
    ComplexSTFTLoss,
    FrameModulationLoss,
    LowBandHarmonicLoss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    PhaseLoss,
    Spectra,
)
from .perceptual import PesqLoss
from .validate import validate


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Distributed:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Distributed(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", "0")))


def sync_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """Average gradients across ranks with a single flat all-reduce."""
    if world_size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_module(module: nn.Module) -> None:
    if dist.is_initialized():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


class StepSampler(Sampler[list[int]]):
    """Batches of dataset indices for steps ``start_step, start_step + 1, ...``; rank ``r``
    of ``w`` takes items ``[(s * w + r) * B, (s * w + r + 1) * B)`` of step ``s``."""

    def __init__(self, start_step: int, batch_size: int, dist_info: Distributed) -> None:
        self.start_step, self.batch_size, self.dist = start_step, batch_size, dist_info

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            first = (step * self.dist.world_size + self.dist.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            step += 1

    def __len__(self) -> int:
        return 10**9


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``min_ratio`` at ``total`` steps.

    >>> round(lr_lambda(0, 100, 1000, 0.1), 3), lr_lambda(100, 100, 1000, 0.1)
    (0.01, 1.0)
    >>> round(lr_lambda(1000, 100, 1000, 0.1), 3)
    0.1
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def pick_device(requested: str) -> str:
    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def init_weights(model: Codec, source: str) -> str:
    """Copy model weights from a bundle folder, ``.safetensors`` file or training checkpoint
    into ``model``; tensors missing there or of another shape keep their initialisation.
    Returns a one-line report of what was copied."""
    from safetensors.torch import load_file

    path = Path(source)
    if path.is_dir() and (path / "model.safetensors").exists():
        tensors = load_file(str(path / "model.safetensors"))
    elif path.suffix == ".safetensors" and path.exists():
        tensors = load_file(str(path))
    elif path.exists():
        tensors = load_checkpoint(path, "cpu")["model"]
    else:
        raise FileNotFoundError(f"--init-from: no bundle or checkpoint at {path}")
    own = model.state_dict()
    taken = {k: v.to(own[k].dtype) for k, v in tensors.items()
             if k in own and own[k].shape == v.shape}
    if not taken:
        raise ValueError(f"--init-from {path}: no tensor matches this model's names and shapes")
    model.load_state_dict(taken, strict=False)
    fresh = sorted(k for k in own if k not in taken)
    # A residual block the source does not have at all (a deeper trunk than the source's, or
    # sub-frame blocks in the head) starts as the identity, so the warm-started model computes
    # exactly the source's function and the block grows in from there. Its last projection is
    # zeroed, not its layer scale: with the scale at 0 (ReZero) every weight inside the block
    # has zero gradient and the scale's own gradient is the correlation of a random block's
    # output with the loss, which is noise (round 7: the scales of two such blocks were still
    # 0.003 after 3500 steps at lr 3e-4); with the projection at 0 it learns at once.
    scaled = {k.removesuffix(".gamma") for k in fresh if k.endswith(".gamma")}
    new_blocks = sorted(b for b in scaled if not any(t.startswith(b + ".") for t in tensors))
    for block in new_blocks:
        model.get_submodule(block).start_as_identity()
    return (f"initialised {len(taken)}/{len(own)} tensors from {path}"
            + (f"; fresh: {', '.join(fresh[:6])}{' ...' if len(fresh) > 6 else ''}"
               if fresh else "")
            + (f"; new residual blocks start as the identity: {', '.join(new_blocks)}"
               if new_blocks else ""))


def encoder_side_parameters(model: Codec) -> dict[str, nn.Parameter]:
    """What decides the codes, by name: the encoder and the whole quantizer (a residual stage's
    input is the latent minus the earlier stages' output projections, so those decide codes
    too)."""
    return {name: p for name, p in model.named_parameters()
            if name.startswith(("encoder.", "quantizer."))}


def validation_batch(cfg: TrainConfig, hop: int) -> Tensor:
    """``cfg``'s validation segments ``[val_segments, 1, T]``, ``T`` the segment length cut to
    a multiple of ``hop``: what a run validates on (the same for any run on the same data)."""
    corpus = AudioCorpus(cfg.val_data, cfg.sample_rate)
    seg = int(cfg.val_segment_seconds * cfg.sample_rate) // hop * hop
    return validation_segments(corpus, cfg.val_segments, seg)



def stage_items(n_active: Tensor | None, at_least: int = 1, at_most: int = 0) -> Tensor | None:
    """``[B]`` bool: the batch items decoded with ``at_least`` .. ``at_most`` stages
    (``at_most`` 0: no upper bound), from ``n_active`` (``[B]``, stages per item under
    quantizer dropout). ``None`` where every item counts: no bound set (1, 0) or no stage
    counts given. E.g. ``n_active = [1, 3, 8]``: ``at_least=3`` -> ``[F, T, T]``,
    ``at_most=2`` -> ``[T, F, F]``. The rule of ``mel_guard_max_stages`` and
    ``perceptual_min_stages``, in one place."""
    if n_active is None or (at_least <= 1 and at_most <= 0):
        return None
    items = n_active >= at_least
    if at_most > 0:
        items = items & (n_active <= at_most)
    return items

class Trainer:
    """Builds everything from a :class:`TrainConfig` and runs/resumes training."""

    def __init__(self, cfg: TrainConfig, model_config: CodecConfig | None = None,
                 progress: bool = True) -> None:
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.dist = init_distributed(self.device)
        if self.device.startswith("cuda") and self.dist.world_size > 1:
            self.device = f"cuda:{self.dist.local_rank}"
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        mc = model_config or get_config(cfg.model_config)
        if cfg.model_overrides:
            mc = mc.replace(**cfg.model_overrides)
        if mc.sample_rate != cfg.sample_rate:
            mc = mc.replace(sample_rate=cfg.sample_rate)
        self.model = Codec(mc).to(self.device)
        self.init_report = init_weights(self.model, cfg.init_from) if cfg.init_from else ""
        broadcast_module(self.model)
        if cfg.freeze_encoder:
            for p in encoder_side_parameters(self.model).values():
                p.requires_grad_(False)  # autograd then records nothing before the quantizer
        self.build_optimizer()
        # The discriminators draw their initialisation from a stream of their own: from the
        # global one they would shift everything drawn later (the quantizer dropout's stage
        # counts), so a GAN run and its control without the GAN would not be paired.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)
            self.adversary = Adversary(cfg.discriminators, cfg.sample_rate, cfg.lr_disc,
                                       cfg.betas, cfg.adversarial_loss,
                                       cfg.disc_channels).to(self.device)
        broadcast_module(self.adversary)
        self.mel_loss = MultiScaleMelLoss(cfg.sample_rate).to(self.device)
        self.stft_loss = MultiResolutionSTFTLoss().to(self.device)
        self.stft_hr_loss = MultiResolutionSTFTLoss(HARMONIC_RESOLUTIONS).to(self.device)
        self.lowband_loss = LowBandHarmonicLoss(cfg.sample_rate,
                                                cfg.lowband_cutoff_hz).to(self.device)
        self.mel_guard_loss = (BandMelLoss(cfg.sample_rate, cfg.mel_guard_bands_hz).to(self.device)
                               if cfg.loss_weights.get("mel_guard", 0) > 0 else None)
        self.complex_loss = ComplexSTFTLoss().to(self.device)
        self.phase_loss = PhaseLoss(cfg.phase_resolutions, cfg.phase_weight_power).to(self.device)
        self.frame_mod_loss = FrameModulationLoss(self.model.hop_length).to(self.device)
        # (built only when used: it models PESQ-WB at 16 kHz and refuses other rates)
        self.pesq_loss = (PesqLoss(cfg.sample_rate, cfg.pesq_asymmetry_weight).to(self.device)
                          if cfg.loss_weights.get("pesq", 0) > 0 else None)
        self.stoi_loss = (StoiLoss(cfg.sample_rate).to(self.device)
                          if cfg.loss_weights.get("stoi", 0) > 0 else None)
        self.ema: dict[str, Tensor] | None = (
            {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if cfg.ema_decay > 0 else None
        )
        # fp16 needs loss scaling; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(self.device.split(":")[0],
                                           enabled=cfg.precision == "fp16")
        self.step = 0
        self.best_val = math.inf
        self.progress = progress and self.dist.is_main
        self.ckpt_dir = cfg.checkpoint_dir
        self._train_corpus: AudioCorpus | None = None
        self._val_batch: Tensor | None = None
        self.logger: MetricLogger | None = None

    def build_optimizer(self) -> None:
        """The optimizer and learning-rate schedule over the model's trainable parameters (a
        subclass that adds parameters to the model calls it again before training)."""
        cfg = self.cfg
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        slow = [p for n, p in trainable if ".excitation.filter." in n]
        groups = [{"params": [p for n, p in trainable if ".excitation.filter." not in n]}]
        if slow:
            groups.append({"params": slow, "lr": cfg.lr * cfg.excitation_lr_scale})
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_lambda(s, cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio),
        )

    # Precision ----------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.split(":")[0], dtype=dtype)

    # Data ---------------------------------------------------------------------------------
    def train_corpus(self) -> AudioCorpus:
        if self._train_corpus is None:
            self._train_corpus = AudioCorpus(self.cfg.train_data, self.cfg.sample_rate,
                                             progress=self.progress,
                                             repeat=self.cfg.train_data_repeat)
        return self._train_corpus

    def make_loader(self) -> DataLoader:
        cfg = self.cfg
        hop = self.model.hop_length
        segment = max(hop, round(cfg.segment_seconds * cfg.sample_rate / hop) * hop)
        dataset = SegmentDataset(
            self.train_corpus(), segment, seed=cfg.seed,
            augment=Augment(cfg.gain_db_range, cfg.noise_snr_db),
            silence_db=cfg.silence_threshold_db,
        )
        return DataLoader(
            dataset, batch_sampler=StepSampler(self.step, cfg.batch_size, self.dist),
            num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
            generator=torch.Generator().manual_seed(cfg.seed),  # keep the global RNG untouched
        )

    def val_batch(self) -> Tensor | None:
        if not self.cfg.val_data:
            return None
        if self._val_batch is None:
            self._val_batch = validation_batch(self.cfg, self.model.hop_length)
        return self._val_batch

    # One step -----------------------------------------------------------------------------
    def gan_active(self) -> bool:
        return self.step >= self.cfg.gan_start_step and self.cfg.loss_weights["adversarial"] > 0

    def adversarial_active(self) -> bool:
        """Whether the generator gets the adversarial and feature-matching losses: once the
        discriminators have had their ``disc_warmup_steps`` alone."""
        return (self.gan_active()
                and self.step >= self.cfg.gan_start_step + self.cfg.disc_warmup_steps)

    def train_step(self, audio: Tensor) -> dict[str, float]:
        """Discriminator step (if the GAN phase started), then generator step."""
        cfg, w = self.cfg, self.cfg.loss_weights
        self.model.train()
        audio = audio.to(self.device, non_blocking=True)
        with self.autocast():
            out = self.model(audio)
        fake = out.audio.float()
        logs: dict[str, Tensor] = {}
        if self.gan_active():
            real_crop, fake_crop = self.disc_crop(audio, fake)
            logs |= self.adversary.discriminator_step(
                real_crop, fake_crop, cfg.grad_clip,
                lambda params: sync_gradients(params, self.dist.world_size),
            )

        losses = self.reconstruction_losses(fake, audio, out.n_active)
        losses |= out.losses
        if self.adversarial_active():
            with self.autocast():
                losses |= self.adversary.generator_losses(real_crop, fake_crop)
        total = sum(w[k] * v for k, v in losses.items() if w.get(k, 0.0) > 0)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        sync_gradients(list(self.model.parameters()), self.dist.world_size)
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self._update_ema()
        self.step += 1
        logs |= losses
        logs["total"] = total.detach()
        logs["grad_norm"] = grad_norm
        logs["lr"] = torch.tensor(self.scheduler.get_last_lr()[0])
        for k, v in out.metrics.items():
            logs[k] = v
        return {k: float(v.detach()) if isinstance(v, Tensor) else float(v)
                for k, v in logs.items()}

    def reconstruction_losses(self, fake: Tensor, audio: Tensor,
                              n_active: Tensor | None = None) -> dict[str, Tensor]:
        """The weighted reconstruction losses (keys = weight names = log names). A loss with
        weight 0 is not computed: each costs STFTs and their backward pass on every step.
        ``n_active`` (``[B]``, stages per item) lets ``mel_guard_max_stages`` and
        ``perceptual_min_stages`` pick items."""
        w = self.cfg.loss_weights
        on = {k for k, v in w.items() if v > 0}
        losses: dict[str, Tensor] = {}
        spectra = Spectra(fake, audio)  # each STFT once, for every loss that uses it
        if "mel" in on:
            losses["mel"] = self.mel_loss(fake, audio, spectra)
        if "stft" in on:
            losses["stft"] = self.stft_loss(fake, audio, spectra)
        if "stft_hr" in on:
            losses["stft_hr"] = self.stft_hr_loss(fake, audio, spectra)
        if "mel_guard" in on:  # (built when its weight is above 0)
            items = stage_items(n_active, at_most=self.cfg.mel_guard_max_stages)
            losses["mel_guard"] = self.mel_guard_loss(fake, audio, spectra, items)
        if "lowband" in on:
            losses["lowband"] = self.lowband_loss(fake, audio, spectra)
        if "waveform_l1" in on:
            losses["waveform_l1"] = (fake - audio).abs().mean()
        if "complex_stft" in on:
            losses["complex_stft"] = self.complex_loss(fake, audio, spectra)
        if on & {"phase_ip", "phase_gd", "phase_iaf"}:
            losses |= self.phase_loss(fake, audio, spectra)
        if "frame_mod" in on:
            losses["frame_mod"] = self.frame_mod_loss(fake, audio)
        high = stage_items(n_active, at_least=self.cfg.perceptual_min_stages)
        for name, loss in (("pesq", self.pesq_loss), ("stoi", self.stoi_loss)):
            if name not in on:  # (each is built when its weight is above 0)
                continue
            if high is None:
                losses[name] = loss(fake, audio)
                continue
            total = loss(fake[high], audio[high]) if bool(high.any()) else fake.sum() * 0
            low = ~high
            if self.cfg.perceptual_low_weight > 0 and bool(low.any()):
                total = total + self.cfg.perceptual_low_weight * loss(fake[low], audio[low])
            losses[name] = total
        return losses

    def disc_crop(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """The same random window of ``disc_segment_seconds`` from real and fake (the whole
        segment when 0 or longer). Drawn from a generator seeded by the step: exact resume."""
        n = round(self.cfg.disc_segment_seconds * self.cfg.sample_rate)
        t = real.shape[-1]
        if n <= 0 or n >= t:
            return real, fake
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)
        start = int(torch.randint(0, t - n + 1, (1,), generator=g))
        return real[..., start:start + n], fake[..., start:start + n]

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        for k, v in self.model.state_dict().items():
            if v.is_floating_point():
                self.ema[k].lerp_(v, 1 - self.cfg.ema_decay)
            else:
                self.ema[k].copy_(v)

    # Checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "best_val": self.best_val,
            "model": self.model.state_dict(),
            "model_config": self.model.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "adversary": self.adversary.state_dict(),
            "adversary_optimizer": self.adversary.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema,
            "rng": rng_state(),
            "train_config": self.cfg.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.adversary.load_state_dict(state["adversary"])
        self.adversary.optimizer.load_state_dict(state["adversary_optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if state.get("ema") is not None and self.ema is not None:
            self.ema = state["ema"]
        self.step = int(state["step"])
        self.best_val = float(state["best_val"])
        set_rng_state(state["rng"])

    def save_checkpoint(self) -> Path | None:
        if not self.dist.is_main:
            return None
        path = checkpoint_path(self.ckpt_dir, self.step)
        atomic_save(self.state_dict(), path)
        atomic_write_text(self.ckpt_dir / "latest.txt", path.name + "\n")
        prune_checkpoints(self.ckpt_dir, self.cfg.keep_last)
        return path

    def resume(self) -> bool:
        """Load the newest complete checkpoint, if any. Returns whether one was found."""
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            return False
        self.load_state_dict(load_checkpoint(path, self.device))
        return True

    def inference_model(self) -> Codec:
        """The generator for export: EMA weights if enabled."""
        if self.ema is None:
            return self.model
        # A stream of its own for the throw-away initialisation: from the global one it would
        # shift the quantizer dropout drawn after every validation, so the validation cadence
        # would change the training (and a run would not pair with its control).
        with torch.random.fork_rng(devices=[]):
            model = Codec(self.model.config)
        model.load_state_dict(self.ema)
        return model

    def export_bundle(self, name: str) -> Path:
        """Write ``<save>/<name>/`` (config.json + model.safetensors, generator only)."""
        return self.inference_model().eval().save_pretrained(self.ckpt_dir / name)

    # Loop ---------------------------------------------------------------------------------
    def fit(self) -> None:
        from tqdm import tqdm

        cfg = self.cfg
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            cfg.save(self.ckpt_dir / "train_config.json")
            self.model.config.save(self.ckpt_dir / "model_config.json")
            self.logger = MetricLogger(self.ckpt_dir, cfg.log, cfg.to_dict())
        loader = self.make_loader()
        seconds_per_batch = cfg.batch_size * self.dist.world_size * cfg.segment_seconds
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not self.progress,
                   unit="step", dynamic_ncols=True)
        t0, last_logged = time.perf_counter(), self.step
        c0 = time.process_time()
        try:
            started = time.monotonic()
            for audio in loader:
                if self.step >= cfg.max_steps:
                    break
                if cfg.max_minutes and time.monotonic() - started > 60 * cfg.max_minutes:
                    break
                logs = self.train_step(audio)
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == 1:
                    elapsed = time.perf_counter() - t0
                    logs["audio_seconds_per_second"] = (
                        (self.step - last_logged) * seconds_per_batch / max(elapsed, 1e-9)
                    )
                    # CPU seconds per step: less sensitive than wall time to other jobs
                    # sharing the machine (the ablation compares step costs by it).
                    logs["cpu_seconds_per_step"] = (
                        (time.process_time() - c0) / max(1, self.step - last_logged))
                    t0, last_logged = time.perf_counter(), self.step
                    c0 = time.process_time()
                    if self.logger:
                        self.logger.scalars("train", logs, self.step)
                    bar.set_postfix(total=f"{logs['total']:.3f}",
                                    aps=f"{logs['audio_seconds_per_second']:.1f}")
                if self.step % cfg.val_every == 0:
                    self.run_validation()
                if self.step % cfg.save_every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()
        if self.step % cfg.save_every:
            self.save_checkpoint()
        if self.dist.is_main:
            self.export_bundle("bundle-latest")
        if self.logger:
            self.logger.close()

    def run_validation(self) -> dict[str, float] | None:
        batch = self.val_batch()
        if batch is None or not self.dist.is_main:
            return None
        model = self.inference_model().to(self.device).eval()
        scores = validate(model, batch.to(self.device), with_pesq_stoi=self.cfg.val_pesq_stoi,
                          logger=self.logger, step=self.step)
        score = scores.get(f"mel.nq{model.num_codebooks}", math.inf)
        if score < self.best_val:
            self.best_val = score
            self.export_bundle("bundle-best")
        self.export_bundle("bundle-latest")
        return scores
