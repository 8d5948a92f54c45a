"""What the Dash renderer posts, rebuilt from ``GET /_dash-dependencies`` (stdlib only:
the locustfile runs it in locust's own venv, the tests in the app's).

A callback request is ``POST /_dash-update-component?endId=<token>`` with the JSON body
``{"output", "outputs", "inputs", "changedPropIds", "parsedChangedPropsIds", "state"}``;
``endId`` is the page load's signed token from the page's ``_dash-config``.  A
background callback first answers ``{"cacheKey", "job"}``; the renderer then polls with
``&cacheKey=..&job=..`` and the inputs' values nulled until ``response`` arrives.
"""

from __future__ import annotations

import json
import os
import re
import sys

try:
    from dashapp.state import apply_patch, is_patch
except ImportError:  # locust imports this file from benchmarks/load: put the repo root on the path
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from dashapp.state import apply_patch, is_patch  # stdlib-only module: fine in the locust venv

__all__ = ["find_callback", "callback_body", "end_id", "poll_body", "split_outputs"]

_CONFIG_RE = re.compile(r'<script id="_dash-config" type="application/json">(.*?)</script>', re.S)


def end_id(page_html: str) -> str | None:
    """The signed ``end_id`` of one page load (from ``GET /``)."""
    m = _CONFIG_RE.search(page_html)
    if not m:
        return None
    return json.loads(m.group(1)).get("end_id")


def split_outputs(output: str) -> list[dict]:
    """``..a.b...c.d@h..`` -> ``[{"id": "a", "property": "b"}, {"id": "c", "property": "d@h"}]``."""
    multi = output.startswith("..") and output.endswith("..")
    parts = output[2:-2].split("...") if multi else [output]
    out = []
    for p in parts:
        cid, _, prop = p.rpartition(".")
        out.append({"id": cid, "property": prop})
    return out


def find_callback(deps: list[dict], output: str) -> dict:
    """The callback whose outputs include ``output`` (``"id.property"``; a duplicate
    output's ``@hash`` is ignored); the first one if several write it."""
    for d in deps:
        for o in split_outputs(d["output"]):
            if f'{o["id"]}.{o["property"].split("@")[0]}' == output:
                return d
    raise KeyError(f"no callback writes {output}")


def callback_body(dep: dict, values: dict | None = None, changed: list[str] | None = None) -> dict:
    """The request body for ``dep`` with ``values`` (``"id.property" -> value``; missing
    inputs and states are ``None``); ``changed`` defaults to every given input."""
    values = values or {}
    outputs = split_outputs(dep["output"])
    multi = dep["output"].startswith("..")

    def vals(items):
        return [{"id": i["id"], "property": i["property"], "value": values.get(f'{i["id"]}.{i["property"]}')}
                for i in items]

    inputs = vals(dep["inputs"])
    if changed is None:
        changed = [f'{i["id"]}.{i["property"]}' for i in dep["inputs"] if f'{i["id"]}.{i["property"]}' in values]
    body = {"output": dep["output"], "outputs": outputs if multi else outputs[0], "inputs": inputs,
            "changedPropIds": list(changed), "parsedChangedPropsIds": list(changed)}
    if dep.get("state"):
        body["state"] = vals(dep["state"])
    return body


def poll_body(body: dict) -> dict:
    """The body of a background job's poll: the same request with every value nulled."""
    b = json.loads(json.dumps(body))
    for item in b["inputs"] + b.get("state", []):
        item["value"] = None
    return b


# ---------------------------------------------------------------- a minimal renderer
def _id_key(cid) -> str:
    """Dash's string form of a component id (dict ids: sorted compact JSON)."""
    if isinstance(cid, dict):
        return json.dumps(cid, sort_keys=True, separators=(",", ":"))
    return str(cid)


