"""Settings read from the environment (the only place the dashboard reads it).

==========================  =====================================================
``QUANTLENS_MODEL_DIR``     folder of ``.onnx`` models offered in the picker
                            (default: the repository's ``data/``); scanned once at
                            start-up
``QUANTLENS_CACHE_DIR``     analysis cache (read by :mod:`analysis.cache`); the
                            background-job store lives in its ``dash-jobs/``
``QUANTLENS_JOBS_DIR``      overrides that job store folder
``QUANTLENS_DEBUG``         ``1`` turns on Dash debug mode and dev tools (never on a
                            shared server)
``REDIS_URL``               run background jobs with Celery + Redis (only if
                            ``celery`` is installed; otherwise a log line and disk)
==========================  =====================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "settings_from_env", "DEFAULT_MODEL_DIR"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Settings:
    """Read-only settings of one app instance."""

    model_dir: Path
    debug: bool
    jobs_dir: Path | None
    redis_url: str | None


def settings_from_env(model_dir: str | os.PathLike | None = None) -> Settings:
    """Settings from the environment; ``model_dir`` overrides ``QUANTLENS_MODEL_DIR``."""
    md = model_dir or os.environ.get("QUANTLENS_MODEL_DIR") or DEFAULT_MODEL_DIR
    jobs = os.environ.get("QUANTLENS_JOBS_DIR")
    return Settings(model_dir=Path(md).expanduser().resolve(),
                    debug=os.environ.get("QUANTLENS_DEBUG", "") == "1",
                    jobs_dir=Path(jobs) if jobs else None,
                    redis_url=os.environ.get("REDIS_URL") or None)
