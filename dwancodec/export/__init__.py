"""ONNX export of the streaming step graphs (needs torch + onnx; the runtime does not).

``dwancodec export --model BUNDLE --out DIR`` or :func:`export_onnx`; see
:mod:`dwancodec.export.export` for the graph contract and :mod:`dwancodec.runtime` for the
torch-free runtime that drives the graphs.
"""

from .export import BLOCKS, DEFAULT_BLOCK_FRAMES, SIDECAR, ExportResult, export_onnx
from .graphs import DecoderStepGraph, EncoderStepGraph
from .passes import rewrite_single_step_convs, store_exact_half
from .prepare import TableDecode, prepare_for_export, strip_parametrizations
from .timing import optimize_offline
from .verify import verify_export

__all__ = ["BLOCKS", "DEFAULT_BLOCK_FRAMES", "SIDECAR", "DecoderStepGraph", "EncoderStepGraph",
           "ExportResult", "TableDecode", "export_onnx", "optimize_offline", "prepare_for_export",
           "rewrite_single_step_convs", "store_exact_half", "strip_parametrizations",
           "verify_export"]
