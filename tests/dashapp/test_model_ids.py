"""Server-side models are reached only by the opaque ids of the catalogue built at start-up:
whatever a client POSTs in their place (paths, encoded paths, unknown ids, other JSON types)
gets a controlled "unknown model" answer, HTTP 200 or 204, never a 500 or a traceback.
External data of a server-side model must stay inside its folder."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from dashapp.app import create_app
from dashapp.models import scan_models
from upload_helpers import Page, response_props, run_background, texts
from tiny_models import _graph, make_weights

BAD_IDS = ["../x", "/etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "..%2f..%2fetc%2fpasswd", "", "000000000000",
           "u-" + "A" * 22, 123, 1.5, True, ["../x", "/etc/passwd"], {"id": "../x"}, None]
BAD_IDS_IDS = ["dotdot", "abs", "pct-encoded", "pct-slash", "empty", "unknown", "unknown-upload", "int", "float",
               "bool", "list", "dict", "null"]


@pytest.fixture
def page(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTLENS_UPLOAD_DIR", str(tmp_path / "uploads"))
    return Page(create_app(tiny_dir))


@pytest.fixture
def good_ids(tiny_dir):
    by = {e.name: e.id for e in scan_models(tiny_dir).entries}
    return by["fp32.onnx"], by["good.onnx"]


def clean(resp):
    body = resp.get_data(as_text=True)
    assert resp.status_code in (200, 204), (resp.status_code, body[:300])
    assert "Traceback" not in body and "Werkzeug" not in body and 'File "' not in body
    return body


def test_catalogue_get_refuses_everything_but_its_ids(tiny_dir):
    cat = scan_models(tiny_dir)
    for bad in BAD_IDS + [str(tiny_dir / "fp32.onnx"), "fp32.onnx", "fp32"]:
        try:
            assert cat.get(bad) is None
        except TypeError:          # unhashable values must not raise either
            pytest.fail(f"get({bad!r}) raised")
    assert all(len(e.id) == 12 and str(tiny_dir) not in e.id for e in cat.entries)


def test_model_ids_are_not_paths_and_no_request_value_is_joined_onto_one():
    import inspect
    from dashapp import models, results
    src = inspect.getsource(models.Catalogue) + inspect.getsource(results.Results)
    assert "os.path.join" not in src and "/ model_id" not in src and "root /" not in src


@pytest.mark.parametrize("bad", BAD_IDS, ids=BAD_IDS_IDS)
def test_url_with_bad_reference_id_gets_unknown_model(page, good_ids, bad):
    from urllib.parse import urlencode
    search = "?" + urlencode({"ref": json.dumps(bad) if not isinstance(bad, str) else bad, "v": good_ids[1]})
    r = page.post("ref-model-dropdown.options", {"url-location.search": search})
    clean(r)
    props = response_props(r)
    ref = props["ref-model-dropdown"]["value"]
    assert ref in (None, good_ids[0])                 # never the bad value
    alert = " ".join(texts(props["url-alert-div"]["children"]))
    if bad not in ("",):
        assert "does not have" in alert


@pytest.mark.parametrize("bad", BAD_IDS, ids=BAD_IDS_IDS)
def test_url_search_that_is_not_a_string_is_harmless(page, bad):
    clean(page.post("ref-model-dropdown.options", {"url-location.search": bad}))


@pytest.mark.parametrize("bad", BAD_IDS, ids=BAD_IDS_IDS)
def test_analysis_store_with_bad_ids_gets_unknown_model(page, good_ids, bad):
    for store in ({"ref": bad, "variants": [good_ids[1]], "error": None},
                  {"ref": good_ids[0], "variants": [bad], "error": None},
                  {"ref": good_ids[0], "variants": bad, "error": None}, bad):
        for output in ("model-badges-div.children", "layer-range-chart.figure", "summary-cards-div.children",
                       "layer-table.data", "value-hist-graph.figure"):
            clean(page.post(output, {"analysis-store.data": store}))
        r = page.post("model-badges-div.children", {"analysis-store.data": store})
        if r.status_code == 200 and isinstance(store, dict):
            text = " ".join(texts(response_props(r)["analysis-alert-div"]["children"]))
            assert "not available" in text or "choose" in text.lower()


@pytest.mark.parametrize("bad", BAD_IDS, ids=BAD_IDS_IDS)
def test_background_job_with_bad_ids_answers_unknown_model(page, good_ids, bad):
    r = run_background(page, "analysis-store.data", {"ref-model-dropdown.value": bad,
                                                     "variant-models-dropdown.value": [good_ids[1]]})
    clean(r)
    store = r.get_json()["response"]["analysis-store"]["data"]
    assert store["error"] and ("Unknown reference model" in store["error"] or "Choose an FP32" in store["error"])
    r = run_background(page, "analysis-store.data", {"ref-model-dropdown.value": good_ids[0],
                                                     "variant-models-dropdown.value": bad})
    clean(r)
    store = r.get_json()["response"]["analysis-store"]["data"]
    assert store["error"] and ("Unknown variant model" in store["error"] or "at least one" in store["error"])


def test_good_ids_through_the_same_path_work(page, good_ids):
    r = run_background(page, "analysis-store.data", {"ref-model-dropdown.value": good_ids[0],
                                                     "variant-models-dropdown.value": [good_ids[1]]})
    store = r.get_json()["response"]["analysis-store"]["data"]
    assert store["error"] is None and store["variants"] == [good_ids[1]]


def _escaping_model(folder, location: str):
    w = make_weights()
    m = _graph(w)
    t = next(t for t in m.graph.initializer if t.name == "fc2.weight")
    t.ClearField("raw_data")
    t.data_location = TP.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(16 * 4 * 4))):
        e = t.external_data.add()
        e.key, e.value = k, v
    onnx.save(m, folder / "escaping.onnx")


@pytest.mark.parametrize("location", ["../outside/secret.bin", "sub/../../outside/secret.bin", "/abs/secret.bin"])
def test_server_model_with_external_data_outside_its_folder_gets_a_clear_message(tmp_path, monkeypatch, location):
    models = tmp_path / "models"
    models.mkdir()
    (models / "sub").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = np.arange(64, dtype=np.float32).tobytes()
    (outside / "secret.bin").write_bytes(secret)
    onnx.save(_graph(make_weights()), models / "fp32.onnx")
    _escaping_model(models, location.replace("/abs", str(outside)))
    monkeypatch.setenv("QUANTLENS_UPLOAD_DIR", str(tmp_path / "uploads"))
    app = create_app(models)
    page = Page(app)
    by = {e.name: e.id for e in scan_models(models).entries}
    r = run_background(page, "analysis-store.data", {"ref-model-dropdown.value": by["fp32.onnx"],
                                                     "variant-models-dropdown.value": [by["escaping.onnx"]]})
    clean(r)
    store = r.get_json()["response"]["analysis-store"]["data"]
    assert store["error"] and "Cannot analyse" in store["error"] and "escaping.onnx" in store["error"]
    r = page.post("model-badges-div.children", {"analysis-store.data": store})
    alert = response_props(r)["analysis-alert-div"]["children"]
    text = " ".join(texts(alert))
    assert alert["props"]["id"] == "analysis-error-alert"
    assert "refused" in text and ("outside" in text or "leaves" in text or "absolute" in text or "relative" in text)
    assert str(outside) not in text or location.startswith("/abs")
