"""Export verification: each graph next to the torch step, for a few consecutive calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model import Codec
from ..quantization.residual import TIE_MARGIN
from ..streaming.state import sub_state, zero_state
from .timing import ort_session

#: Tolerance of the export-time self check (torch step vs. ONNX Runtime, float32).
CHECK_ATOL = 1e-4


def check_onnx(path: Path) -> int:
    """``onnx.checker`` (full check, with shape inference); returns the node count."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return len(model.graph.node)



def _run(session: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def verify_export(model: Codec, directory: Path, sidecar: dict[str, Any], steps: int = 4,
                  batch: int = 3, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Run each graph for a few consecutive calls next to the torch step; raise on mismatch.

    Each graph is checked in the file the runtime opens (the offline-optimized copy where
    export kept one). Encoder: latents and states within :data:`CHECK_ATOL`; codes may differ
    only in frames whose torch rounding margin (``tie_margin``) is below
    :data:`~dwancodec.quantization.residual.TIE_MARGIN`, the streaming tie rule; any other
    difference raises. Decoder: audio and states within :data:`CHECK_ATOL`, with ``n_q`` = all
    stages and a smaller ``n_q``.
    """
    gen = torch.Generator().manual_seed(seed)
    hop, n_all = model.hop_length, model.num_codebooks
    report: dict[str, dict[str, Any]] = {}
    for name, g in sidecar["graphs"].items():
        file = g.get("optimized") or g["file"]
        sess = ort_session(directory / file)
        frames = g["frames"] or 5
        worst, code_mismatch, off_tie = 0.0, 0, 0
        if name.startswith("encoder"):
            n_q = sidecar["encoder_n_q"]
            state = zero_state(model.encoder_state_spec(), batch)
            for _ in range(steps):
                audio = 0.3 * torch.randn(batch, 1, frames * hop, generator=gen)
                with torch.inference_mode():
                    codes, new = model.encoder_step(audio, state, n_q)
                    latents, _ = model.encoder.step(audio, sub_state(state, "encoder"))
                feeds = {"audio": audio.numpy(),
                         **{f"state_in.{k}": v.numpy() for k, v in state.items()}}
                got = _run(sess, feeds)
                diffs = [np.abs(got["latents"] - latents.numpy()).max()]
                diffs += [np.abs(got[f"state_out.{k}"] - v.numpy()).max() for k, v in new.items()]
                worst = max(worst, float(max(diffs)))
                differ = got["codes"] != codes.numpy()  # [B, n_q, F]
                code_mismatch += int(differ.sum())
                margin = model.quantizer.tie_margin(latents, n_q).numpy()  # [B, F]
                off_tie += int((differ.any(1) & (margin >= TIE_MARGIN)).sum())
                state = new
        else:
            state = zero_state(model.decoder_state_spec(), batch)
            for step in range(steps):
                n_q = n_all if step % 2 == 0 else max(1, n_all // 2)
                codes = torch.randint(0, model.codebook_size, (batch, n_all, frames),
                                      generator=gen)
                with torch.inference_mode():
                    audio, new = model.decoder_step(codes[:, :n_q], state)
                feeds = {"codes": codes.numpy(), "n_q": np.array(n_q, dtype=np.int64),
                         **{f"state_in.{k}": v.numpy() for k, v in state.items()}}
                got = _run(sess, feeds)
                diffs = [np.abs(got["audio"] - audio.numpy()).max()]
                diffs += [np.abs(got[f"state_out.{k}"] - v.numpy()).max() for k, v in new.items()]
                worst = max(worst, float(max(diffs)))
                state = new
        if off_tie:
            raise RuntimeError(f"{file}: codes differ from the torch step in {off_tie} frame(s) "
                               f"whose rounding margin is >= {TIE_MARGIN} (not a tie); the "
                               "export is not faithful")
        if not worst <= CHECK_ATOL:
            raise RuntimeError(f"{file} differs from the torch step by {worst:.3g} "
                               f"(> {CHECK_ATOL}); the export is not faithful")
        report[name] = {"file": file, "max_abs_diff": worst, "code_mismatches": code_mismatch,
                        "tie_margin": TIE_MARGIN, "steps": steps, "batch": batch}
    return report
