"""Browser-test fixtures: the app on the sample models, helpers (the root conftest gives
each test its own QUANTLENS_CACHE_DIR).

Downloads: dash's own Chrome set-up already points ``download.default_directory`` at a
per-test ``dash_duo.download_path`` (and enables headless downloads through CDP), so
``pytest_setup_options`` below only fixes the window size.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from selenium.webdriver.chrome.options import Options

from browser_helpers import DATA  # noqa: E402


def pytest_setup_options():
    options = Options()
    options.add_argument("--window-size=1366,768")
    options.add_argument("--lang=en-US")
    return options


@pytest.fixture(scope="session", autouse=True)
def _compiled_kernels(tmp_path_factory):
    """Analyse the sample models once in this process before any browser test: the analysis
    kernels (numba) are compiled here, so the job processes forked from this one inherit
    them instead of each compiling for tens of seconds on a busy machine."""
    import analysis
    analysis.analyze(DATA / "cnn_fp32.onnx", sorted(p for p in DATA.glob("cnn_*.onnx") if "fp32" not in p.name),
                     cache=False)


@pytest.fixture
def sample_app():
    from dashapp.app import create_app
    return create_app(DATA)