class PageState:
    """The props of one page as the renderer holds them, and which callbacks a change
    fires: enough to post what the browser posts, in the order it posts it.

    Built from ``/_dash-layout`` and ``/_dash-dependencies``; :meth:`apply` takes each
    callback answer and returns the ``"id.prop"`` keys it changed.
    """

    def __init__(self, layout: dict, deps: list[dict]):
        self.props: dict[str, object] = {}
        self.pattern: dict[str, dict] = {}      # "id-json" -> the dict id, for ALL inputs
        self.deps = [d for d in deps if not d.get("clientside_function")]
        self._register(layout)

    def _register(self, node):
        if isinstance(node, list):
            for n in node:
                self._register(n)
            return
        if not isinstance(node, dict):
            return
        props = node.get("props")
        if not isinstance(props, dict):
            return
        cid = props.get("id")
        if cid is not None:
            key = _id_key(cid)
            if isinstance(cid, dict):
                self.pattern[key] = cid
            for p, v in props.items():
                if p != "id":
                    self.props[f"{key}.{p}"] = v
        for v in props.values():
            if isinstance(v, (dict, list)):
                self._register(v)

    def set(self, key: str, value) -> str:
        self.props[key] = value
        return key

    def _values(self, items) -> list:
        out = []
        for i in items:
            if i["id"].startswith("{"):            # pattern-matching (ALL): every matching component
                want = json.loads(i["id"])
                fixed = {k: v for k, v in want.items() if not isinstance(v, list)}
                group = [{"id": cid, "property": i["property"],
                          "value": self.props.get(f"{key}.{i['property']}")}
                         for key, cid in self.pattern.items()
                         if set(cid) == set(want) and all(cid.get(k) == v for k, v in fixed.items())]
                out.append(group)
            else:
                out.append({"id": i["id"], "property": i["property"],
                            "value": self.props.get(f'{i["id"]}.{i["property"]}')})
        return out

    def body(self, dep: dict, changed: list[str]) -> dict:
        outputs = split_outputs(dep["output"])
        multi = dep["output"].startswith("..")
        body = {"output": dep["output"], "outputs": outputs if multi else outputs[0],
                "inputs": self._values(dep["inputs"]), "changedPropIds": list(changed),
                "parsedChangedPropsIds": list(changed)}
        if dep.get("state"):
            body["state"] = self._values(dep["state"])
        return body

    @staticmethod
    def _input_keys(dep) -> set[str]:
        keys = set()
        for i in dep["inputs"]:
            if i["id"].startswith("{"):
                keys.add("{pattern}." + i["property"] + ":" + json.loads(i["id"]).get("type", ""))
            else:
                keys.add(f'{i["id"]}.{i["property"]}')
        return keys

    def _changed_keys_for(self, dep, changed: set[str]) -> list[str]:
        out = []
        for i in dep["inputs"]:
            if i["id"].startswith("{"):
                typ = json.loads(i["id"]).get("type")
                out += [k for k in changed if k.startswith("{") and f'"type":"{typ}"' in k
                        and k.endswith("." + i["property"])]
            elif f'{i["id"]}.{i["property"]}' in changed:
                out.append(f'{i["id"]}.{i["property"]}')
        return out

    def triggered(self, changed: set[str]) -> list[tuple[dict, list[str]]]:
        """Callbacks (with their changed inputs) that a change of ``changed`` fires."""
        out = []
        for d in self.deps:
            hit = self._changed_keys_for(d, changed)
            if hit:
                out.append((d, hit))
        return out

    def initial(self) -> list[tuple[dict, list[str]]]:
        """Callbacks a page load fires first: not ``prevent_initial_call``, and no input
        written by another such callback (those fire when their inputs arrive)."""
        first = [d for d in self.deps if not d.get("prevent_initial_call")]
        written = {}
        for d in first:
            for o in split_outputs(d["output"]):
                written.setdefault(f'{o["id"]}.{o["property"].split("@")[0]}', d["output"])
        out = []
        for d in first:
            ins = [f'{i["id"]}.{i["property"]}' for i in d["inputs"] if not i["id"].startswith("{")]
            if not any(written.get(k, d["output"]) != d["output"] for k in ins):
                out.append((d, []))
        return out

    def pending_initial(self, fired: set[str]) -> list[tuple[dict, list[str]]]:
        """Initial callbacks not fired yet (the renderer still calls them once)."""
        return [(d, []) for d in self.deps if not d.get("prevent_initial_call") and d["output"] not in fired]

    def apply(self, answer: dict) -> set[str]:
        """Take a callback's JSON answer (``response`` and ``sideUpdate``); returns the
        changed ``"id.prop"`` keys."""
        changed = set()
        for part in ("response", "sideUpdate"):
            for cid, props in (answer.get(part) or {}).items():
                for p, v in props.items():
                    key = f"{cid}.{p}"
                    if is_patch(v):  # a dash.Patch answer: applied to the prop, as the renderer does
                        v = apply_patch(self.props.get(key), v)
                    if self.props.get(key) != v:
                        changed.add(key)
                    self.props[key] = v
                    if isinstance(v, (dict, list)):
                        self._register(v)
        return changed


