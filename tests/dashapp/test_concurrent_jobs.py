"""Two pages asking for the same analysis at the same time each get the answer.

Dash's background manager keys a job's result by the callback's arguments, and the first
poll that reads a result deletes it: a second page polling the same key got 204 and kept
waiting for ever (found by the load test).  Each job now has its own key."""

from __future__ import annotations

import time
from urllib.parse import quote

from benchmarks.load import dash_protocol as dp
from dashapp.app import create_app
from dashapp.models import scan_models
from upload_helpers import Page


def _start(page, values):
    body = dp.callback_body(dp.find_callback(page.deps, "analysis-store.data"), values)
    first = page.client.post(f"/_dash-update-component?endId={page.end_id}", json=body).get_json()
    url = (f"/_dash-update-component?endId={page.end_id}&cacheKey={quote(first['cacheKey'])}"
           f"&job={quote(first['job'])}")
    return url, dp.poll_body(body)


def _finish(page, url, body, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        r = page.client.post(url, json=body)
        if r.status_code != 200 or "response" in r.get_json():
            return r
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_two_pages_starting_the_same_job_both_get_the_result(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTLENS_UPLOAD_DIR", str(tmp_path / "uploads"))
    app = create_app(tiny_dir)
    by = {e.name: e.id for e in scan_models(tiny_dir).entries}
    values = {"ref-model-dropdown.value": by["fp32.onnx"], "variant-models-dropdown.value": [by["good.onnx"]]}
    a, b = Page(app), Page(app)
    job_a, job_b = _start(a, values), _start(b, values)
    time.sleep(3)                        # both jobs done before anyone polls
    ra = _finish(a, *job_a)
    rb = _finish(b, *job_b)
    assert ra.status_code == 200 and rb.status_code == 200, (ra.status_code, rb.status_code)
    for r in (ra, rb):
        store = r.get_json()["response"]["analysis-store"]["data"]
        assert store["error"] is None and store["variants"] == [by["good.onnx"]]
