"""Production defaults, one test each: debug and dev tools off, no traceback or source in
any response, the Procfile's gunicorn settings (timeout < 30 s, worker recycling, no
reload, no debug), slow work in background jobs, and the upb protobuf backend."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dashapp.app import create_app
from dashapp.hosting import check_protobuf_backend
from upload_helpers import Page, variant_bytes

ROOT = Path(__file__).resolve().parents[2]
LEAKS = ("Traceback", "Werkzeug", "File \"", ".py", "/work/", str(ROOT), "boom-secret")


@pytest.fixture
def prod_env(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTLENS_UPLOAD_DIR", str(tmp_path / "uploads"))
    for k in ("QUANTLENS_DEBUG", "DASH_DEBUG", "FLASK_DEBUG", "QUANTLENS_BASIC_AUTH", "QUANTLENS_BASIC_AUTH_FILE",
              "QUANTLENS_USER_HEADER"):
        monkeypatch.delenv(k, raising=False)


def _raise_in(app, output_id: str):
    key = next(k for k in app.callback_map if output_id in k)

    def boom(*_a, **_k):
        raise RuntimeError(f"boom-secret in {__file__}")
    app.callback_map[key]["callback"] = boom


def _break_and_post(app):
    _raise_in(app, "selection-info-div.children")
    page = Page(app)
    return page.post("selection-info-div.children", {"selection-store.data": {"layer": None, "layers": []}})


def test_debug_and_dev_tools_off_by_default(tiny_dir, prod_env, monkeypatch):
    for value in (None, "0", "true", "yes", " 1"):
        if value is None:
            monkeypatch.delenv("QUANTLENS_DEBUG", raising=False)
        else:
            monkeypatch.setenv("QUANTLENS_DEBUG", value)
        app = create_app(tiny_dir)
        assert not app.server.debug and not app._dev_tools.ui and not app._dev_tools.props_check, value
        assert not app._dev_tools.hot_reload and not app._dev_tools.serve_dev_bundles
        c = app.server.test_client()
        assert '"ui": false' in c.get("/").get_data(as_text=True).replace('"ui":false', '"ui": false')
        assert c.get("/_reload-hash").status_code == 404            # no package list either


def test_debug_only_with_quantlens_debug_1(tiny_dir, prod_env, monkeypatch):
    monkeypatch.setenv("QUANTLENS_DEBUG", "1")
    assert create_app(tiny_dir)._dev_tools.ui


def test_callback_exception_answers_without_traceback_or_source(tiny_dir, prod_env):
    r = _break_and_post(create_app(tiny_dir))
    body = r.get_data(as_text=True)
    assert r.status_code == 500
    for leak in LEAKS:
        assert leak not in body, leak
    assert "Internal Server Error" in body


def test_the_traceback_check_catches_a_leak_when_debug_is_on(tiny_dir, prod_env, monkeypatch):
    """Negative control: with QUANTLENS_DEBUG=1 the same request leaks (the Werkzeug
    debugger page), so the test above would notice a regression."""
    monkeypatch.setenv("QUANTLENS_DEBUG", "1")
    body = _break_and_post(create_app(tiny_dir)).get_data(as_text=True)
    assert "Traceback" in body and "boom-secret" in body


def test_upload_callback_exception_answers_without_traceback(tiny_dir, prod_env, monkeypatch):
    import dashapp.uploads as up

    def broken(*_a, **_k):
        raise RuntimeError("boom-secret parser bug")
    monkeypatch.setattr(up.analysis, "parse_model_bytes", broken)
    r = Page(create_app(tiny_dir)).upload(variant_bytes(), filename="m.onnx")
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and "could not be read as an ONNX model" in body
    for leak in LEAKS:
        assert leak not in body, leak


def test_bad_json_and_unknown_outputs_answer_without_traceback(tiny_dir, prod_env):
    c = create_app(tiny_dir).server.test_client()
    for body in (b"{", b"[]", b'{"output": "nope.children", "outputs": {"id": "nope", "property": "children"}, '
                              b'"inputs": [], "changedPropIds": []}', b"\xff\xfe"):
        r = c.post("/_dash-update-component", data=body, content_type="application/json")
        assert r.status_code in (400, 500)
        text = r.get_data(as_text=True)
        for leak in LEAKS:
            assert leak not in text, (body, leak)


def _procfile_args() -> tuple[list[str], str]:
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith("web:"))
    cmd = line[len("web:"):].strip()
    # expand as the platform's shell would, with the defaults the line gives
    env = {"PORT": "5000"}
    expanded = re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1), m.group(2)), cmd)
    expanded = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), ""), expanded)
    return shlex.split(expanded), cmd


def test_procfile_gunicorn_settings_are_production_safe():
    argv, cmd = _procfile_args()
    assert argv[0] == "gunicorn" and "dashapp.app:server" in argv
    from gunicorn.config import Config
    cfg = Config()
    args = cfg.parser().parse_args([a for a in argv[1:] if a != "dashapp.app:server"])
    assert args.timeout is not None and 0 < args.timeout < 30          # below the 30 s router limit
    assert args.max_requests and args.max_requests > 0                 # workers recycled ...
    assert args.max_requests_jitter and args.max_requests_jitter > 0   # ... not all at once
    assert not args.reload and "--reload" not in argv
    assert args.preload_app                                             # models scanned once, shared
    assert args.bind and args.bind[0].startswith("0.0.0.0:")
    # no debug switch anywhere on the line (env assignments or flags)
    assert not re.search(r"(DASH_DEBUG|QUANTLENS_DEBUG|FLASK_DEBUG|FLASK_ENV)\s*=", cmd)
    assert "--debug" not in argv and "--log-level=debug" not in cmd.replace(" ", "=")
    assert not any(a.startswith("--env") for a in argv) or not re.search(r"DEBUG", cmd)


def test_slow_work_runs_in_background_jobs(tiny_dir, prod_env):
    """The analysis (the only slow step) is a background callback, so no request waits on
    it past gunicorn's timeout; the page polls."""
    app = create_app(tiny_dir)
    key = next(k for k in app.callback_map if "analysis-store.data" in k and "@" not in k.split("analysis-store.data")[1][:1])
    assert app.callback_map[key].get("background"), key
    bg = [k for k, v in app.callback_map.items() if v.get("background")]
    assert bg == [key]


def test_protobuf_backend_is_upb():
    from google.protobuf.internal import api_implementation
    assert api_implementation.Type() == "upb"
    assert check_protobuf_backend() == "upb"


def test_start_up_refuses_another_protobuf_backend(tiny_dir, prod_env, monkeypatch):
    from google.protobuf.internal import api_implementation
    monkeypatch.setattr(api_implementation, "Type", lambda: "python")
    with pytest.raises(RuntimeError, match="upb"):
        create_app(tiny_dir)
