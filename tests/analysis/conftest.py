"""Fixtures of the layout tests: every test gets its own QuantLens cache folder."""

import pytest


@pytest.fixture(autouse=True)
def _quantlens_cache(tmp_path_factory, monkeypatch):
    """Point ``QUANTLENS_CACHE_DIR`` at a temporary folder so no test touches ~/.cache."""
    monkeypatch.setenv("QUANTLENS_CACHE_DIR", str(tmp_path_factory.mktemp("quantlens_cache")))
