"""Compatibility module: the exporter now lives in files by job (see :mod:`dwancodec.export`).

``from dwancodec.export.onnx_export import export_onnx`` (and the other public names) keeps
working; new code imports from :mod:`dwancodec.export`.
"""

from .export import (
    DECODER_FULL,
    DECODER_STEP,
    ENCODER_FULL,
    ENCODER_STEP,
    EXPORTERS,
    FORMAT,
    FORMAT_VERSION,
    SIDECAR,
    ExportResult,
    GraphInfo,
    build_sidecar,
    export_onnx,
)
from .graphs import DecoderStepGraph, EncoderStepGraph
from .passes import (
    DENSE_MIN_WEIGHTS,
    HALF_MIN_ELEMENTS,
    rewrite_single_step_convs,
    store_exact_half,
)
from .prepare import (
    TABLE_MAX_BYTES,
    TableDecode,
    prepare_for_export,
    strip_parametrizations,
    tabulate_decoders,
)
from .timing import environment_threads, optimize_offline
from .verify import CHECK_ATOL, verify_export

__all__ = [
    "CHECK_ATOL", "DECODER_FULL", "DECODER_STEP", "DENSE_MIN_WEIGHTS", "ENCODER_FULL",
    "ENCODER_STEP", "EXPORTERS", "FORMAT", "FORMAT_VERSION", "HALF_MIN_ELEMENTS", "SIDECAR",
    "TABLE_MAX_BYTES", "DecoderStepGraph", "EncoderStepGraph", "ExportResult", "GraphInfo",
    "TableDecode", "build_sidecar", "environment_threads", "export_onnx", "optimize_offline",
    "prepare_for_export", "rewrite_single_step_convs", "store_exact_half",
    "strip_parametrizations", "tabulate_decoders", "verify_export",
]
