"""Optional access control for a hosted deployment (off unless configured).

* **HTTP basic auth**: ``QUANTLENS_BASIC_AUTH="user:password"`` and/or
  ``QUANTLENS_BASIC_AUTH_FILE`` (lines ``user:password`` or ``user:<werkzeug hash>``,
  ``#`` comments).  Passwords are compared in constant time; an unknown user costs the
  same comparison as a known one.
* **Trusted proxy header**: ``QUANTLENS_USER_HEADER=X-Forwarded-User``.  The proxy in
  front signs users in and sets the header; a request without it gets 401.  Only use
  it when the app cannot be reached except through that proxy.

Both guard every route (page, callbacks, assets).  Implemented as a Flask
``before_request`` hook rather than with ``dash-auth``: a few lines with no further
dependency, and ``hmac.compare_digest`` for the comparison.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.security import check_password_hash

__all__ = ["load_users", "install_access_control"]

log = logging.getLogger(__name__)

_HASH_PREFIXES = ("pbkdf2:", "scrypt:")
_REALM = 'Basic realm="QuantLens", charset="UTF-8"'


def _pair(text: str, where: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError(f"{where}: expected 'user:password'")
    return user, password


def load_users(basic_auth: str | None, users_file: Path | None) -> dict[str, str]:
    """user -> password (or password hash) from the two settings.

    Raises
    ------
    ValueError
        A malformed entry (the message names the line, never its content), or a file that
        cannot be read: the app refuses to start rather than run unprotected.
    """
    users = {}
    if basic_auth:
        u, p = _pair(basic_auth.strip(), "QUANTLENS_BASIC_AUTH")
        users[u] = p
    if users_file is not None:
        try:
            lines = Path(users_file).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise ValueError(f"QUANTLENS_BASIC_AUTH_FILE cannot be read: {e.strerror}") from None
        for i, line in enumerate(lines, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                u, p = _pair(line, f"QUANTLENS_BASIC_AUTH_FILE line {i}")
                users[u] = p
        if not users:
            raise ValueError("QUANTLENS_BASIC_AUTH_FILE holds no user")
    return users


def _password_ok(stored: str, given: str) -> bool:
    if stored.startswith(_HASH_PREFIXES):
        return check_password_hash(stored, given)
    return hmac.compare_digest(stored.encode("utf-8"), given.encode("utf-8"))


def _unauthorized(message: str, basic: bool) -> Response:
    headers = {"WWW-Authenticate": _REALM} if basic else {}
    return Response(message + "\n", 401, headers, mimetype="text/plain")


def install_access_control(server: Flask, users: dict[str, str], user_header: str | None) -> bool:
    """Guard every request of ``server``; returns ``False`` (and does nothing) when neither
    basic auth nor a user header is configured."""
    if not users and not user_header:
        return False
    dummy = "x" * 32

    @server.before_request
    def _require_access():
        if user_header:
            value = request.headers.get(user_header, "")
            if not value.strip():
                return _unauthorized("Sign in through this site's login page first.", False)
        if users:
            auth = request.authorization
            given_user = (auth.username or "") if auth and auth.type == "basic" else ""
            given_pw = (auth.password or "") if auth and auth.type == "basic" else ""
            stored = users.get(given_user)
            ok = _password_ok(stored if stored is not None else dummy, given_pw)
            if not (ok and stored is not None):
                return _unauthorized("Authentication required.", True)
        return None

    log.info("access control on: %s", ", ".join(
        (["basic auth"] if users else []) + ([f"user header {user_header}"] if user_header else [])))
    return True
