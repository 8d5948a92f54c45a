"""Optional access control (off by default): HTTP basic auth from QUANTLENS_BASIC_AUTH or
a users file, or a user header set by a trusted proxy (QUANTLENS_USER_HEADER)."""

from __future__ import annotations

import base64

import pytest
from werkzeug.security import generate_password_hash

from dashapp.app import create_app
from upload_helpers import Page

PATHS = ("/", "/_dash-layout", "/_dash-dependencies", "/assets/00-bootstrap-flatly.min.css")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTLENS_UPLOAD_DIR", str(tmp_path / "uploads"))
    for k in ("QUANTLENS_BASIC_AUTH", "QUANTLENS_BASIC_AUTH_FILE", "QUANTLENS_USER_HEADER", "QUANTLENS_DEBUG"):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def statuses(app, headers=None) -> set[int]:
    c = app.server.test_client()
    out = {c.get(p, headers=headers or {}).status_code for p in PATHS}
    r = c.post("/_dash-update-component", headers=headers or {},
               json={"output": "selection-info-div.children",
                     "outputs": {"id": "selection-info-div", "property": "children"},
                     "inputs": [{"id": "selection-store", "property": "data", "value": None}],
                     "changedPropIds": ["selection-store.data"]})
    return out | {r.status_code}


def test_access_control_is_off_by_default(tiny_dir, env):
    app = create_app(tiny_dir)
    assert statuses(app) == {200}
    assert Page(app).end_id                                      # the page loads as usual


def test_basic_auth_unauthenticated_gets_401(tiny_dir, env):
    env.setenv("QUANTLENS_BASIC_AUTH", "alice:s3cret:with:colons")
    app = create_app(tiny_dir)
    assert statuses(app) == {401}
    r = app.server.test_client().get("/")
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert "_dash-config" not in r.get_data(as_text=True)          # nothing of the page
    for bad in (basic("alice", "wrong"), basic("bob", "s3cret:with:colons"), basic("", ""),
                {"Authorization": "Bearer abc"}, {"Authorization": "Basic !!!"}):
        assert statuses(app, bad) == {401}, bad


def test_basic_auth_authenticated_gets_200(tiny_dir, env):
    env.setenv("QUANTLENS_BASIC_AUTH", "alice:s3cret:with:colons")
    assert statuses(create_app(tiny_dir), basic("alice", "s3cret:with:colons")) == {200}


def test_basic_auth_users_file_plain_and_hashed(tiny_dir, env, tmp_path):
    f = tmp_path / "users"
    f.write_text("# team\nalice:plain-pw\n\nbob:" + generate_password_hash("hashed-pw") + "\n")
    env.setenv("QUANTLENS_BASIC_AUTH_FILE", str(f))
    app = create_app(tiny_dir)
    assert statuses(app) == {401}
    assert statuses(app, basic("alice", "plain-pw")) == {200}
    assert statuses(app, basic("bob", "hashed-pw")) == {200}
    assert statuses(app, basic("bob", generate_password_hash("hashed-pw"))) == {401}   # the hash is no password


def test_basic_auth_compares_in_constant_time_for_unknown_users(tiny_dir, env, monkeypatch):
    import dashapp.auth as auth
    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: (calls.append(1), real(a, b))[1])
    env.setenv("QUANTLENS_BASIC_AUTH", "alice:pw")
    c = create_app(tiny_dir).server.test_client()
    assert c.get("/", headers=basic("nobody", "pw")).status_code == 401
    assert calls                                  # an unknown user is compared too (no early exit)


@pytest.mark.parametrize("setting", ["nocolon", ":pw", "user:"])
def test_malformed_basic_auth_refuses_to_start(tiny_dir, env, setting):
    env.setenv("QUANTLENS_BASIC_AUTH", setting)
    with pytest.raises(ValueError, match="QUANTLENS_BASIC_AUTH"):
        create_app(tiny_dir)


def test_unreadable_or_empty_users_file_refuses_to_start(tiny_dir, env, tmp_path):
    env.setenv("QUANTLENS_BASIC_AUTH_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="cannot be read"):
        create_app(tiny_dir)
    (tmp_path / "empty").write_text("# nobody\n")
    env.setenv("QUANTLENS_BASIC_AUTH_FILE", str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no user"):
        create_app(tiny_dir)
    (tmp_path / "bad").write_text("alice:pw\nsecret-line-without-colon\n")
    env.setenv("QUANTLENS_BASIC_AUTH_FILE", str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="line 2") as e:
        create_app(tiny_dir)
    assert "secret-line" not in str(e.value)


def test_user_header_missing_gets_401(tiny_dir, env):
    env.setenv("QUANTLENS_USER_HEADER", "X-Forwarded-User")
    app = create_app(tiny_dir)
    assert statuses(app) == {401}
    assert statuses(app, {"X-Forwarded-User": "  "}) == {401}
    assert statuses(app, {"X-Other-User": "alice"}) == {401}
    assert "WWW-Authenticate" not in app.server.test_client().get("/").headers


def test_user_header_present_gets_200(tiny_dir, env):
    env.setenv("QUANTLENS_USER_HEADER", "X-Forwarded-User")
    assert statuses(create_app(tiny_dir), {"X-Forwarded-User": "alice@example.com"}) == {200}


def test_basic_auth_and_user_header_together_need_both(tiny_dir, env):
    env.setenv("QUANTLENS_USER_HEADER", "X-Forwarded-User")
    env.setenv("QUANTLENS_BASIC_AUTH", "alice:pw")
    app = create_app(tiny_dir)
    assert statuses(app, basic("alice", "pw")) == {401}
    assert statuses(app, {"X-Forwarded-User": "alice"}) == {401}
    assert statuses(app, {"X-Forwarded-User": "alice", **basic("alice", "pw")}) == {200}