class Browser:
    """One browser tab: loads the page and runs callback chains as the renderer does.

    ``get(path, name) -> (status, text)`` and ``post(url, body, name) -> (status, json or
    None)`` carry the requests (locust's client in the load test, Flask's test client in
    the tests); ``name`` is the request's category for the statistics.
    """

    #: the renderer's poll interval for the analysis job (its callback sets interval=500)
    POLL_SECONDS = 0.5

    def __init__(self, get, post, sleep=None, deps: list[dict] | None = None):
        import time
        self._get, self._post = get, post
        self._sleep = sleep or time.sleep
        self._deps = deps
        self.state: PageState | None = None
        self.end_id = None
        self.errors: list[str] = []

    def load(self, search: str = "", name: str = "page"):
        """GET the page, its layout and dependencies, then run the load's callbacks."""
        status, html = self._get("/", f"{name}: /")
        self.end_id = end_id(html or "")
        status, layout = self._get("/_dash-layout", f"{name}: /_dash-layout")
        if self._deps is None:
            _, deps = self._get("/_dash-dependencies", f"{name}: /_dash-dependencies")
            self._deps = json.loads(deps)
        self.state = PageState(json.loads(layout), self._deps)
        for k, v in (("search", search), ("pathname", "/"), ("hash", ""), ("href", "http://x/" + search)):
            self.state.set(f"url-location.{k}", v)
        fired = set()
        self._run_levels(self.state.initial(), f"cb: {name}", fired)
        left = self.state.pending_initial(fired)
        if left:
            self._run_levels(left, f"cb: {name}", fired)

    def change(self, values: dict, name: str) -> set[str]:
        """Set props as a user action does and run what they fire; returns every key changed."""
        for k, v in values.items():
            self.state.set(k, v)
        return self._run_levels(self.state.triggered(set(values)), f"cb: {name}", set())

    def _run_levels(self, level, name, fired, max_levels: int = 10) -> set[str]:
        changed_all = set()
        for _ in range(max_levels):
            if not level:
                break
            changed = set()
            for dep, keys in level:
                fired.add(dep["output"])
                changed |= self._run(dep, keys, name)
            changed_all |= changed
            level = self.state.triggered(changed)
        return changed_all

    def _url(self, extra: str = "") -> str:
        from urllib.parse import quote
        return "/_dash-update-component" + (f"?endId={quote(self.end_id)}" if self.end_id else "") + extra

    def _run(self, dep, keys, name) -> set[str]:
        from urllib.parse import quote
        body = self.state.body(dep, keys)
        if dep.get("background"):
            status, answer = self._post(self._url(), body, "job: start")
            if status != 200 or not answer:
                return set()
            if "response" not in answer:
                poll = poll_body(body)
                url = self._url(f"&cacheKey={quote(answer['cacheKey'])}&job={quote(answer['job'])}")
                for _ in range(240):
                    self._sleep(self.POLL_SECONDS)
                    status, answer = self._post(url, poll, "job: poll")
                    if status != 200 or answer is None or "response" in answer:
                        break
                else:
                    self.errors.append(f"job {dep['output'][:40]} did not finish")
                    return set()
            return self.state.apply(answer) if answer else set()
        status, answer = self._post(self._url(), body, name)
        if status == 204 or not answer:
            return set()
        return self.state.apply(answer)

    def get(self, key: str):
        return self.state.props.get(key)
