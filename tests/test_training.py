"""Training smoke tests: losses go down, exact resume, atomic checkpoints, DDP, bundle export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.model import Codec
from dwancodec.streaming import StreamingDecoder, StreamingEncoder
from dwancodec.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from dwancodec.training.config import DEFAULT_LOSS_WEIGHTS, TrainConfig, build_train_config
from dwancodec.training.trainer import Trainer, encoder_side_parameters, stage_items

DATA = str(Path(__file__).parent / "data")
REPO = Path(__file__).parent.parent


def tiny_cfg(tmp_path: Path, **changes):
    base = {
        "model_config": "tiny", "train_data": [DATA], "batch_size": 2, "segment_seconds": 0.25,
        "num_workers": 0, "gan_start_step": 2, "log": "csv", "save_dir": str(tmp_path / "ck"),
        "max_steps": 6, "val_every": 10**6, "save_every": 10**6, "warmup_steps": 2,
        "discriminators": ["mpd"],
    }
    return build_train_config({}, base | changes)


def test_losses_finite_and_decreasing_on_a_fixed_batch(tmp_path: Path) -> None:
    """60 steps on one batch lower its losses. Measured with every stage and no dropout
    (eval mode) before and after: a training step's own losses swing with the stage counts
    the quantizer dropout draws (one step's mel varies by 10 % from one draw to the next)."""
    trainer = Trainer(tiny_cfg(tmp_path, gan_start_step=10**6, lr=3e-3), progress=False)
    batch = next(iter(trainer.make_loader()))

    def full_rate_losses() -> dict[str, float]:
        trainer.model.eval()
        with torch.no_grad():
            losses = trainer.reconstruction_losses(trainer.model(batch).audio, batch)
        trainer.model.train()
        return {k: float(v) for k, v in losses.items()}

    first = full_rate_losses()
    for _ in range(60):
        last_step = trainer.train_step(batch)
    last = full_rate_losses()
    assert all(torch.isfinite(torch.tensor(v)) for v in last_step.values())
    # Over five random streams of stage counts the ratio was 0.78-0.92.
    assert last["mel"] < 0.95 * first["mel"]
    assert last["stft"] < first["stft"]
    assert "stft_hr" not in last_step  # weight 0 by default: not computed
    # The GAN phase produces finite adversarial / feature-matching / discriminator losses.
    trainer.step = 10**6
    gan = trainer.train_step(batch)
    for k in ("adversarial", "feature_matching", "discriminator"):
        assert torch.isfinite(torch.tensor(gan[k])), k


def test_loss_dict_keys_are_weight_names_and_the_total_is_their_weighted_sum(
        tmp_path: Path) -> None:
    """Every logged loss that has a weight enters the total as ``weight x value``: the total is
    exactly that sum, and raising the new ``stft_hr`` weight from 1 to 3 (same seed, same first
    batch) raises the total by twice its logged value. Waveform L1 and the complex STFT are at
    weight 0 by default, so they are switched on here to keep their wiring under test."""
    totals, values = [], []
    for weight in (1.0, 3.0):
        weights = {"stft_hr": weight, "waveform_l1": 1.0, "complex_stft": 5.0, "lowband": 2.0,
                   "pesq": 0.5}
        trainer = Trainer(tiny_cfg(tmp_path / str(weight), gan_start_step=10**6,
                                   loss_weights=weights), progress=False)
        log = trainer.train_step(next(iter(trainer.make_loader())))
        weights = trainer.cfg.loss_weights
        weighted = sum(weights[k] * v for k, v in log.items() if k in weights)
        assert log["total"] == pytest.approx(weighted, rel=1e-5)
        assert {"waveform_l1", "complex_stft", "lowband", "pesq"} <= log.keys()
        totals.append(log["total"])
        values.append(log["stft_hr"])
    assert values[0] == pytest.approx(values[1], rel=1e-6) and values[0] > 0
    assert totals[1] - totals[0] == pytest.approx(2 * values[0], rel=1e-4)


def test_freeze_encoder_keeps_the_codes_and_trains_the_decoder(tmp_path: Path) -> None:
    """With ``freeze_encoder`` the encoder and the quantizer (what decides the codes) stay
    bit-identical, EMA weights included, while the decoder side learns; the
    same steps without it move the encoder."""
    def run(freeze: bool) -> tuple[Trainer, dict, torch.Tensor]:
        trainer = Trainer(tiny_cfg(tmp_path / str(freeze), gan_start_step=10**6, lr=3e-3,
                                   ema_decay=0.9, freeze_encoder=freeze), progress=False)
        batch = next(iter(trainer.make_loader()))
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        first = trainer.train_step(batch)
        for _ in range(20):
            last = trainer.train_step(batch)
        assert last["mel"] < first["mel"]
        return trainer, before, batch

    trainer, before, batch = run(True)
    names = set(encoder_side_parameters(trainer.model))
    assert any(n.startswith("encoder.") for n in names)
    assert any(n.startswith("quantizer.") for n in names)
    after, ema = trainer.model.state_dict(), trainer.ema
    for name in names:
        assert torch.equal(after[name], before[name]), name
        assert torch.equal(ema[name], before[name]), name
    assert any(not torch.equal(after[n], before[n]) for n in after if n.startswith("decoder."))
    with torch.no_grad():
        fresh = Codec(trainer.model.config).eval()
        fresh.load_state_dict(before)
        assert torch.equal(trainer.model.eval().encode(batch), fresh.encode(batch))
    moved, before, _ = run(False)
    assert any(not torch.equal(moved.model.state_dict()[n], before[n]) for n in names)


def test_excitation_trains_with_its_own_learning_rate_and_f0_loss(tmp_path: Path) -> None:
    """A harmonic excitation: the f0 loss is logged and falls on a fixed batch, and the filter
    gets ``excitation_lr_scale`` times the learning rate through the whole schedule."""
    trainer = Trainer(tiny_cfg(tmp_path, gan_start_step=10**6, lr=3e-3,
                               model_overrides={"decoder.excitation": "harmonic"},
                               excitation_lr_scale=0.1), progress=False)
    filt = trainer.model.decoder.head.excitation.filter
    groups = trainer.optimizer.param_groups
    assert len(groups) == 2 and {id(p) for p in groups[1]["params"]} == {
        id(filt.weight), id(filt.bias)}
    batch = next(iter(trainer.make_loader()))
    first = trainer.train_step(batch)
    for _ in range(30):
        last = trainer.train_step(batch)
    assert last["f0"] < first["f0"] and "voiced" in last
    assert groups[1]["lr"] == pytest.approx(0.1 * groups[0]["lr"])
    assert filt.weight.abs().sum() > 0  # it trains (it starts at 0)


def _run_steps(trainer: Trainer, n: int) -> list[dict[str, float]]:
    loader = iter(trainer.make_loader())
    return [trainer.train_step(next(loader)) for _ in range(n)]


def test_resume_is_bit_exact(tmp_path: Path) -> None:
    """3 steps + checkpoint + a fresh process-like Trainer resuming == 6 uninterrupted steps
    (GAN active from step 2, so the adversary and its optimizer are in the checkpoint)."""
    full = _run_steps(Trainer(tiny_cfg(tmp_path / "a"), progress=False), 6)
    first = Trainer(tiny_cfg(tmp_path / "b"), progress=False)
    _run_steps(first, 3)
    first.save_checkpoint()
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    second = Trainer(tiny_cfg(tmp_path / "b"), progress=False)
    assert second.resume() and second.step == 3
    resumed = _run_steps(second, 3)
    assert resumed == full[3:]


def test_validation_does_not_change_the_training(tmp_path: Path) -> None:
    """A run that validates (with averaged weights: a model is built for it) after every
    step trains the same weights as one that never validates: the quantizer dropout that
    follows draws from the global stream, which validation must leave alone."""
    changes = {"gan_start_step": 10**6, "ema_decay": 0.9, "val_data": [DATA],
               "val_segments": 1, "val_segment_seconds": 0.5, "val_pesq_stoi": False}
    plain = Trainer(tiny_cfg(tmp_path / "a", **changes), progress=False)
    _run_steps(plain, 4)
    validating = Trainer(tiny_cfg(tmp_path / "b", **changes), progress=False)
    loader = iter(validating.make_loader())
    for _ in range(4):
        validating.train_step(next(loader))
        validating.run_validation()
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, validating.model.state_dict()[k]), k


