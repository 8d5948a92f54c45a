"""Uploads (issue #5): every bad upload of the threats doc, section (d), posted through the
real callback endpoint (Flask test client, the body the browser sends), plus the store's
naming, ids, expiry, quota and privacy.  Each answer is HTTP 200 with a message in the
page's upload alert; nothing is written for a refused file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dashapp.app import create_app
from dashapp.hosting import request_body_cap
from dashapp.uploads import UploadError, UploadStore, clean_filename, decode_contents, is_upload_id
from upload_helpers import (Page, _field, alert_of, data_url, external_data_bytes, fp32_bytes, json_bytes,
                            nested_if_bytes, no_nodes_bytes, pdf_bytes, png_bytes, response_props, texts,
                            variant_bytes, zip_bytes)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def upload_dir(tmp_path, monkeypatch):
    d = tmp_path / "uploads"
    monkeypatch.setenv("QUANTLENS_UPLOAD_DIR", str(d))
    for k in ("QUANTLENS_MAX_UPLOAD_MB", "QUANTLENS_UPLOAD_TTL_HOURS", "QUANTLENS_UPLOAD_QUOTA_MB",
              "QUANTLENS_BASIC_AUTH", "QUANTLENS_BASIC_AUTH_FILE", "QUANTLENS_USER_HEADER", "QUANTLENS_DEBUG"):
        monkeypatch.delenv(k, raising=False)
    return d


@pytest.fixture
def app(tiny_dir, upload_dir):
    return create_app(tiny_dir)


@pytest.fixture
def page(app):
    return Page(app)


def stored(upload_dir: Path) -> list[str]:
    """Everything in the uploads folder, relative (hidden temporaries included)."""
    return sorted(p.relative_to(upload_dir).as_posix() for p in upload_dir.rglob("*")) if upload_dir.exists() else []


def assert_refused(page, upload_dir, data, *needles, filename="model.onnx"):
    r = page.upload(data, filename)
    assert r.status_code == 200, r.status_code
    body = r.get_data(as_text=True)
    assert "Traceback" not in body and "/work/" not in body and str(upload_dir) not in body
    alert_id, text = alert_of(r)
    assert alert_id == "upload-error-alert"
    for n in needles:
        assert n in text, text
    props = response_props(r)
    assert "upload-store" not in props and "variant-models-dropdown" not in props   # nothing chosen
    assert stored(upload_dir) == []                                                # nothing kept
    return text


# ---------------------------------------------------------------- (d) not a model / broken container
NOT_A_MODEL = "is not an ONNX model"


def test_upload_empty_file_is_refused(page, upload_dir):
    assert_refused(page, upload_dir, b"", NOT_A_MODEL, "empty")


@pytest.mark.parametrize("kind, data", [
    ("text", lambda: b"weights: 0.1, 0.2\nthis is a text file\n"),
    ("png", png_bytes), ("pdf", pdf_bytes), ("zip_pytorch_pt", zip_bytes), ("json", json_bytes),
])
def test_upload_other_file_renamed_onnx_is_refused(page, upload_dir, kind, data):
    assert_refused(page, upload_dir, data(), NOT_A_MODEL, "protobuf decode failed", filename=f"{kind}.onnx")


def test_upload_truncated_protobuf_half_is_refused(page, upload_dir):
    b = fp32_bytes()
    assert_refused(page, upload_dir, b[:len(b) // 2], NOT_A_MODEL, "protobuf decode failed")


def test_upload_protobuf_cut_by_one_byte_is_refused(page, upload_dir):
    assert_refused(page, upload_dir, fp32_bytes()[:-1], NOT_A_MODEL, "protobuf decode failed")


def test_upload_valid_wire_format_with_junk_fields_is_refused(page, upload_dir):
    junk = _field(99, b"junk") + _field(150, b"\x01\x02\x03")
    assert_refused(page, upload_dir, junk, NOT_A_MODEL, "no IR version")


def test_upload_with_no_nodes_and_no_weights_is_refused(page, upload_dir):
    assert_refused(page, upload_dir, no_nodes_bytes(), "no nodes and no weights")


def test_upload_nested_if_40_deep_is_refused(page, upload_dir):
    assert_refused(page, upload_dir, nested_if_bytes(40), NOT_A_MODEL, "MaxDepth")


# ---------------------------------------------------------------- (d) external data and paths
def test_upload_with_external_tensors_is_refused_and_reads_nothing(page, upload_dir, tmp_path, monkeypatch):
    import builtins
    opened = []
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1])
    text = assert_refused(page, upload_dir, external_data_bytes(), "external data",
                          "place the model and its data files in the server's model folder")
    assert not any(o.endswith("w.bin") for o in opened)
    assert "w.bin" not in text


@pytest.mark.parametrize("name", ["../../x.onnx", "/etc/passwd", "C:\\Windows\\System32\\x.onnx",
                                  "<img src=x onerror=alert(1)>.onnx", "a" * 10_000 + ".onnx",
                                  "tab\tnew\nline\x00nul.onnx"])
def test_upload_filename_is_shown_as_text_and_never_used_as_a_path(page, upload_dir, tmp_path, name):
    before = sorted(p.as_posix() for p in tmp_path.rglob("*") if "uploads" not in p.parts)
    r = page.upload(variant_bytes(), filename=name)
    assert r.status_code == 200
    alert_id, text = alert_of(r)
    assert alert_id == "upload-ok-alert"
    shown = clean_filename(name)
    assert shown in text                       # the name, as text (React escapes it)
    assert len(shown) <= 120 and "\x00" not in shown and "\n" not in shown
    # stored under generated names only; nothing written outside the uploads folder
    files = stored(upload_dir)
    assert len(files) == 3 and all(f.startswith("u-") for f in files), files
    assert sorted(p.as_posix() for p in tmp_path.rglob("*") if "uploads" not in p.parts) == before
    assert not Path("/x.onnx").exists() and not (ROOT.parent / "x.onnx").exists()
    # the option label is the same text
    labels = [o["label"] for o in response_props(r)["variant-models-dropdown"]["options"]]
    assert any(lbl.startswith(shown) for lbl in labels)


def test_upload_html_name_stays_text_in_the_response(page, upload_dir):
    r = page.upload(variant_bytes(), filename="<script>alert(1)</script>.onnx")
    raw = r.get_data(as_text=True)
    # a JSON string child, never markup: Dash renders children strings as text nodes
    alert = response_props(r)["upload-alert-div"]["children"]
    assert "dangerously_allow_html" not in raw and alert["type"] == "Alert"
    assert "<script>alert(1)</script>.onnx" in json.dumps(alert)


# ---------------------------------------------------------------- (d) size
def test_upload_body_just_over_the_cap_gets_413(tiny_dir, upload_dir, monkeypatch):
    monkeypatch.setenv("QUANTLENS_MAX_UPLOAD_MB", "1")
    app = create_app(tiny_dir)
    cap = app.server.config["MAX_CONTENT_LENGTH"]
    assert cap == request_body_cap(2**20)
    page = Page(app)
    body = json.dumps({"output": "x", "pad": "a" * cap}).encode()[:cap + 1]
    r = page.client.post(f"/_dash-update-component?endId={page.end_id}", data=body,
                         content_type="application/json")
    assert r.status_code == 413
    assert "Traceback" not in r.get_data(as_text=True)
    assert stored(upload_dir) == []
    # a body at the cap is parsed (and answered 200 with the size message, not 413)
    r = page.upload(data_url(b"\0" * (2**20 + 10)))
    assert r.status_code == 200
    alert_id, text = alert_of(r)
    assert alert_id == "upload-error-alert" and "over the 1.0 MB upload limit" in text


def test_upload_component_has_the_browser_side_size_limit(tiny_dir, upload_dir, monkeypatch):
    monkeypatch.setenv("QUANTLENS_MAX_UPLOAD_MB", "3")
    layout = create_app(tiny_dir).server.test_client().get("/_dash-layout").get_data(as_text=True)
    assert layout.count('"max_size": 3145728') == 2 or layout.count('"max_size":3145728') == 2


def test_max_content_length_follows_the_setting(tiny_dir, upload_dir, monkeypatch):
    assert create_app(tiny_dir).server.config["MAX_CONTENT_LENGTH"] == request_body_cap(200 * 2**20)
    monkeypatch.setenv("QUANTLENS_MAX_UPLOAD_MB", "50")
    assert create_app(tiny_dir).server.config["MAX_CONTENT_LENGTH"] == request_body_cap(50 * 2**20)
    monkeypatch.setenv("QUANTLENS_MAX_UPLOAD_MB", "lots")
    with pytest.raises(ValueError, match="QUANTLENS_MAX_UPLOAD_MB"):
        create_app(tiny_dir)


# ---------------------------------------------------------------- malformed requests
@pytest.mark.parametrize("contents", [["data:;base64,AAAA"], 42, {"a": 1}, "not a data url",
                                      "data:text/plain,hello", "data:;base64,@@@not base64@@@"])
def test_upload_contents_that_are_not_a_file_get_a_message(page, upload_dir, contents):
    r = page.upload(contents)
    assert r.status_code == 200
    alert_id, text = alert_of(r)
    assert alert_id == "upload-error-alert" and "choose it again" in text
    assert stored(upload_dir) == []


def test_upload_with_forged_session_and_choices_is_harmless(page, upload_dir):
    r = page.upload(variant_bytes(), session=["../../etc/passwd", {"id": 1}, "u-" + "A" * 22, None],
                    ref=["not", "a", "string"], variants="../x")
    assert r.status_code == 200
    props = response_props(r)
    new = props["upload-store"]["data"]
    assert len(new) == 1 and is_upload_id(new[0])      # junk dropped, the unknown well-formed id too
    assert props["variant-models-dropdown"]["value"] == new
    values = [o["value"] for o in props["ref-model-dropdown"]["options"]]
    assert "../x" not in values and "u-" + "A" * 22 not in values


# ---------------------------------------------------------------- good uploads, ids, privacy
def test_good_variant_upload_is_chosen_and_analysed(app, page, upload_dir, tiny_dir):
    from dashapp.models import scan_models
    ref = next(e.id for e in scan_models(tiny_dir).entries if e.name == "fp32.onnx")
    r = page.upload(variant_bytes(), filename="my int8.onnx", ref=ref, variants=[])
    props = response_props(r)
    uid = props["upload-store"]["data"][0]
    assert is_upload_id(uid) and props["variant-models-dropdown"]["value"] == [uid]
    assert alert_of(r)[0] == "upload-ok-alert"
    assert props["upload-ref-upload"]["contents"] is None          # the zone lets go of the bytes
    progress = []
    data, status = app.quantlens_callbacks["run_analysis"](progress.append, ref, [uid])
    assert data["error"] is None and data["variants"] == [uid] and "1 variant(s)" in status
    a = app.quantlens_callbacks["update_model_status"]
    badges, problems = a(data)
    from plotly.utils import PlotlyJSONEncoder
    assert badges and "my int8 (upload" in json.dumps(badges, cls=PlotlyJSONEncoder)


def test_uploaded_fp32_as_reference_with_a_server_variant(app, page, tiny_dir):
    from dashapp.models import scan_models
    good = next(e.id for e in scan_models(tiny_dir).entries if e.name == "good.onnx")
    r = page.upload(fp32_bytes(), filename="ref.onnx", slot="ref", variants=[good])
    props = response_props(r)
    uid = props["upload-store"]["data"][0]
    assert props["ref-model-dropdown"]["value"] == uid and "variant-models-dropdown" not in props or \
        props["variant-models-dropdown"].get("value") is None
    data, _ = app.quantlens_callbacks["run_analysis"](lambda *_: None, uid, [good])
    assert data["error"] is None and data["ref"] == uid


def test_fp32_uploaded_as_variant_gets_a_warning(page):
    r = page.upload(fp32_bytes())
    alert = response_props(r)["upload-alert-div"]["children"]
    assert alert["props"]["color"] == "warning" and "no quantization operators" in json.dumps(alert)


def test_upload_ids_are_unguessable_and_not_derived_from_name_or_content(page):
    ids_ = {response_props(page.upload(variant_bytes(), filename="same.onnx"))["upload-store"]["data"][0]
            for _ in range(3)}
    assert len(ids_) == 3 and all(is_upload_id(i) and len(i) == 24 for i in ids_)


def test_uploads_are_never_listed_to_other_sessions(app, page, tiny_dir):
    uid = response_props(page.upload(variant_bytes(), filename="secret.onnx"))["upload-store"]["data"][0]
    other = Page(app)                                                         # another browser
    assert uid not in other.client.get("/_dash-layout").get_data(as_text=True)
    r = other.post("ref-model-dropdown.options", {"url-location.search": ""})
    opts = response_props(r)["ref-model-dropdown"]["options"]
    assert uid not in json.dumps(opts) and "secret" not in json.dumps(opts)
    # ... but the link works for whoever holds it
    r = other.post("ref-model-dropdown.options", {"url-location.search": f"?v={uid}"})
    props = response_props(r)
    assert props["variant-models-dropdown"]["value"] == [uid]
    assert uid in [o["value"] for o in props["variant-models-dropdown"]["options"]]
    # and the session's own store brings its uploads back on a bare URL
    r = page.post("ref-model-dropdown.options", {"url-location.search": "", "upload-store.data": [uid]})
    assert uid in [o["value"] for o in response_props(r)["ref-model-dropdown"]["options"]]


def test_expired_upload_is_gone_and_deleted(tmp_path):
    now = [1000.0]
    store = UploadStore(tmp_path / "up", max_bytes=2**20, ttl_seconds=3600, quota_bytes=2**24,
                        clock=lambda: now[0])
    e = store.save(data_url(variant_bytes()), "v.onnx")
    assert store.get(e.id) is not None
    now[0] += 3601
    assert store.get(e.id) is None
    assert list((tmp_path / "up").iterdir()) == []


STALE = "u-" + "h" * 22


def test_expired_uploads_are_deleted_at_start_up(tiny_dir, upload_dir, monkeypatch):
    store = UploadStore(upload_dir, max_bytes=2**20, ttl_seconds=3600, quota_bytes=2**24, clock=lambda: 0.0)
    old = store.save(data_url(variant_bytes()), "old.onnx")
    (upload_dir / STALE).mkdir()                # no record: a crashed upload
    import os
    os.utime(upload_dir / STALE, (0, 0))
    create_app(tiny_dir)
    assert not (upload_dir / old.id).exists() and not (upload_dir / f"{old.id}.json").exists()
    assert not (upload_dir / STALE).exists()


def test_ttl_from_the_environment(tiny_dir, upload_dir, monkeypatch):
    monkeypatch.setenv("QUANTLENS_UPLOAD_TTL_HOURS", "0.5")
    app = create_app(tiny_dir)
    assert app.quantlens_callbacks["receive_upload"] is not None
    from dashapp.config import hosting_settings_from_env
    assert hosting_settings_from_env().upload_ttl_seconds == 1800


def test_full_upload_space_refuses_new_uploads(tmp_path):
    store = UploadStore(tmp_path / "up", max_bytes=2**20, ttl_seconds=3600, quota_bytes=3000)
    store.save(data_url(variant_bytes()), "a.onnx")
    with pytest.raises(UploadError, match="upload space is full"):
        store.save(data_url(variant_bytes()), "b.onnx")


def test_store_never_resolves_malformed_ids(tmp_path):
    store = UploadStore(tmp_path / "up", max_bytes=2**20, ttl_seconds=3600, quota_bytes=2**24)
    (tmp_path / "up" / "..json").write_text("{}")
    for bad in ["../up", "u-../../etc/passwd", "/etc/passwd", "u-" + "A" * 21, "u-" + "A" * 23, "", None, 7,
                ["u-" + "A" * 22], "u-" + "A" * 22]:
        assert store.get(bad) is None


def test_decode_checks_the_size_before_decoding():
    with pytest.raises(UploadError, match="over the"):
        decode_contents("data:;base64," + "A" * 4_000_000, max_bytes=2**20)


def test_upload_path_imports_no_onnxruntime_and_loads_no_path(tmp_path):
    code = f"""
