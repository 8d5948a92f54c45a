"""Production guards of the Flask server under the dashboard: the request-size cap, the
protobuf backend check and the optional access control.  Called once by
:func:`dashapp.app.create_app`.
"""

from __future__ import annotations

import logging

from .auth import install_access_control, load_users
from .config import HostingSettings

__all__ = ["request_body_cap", "check_protobuf_backend", "configure_server"]

log = logging.getLogger(__name__)

#: Room for the JSON around an upload's data URL (the other inputs, a long file name).
_BODY_OVERHEAD = 1 << 20


def request_body_cap(max_upload_bytes: int) -> int:
    """``MAX_CONTENT_LENGTH`` for a largest upload of ``max_upload_bytes``: its base64
    size (4/3) plus the callback's JSON around it."""
    return 4 * -(-int(max_upload_bytes) // 3) + _BODY_OVERHEAD


def check_protobuf_backend() -> str:
    """The protobuf backend, which must be ``upb`` (the C decoder with a nesting limit;
    the pure-Python one recursed without bound, CVE-2025-4565).

    Raises
    ------
    RuntimeError
        Any other backend (e.g. ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``).
    """
    from google.protobuf.internal import api_implementation
    kind = api_implementation.Type()
    if kind != "upb":
        log.critical("protobuf backend is %r, not 'upb': refusing to parse untrusted models", kind)
        raise RuntimeError(f"protobuf backend is {kind!r}; QuantLens needs 'upb' to parse untrusted models "
                           "(unset PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION)")
    return kind


def configure_server(app, hs: HostingSettings, *, debug: bool = False) -> None:
    """Apply the guards to ``app.server`` (``debug``: dev tools are on, leave their routes)."""
    check_protobuf_backend()
    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = request_body_cap(hs.max_upload_bytes)
    install_access_control(server, load_users(hs.basic_auth, hs.basic_auth_file), hs.user_header)
    if not debug:
        prefix = app.config.routes_pathname_prefix

        @server.before_request
        def _no_dev_routes():
            # Dash serves /_reload-hash (the package list) even with dev tools off
            from flask import abort, request
            if request.path == f"{prefix}_reload-hash":
                abort(404)
