"""Where the files shipped inside the package live: the default model and the demo clip.

Torch-free (the ONNX runtime uses it too). Layout under ``dwancodec/assets/``::

    default/config.json, default/model.safetensors   the default model (torch)
    default/onnx/                                     its exported step graphs (ONNX Runtime)
    default/onnx/blocks/                              the same at 25 frames per call (files)
    demo/speech_fr.flac                               the demo clip (demo/ATTRIBUTION.md)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEMO_CLIP = "speech_fr.flac"

# The layout of an export (`dwancodec export`, torch) that the runtime, the engine chooser and
# the web page read without torch: one definition each.
SIDECAR = "dwancodec_onnx.json"  # the sidecar JSON beside the graphs
BLOCKS = "blocks"                # subfolder: the same model's graphs at many frames per call
DEFAULT_BLOCK_FRAMES = 25        # `dwancodec export`'s default: 0.5 s per call at 50 frames/s


def assets_dir() -> Path:
    return Path(str(resources.files("dwancodec"))) / "assets"


def default_model_dir() -> Path:
    """The shipped default model bundle (``config.json`` + ``model.safetensors``)."""
    return assets_dir() / "default"


def shipped_onnx_dir() -> Path:
    """The shipped default model's exported step graphs (``dwancodec export`` output)."""
    return default_model_dir() / "onnx"


def demo_clip() -> Path:
    """The bundled speech clip (see ``dwancodec/assets/demo/ATTRIBUTION.md``)."""
    return assets_dir() / "demo" / DEMO_CLIP
