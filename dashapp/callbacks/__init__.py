"""Callbacks, one module per part of the page; each exposes ``register(app, results)``.

``app.py`` calls :func:`register_all` once per app, so several apps (tests) can live in
one process, each with its own model catalogue.
"""

from . import distributions, exports, jobs, layers, overview, selection, url


def register_all(app, results, manager) -> dict:
    """Attach every callback of the page to ``app``; returns them by name."""
    out = {}
    out.update(url.register(app, results))
    out.update(jobs.register(app, results, manager))
    for mod in (selection, overview, layers, distributions, exports):
        out.update(mod.register(app, results))
    return out
