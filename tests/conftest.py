"""Shared test set-up: every test gets its own cache folder and a seeded RNG."""

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch ~/.cache: each test writes to a fresh QUANTLENS_CACHE_DIR."""
    monkeypatch.setenv("QUANTLENS_CACHE_DIR", str(tmp_path_factory.mktemp("qlcache")))


@pytest.fixture
def rng():
    """A seeded generator, so failures reproduce."""
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def sample_models():
    """Paths of the bundled sample models: FP32 reference first."""
    fp32 = DATA / "cnn_fp32.onnx"
    variants = [DATA / f"cnn_{n}.onnx" for n in
                ("int8_qdq_perchannel", "uint8_qop_pertensor", "dynamic_uint8", "matmulnbits_4bit")]
    return fp32, variants
