"""Run by torchrun in tests: a few DDP training steps, then write this rank's parameter digest."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from dwancodec.training.config import build_train_config
from dwancodec.training.trainer import Trainer


def main(data: str, out: str) -> None:
    torch.set_num_threads(1)
    cfg = build_train_config({}, {
        "model_config": "tiny", "train_data": [data], "batch_size": 2, "segment_seconds": 0.25,
        "num_workers": 0, "gan_start_step": 1, "log": "csv", "save_dir": out,
        "max_steps": 3, "val_every": 10**6, "save_every": 10**6,
        "discriminators": ["mpd"],
    })
    trainer = Trainer(cfg, progress=False)
    loader = iter(trainer.make_loader())
    for _ in range(3):
        trainer.train_step(next(loader))
    h = hashlib.sha256()
    for t in list(trainer.model.parameters()) + list(trainer.adversary.parameters()):
        h.update(t.detach().numpy().tobytes())
    Path(out, f"rank{trainer.dist.rank}.sha").write_text(h.hexdigest())
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
