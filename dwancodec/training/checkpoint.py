"""Atomic, resumable checkpoints.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed
over its final name (``os.replace`` is atomic on POSIX), so a kill at any moment leaves either
the previous complete file or the new complete file, never a torn one. Loading uses
``torch.load(weights_only=True)``: tensors and plain containers only, no arbitrary unpickling.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

CKPT_PATTERN = re.compile(r"^step-(\d{8})\.pt$")


def atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step-{step:08d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of complete checkpoints, oldest first (temporary files ignored)."""
    if not directory.exists():
        return []
    found = []
    for p in directory.iterdir():
        m = CKPT_PATTERN.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a file that is not a checkpoint of ours
        raise ValueError(f"cannot load checkpoint {path}: {e}") from None


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint that loads (a damaged newest file falls back to the previous)."""
    for _, path in reversed(list_checkpoints(directory)):
        try:
            load_checkpoint(path)
            return path
        except ValueError:
            continue
    return None


def prune_checkpoints(directory: Path, keep_last: int, protect: set[Path] | None = None) -> None:
    protect = protect or set()
    ckpts = list_checkpoints(directory)
    for _, path in ckpts[: max(0, len(ckpts) - keep_last)]:
        if path not in protect:
            path.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    import random

    import numpy as np

    _, keys, pos, *_ = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(keys.astype(np.int64)),
        "numpy_pos": torch.tensor(int(pos)),
        "python": torch.tensor(list(random.getstate()[1]), dtype=torch.int64),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(state["numpy_pos"]), 0, 0.0))
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
