"""Dash application factory; ``server`` is the WSGI entry point (``gunicorn dashapp.app:server``).

Settings come from the environment (see :mod:`dashapp.config`).  Theme CSS is served
from ``dashapp/assets/`` (no CDN); dev tools are off unless ``QUANTLENS_DEBUG=1``.
Uploads, the request-size cap and optional access control: :mod:`dashapp.uploads`,
:mod:`dashapp.hosting`.
"""

from __future__ import annotations

import logging

from analysis.warmup import warm_up
from dash import Dash

from . import callbacks
from .callbacks import uploads as upload_callbacks
from .config import Settings, hosting_settings_from_env, settings_from_env
from .hosting import configure_server
from .layout import build_layout
from .models import scan_models
from .results import Results
from .upload_panel import upload_panel
from .uploads import UploadStore, WithUploads

__all__ = ["create_app", "app", "server", "celery_app"]

log = logging.getLogger(__name__)


#: Seconds a finished job's result is kept for its page to collect.
_JOB_RESULT_TTL = 600


def _job_nonce() -> str:
    # Dash keys a job's result by its arguments and the first poll that reads it deletes
    # it: two pages asking for the same models at once shared a key, and the slower one
    # never got its answer.  A nonce per job gives each its own key (kept _JOB_RESULT_TTL).
    import secrets
    return secrets.token_hex(8)


def _background_manager(settings: Settings):
    """Celery + Redis when ``REDIS_URL`` is set and celery is installed, else diskcache."""
    from dash import CeleryManager

    from .job_manager import JobManager, LockedCache  # see job_manager: other workers' jobs, forks
    if settings.redis_url:
        try:
            from celery import Celery
        except ImportError:
            log.warning("REDIS_URL is set but celery is not installed: background jobs run locally "
                        "with diskcache")
        else:
            celery = Celery(__name__, broker=settings.redis_url, backend=settings.redis_url)
            return CeleryManager(celery, cache_by=[_job_nonce], expire=_JOB_RESULT_TTL), celery
    from analysis.cache import cache_dir
    jobs = settings.jobs_dir or (cache_dir() / "dash-jobs")
    return JobManager(LockedCache(str(jobs)), cache_by=[_job_nonce], expire=_JOB_RESULT_TTL), None


def create_app(model_dir=None) -> Dash:
    """The QuantLens dashboard for the models in ``model_dir`` (default
    ``$QUANTLENS_MODEL_DIR``, else the repository's ``data/``)."""
    settings = settings_from_env(model_dir)
    hosting = hosting_settings_from_env()
    catalogue = scan_models(settings.model_dir)
    log.info("%d models offered from %s", len(catalogue), settings.model_dir)
    uploads = UploadStore.from_settings(hosting)
    uploads.cleanup()
    manager, celery = _background_manager(settings)
    warm_up()  # compile the kernels here, so forked workers and background jobs inherit them
    app = Dash(__name__, title="QuantLens", update_title=None, serve_locally=True,
               background_callback_manager=manager, external_stylesheets=[])
    app.layout = build_layout(catalogue, uploads=upload_panel(hosting.max_upload_bytes,
                                                              hosting.upload_ttl_seconds / 3600))
    results = Results(WithUploads(catalogue, uploads))
    app.quantlens_callbacks = callbacks.register_all(app, results, manager)
    app.quantlens_callbacks.update(upload_callbacks.register(app, results, uploads))
    configure_server(app, hosting, debug=settings.debug)
    app.celery_app = celery
    if settings.debug:
        app.enable_dev_tools(debug=True, dev_tools_hot_reload=False)
    return app


app = create_app()
server = app.server
celery_app = app.celery_app  # for `celery -A dashapp.app:celery_app worker` when REDIS_URL is set
