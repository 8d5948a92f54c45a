"""Page state as plain data: the URL query codec, the filter dict and the selection reducer.

No Dash import: callbacks call these and tests call them directly.  Everything read from
a URL or an event is validated here, so a hand-edited link cannot raise.
"""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlencode

from . import ids

__all__ = ["EMPTY_SELECTION", "decode_url", "encode_url", "make_filters", "reduce_selection",
           "points_keys", "unescape_key", "apply_patch", "is_patch"]

EMPTY_SELECTION = {"layer": None, "layers": []}
_MAX_LEN = 400          # longest value kept from the URL
_MAX_ITEMS = 64         # most list items kept from the URL


def _clean(s, max_len=_MAX_LEN) -> str | None:
    if not isinstance(s, str):
        return None
    s = s.strip()
    return s[:max_len] if s else None


def _list(s: str | None) -> list[str]:
    if not s:
        return []
    out = [p for p in (x.strip() for x in s.split(",")) if p]
    return out[:_MAX_ITEMS]


def _number(s) -> float | None:
    try:
        v = float(s)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def decode_url(search: str | None) -> dict:
    """View state from a query string (``?ref=..&v=..&layer=..&tab=..&op=..&role=..&var=..&q=..&sqnr=..``).

    Returns
    -------
    dict
        ``ref`` (id or None), ``variants`` (ids), ``layer``, ``tab`` (one of
        :data:`dashapp.ids.TAB_IDS`), ``ops``, ``roles``, ``filter_variants`` (labels),
        ``search``, ``sqnr_below`` (float or None).  Missing or malformed values come back
        empty; nothing raises.
    """
    try:
        q = parse_qs(str(search or "").lstrip("?"), keep_blank_values=False, max_num_fields=32)
    except ValueError:  # too many fields: a hand-made link, not ours
        q = {}

    def one(k):
        v = q.get(k)
        return _clean(v[-1]) if v else None

    tab = one("tab")
    return {
        "ref": one("ref"), "variants": _list(one("v")), "layer": one("layer"),
        "tab": tab if tab in ids.TAB_IDS else ids.TAB_OVERVIEW,
        "ops": _list(one("op")), "roles": _list(one("role")), "filter_variants": _list(one("var")),
        "search": one("q") or "", "sqnr_below": _number(one("sqnr")),
    }


def encode_url(*, ref=None, variants=(), layer=None, tab=None, ops=(), roles=(), filter_variants=(),
               search="", sqnr_below=None) -> str:
    """Query string for the view (inverse of :func:`decode_url`; empty values left out)."""
    pairs = []
    if ref:
        pairs.append(("ref", ref))
    if variants:
        pairs.append(("v", ",".join(variants)))
    if layer:
        pairs.append(("layer", layer))
    if tab and tab != ids.TAB_OVERVIEW:
        pairs.append(("tab", tab))
    for k, vals in (("op", ops), ("role", roles), ("var", filter_variants)):
        if vals:
            pairs.append((k, ",".join(vals)))
    if search and search.strip():
        pairs.append(("q", search.strip()))
    n = _number(sqnr_below)
    if n is not None:
        pairs.append(("sqnr", f"{n:g}"))
    return ("?" + urlencode(pairs)) if pairs else ""


def make_filters(ops=None, roles=None, filter_variants=None, search=None, sqnr_below=None) -> dict:
    """The filter dict every view reads (keyword arguments of :func:`analysis.views.filter_layers`)."""
    def strs(v):
        return [str(x) for x in (v or []) if isinstance(x, (str, int, float))][:_MAX_ITEMS]
    return {"ops": strs(ops), "roles": strs(roles), "variants": strs(filter_variants),
            "search": (_clean(search) or "") if isinstance(search, str) else "",
            "sqnr_below": _number(sqnr_below)}


def unescape_key(s: str) -> str:
    """Inverse of the figures' escaping of a layer key for plotly's pseudo-HTML (``&`` to
    ``&amp;`` first, then ``<`` ``>``); a raw key without entities comes back unchanged."""
    if "&" not in s:
        return s
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def points_keys(event) -> list[str]:
    """Layer keys of the points in a plotly click/selection event.

    A point's ``customdata`` is the layer key escaped for plotly (one string per point, see
    :mod:`analysis.figures`), or a list whose first item is the key; either is unescaped.
    """
    if not isinstance(event, dict):
        return []
    keys = []
    for p in event.get("points") or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        k = cd[0] if isinstance(cd, list) and cd else cd if isinstance(cd, str) else None
        if isinstance(k, str) and k:
            k = unescape_key(k)
            if k not in keys:
                keys.append(k)
    return keys


