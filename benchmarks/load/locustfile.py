"""QuantLens load test: users that load the page, select layers, change filters and upload
fresh models, posting exactly what the browser posts.

Every callback request is rebuilt from ``/_dash-dependencies`` with the page's current
props (``dash_protocol.Browser``): the page load's callbacks in the renderer's order, the
chains a change fires, and background analysis jobs started and polled every 0.5 s.

Request names (one row each in the statistics):

* ``page: /``, ``page: /_dash-layout``, ``page: /_dash-dependencies`` and ``cb: page``
  (the callbacks of a page load; ``reload`` for a reload of the current link)
* ``cb: select layer`` (a click on a bar of the range chart, and what it updates)
* ``cb: filter`` (op type, name search, SQNR threshold, reset)
* ``cb: upload`` (a fresh generated model posted through the upload callback, and the
  views of its analysis), ``job: start`` / ``job: poll`` (the background analysis)

Run by ``run_load.sh``; ``LOAD_UPLOAD_MODELS`` is a folder of fresh ``.onnx`` variants
(``make_upload_models.py``).
"""

from __future__ import annotations

import base64
import glob
import itertools
import json
import os
import random
import time

from locust import HttpUser, between, task

import dash_protocol as dp

UPLOADS = sorted(glob.glob(os.path.join(os.environ.get("LOAD_UPLOAD_MODELS", "."), "*.onnx")))
_upload_counter = itertools.count()
_DEPS: list = []


def _check(environment, name: str, ok: bool, message: str):
    """Count a functional check as a request, failed when ``ok`` is false."""
    environment.events.request.fire(request_type="CHECK", name=name, response_time=0, response_length=0,
                                    exception=None if ok else AssertionError(message), context={})


def _wait_range() -> tuple[float, float]:
    lo, _, hi = os.environ.get("LOAD_WAIT", "5-15").partition("-")
    return float(lo), float(hi or lo)


_WAIT = _wait_range()
_user_counter = itertools.count()


def _think_time():
    return between(*_WAIT)


class DashUser(HttpUser):
    # a user reads the charts between clicks (LOAD_WAIT="lo-hi" seconds; run_load.sh --wait)
    wait_time = _think_time()

    # ------------------------------------------------------------ transport
    def _get(self, path, name):
        with self.client.get(path, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
            return r.status_code, r.text

    def _post(self, url, body, name):
        with self.client.post(url, json=body, name=name, catch_response=True) as r:
            if r.status_code not in (200, 204):
                r.failure(f"HTTP {r.status_code}")
                return r.status_code, None
            if "Traceback" in r.text:
                r.failure("traceback in the answer")
            if r.status_code == 204:
                return 204, None
            try:
                return 200, r.json()
            except ValueError:
                r.failure("answer is not JSON")
                return r.status_code, None

    # ------------------------------------------------------------ actions
    def on_start(self):
        self.browser = dp.Browser(self._get, self._post, sleep=time.sleep, deps=_DEPS or None)
        self.page_load()
        if not _DEPS:
            _DEPS.extend(self.browser.state.deps)
        # after the page load, each new user does one action of the kinds in turn, so even a
        # short run exercises all of them; then the weighted mix below
        first = [self.select_layer, self.change_filter, self.upload_fresh_model, self.select_layer,
                 self.change_filter, self.reload_link][next(_user_counter) % 6]
        time.sleep(random.uniform(*_WAIT))
        first()

    def _errors(self):
        while self.browser.errors:
            _check(self.environment, "check: background job", False, self.browser.errors.pop())

    def page_load(self, search: str = "", name: str = "page"):
        self.browser.load(search, name)
        self._errors()
        store = self.browser.get("analysis-store.data") or {}
        _check(self.environment, f"check: {name} analysed", isinstance(store, dict) and store.get("error") is None
               and bool(store.get("variants")), f"analysis store after the page load: {str(store)[:200]}")

    def layers(self) -> list[str]:
        fig = self.browser.get("layer-range-chart.figure") or {}
        keys = []
        for trace in fig.get("data") or []:
            for cd in trace.get("customdata") or []:
                k = cd[0] if isinstance(cd, list) and cd else cd
                if isinstance(k, str) and k not in keys:
                    keys.append(k)
        return keys

    @task(6)
    def select_layer(self):
        keys = self.layers()
        if not keys:
            return self.page_load()
        i = random.randrange(len(keys))
        click = {"points": [{"curveNumber": 0, "pointNumber": i, "pointIndex": i, "customdata": [keys[i]]}]}
        self.browser.change({"layer-range-chart.clickData": click}, "select layer")
        sel = self.browser.get("selection-store.data") or {}
        _check(self.environment, "check: select layer", sel.get("layer") == keys[i],
               f"selection {sel} after clicking {keys[i]}")

    @task(4)
    def change_filter(self):
        b = self.browser
        kind = random.choice(["ops", "search", "sqnr", "reset"])
        if kind == "ops":
            ops = [o["value"] if isinstance(o, dict) else o for o in (b.get("op-filter-dropdown.options") or [])]
            b.change({"op-filter-dropdown.value": random.sample(ops, k=min(len(ops), random.randint(1, 2)))},
                     "filter")
        elif kind == "search":
            b.change({"search-filter-input.value": random.choice(["conv", "fc", "weight", "bias", "fc1", ""])},
                     "filter")
        elif kind == "sqnr":
            b.change({"sqnr-filter-input.value": random.choice([None, 20, 30, 40, 50])}, "filter")
        else:
            b.change({"reset-filters-button.n_clicks": (b.get("reset-filters-button.n_clicks") or 0) + 1}, "filter")
        _check(self.environment, "check: filter", isinstance(b.get("filter-store.data"), dict),
               "no filter store after the change")

    @task(1)
    def reload_link(self):
        self.page_load(self.browser.get("url-writer-location.search") or "", "reload")

    @task(2)
    def upload_fresh_model(self):
        if not UPLOADS:
            return
        path = UPLOADS[next(_upload_counter) % len(UPLOADS)]
        with open(path, "rb") as f:
            contents = "data:application/octet-stream;base64," + base64.b64encode(f.read()).decode()
        b = self.browser
        b.state.set("upload-variant-upload.filename", os.path.basename(path))
        b.change({"upload-variant-upload.contents": contents}, "upload")
        self._errors()
        mine = b.get("upload-store.data") or []
        store = b.get("analysis-store.data") or {}
        ok = (bool(mine) and isinstance(store, dict) and store.get("error") is None
              and mine[0] in (store.get("variants") or []))
        _check(self.environment, "check: upload analysed", ok,
               f"upload store {mine}, analysis store {json.dumps(store)[:300]}")
