"""Export verification (issue 13): the runtime opens exactly the files that export verified,
and verification bounds code differences by the tie rule instead of only counting them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from dwancodec.export.prepare import prepare_for_export
from dwancodec.export.verify import verify_export
from dwancodec.quantization.residual import TIE_MARGIN
from dwancodec.runtime import SIDECAR, OnnxCodec
from dwancodec.runtime.onnx_codec import file_sha256

from .test_onnx_export import exported, tiny_codec


def test_sidecar_records_the_verified_files_and_their_digests() -> None:
    d = exported()
    meta = json.loads((d / SIDECAR).read_text())
    for name, g in meta["graphs"].items():
        opened = g.get("optimized") or g["file"]
        assert g["sha256"] == {opened: file_sha256(d / opened)}, name
        report = meta["verification"][name]
        assert report["file"] == opened and report["tie_margin"] == TIE_MARGIN
    OnnxCodec(d)  # the untouched folder loads


def test_a_graph_that_is_not_the_verified_file_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "export"
    shutil.copytree(exported(), d)
    g = onnx.load(str(d / "decoder_step.onnx"))
    g.doc_string = "re-saved"  # a valid graph, the same IO: only the digest tells
    onnx.save(g, str(d / "decoder_step.onnx"))
    with pytest.raises(ValueError, match=r"decoder_step\.onnx is not the file that export "
                                         r"verified"):
        OnnxCodec(d)
    meta = json.loads((d / SIDECAR).read_text())
    meta["graphs"]["decoder_step"]["sha256"] = {"other.onnx": "0" * 64}
    (d / SIDECAR).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="is not among the files export verified"):
        OnnxCodec(d)
    for bad in ({"../x.onnx": "0" * 64}, {"decoder_step.onnx": "xyz"}, ["decoder_step.onnx"]):
        meta["graphs"]["decoder_step"]["sha256"] = bad
        (d / SIDECAR).write_text(json.dumps(meta))
        with pytest.raises(ValueError, match=r"graphs\.decoder_step\.sha256 must map"):
            OnnxCodec(d)


def _with_external_weight(src: Path, dst: Path, location: str) -> None:
    """Re-save a graph with its largest initializer as external data at ``location``."""
    g = onnx.load(str(src))
    t = max(g.graph.initializer, key=lambda i: len(i.raw_data))
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        e = t.external_data.add()
        e.key, e.value = key, value
    dst.write_bytes(g.SerializeToString())


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_external_data_outside_the_folder_is_never_read(tmp_path: Path, where: str) -> None:
    """A graph whose tensors point outside its folder (``../``, an absolute path, a link out of
    the folder) is refused when opened; ONNX Runtime >= 1.25 validates these paths, and the
    error reaches the user as a ValueError naming the graph file."""
    d = tmp_path / "export"
    shutil.copytree(exported(), d)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    location = {"parent": "../secret.bin", "absolute": str(secret), "symlink": "link.bin"}[where]
    if where == "symlink":
        os.symlink(secret, d / "link.bin")
    _with_external_weight(d / "encoder_step.onnx", d / "encoder_step.onnx", location)
    meta = json.loads((d / SIDECAR).read_text())
    for g in meta["graphs"].values():
        g.pop("sha256", None)  # an export without digests: ONNX Runtime's check is what holds
    (d / SIDECAR).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"encoder_step\.onnx is not a valid ONNX graph"):
        OnnxCodec(d)


def test_verification_refuses_code_differences_that_are_not_ties() -> None:
    """The same graphs checked against a torch model whose first stage rounds differently
    (its input projection shifted): latents agree, codes differ at frames with a large
    margin, so verification must raise instead of reporting a count."""
    d = exported()
    meta = json.loads((d / SIDECAR).read_text())
    model = prepare_for_export(tiny_codec("fsq"), tabulate=False)
    verify_export(model, d, meta)  # the model the graphs came from passes
    with torch.no_grad():
        model.quantizer.stages[0].project_in.bias += 0.37
    with pytest.raises(RuntimeError, match="not a tie"):
        verify_export(model, d, meta)