import sys
sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests' / 'dashapp')!r}, {str(ROOT / 'tests')!r}]
import onnx
calls = []
real = onnx.load
onnx.load = lambda *a, **k: (calls.append(a), real(*a, **k))[1]
from dashapp.uploads import UploadStore
from upload_helpers import data_url, variant_bytes
s = UploadStore({str(tmp_path / 'up')!r}, max_bytes=2**20, ttl_seconds=60, quota_bytes=2**24)
e = s.save(data_url(variant_bytes()), 'v.onnx')
assert s.get(e.id) is not None
assert 'onnxruntime' not in sys.modules, 'onnxruntime imported'
assert not calls, calls
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    src = (ROOT / "dashapp" / "uploads.py").read_text() + (ROOT / "dashapp" / "callbacks" / "uploads.py").read_text()
    assert "onnxruntime" not in src.replace("imports onnxruntime", "") and "onnx.load(" not in src


def test_link_to_an_expired_upload_says_so(app, page, upload_dir):
    uid = response_props(page.upload(variant_bytes()))["upload-store"]["data"][0]
    (upload_dir / f"{uid}.json").unlink()                       # as the clean-up leaves it
    r = Page(app).post("ref-model-dropdown.options", {"url-location.search": f"?v={uid}"})
    props = response_props(r)
    text = " ".join(texts(props["url-alert-div"]["children"]))
    assert "not on this server" in text and "kept for 24 hours" in text
    assert props["variant-models-dropdown"]["value"] == [] or uid not in props["variant-models-dropdown"]["value"]
