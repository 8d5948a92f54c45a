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

DATA = Path(__file__).resolve().parents[2] / "data"


def pytest_setup_options():
    options = Options()
    options.add_argument("--window-size=1366,768")
    options.add_argument("--lang=en-US")
    return options


@pytest.fixture
def sample_app():
    from dashapp.app import create_app
    return create_app(DATA)


@pytest.fixture
def catalogue():
    from dashapp.models import scan_models
    return scan_models(DATA)


def wait_for(predicate, timeout=15, interval=0.1, message="condition"):
    """Poll ``predicate`` until it returns a truthy value."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - stale elements while the page re-renders
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message} (last: {last!r})")
