"""Shared fixtures: the shipped model on the CPU and a real photo-like frame from the bundled sample clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import streamcodec
from streamcodec.io import open_source

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample.mp4"


@pytest.fixture(scope="session")
def model() -> streamcodec.codec.evc.EVC:
    return streamcodec.load_model("evc-s", device="cpu")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """Frame 0 of examples/sample.mp4 (real footage), 320x180 RGB."""
    with open_source(SAMPLE, frames=1) as source:
        return next(iter(source)).image