def test_exported_bundle_loads_and_streams(tmp_path: Path) -> None:
    trainer = Trainer(tiny_cfg(tmp_path), progress=False)
    _run_steps(trainer, 2)
    bundle = trainer.export_bundle("bundle")
    assert sorted(p.name for p in bundle.iterdir()) == ["config.json", "model.safetensors"]
    codec = Codec.from_pretrained(bundle)
    x = 0.1 * torch.randn(1, 1, 3001)
    with torch.inference_mode():
        ref = codec.encode(x)
    enc, dec = StreamingEncoder(codec), StreamingDecoder(codec)
    codes = torch.cat([enc.push(x[0, :, i:i + 77]) for i in range(0, 3001, 77)] + [enc.flush()],
                      -1)
    assert torch.equal(codes, ref)
    torch.testing.assert_close(dec.push(codes), codec.decode(ref)[:, 0], atol=1e-5, rtol=0)


def test_ddp_two_processes_keep_identical_parameters(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-port", "29517", "-m", "tests.helpers.ddp_worker", DATA, str(tmp_path)]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = {p.read_text() for p in tmp_path.glob("rank*.sha")}
    assert len(list(tmp_path.glob("rank*.sha"))) == 2
    assert len(digests) == 1


def test_kill_during_checkpointing_never_leaves_a_corrupt_latest(tmp_path: Path) -> None:
    """SIGKILL a training run that checkpoints every step, at several moments; every
    checkpoint file that exists loads, and training resumes from the newest."""
    save = tmp_path / "ck"
    cmd = [sys.executable, "-m", "dwancodec.cli", "train", "--train-data-path", DATA,
           "--model-config", "tiny", "--batch-size", "2", "--segment-seconds", "0.25",
           "--num-workers", "0", "--max-steps", "100000", "--save", str(save), "--log", "csv",
           "--threads", "1", "--resume", "--quiet", "--set", "save_every=1",
           "--set", "val_every=1000000", "--set", "keep_last=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for delay in (0.0, 0.07, 0.19):
        before = len(list_checkpoints(save)) and list_checkpoints(save)[-1][0]
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        # wait until this run is writing checkpoints, then kill it at an arbitrary moment
        while time.monotonic() < deadline and proc.poll() is None:
            ckpts = list_checkpoints(save)
            if ckpts and ckpts[-1][0] > before:
                break
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for _, path in list_checkpoints(save):
            load_checkpoint(path)  # raises if torn
    latest = latest_checkpoint(save)
    assert latest is not None
    step = load_checkpoint(latest)["step"]
    assert step > 0
    resumed = Trainer(build_train_config({}, {
        "model_config": "tiny", "train_data": [DATA], "save_dir": str(save)}), progress=False)
    assert resumed.resume() and resumed.step == step


def test_lowband_cutoff_reaches_the_trainer_and_is_checked(tmp_path: Path) -> None:
    """``lowband_cutoff_hz`` sets the band of the trainer's ``lowband`` loss; a cut-off outside
    (0, sr/2] is refused with its name."""
    trainer = Trainer(tiny_cfg(tmp_path, lowband_cutoff_hz=4000.0), progress=False)
    assert trainer.lowband_loss.cutoff == 4000.0
    for bad in (0.0, 9000.0):
        with pytest.raises(ValueError, match="lowband_cutoff_hz"):
            TrainConfig(lowband_cutoff_hz=bad)


def test_train_data_repeat_sets_each_folders_share_of_the_draws(tmp_path: Path) -> None:
    """Folder a holds 3 s of audio, folder b 6 s: by default b gets 2/3 of the draws; with
    repeat (1, 0.5) each gets half, and the segments a trainer draws follow (b's clips are
    silent-free noise at another level, so each draw says where it came from). Bad factors
    are refused with their name."""
    import soundfile as sf

    from dwancodec.training.data import AudioCorpus, SegmentDataset

    g = np.random.default_rng(0)
    for folder, n, level in (("a", 3, 0.05), ("b", 6, 0.4)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            sf.write(tmp_path / folder / f"{i}.wav", level * g.uniform(-1, 1, 16000), 16000)
    folders = [str(tmp_path / "a"), str(tmp_path / "b")]

    def share_b(corpus: AudioCorpus) -> float:
        return sum(w for w, n in zip(corpus.weights, corpus.names, strict=True) if "/b/" in n)

    assert share_b(AudioCorpus(folders, 16000)) == pytest.approx(2 / 3)
    even = AudioCorpus(folders, 16000, repeat=(1, 0.5))
    assert share_b(even) == pytest.approx(0.5)
    # the same through the flags a user types (--train-data-path a b --set ...=1,0.5)
    cfg = build_train_config(tiny_cfg(tmp_path / "run").to_dict(),
                             {"train_data": folders, "train_data_repeat": "1,0.5"})
    assert share_b(Trainer(cfg, progress=False).train_corpus()) == pytest.approx(0.5)
    drawn = [float(SegmentDataset(even, 1600)[i].abs().max()) > 0.2 for i in range(400)]
    assert 0.4 < np.mean(drawn) < 0.6
    for bad in ((1,), (1, -1), (0, 0)):
        with pytest.raises(ValueError, match="repeat"):
            AudioCorpus(folders, 16000, repeat=bad)
    with pytest.raises(ValueError, match="train_data_repeat"):
        TrainConfig(train_data=tuple(folders), train_data_repeat=(1.0,))


def test_phase_resolutions_reach_the_trainer_from_a_flag_and_are_checked(tmp_path: Path
                                                                          ) -> None:
    """``--set phase_resolutions=[[320, 80], [1024, 256]]`` (JSON) builds the trainer's phase
    loss at both resolutions and survives the saved JSON; malformed pairs are refused."""
    cfg = build_train_config(tiny_cfg(tmp_path).to_dict(),
                             {"phase_resolutions": "[[320, 80], [1024, 256]]"})
    trainer = Trainer(cfg, progress=False)
    assert trainer.phase_loss.resolutions == ((320, 80), (1024, 256))
    assert build_train_config(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in ((), ((320, 0),), ((80, 320),), ((320,),)):
        with pytest.raises(ValueError, match="phase_resolutions"):
            TrainConfig(phase_resolutions=bad)


def test_pesq_loss_and_its_asymmetry_weight_reach_the_trainer(tmp_path: Path) -> None:
    """``--set pesq_asymmetry_weight=0`` builds the trainer's PESQ loss without its asymmetric
    term and survives the saved JSON; the loss is built only when its weight is above 0, and
    a weight outside [0, 1] is refused."""
    cfg = build_train_config(tiny_cfg(tmp_path, loss_weights={"pesq": 1.0}).to_dict(),
                             {"pesq_asymmetry_weight": "0"})
    trainer = Trainer(cfg, progress=False)
    assert trainer.pesq_loss is not None and trainer.pesq_loss.asymmetry_weight == 0.0
    assert build_train_config(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert Trainer(tiny_cfg(tmp_path / "off"), progress=False).pesq_loss is None
    with pytest.raises(ValueError, match="pesq_asymmetry_weight"):
        TrainConfig(pesq_asymmetry_weight=-0.1)


def test_mel_guard_loss_and_its_bands_reach_the_trainer(tmp_path: Path) -> None:
    """``--set mel_guard_bands_hz=...`` moves the guard's bands and survives the saved JSON;
    the guard is built and logged only when its weight is above 0; bad bands are refused by
    name, and only when the guard is on (an 8 kHz config never sees the 16 kHz default)."""
    cfg = build_train_config(tiny_cfg(tmp_path, loss_weights={"mel_guard": 2.0}).to_dict(),
                             {"mel_guard_bands_hz": "[[0, 200]]"})
    trainer = Trainer(cfg, progress=False)
    assert cfg.mel_guard_bands_hz == ((0, 200),)
    assert trainer.mel_guard_loss is not None and trainer.mel_guard_loss.n_bands == 8
    audio = 0.1 * torch.randn(2, 1, 4000)
    assert "mel_guard" in trainer.reconstruction_losses(audio * 0.5, audio)
    assert build_train_config(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert Trainer(tiny_cfg(tmp_path / "off"), progress=False).mel_guard_loss is None
    on = {**DEFAULT_LOSS_WEIGHTS, "mel_guard": 1.0}
    for bad in ((), ((150.0, 100.0),), ((0.0, 9000.0),), ((0.0,),)):
        with pytest.raises(ValueError, match="mel_guard_bands_hz"):
            TrainConfig(loss_weights=on, mel_guard_bands_hz=bad)
    TrainConfig(mel_guard_bands_hz=((0.0, 9000.0),))  # off: not checked


def test_mel_guard_max_stages_scores_the_low_stage_items_alone(tmp_path: Path) -> None:
    """With ``mel_guard_max_stages`` the guard is the guard of the items the quantizer decoded
    from that many stages or fewer (the model reports the count per item); 0 scores all."""
    cfg = build_train_config(tiny_cfg(tmp_path, loss_weights={"mel_guard": 1.0}).to_dict(),
                             {"mel_guard_max_stages": "2"})
    assert cfg.mel_guard_max_stages == 2
    assert build_train_config(json.loads(json.dumps(cfg.to_dict()))) == cfg
    trainer = Trainer(cfg, progress=False)
    trainer.model.train()
    out = trainer.model(0.1 * torch.randn(4, 1, 4 * trainer.model.hop_length))
    assert out.n_active is not None and out.n_active.shape == (4,)
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(3, 1, 4000, generator=g)
    fake = audio + 0.05 * torch.randn(3, 1, 4000, generator=g)
    n_active = torch.tensor([1, 8, 2])
    low = trainer.reconstruction_losses(fake, audio, n_active)["mel_guard"]
    alone = trainer.mel_guard_loss(fake[[0, 2]], audio[[0, 2]])
    assert float(low) == pytest.approx(float(alone), rel=1e-5)
    every = trainer.reconstruction_losses(fake, audio)["mel_guard"]  # no counts: every item
    assert float(every) == pytest.approx(float(trainer.mel_guard_loss(fake, audio)), rel=1e-6)
    with pytest.raises(ValueError, match="mel_guard_max_stages"):
        TrainConfig(mel_guard_max_stages=-1)


def _perceptual_case(tmp_path: Path, overrides: dict[str, str], seed: int
                     ) -> tuple[Trainer, torch.Tensor, torch.Tensor]:
    """A trainer with the pesq and stoi losses on and ``overrides`` (its config round-trips
    through JSON), and three 1 s items: ``audio`` and a noisy ``fake`` of it."""
    cfg = build_train_config(
        tiny_cfg(tmp_path, loss_weights={"pesq": 1.0, "stoi": 1.0}).to_dict(), overrides)
    assert build_train_config(json.loads(json.dumps(cfg.to_dict()))) == cfg
    g = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(3, 1, 16000, generator=g)
    return Trainer(cfg, progress=False), audio, audio + 0.05 * torch.randn(3, 1, 16000,
                                                                           generator=g)


def test_perceptual_min_stages_keeps_pesq_and_stoi_off_the_low_stage_items(
        tmp_path: Path) -> None:
    """With ``perceptual_min_stages`` the pesq and stoi losses are those of the items decoded
    from that many stages or more; with none such in the batch they are 0 (with a graph)."""
    trainer, audio, fake = _perceptual_case(tmp_path, {"perceptual_min_stages": "3"}, 0)
    losses = trainer.reconstruction_losses(fake, audio, torch.tensor([1, 8, 3]))
    for name, loss in (("pesq", trainer.pesq_loss), ("stoi", trainer.stoi_loss)):
        assert loss is not None
        alone = loss(fake[[1, 2]], audio[[1, 2]])
        assert float(losses[name]) == pytest.approx(float(alone), rel=1e-5)
    none = trainer.reconstruction_losses(fake.requires_grad_(True), audio,
                                         torch.tensor([1, 2, 2]))
    assert float(none["pesq"].detach()) == 0 and none["pesq"].requires_grad
    with pytest.raises(ValueError, match="perceptual_min_stages"):
        TrainConfig(perceptual_min_stages=0)


def test_perceptual_low_weight_adds_the_low_stage_items_at_a_fraction(tmp_path: Path) -> None:
    """With ``perceptual_low_weight`` f the pesq and stoi losses are L(high items) + f x
    L(low items); with only low items in the batch, f x L(low items)."""
    trainer, audio, fake = _perceptual_case(
        tmp_path, {"perceptual_min_stages": "3", "perceptual_low_weight": "0.25"}, 1)
    losses = trainer.reconstruction_losses(fake, audio, torch.tensor([1, 8, 2]))
    lows = trainer.reconstruction_losses(fake, audio, torch.tensor([1, 2, 2]))
    for name, loss in (("pesq", trainer.pesq_loss), ("stoi", trainer.stoi_loss)):
        assert loss is not None
        want = loss(fake[[1]], audio[[1]]) + 0.25 * loss(fake[[0, 2]], audio[[0, 2]])
        assert float(losses[name]) == pytest.approx(float(want), rel=1e-5)
        assert float(lows[name]) == pytest.approx(0.25 * float(loss(fake, audio)), rel=1e-5)
    with pytest.raises(ValueError, match="perceptual_low_weight"):
        TrainConfig(perceptual_low_weight=1.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 8), min_size=1, max_size=12), st.integers(1, 9),
       st.integers(0, 9))
def test_stage_items_is_the_bounded_stage_count(counts: list[int], at_least: int,
                                                at_most: int) -> None:
    """One rule picks the items of the mel guard (at most) and the perceptual losses (at
    least): the items whose stage count is in the bounds; None where nothing is bounded."""
    n_active = torch.tensor(counts)
    items = stage_items(n_active, at_least=at_least, at_most=at_most)
    if at_least <= 1 and at_most <= 0:
        assert items is None
        return
    assert items is not None
    want = [at_least <= c and (at_most <= 0 or c <= at_most) for c in counts]
    assert items.tolist() == want
    assert stage_items(None, at_least=at_least, at_most=at_most) is None


def test_stoi_loss_reaches_the_trainer_only_when_weighted(tmp_path: Path) -> None:
    """``loss_weights.stoi`` above 0 builds the STOI loss and logs it under its weight's name;
    at 0 (the default) it is neither built nor computed."""
    cfg = tiny_cfg(tmp_path, loss_weights={"stoi": 1.0})
    trainer = Trainer(cfg, progress=False)
    assert trainer.stoi_loss is not None
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(2, 1, 16000, generator=g)
    losses = trainer.reconstruction_losses(audio + 0.1 * torch.randn(2, 1, 16000, generator=g),
                                           audio)
    assert 0 < float(losses["stoi"]) < 1
    assert Trainer(tiny_cfg(tmp_path / "off"), progress=False).stoi_loss is None


def test_config_file_and_flags_compose(tmp_path: Path) -> None:
    from argparse import Namespace

    from dwancodec.cli import build_parser
    from dwancodec.training.command import config_from_args

    cfg_file = tmp_path / "train.toml"
    cfg_file.write_text('batch_size = 4\nlr = 0.0005\n[loss_weights]\nmel = 10.0\n')
    args: Namespace = build_parser().parse_args([
        "train", "--train-data-path", DATA, "--config", str(cfg_file), "--lr", "0.002",
        "--quantizer", "ema", "--levels", "5,5", "--set", "gan_start_step=7",
    ])
    cfg = config_from_args(args)
    assert cfg.batch_size == 4 and cfg.lr == 0.002 and cfg.gan_start_step == 7
    assert cfg.loss_weights["mel"] == 10.0  # from the file
    assert cfg.loss_weights["stft"] == DEFAULT_LOSS_WEIGHTS["stft"]  # not in it: the default
    assert cfg.model_overrides["quantizer.kind"] == "ema"
    with pytest.raises(ValueError, match="unknown training config field"):
        build_train_config({}, {"nonsense": 1})


def test_validation_scores_every_bitrate_and_logs(tmp_path: Path) -> None:
    """The validation pass (PESQ/STOI included) and its TensorBoard/CSV logging run end to end."""
    from dwancodec.training.data import AudioCorpus, validation_segments
    from dwancodec.training.logger import MetricLogger
    from dwancodec.training.validate import validate

    codec = Codec.from_config("tiny", seed=0)
    batch = validation_segments(AudioCorpus([DATA], 16000), 2, 16000)
    logger = MetricLogger(tmp_path, "tensorboard", {"experiment_name": "t"})
    scores = validate(codec, batch, with_pesq_stoi=True, logger=logger, step=1)
    logger.close()
    for n in range(1, codec.num_codebooks + 1):
        for metric in ("mel", "stft", "si_sdr", "pesq", "stoi"):
            assert f"{metric}.nq{n}" in scores
    assert (tmp_path / "metrics.csv").read_text().count("val/pesq.nq") == codec.num_codebooks
    assert any((tmp_path / "tensorboard").iterdir())


def test_disc_warmup_trains_the_discriminators_alone_first(tmp_path: Path) -> None:
    """Through ``disc_warmup_steps`` after ``gan_start_step`` the discriminators step and the
    generator's total holds no adversarial term; after it, the generator gets them."""
    trainer = Trainer(tiny_cfg(tmp_path, gan_start_step=1, disc_warmup_steps=2), progress=False)
    batch = next(iter(trainer.make_loader()))
    disc = trainer.adversary.discriminators
    logs = [trainer.train_step(batch)]  # step 0: before the GAN
    before = [p.detach().clone() for p in disc.parameters()]
    logs += [trainer.train_step(batch) for _ in range(3)]  # steps 1, 2: warm-up; 3: full GAN
    assert "discriminator" not in logs[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, disc.parameters(), strict=True))
    for log in logs[1:3]:
        assert "discriminator" in log and "adversarial" not in log
    assert "adversarial" in logs[3] and "feature_matching" in logs[3]
    with pytest.raises(ValueError, match="disc_warmup_steps"):
        tiny_cfg(tmp_path, disc_warmup_steps=-1)


def test_the_discriminators_leave_the_generators_random_stream_alone(tmp_path: Path) -> None:
    """Which discriminators a run has (and whether they are wide) does not change what the
    generator side draws afterwards, so a GAN run and its control see the same quantizer
    dropout: the global random state after building the trainer is the same."""
    states = []
    for i, (names, width) in enumerate([(["mpd"], 16), (["mrstft"], 32), (["stft1d", "mpd"], 8)]):
        Trainer(tiny_cfg(tmp_path / str(i), discriminators=names, disc_channels=width),
                progress=False)
        states.append(torch.get_rng_state())
    assert all(torch.equal(states[0], s) for s in states[1:])


def test_checkpoint_bundle_writes_the_runs_own_inference_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """recipes/checkpoint_bundle.py: the bundle from a checkpoint decodes exactly as the
    trainer's own bundle of that step (the averaged weights), --raw gives the raw ones, and
    an existing folder or a file that is no checkpoint is refused with exit 2."""
    sys.path.insert(0, str(REPO / "recipes"))
    import checkpoint_bundle

    trainer = Trainer(tiny_cfg(tmp_path, ema_decay=0.9), progress=False)
    _run_steps(trainer, 3)
    ckpt = trainer.save_checkpoint()
    own = Codec.from_pretrained(trainer.export_bundle("own"))
    x = torch.randn(1, 1, 4 * own.hop_length, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        want = own(x).audio
        assert checkpoint_bundle.checkpoint_bundle(ckpt, tmp_path / "ema") == 3
        assert torch.equal(Codec.from_pretrained(tmp_path / "ema")(x).audio, want)
        checkpoint_bundle.checkpoint_bundle(ckpt, tmp_path / "raw", raw=True)
        assert not torch.equal(Codec.from_pretrained(tmp_path / "raw")(x).audio, want)
    with pytest.raises(FileExistsError):
        checkpoint_bundle.checkpoint_bundle(ckpt, tmp_path / "ema")
    not_a_checkpoint = tmp_path / "x.pt"
    not_a_checkpoint.write_bytes(b"junk")
    monkeypatch.setattr(sys, "argv", ["checkpoint_bundle.py", str(not_a_checkpoint),
                                      str(tmp_path / "new")])
    assert checkpoint_bundle.main() == 2
    assert not (tmp_path / "new").exists()
