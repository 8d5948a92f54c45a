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

Uploads and access control (:class:`HostingSettings`, read by :func:`hosting_settings_from_env`):

=============================  ==================================================
``QUANTLENS_MAX_UPLOAD_MB``    largest uploaded model file (default 200); the
                               request-body cap (``MAX_CONTENT_LENGTH``) follows
                               from it (base64 + JSON overhead)
``QUANTLENS_UPLOAD_DIR``       where uploads are kept (default
                               ``$QUANTLENS_CACHE_DIR/uploads``)
``QUANTLENS_UPLOAD_TTL_HOURS`` uploads older than this are deleted (default 24)
``QUANTLENS_UPLOAD_QUOTA_MB``  most disk all uploads together may use (default
                               2048); a full store refuses new uploads
``QUANTLENS_BASIC_AUTH``       ``user:password`` turns on HTTP basic auth (off by
                               default)
``QUANTLENS_BASIC_AUTH_FILE``  a file of ``user:password`` lines (or
                               ``user:<werkzeug password hash>``); also turns it on
``QUANTLENS_USER_HEADER``      e.g. ``X-Forwarded-User``: requests without this
                               header (set by a trusted proxy) get 401
=============================  ==================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from analysis.figures import RANGE_PAGE

__all__ = ["Settings", "settings_from_env", "DEFAULT_MODEL_DIR", "HostingSettings", "range_page_size",
           "hosting_settings_from_env"]

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


@dataclass(frozen=True)
class HostingSettings:
    """Uploads and access control of one app instance (see the module docstring)."""

    max_upload_bytes: int
    upload_dir: Path
    upload_ttl_seconds: float
    upload_quota_bytes: int
    basic_auth: str | None
    basic_auth_file: Path | None
    user_header: str | None


def _positive(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        v = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not v > 0:
        raise ValueError(f"{name} must be positive, not {raw!r}")
    return v


def hosting_settings_from_env() -> HostingSettings:
    """Upload and access settings from the environment; a malformed number raises
    ``ValueError`` at start-up rather than weakening a limit."""
    from analysis.cache import cache_dir
    up = os.environ.get("QUANTLENS_UPLOAD_DIR")
    auth_file = os.environ.get("QUANTLENS_BASIC_AUTH_FILE")
    return HostingSettings(
        max_upload_bytes=int(_positive("QUANTLENS_MAX_UPLOAD_MB", 200) * 2**20),
        upload_dir=Path(up).expanduser().resolve() if up else cache_dir() / "uploads",
        upload_ttl_seconds=_positive("QUANTLENS_UPLOAD_TTL_HOURS", 24) * 3600,
        upload_quota_bytes=int(_positive("QUANTLENS_UPLOAD_QUOTA_MB", 2048) * 2**20),
        basic_auth=os.environ.get("QUANTLENS_BASIC_AUTH") or None,
        basic_auth_file=Path(auth_file).expanduser() if auth_file else None,
        user_header=(os.environ.get("QUANTLENS_USER_HEADER") or "").strip() or None,
    )


def range_page_size() -> int:
    """Layers per range-chart page: ``QUANTLENS_RANGE_PAGE`` (default 150, at least 10)."""
    try:
        return max(10, int(os.environ.get("QUANTLENS_RANGE_PAGE", RANGE_PAGE)))
    except ValueError:
        return RANGE_PAGE