def reduce_selection(current: dict | None, source: str, payload=None) -> dict:
    """Next selection after an event.

    Parameters
    ----------
    current : dict
        ``{"layer": key | None, "layers": [keys]}``.
    source : str
        ``"click"`` (payload: plotly clickData), ``"select"`` (selectedData; ``None``
        clears, an event without layer points is ignored), ``"table"`` (payload: ``(active_cell, page_rows)``), ``"key"`` (payload: a
        layer key, e.g. from the URL or a "show" button), ``"clear"``.

    Returns
    -------
    dict
        The new selection (a new dict).
    """
    cur = {"layer": None, "layers": []}
    if isinstance(current, dict):
        cur["layer"] = current.get("layer") if isinstance(current.get("layer"), str) else None
        cur["layers"] = [k for k in (current.get("layers") or []) if isinstance(k, str)]
    if source == "click":
        keys = points_keys(payload)
        if keys:
            cur["layer"] = keys[0]
    elif source == "select":
        # None is a deselect (double-click); an event without layer points is what plotly
        # emits when a redrawn figure drops its selection, so it changes nothing
        if payload is None:
            cur["layers"] = []
        elif points_keys(payload):
            cur["layers"] = points_keys(payload)
    elif source == "table":
        cell, rows = payload if isinstance(payload, (list, tuple)) and len(payload) == 2 else (None, None)
        if isinstance(cell, dict) and isinstance(rows, list):
            i = cell.get("row")
            if isinstance(i, int) and 0 <= i < len(rows) and isinstance(rows[i], dict):
                k = rows[i].get("fp32_name")
                if isinstance(k, str) and k:
                    cur["layer"] = k
    elif source == "key":
        if isinstance(payload, str) and payload:
            cur["layer"] = payload[:_MAX_LEN]
    elif source == "clear":
        cur = {"layer": None, "layers": []}
    return cur


def is_patch(value) -> bool:
    """Whether a callback's output value is a serialized :class:`dash.Patch`."""
    return isinstance(value, dict) and value.get("__dash_patch_update") == "__dash_patch_update"


def apply_patch(value, patch: dict):
    """``value`` with a serialized :class:`dash.Patch` applied, as dash-renderer applies it
    (for clients that replay callbacks without a browser: benchmarks, load tests).

    Supports Assign, Delete, Merge, Extend, Prepend, Append, Insert, Remove and Clear;
    ``value`` is deep-copied first, never modified.
    """
    import copy

    out = copy.deepcopy(value) if value is not None else {}
    for op in patch.get("operations") or []:
        loc, params, kind = list(op.get("location") or []), op.get("params") or {}, op.get("operation")
        if not loc and kind == "Assign":
            out = params.get("value")
            continue
        parent = out
        for i, part in enumerate(loc[:-1]):
            nxt = loc[i + 1]
            if isinstance(parent, dict):
                parent = parent.setdefault(part, [] if isinstance(nxt, int) else {})
            else:
                parent = parent[part]
        last = loc[-1] if loc else None
        target = (parent.get(last) if isinstance(parent, dict) else parent[last]) if loc else out
        if kind == "Assign":
            parent[last] = params.get("value")
        elif kind == "Delete":
            if isinstance(parent, dict):
                parent.pop(last, None)
            else:
                del parent[last]
        elif kind == "Merge":
            parent[last] = {**(target or {}), **params.get("value", {})}
        elif kind == "Extend":
            parent[last] = list(target or []) + list(params.get("value") or [])
        elif kind == "Prepend":
            parent[last] = [params.get("value")] + list(target or [])
        elif kind == "Append":
            parent[last] = list(target or []) + [params.get("value")]
        elif kind == "Insert":
            t = list(target or [])
            t.insert(params.get("index", 0), params.get("value"))
            parent[last] = t
        elif kind == "Remove":
            parent[last] = [x for x in (target or []) if x != params.get("value")]
        elif kind == "Clear":
            parent[last] = [] if isinstance(target, list) else {}
    return out
