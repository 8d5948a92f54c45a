"""The load test's browser emulation (benchmarks/load/dash_protocol.py) against the real
app through Flask's test client: a page load, a layer click, filter changes and a fresh
upload run the same callback chains as the page, and every answer is 200 or 204."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from benchmarks.load import dash_protocol as dp
from benchmarks.load.make_upload_models import main as make_models
from dashapp.app import create_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def browser(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTLENS_UPLOAD_DIR", str(tmp_path / "uploads"))
    monkeypatch.delenv("QUANTLENS_DEBUG", raising=False)
    client = create_app(ROOT / "data").server.test_client()
    seen = []

    def get(path, name):
        r = client.get(path)
        seen.append((name, r.status_code))
        return r.status_code, r.get_data(as_text=True)

    def post(url, body, name):
        r = client.post(url, json=body)
        seen.append((name, r.status_code))
        assert r.status_code in (200, 204), (name, body["output"][:80], r.status_code)
        return r.status_code, (r.get_json() if r.status_code == 200 else None)

    b = dp.Browser(get, post, sleep=lambda s: __import__("time").sleep(min(s, 0.1)))
    b.seen = seen
    return b


def test_page_load_runs_the_renderers_chain_and_the_analysis_job(browser):
    browser.load()
    assert browser.end_id
    store = browser.get("analysis-store.data")
    assert store["error"] is None and len(store["variants"]) == 4
    names = [n for n, _ in browser.seen]
    assert names[:3] == ["page: /", "page: /_dash-layout", "page: /_dash-dependencies"]
    assert "job: start" in names and names.count("cb: page") >= 8
    fig = browser.get("layer-range-chart.figure")
    assert fig["data"] and browser.get("url-writer-location.search").startswith("?ref=")


def test_layer_click_and_filters_update_the_stores(browser):
    browser.load()
    browser.change({"layer-range-chart.clickData": {"points": [{"curveNumber": 0, "customdata": ["fc1.weight"]}]}},
                   "select layer")
    assert browser.get("selection-store.data")["layer"] == "fc1.weight"
    assert "fc1.weight" in json.dumps(browser.get("dist-title-div.children"))
    browser.change({"search-filter-input.value": "conv"}, "filter")
    assert browser.get("filter-store.data")["search"] == "conv"
    browser.change({"op-filter-dropdown.value": ["Conv"]}, "filter")
    assert browser.get("filter-store.data")["ops"] == ["Conv"]
    browser.change({"reset-filters-button.n_clicks": 1}, "filter")
    assert browser.get("filter-store.data")["ops"] == [] and browser.get("filter-store.data")["search"] == ""


def test_fresh_upload_is_analysed_as_one_more_variant(browser, tmp_path):
    make_models([str(ROOT / "data" / "cnn_fp32.onnx"), str(tmp_path / "fresh"), "2", "7"])
    browser.load()
    data = (tmp_path / "fresh" / "fresh_0001.onnx").read_bytes()
    browser.state.set("upload-variant-upload.filename", "fresh_0001.onnx")
    browser.change({"upload-variant-upload.contents": "data:;base64," + base64.b64encode(data).decode()}, "upload")
    uid = browser.get("upload-store.data")[0]
    store = browser.get("analysis-store.data")
    assert store["error"] is None and store["variants"][-1] == uid and len(store["variants"]) == 5
    assert not browser.errors
    # a reload of the written link (a deep link holding the upload) analyses the same choice
    link = browser.get("url-writer-location.search")
    assert uid in link
    browser.load(link, "reload")
    assert browser.get("analysis-store.data")["variants"][-1] == uid
