"""Test configuration shared by the whole suite.

Triton's interpreter must be switched on before any module that defines a Triton kernel is
imported, so this happens here, at collection time, when no CUDA device is present.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return torch.cuda.is_available()


if not _cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _seed_global_rngs() -> None:
    """Seed torch, numpy and random before every test, so no test depends on the run's luck."""
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
