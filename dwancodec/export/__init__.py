"""ONNX export of the streaming step graphs (needs torch + onnx; the runtime does not).

``dwancodec export --model BUNDLE --out DIR`` or :func:`export_onnx`; see
:mod:`dwancodec.export.onnx_export` for the graph contract and :mod:`dwancodec.runtime` for the
torch-free runtime that drives the graphs.
"""

from .onnx_export import (
    SIDECAR,
    DecoderStepGraph,
    EncoderStepGraph,
    ExportResult,
    TableDecode,
    export_onnx,
    optimize_offline,
    prepare_for_export,
    rewrite_single_step_convs,
    store_exact_half,
    strip_parametrizations,
    verify_export,
)

__all__ = ["SIDECAR", "DecoderStepGraph", "EncoderStepGraph", "ExportResult", "TableDecode",
           "export_onnx", "optimize_offline", "prepare_for_export", "rewrite_single_step_convs",
           "store_exact_half",
           "strip_parametrizations", "verify_export"]
