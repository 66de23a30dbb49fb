"""``dwancodec.runtime`` imports and codes a file with torch made unimportable.

A child interpreter installs a ``sys.meta_path`` finder that raises ``ImportError`` for
``torch`` (and its submodules) before anything else is imported, then encodes a speech file,
decodes it, streams it, and writes the result; the parent compares with the in-process runtime.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dwancodec.runtime import OnnxCodec

from .conftest import DATA
from .test_onnx_export import exported

REPO = Path(__file__).resolve().parents[1]

# A child-process prelude that makes every torch import fail (shared with test_engines.py).
BLOCK_TORCH_PRELUDE = textwrap.dedent("""
    import importlib.abc, json, sys

    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                # What Python raises when torch is not installed at all.
                raise ModuleNotFoundError(f"No module named {name!r} (blocked in this test)",
                                          name=name)
            return None

    sys.meta_path.insert(0, BlockTorch())
""")

CHILD = BLOCK_TORCH_PRELUDE + textwrap.dedent("""
    try:
        import torch  # noqa: F401
        raise SystemExit("the torch blocker does not work")
    except ImportError:
        pass

    import numpy as np
    import dwancodec
    from dwancodec.audio import load_audio, save_audio
    from dwancodec.runtime import OnnxCodec

    onnx_dir, wav_in, wav_out = sys.argv[1:4]
    codec = OnnxCodec(onnx_dir)
    codes = codec.encode(wav_in)
    audio = codec.decode(codes)
    save_audio(wav_out, audio[0], codec.sample_rate)
    x, _ = load_audio(wav_in, codec.sample_rate)
    enc, dec = codec.streaming_encoder(), codec.streaming_decoder()
    streamed, out = [], []
    for i in range(0, len(x), 333):
        c = enc.push(x[i:i + 333])
        streamed.append(c)
        out.append(dec.push(c))
    streamed.append(enc.flush())
    out.append(dec.push(streamed[-1]))
    try:
        dwancodec.Codec
        raise SystemExit("dwancodec.Codec should need torch")
    except ImportError:
        pass
    print(json.dumps({
        "torch_loaded": any(m == "torch" or m.startswith("torch.") for m in sys.modules),
        "codes": codes.tolist(),
        "streamed": np.concatenate(streamed, -1).tolist(),
        "audio_len": int(np.concatenate(out, -1).shape[-1]),
    }))
""")


def test_runtime_without_torch(tmp_path: Path) -> None:
    d = exported()
    wav_out = tmp_path / "decoded.wav"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(d), str(DATA / "speech_en.flac"), str(wav_out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["torch_loaded"] is False
    codes = np.array(res["codes"])
    ref = OnnxCodec(d).encode(DATA / "speech_en.flac")
    np.testing.assert_array_equal(codes, ref)
    streamed = np.array(res["streamed"])
    assert streamed.shape == codes.shape
    assert (streamed != codes).any(1).mean() < 0.01  # step vs full graph: float order only
    assert wav_out.stat().st_size > 1000
    assert res["audio_len"] == streamed.shape[-1] * OnnxCodec(d).hop_length


def test_info_model_without_torch_says_what_torch_says(
        capsys: pytest.CaptureFixture[str]) -> None:
    """``info --model`` on a torch-free install describes the model from its graphs' sidecar
    and its weights file's header: every field torch's description gives, with the same
    values (identity, codes, entropy tables, geometry, latency, blind share, parameters)."""
    from dwancodec.cli import main

    model = str(REPO / "dwancodec" / "assets" / "default")
    child = BLOCK_TORCH_PRELUDE + textwrap.dedent(f"""
        from dwancodec.cli import main
        raise SystemExit(main(["info", "--model", {model!r}, "--json"]))
    """)
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    without = json.loads(r.stdout)
    assert main(["info", "--model", model, "--json"]) == 0
    with_torch = json.loads(capsys.readouterr().out)
    assert without.pop("described_from").endswith("onnx")
    assert without == with_torch
