"""Quantizers: FSQ, LFQ, VQ (EMA / plain), and their residual stacking."""

from .base import QuantizerOutput
from .fsq import FSQ
from .lfq import LFQ
from .residual import ResidualQuantizer, make_quantizer
from .vq import VectorQuantizer

__all__ = ["FSQ", "LFQ", "QuantizerOutput", "ResidualQuantizer", "VectorQuantizer",
           "make_quantizer"]
