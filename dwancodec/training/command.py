"""``dwancodec train``: flags and config files onto a TrainConfig, then run the Trainer."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .config import TrainConfig, build_train_config, load_train_config_file

# CLI flag (argparse dest) -> TrainConfig field
FLAG_FIELDS = {
    "train_data_path": "train_data", "val_data_path": "val_data", "sample_rate": "sample_rate",
    "batch_size": "batch_size", "lr": "lr", "lr_disc": "lr_disc", "save": "save_dir",
    "experiment_name": "experiment_name", "max_steps": "max_steps",
    "segment_seconds": "segment_seconds", "device": "device", "precision": "precision",
    "log": "log", "num_workers": "num_workers", "threads": "threads",
    "model_config": "model_config", "init_from": "init_from",
}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    base: dict[str, Any] = {}
    if args.config:
        if Path(args.config).suffix in (".json", ".toml"):
            base = load_train_config_file(args.config)
        else:
            base = {"model_config": args.config}
    overrides: dict[str, Any] = {
        field: getattr(args, flag) for flag, field in FLAG_FIELDS.items()
        if getattr(args, flag, None) is not None
    }
    model_overrides = dict(base.get("model_overrides", {}))
    if args.quantizer:
        model_overrides["quantizer.kind"] = args.quantizer
    if args.levels:
        model_overrides["quantizer.levels"] = tuple(int(v) for v in args.levels.split(","))
    if args.num_quantizers:
        model_overrides["quantizer.num_quantizers"] = args.num_quantizers
    if model_overrides:
        overrides["model_overrides"] = model_overrides
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = value.strip()
    return build_train_config(base, overrides)


def run(args: argparse.Namespace) -> int:
    from .trainer import Trainer

    cfg = config_from_args(args)
    trainer = Trainer(cfg, progress=not args.quiet)
    if args.resume and trainer.resume():
        print(f"resumed from step {trainer.step} in {cfg.checkpoint_dir}")
    elif args.resume and not trainer.init_report:
        print(f"no checkpoint in {cfg.checkpoint_dir}; starting from scratch")
    if trainer.init_report and trainer.step == 0:
        print(trainer.init_report)
    trainer.fit()
    print(f"done at step {trainer.step}; inference bundle: "
          f"{cfg.checkpoint_dir / 'bundle-latest'}")
    return 0
