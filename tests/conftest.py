"""Shared fixtures: tiny models of every quantizer kind, real speech from ../shared (copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

from dwancodec.config import QUANTIZER_KINDS, get_config
from dwancodec.model import Codec

settings.register_profile(
    "ci", max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
torch.set_num_threads(1)

DATA = Path(__file__).parent / "data"


def make_codec(name: str = "tiny", kind: str = "fsq", seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    cfg = get_config(name).replace(**{"quantizer.kind": kind})
    return Codec(cfg).eval()


@pytest.fixture(params=QUANTIZER_KINDS)
def tiny_codec(request: pytest.FixtureRequest) -> Codec:
    return make_codec("tiny", request.param)


@pytest.fixture(scope="session")
def speech() -> torch.Tensor:
    """A few seconds of real speech at 16 kHz, ``[1, 1, T]`` (see tests/data/README.md)."""
    from dwancodec.audio import load_audio

    audio, _ = load_audio(DATA / "speech_en.flac", 16000)
    return torch.from_numpy(audio)[None, None]
