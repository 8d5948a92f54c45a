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
import re

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
