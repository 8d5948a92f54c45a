"""Plotly figure specs of the analysis tables: DataFrame in, plain ``dict`` figure out.

Each builder is a pure function of the tables :func:`analysis.analyze` returns (or their
filtered copies from :mod:`analysis.views`); none mutates its input.  A figure is the JSON
plotly.js draws (``{"data": [...], "layout": {...}}``), written directly instead of through
``plotly.graph_objects``: at 2,000 layers the object model (validators, deep copies,
``make_subplots``) cost hundreds of milliseconds per figure, the plain spec a few
(README, "Performance").  ``go.Figure(fig)`` still reads every figure, for notebooks.

Numeric arrays travel as plotly typed arrays (``{"dtype": "f8", "bdata": base64}``, what
plotly itself sends since 6.0): exact, and about half the size of decimal text.  Every
trace that stands for a layer carries one string per point in ``customdata``: the layer
key (``fp32_name``) escaped for plotly's pseudo-HTML (``&`` ``<`` ``>``), which the hover
shows and :func:`dashapp.state.points_keys` unescapes, so a click or a box selection names
the layer.  The selection (band or line, ``selectedpoints``) is a separate layer of the
spec (:func:`with_selection`, :func:`selection_update`), so a page can move it without
rebuilding the figure.
"""

from __future__ import annotations

import base64
import math
from typing import Sequence

import numpy as np
import pandas as pd

from . import views

__all__ = ["layer_range_chart", "sqnr_chart", "value_histogram_chart", "code_histogram_chart",
           "channel_chart", "empty_figure", "shorten", "with_selection", "selection_update",
           "set_log_axes", "range_page", "decode_array", "ROW_PX", "RANGE_PAGE"]

#: Pixels per layer row of the range chart (its height grows with the layers of a page).
ROW_PX = 18
#: Layers per page of the range chart (the SQNR chart shows them all).
RANGE_PAGE = 150
_FP32_COLOR = "#7f8c8d"
_FLOAT_COLOR = "rgba(149,165,166,0.45)"
_SEL_COLOR = "#e74c3c"
_FONT = {"size": 12}
_MAX_TICK_LABELS = 60
_AXIS = {"gridcolor": "#EBF0F8", "linecolor": "#EBF0F8", "zerolinecolor": "#EBF0F8", "zerolinewidth": 2,
         "automargin": True, "ticks": ""}
#: plotly_white's look in a few hundred bytes (the full template is 7 KB per figure).
_TEMPLATE = {"layout": {"xaxis": _AXIS, "yaxis": _AXIS, "paper_bgcolor": "white", "plot_bgcolor": "white",
                        "font": {"color": "#2a3f5f"}, "hoverlabel": {"align": "left"},
                        "colorway": ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3"]}}
_SHORT = {"float64": "f8", "float32": "f4", "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1"}
_VIRIDIS = [[0.0, "#440154"], [0.1111111111111111, "#482878"], [0.2222222222222222, "#3e4989"],
            [0.3333333333333333, "#31688e"], [0.4444444444444444, "#26828e"], [0.5555555555555556, "#1f9e89"],
            [0.6666666666666666, "#35b779"], [0.7777777777777778, "#6ece58"], [0.8888888888888888, "#b5de2b"],
            [1.0, "#fde725"]]


def _txt(s) -> str:
    """Model-controlled text made inert for plotly's pseudo-HTML (tags shown, not interpreted)."""
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _esc(values) -> list[str]:
    if hasattr(values, "tolist"):
        values = values.tolist()
    return [_txt(v) for v in values]



def _typed(values, dtype="f8") -> dict | list:
    """A plotly.js typed array (``{"dtype", "bdata"}``) of ``values`` as ``dtype``."""
    a = np.ascontiguousarray(np.asarray(values, dtype=dtype))
    if a.size == 0:
        return []
    return {"dtype": _SHORT[str(a.dtype)], "bdata": base64.b64encode(a.tobytes()).decode("ascii")}


def _index(values) -> dict | list:
    """Small non-negative integers as the narrowest typed array."""
    a = np.asarray(values, dtype=np.int64)
    return _typed(a, "i2" if a.size == 0 or a.max(initial=0) < 2**15 else "i4")


def decode_array(v) -> np.ndarray:
    """A plotly array of a figure spec (list or typed array) as a NumPy array."""
    if isinstance(v, dict) and "bdata" in v:
        dt = {"f8": "<f8", "f4": "<f4", "i4": "<i4", "i2": "<i2", "i1": "i1", "u1": "u1"}[v["dtype"]]
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=dt)
    return np.asarray(v if v is not None else [])


def shorten(name: str, width: int = 30) -> str:
    """``name`` cut in the middle to ``width`` characters (tick labels; hover shows it whole)."""
    name = str(name)
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "\u2026" + name[-(width - 1 - head):]


def _layout(height: int, uirevision, **kw) -> dict:
    out = {"template": _TEMPLATE, "height": height, "font": dict(_FONT), "uirevision": uirevision,
           "hoverlabel": {"namelength": -1}, "clickmode": "event"}
    out.update(kw)
    return out


def empty_figure(message: str, height: int = 260) -> dict:
    """A blank figure that shows ``message`` (empty states)."""
    return {"data": [], "layout": {
        "height": height, "xaxis": {"visible": False}, "yaxis": {"visible": False},
        "plot_bgcolor": "white", "paper_bgcolor": "white", "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "annotations": [{"text": message, "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
                         "showarrow": False, "font": {"size": 14, "color": "#7b8a8b"}}]}}


def _ax(i: int) -> str:
    return "" if i == 1 else str(i)


def _domains(n: int, spacing: float, weights: Sequence[float] | None = None) -> list[list[float]]:
    """``make_subplots`` domains of ``n`` cells along one direction, first cell at 0."""
    w = np.asarray(weights if weights is not None else [1.0] * n, float)
    sizes = (1 - spacing * (n - 1)) * w / w.sum()
    out, start = [], 0.0
    for s in sizes:
        out.append([round(start, 6), round(min(start + s, 1.0), 6)])
        start += s + spacing
    return out


def _title(text: str, x: list[float], y: list[float], size: int = 11, yshift: int = 0) -> dict:
    a = {"text": text, "x": (x[0] + x[1]) / 2, "y": y[1], "xref": "paper", "yref": "paper", "showarrow": False,
         "xanchor": "center", "yanchor": "bottom", "font": {"size": size}}
    if yshift:
        a["yshift"] = yshift
    return a


# ----------------------------------------------------------------------------- range chart
def range_page(n_keys: int, page: int | None = 0, page_size: int = RANGE_PAGE) -> dict:
    """Paging of ``n_keys`` range-chart rows: ``page`` clamped, ``pages``, rows ``first..last``
    (1-based, inclusive; 0..0 when empty) and the ``label`` "layers 151-300 of 2,000"."""
    size = max(int(page_size), 1)
    pages = max(1, math.ceil(n_keys / size))
    p = min(max(int(page or 0), 0), pages - 1)
    first, last = (p * size + 1, min((p + 1) * size, n_keys)) if n_keys else (0, 0)
    return {"page": p, "pages": pages, "first": first, "last": last, "total": n_keys, "size": size,
            "label": f"layers {first:,}-{last:,} of {n_keys:,}"}


def _mag_range(layers: pd.DataFrame, variants: Sequence[str]) -> tuple[float, float]:
    """Range of log10(max|w|) over every bar of the chart, all pages (colours compare across
    pages): FP32 ranges of every keyed row, dequantized ranges of the variants' quantized rows."""
    k = layers[layers["fp32_name"].notna() & (layers["fp32_name"].astype(str) != "")]
    q = k[(k["status"] == "quantized") & k["variant"].isin(list(variants))]
    a = np.concatenate([np.fmax(np.abs(k["fp32_min"].to_numpy(float)), np.abs(k["fp32_max"].to_numpy(float))),
                        np.fmax(np.abs(q["dq_min"].to_numpy(float)), np.abs(q["dq_max"].to_numpy(float)))])
    m = np.log10(np.maximum(a[np.isfinite(a)], 1e-12))
    if not m.size:
        return 0.0, 1.0
    lo, hi = float(m.min()), float(m.max())
    return (lo - 0.5, hi + 0.5) if hi - lo < 1e-9 else (lo, hi)


def _mags(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(np.fmax(np.abs(lo), np.abs(hi)), 1e-12))


def _first_rows(layers: pd.DataFrame, keys: Sequence[str], variants: Sequence[str], *,
                 quantized_only: bool = False) -> tuple[pd.DataFrame, list[int], dict[str, list[int]]]:
    """Rows of ``keys`` in ``layers``, and the positions (in those rows) of the first row of
    each key overall and per variant, in ``keys`` order: what :func:`views.range_rows` and
    :func:`views.sqnr_rows` take (first row per key / per (variant, key)), without pandas
    grouping (a page of the range chart is a few hundred rows)."""
    wanted = set(keys)
    sub = layers[layers["fp32_name"].isin(wanted)] if len(wanted) < len(layers) else layers
    if quantized_only:
        sub = sub[(sub["status"] == "quantized").to_numpy(bool)]
    names, var = sub["fp32_name"].tolist(), sub["variant"].tolist()
    ref: dict = {}
    per: dict = {v: {} for v in variants}
    for i, (k, v) in enumerate(zip(names, var)):
        if k not in ref:
            ref[k] = i
        d = per.get(v)
        if d is not None and k not in d:
            d[k] = i
    return (sub, [ref[k] for k in keys if k in ref],
            {v: [d[k] for k in keys if k in d] for v, d in per.items()})




def layer_range_chart(layers: pd.DataFrame, *, variants: Sequence[str], selected: str | None = None,
                      highlighted: Sequence[str] | None = None, uirevision=None, page: int | None = 0,
                      page_size: int = RANGE_PAGE, keys: Sequence[str] | None = None) -> dict:
    """Per-layer [min, max] of the weights: FP32 beside each variant, one row per layer, paged.

    One column of horizontal floating bars per model (FP32 first), layers top to bottom
    in graph order, each bar from ``lo`` to ``hi`` (``base=lo``, ``x=hi-lo``) and coloured
    by ``log10(max |w|)`` on a Viridis scale shared by every page.  A variant's weight
    without quantization parameters (left in float, op not quantized, not matched) is a
    hatched grey bar at the FP32 range, in a trace named after that status.  Rows are
    ``y = 0..n-1`` of the page (top to bottom); the first axis names them.

    Parameters
    ----------
    layers : pandas.DataFrame
        Layers table rows (columns ``variant, fp32_name, layer, role, status, reason, order,
        fp32_min, fp32_max, dq_min, dq_max``).
    variants : sequence of str
        Variants to draw, in column order.
    selected : str, optional
        Layer key to highlight with a band.
    highlighted : sequence of str, optional
        Box-selected layer keys (the other bars are dimmed).
    uirevision : any
        Kept zoom/selection while it stays the same.
    page : int or None
        Page of ``page_size`` layers to draw (clamped); ``None``: the page of ``selected``.
    page_size : int
        Layers per page.
    keys : sequence of str, optional
        ``views.layer_keys(layers)`` when the caller has it already.

    Returns
    -------
    dict
        Figure spec; ``customdata`` of every bar is its escaped layer key; ``layout.meta``
        is :func:`range_page` of the drawn page.
    """
    keys = list(keys) if keys is not None else views.layer_keys(layers)
    if not keys:
        return empty_figure("No layers match the filters.")
    if page is None:
        page = keys.index(selected) // max(int(page_size), 1) if selected in keys else 0
    pg = range_page(len(keys), page, page_size)
    page_keys = keys[pg["first"] - 1:pg["last"]]
    present = set(layers.loc[layers["fp32_name"].notna(), "variant"])
    models = [views.FP32_LABEL] + [v for v in variants if v in present]
    sub, ref_at, var_at = _first_rows(layers, page_keys, models[1:])
    cols = {c: sub[c].to_numpy(float) for c in ("fp32_min", "fp32_max", "dq_min", "dq_max")}
    names, nodes = np.asarray(sub["fp32_name"].tolist(), object), np.asarray(sub["layer"].tolist(), object)
    status = np.asarray(sub["status"].tolist(), object)
    cmin, cmax = _mag_range(layers, variants)
    row = {k: i for i, k in enumerate(page_keys)}
    n = len(page_keys)
    xdom = _domains(len(models), 0.012)
    ticks = list(range(math.floor(cmin), math.ceil(cmax) + 1))
    data, layout_axes, titles = [], {}, []
    for col, model in enumerate(models, start=1):
        if model == views.FP32_LABEL:
            at = np.asarray(ref_at, np.int64)
            parts = [("FP32", at, cols["fp32_min"][at], cols["fp32_max"][at])]
        else:
            at = np.asarray(var_at[model], np.int64)
            q = status[at] == "quantized"
            parts = [("quantized", at[q], cols["dq_min"][at[q]], cols["dq_max"][at[q]])]
            for st in sorted(set(status[at[~q]].tolist()), key=str):
                m = at[status[at] == st]
                parts.append((str(st).replace("_", " "), m, cols["fp32_min"][m], cols["fp32_max"][m]))
        for label, idx, lo, hi in parts:
            if not len(idx):
                continue
            float_bar = model != views.FP32_LABEL and label != "quantized"
            if float_bar:
                marker = {"color": _FLOAT_COLOR, "pattern": {"shape": "/", "fgcolor": "#95a5a6", "size": 5},
                          "line": {"width": 0}}
            else:
                marker = {"color": _typed(_mags(lo, hi), "f4"), "colorscale": _VIRIDIS, "cmin": cmin,
                          "cmax": cmax, "showscale": False, "line": {"width": 0}}
                if col == len(models) and not any(t["marker"].get("showscale") for t in data
                                                  if t["xaxis"] == f"x{_ax(col)}"):
                    marker.update(showscale=True, colorbar={
                        "title": {"text": "max|w|", "side": "right"}, "thickness": 12, "lenmode": "pixels",
                        "len": min(260, max(120, ROW_PX * n)), "y": 1, "yanchor": "top",
                        "tickvals": ticks, "ticktext": [f"1e{t}" for t in ticks]})
            data.append({
                "type": "bar", "orientation": "h", "name": _txt(f"{model} ({label})"),
                "y": _index([row[k] for k in names[idx]]), "x": _typed(hi - lo), "base": _typed(lo),
                "customdata": _esc(names[idx]), "hovertext": [_txt(x) if x == x and x is not None else ""
                                                             for x in nodes[idx]],
                "marker": marker, "unselected": {"marker": {"opacity": 0.25}}, "showlegend": False,
                "xaxis": f"x{_ax(col)}", "yaxis": f"y{_ax(col)}",
                "hovertemplate": "<b>%{customdata}</b><br>node %{hovertext}<br>%{fullData.name}: from "
                                 "%{base:.4g}, %{x:.4g} wide<extra></extra>"})
        xa = {"domain": xdom[col - 1], "anchor": f"y{_ax(col)}", "showgrid": True, "zeroline": True,
              "zerolinecolor": "#bbb", "side": "top", "tickfont": {"size": 10}}
        ya = {"domain": [0.0, 1.0], "anchor": f"x{_ax(col)}", "range": [n - 0.5, -0.5], "fixedrange": True,
              "tickmode": "linear", "tick0": 0, "dtick": 1, "showticklabels": False}
        if col == 1:
            ya.update(tickmode="array", tickvals=list(range(n)), ticktext=[_txt(shorten(k)) for k in page_keys],
                      showticklabels=True, tickfont={"size": 11})
            ya.pop("tick0"), ya.pop("dtick")
        else:
            xa["matches"] = "x"
            ya["matches"] = "y"
        layout_axes[f"xaxis{_ax(col)}"] = xa
        layout_axes[f"yaxis{_ax(col)}"] = ya
        titles.append(_title(_txt(shorten(model, 26)), xdom[col - 1], [0, 1], size=12, yshift=22))
    fig = {"data": data, "layout": _layout(
        max(260, 110 + ROW_PX * n), uirevision, margin={"l": 10, "r": 10, "t": 70, "b": 10}, bargap=0.25,
        dragmode="select", annotations=titles, shapes=[], meta=pg, **layout_axes)}
    return with_selection(fig, selected, highlighted)


# ------------------------------------------------------------------------------ SQNR chart
def sqnr_chart(layers: pd.DataFrame, *, variants: Sequence[str], threshold: float | None = None,
               selected: str | None = None, highlighted: Sequence[str] | None = None,
               uirevision=None, colors: dict | None = None, keys: Sequence[str] | None = None) -> dict:
    """Per-layer SQNR (dB) of each variant, layers in graph order on the x axis (all of them).

    ``x`` is the layer's position in graph order (``0..n-1``; names on the axis up to 60
    layers, in the hover always).  An infinite SQNR (exact grid) is drawn at the top of the
    chart with a triangle, in its own trace ``"<variant> (exact)"`` (legend group of the
    variant).  ``threshold`` draws a dashed line.  ``keys``: ``views.layer_keys(layers)``
    when the caller has it already.  Points are the rows :func:`analysis.views.sqnr_rows`
    gives (each variant's first quantized row of each layer).

    Returns
    -------
    dict
        Figure spec: one scatter trace per variant (and one per variant with exact tensors);
        ``customdata`` is the escaped layer key of each point.
    """
    all_keys = list(keys) if keys is not None else views.layer_keys(layers)
    sub, _, var_at = _first_rows(layers, all_keys, variants, quantized_only=True)
    if not any(var_at.values()):
        return empty_figure("No quantized tensors match the filters.", height=300)
    names = np.asarray(sub["fp32_name"].tolist(), object)
    sqnr = pd.to_numeric(sub["sqnr_db"], errors="coerce").to_numpy(float)
    have = set(names[np.concatenate([np.asarray(a, np.int64) for a in var_at.values()])].tolist())
    keys = [k for k in all_keys if k in have]
    pos = {k: i for i, k in enumerate(keys)}
    colors = colors or views.variant_colors(variants)
    every = np.concatenate([sqnr[np.asarray(a, np.int64)] for a in var_at.values()])
    finite = every[np.isfinite(every)]
    top = float(finite.max()) + 5 if finite.size else 100.0
    many = len(keys) > _MAX_TICK_LABELS
    data = []
    for v in variants:
        at = np.asarray(var_at.get(v) or [], np.int64)
        if not at.size:
            continue
        exact = np.isposinf(sqnr[at])
        c = colors.get(v)
        for idx, is_exact in ((at[~exact], False), (at[exact], True)):
            if not idx.size:
                continue
            y = np.full(idx.size, top) if is_exact else sqnr[idx]
            tr = {"type": "scatter", "x": _index([pos[k] for k in names[idx]]), "y": _typed(y, "f4"),
                  "customdata": _esc(names[idx]), "name": _txt(v),
                  "unselected": {"marker": {"opacity": 0.3}}}
            if is_exact:
                tr.update(name=_txt(f"{v} (exact)"), mode="markers", legendgroup=_txt(v), showlegend=False,
                          marker={"size": 9 if many else 10, "color": c, "symbol": "triangle-up"},
                          hovertemplate="<b>%{customdata}</b><br>" + _txt(v) + ": exact (inf)<extra></extra>")
            else:
                tr.update(mode="markers" if many else "lines+markers", legendgroup=_txt(v),
                          line={"color": c, "width": 1.5}, marker={"size": 6 if many else 8, "color": c},
                          hovertemplate="<b>%{customdata}</b><br>%{fullData.name}: %{y:.2f} dB<extra></extra>")
            data.append(tr)
    xa = {"range": [-0.5, len(keys) - 0.5], "zeroline": False}
    if many:
        xa.update(title={"text": "layer # in graph order (hover for names; drag to select)"}, showgrid=False,
                  rangeslider={"visible": True, "thickness": 0.08})
    else:
        xa.update(tickmode="array", tickvals=list(range(len(keys))),
                  ticktext=[_txt(shorten(k, 18)) for k in keys], tickangle=-45)
    shapes, annotations = [], []
    if threshold is not None and math.isfinite(threshold):
        shapes.append({"type": "line", "xref": "x domain", "x0": 0, "x1": 1, "yref": "y", "y0": threshold,
                       "y1": threshold, "line": {"color": _SEL_COLOR, "dash": "dash", "width": 1}})
        annotations.append({"text": f"{threshold:g} dB", "xref": "x domain", "x": 0, "yref": "y", "y": threshold,
                            "xanchor": "left", "yanchor": "bottom", "showarrow": False})
    fig = {"data": data, "layout": _layout(
        380 if many else 340, uirevision, margin={"l": 60, "r": 10, "t": 80, "b": 40 if many else 10},
        dragmode="select",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "font": {"size": 11}},
        xaxis=xa, yaxis={"title": {"text": "SQNR (dB)"}, "rangemode": "tozero"}, shapes=shapes,
        annotations=annotations)}
    return with_selection(fig, selected, highlighted)


# ------------------------------------------------------------------------------- selection
def selection_update(fig: dict, selected: str | None, highlighted: Sequence[str] | None) -> dict:
    """What the selection changes in a range or SQNR chart spec: ``shapes`` (the figure's own
    shapes plus the band or line of ``selected``) and ``selectedpoints`` (one entry per trace:
    indices of the ``highlighted`` points, or ``None``).  Reads only the spec."""
    layout = fig.get("layout") or {}
    shapes = [s for s in layout.get("shapes") or [] if s.get("name") != "selection"]
    hl = {_txt(k) for k in highlighted or []}
    sel = _txt(selected) if selected else None
    points, at = [], None
    for tr in fig.get("data") or []:
        cd = tr.get("customdata")
        if not isinstance(cd, list):
            points.append(None)
            continue
        points.append([i for i, k in enumerate(cd) if k in hl] if hl else None)
        if sel is not None and at is None and sel in cd:
            axis = "y" if tr.get("orientation") == "h" else "x"
            at = float(decode_array(tr[axis])[cd.index(sel)]), axis
    if at is not None:
        pos, axis = at
        if axis == "y":   # range chart: a band across every column
            shapes.append({"type": "rect", "name": "selection", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                           "y0": pos - 0.5, "y1": pos + 0.5, "fillcolor": "rgba(231,76,60,0.15)",
                           "line": {"color": _SEL_COLOR, "width": 1}, "layer": "below"})
        else:             # SQNR chart: a vertical line
            shapes.append({"type": "line", "name": "selection", "xref": "x", "x0": pos, "x1": pos,
                           "yref": "y domain", "y0": 0, "y1": 1, "line": {"color": _SEL_COLOR, "width": 1}})
    return {"shapes": shapes, "selectedpoints": points}


def with_selection(fig: dict, selected: str | None, highlighted: Sequence[str] | None) -> dict:
    """A copy of the chart spec ``fig`` showing ``selected`` / ``highlighted`` (``fig`` is kept)."""
    if not fig.get("data"):
        return fig
    upd = selection_update(fig, selected, highlighted)
    data = []
    for tr, sp in zip(fig["data"], upd["selectedpoints"]):
        tr = dict(tr)
        tr.pop("selectedpoints", None)
        if sp is not None:
            tr["selectedpoints"] = sp
        data.append(tr)
    return {"data": data, "layout": {**fig["layout"], "shapes": upd["shapes"]}}


def set_log_axes(fig: dict, log: bool) -> dict:
    """A copy of ``fig`` with every count (y) axis linear or log."""
    layout = dict(fig.get("layout") or {})
    for name in [k for k in layout if k.startswith("yaxis")]:
        layout[name] = {**layout[name], "type": "log" if log else "linear"}
    return {"data": fig.get("data") or [], "layout": layout}


# ------------------------------------------------------------------------------ histograms
def _bars(h: pd.DataFrame) -> dict:
    left, right = h["left"].to_numpy(float), h["right"].to_numpy(float)
    return {"x": _typed((left + right) / 2), "width": _typed(right - left), "y": _typed(h["count"]),
            "customdata": np.column_stack([left, right]).tolist()}


def value_histogram_chart(histograms: pd.DataFrame, key: str | None, *, variants: Sequence[str],
                          limits: pd.DataFrame | None = None, log: bool = False,
                          colors: dict | None = None, index: views.TableIndex | None = None) -> dict:
    """FP32 values and each variant's dequantized values of one layer, on identical bins.

    One row per variant: the variant's histogram (coloured bars) under the FP32 one (dark
    outlines), both drawn from the tidy rows with ``x`` = bin centre and ``width = right -
    left``, so bins with the same index have the same edges in every trace (``customdata``
    is ``[left, right]``).  ``limits`` (from :func:`analysis.views.grid_limits`) adds dashed
    lines at each grid's clip limits when they fall near the data.  ``index``
    (:attr:`analysis.Analysis.index`) turns the row look-ups into index look-ups (the
    histogram and channel builders all take it).

    Returns
    -------
    dict
        Figure spec.
    """
    ref = views.histogram_rows(histograms, key, "fp32", index=index)
    dq = views.histogram_rows(histograms, key, "dq", variants, index=index)
    if ref.empty and dq.empty:
        return empty_figure("No histogram for this layer.")
    have = set(dq["variant"])
    shown = [v for v in variants if v in have] or [views.FP32_LABEL]
    colors = colors or views.variant_colors(variants)
    n = len(shown)
    ydom = _domains(n, 0.06)[::-1]          # row 1 at the top
    lo_all = min(ref["left"].min() if not ref.empty else np.inf, dq["left"].min() if not dq.empty else np.inf)
    hi_all = max(ref["right"].max() if not ref.empty else -np.inf, dq["right"].max() if not dq.empty else -np.inf)
    span = max(hi_all - lo_all, 1e-12)
    ref_bars = _bars(ref) if not ref.empty else None
    by_var = dict(tuple(dq.groupby("variant", sort=False))) if not dq.empty else {}
    lim_by = dict(tuple(limits.groupby("variant", sort=False))) if limits is not None and not limits.empty else {}
    data, shapes, notes, axes = [], [], [], {}
    for i, v in enumerate(shown, start=1):
        xr, yr = f"x{_ax(i)}", f"y{_ax(i)}"
        d = by_var.get(v)
        if d is not None and not d.empty:
            data.append({"type": "bar", "name": _txt(f"{v} (dequantized)"), "xaxis": xr, "yaxis": yr,
                         "marker": {"color": colors.get(v), "line": {"width": 0}}, "opacity": 0.75, **_bars(d),
                         "hovertemplate": "%{fullData.name} [%{customdata[0]:.4g}, %{customdata[1]:.4g}): "
                                          "%{y}<extra></extra>"})
        if ref_bars is not None:  # FP32 on top as outlines, so both stay visible
            data.append({"type": "bar", "name": "FP32", "xaxis": xr, "yaxis": yr, "legendgroup": "fp32",
                         "marker": {"color": "rgba(0,0,0,0)", "line": {"color": "#2c3e50", "width": 1}},
                         **ref_bars, "hovertemplate": "FP32 [%{customdata[0]:.4g}, %{customdata[1]:.4g}): "
                                                      "%{y}<extra></extra>"})
        lim = lim_by.get(v)
        for r in (lim.itertuples() if lim is not None else ()):
            for x, side in ((r.lo, "min"), (r.hi, "max")):
                if lo_all - span <= x <= hi_all + span:
                    shapes.append({"type": "line", "xref": xr, "x0": x, "x1": x, "yref": f"{yr} domain",
                                   "y0": 0, "y1": 1, "line": {"color": "#c0392b", "dash": "dash", "width": 1.5}})
                    notes.append({"text": f"grid {side}", "xref": xr, "x": x, "yref": f"{yr} domain", "y": 1,
                                  "xanchor": "right" if side == "max" else "left", "yanchor": "top",
                                  "showarrow": False, "font": {"size": 10, "color": "#c0392b"}})
        axes[f"xaxis{_ax(i)}"] = {"domain": [0.0, 1.0], "anchor": yr, **({"matches": "x"} if i > 1 else {}),
                                  "showticklabels": i == n,
                                  **({"title": {"text": "weight value"}} if i == n else {})}
        axes[f"yaxis{_ax(i)}"] = {"domain": ydom[i - 1], "anchor": xr, "type": "log" if log else "linear",
                                  "title": {"text": "count", "font": {"size": 11}}}
        notes.insert(i - 1, _title(_txt(shorten(v, 60)), [0.0, 1.0], ydom[i - 1]))
    return {"data": data, "layout": _layout(
        80 + 170 * n, key, margin={"l": 60, "r": 10, "t": 40, "b": 40}, showlegend=False, barmode="overlay",
        bargap=0, shapes=shapes, annotations=notes, **axes)}


def code_histogram_chart(histograms: pd.DataFrame, key: str | None, *, variants: Sequence[str],
                         log: bool = False, colors: dict | None = None,
                         index: views.TableIndex | None = None) -> dict:
    """Histogram of the stored integer codes of one layer, one panel per variant.

    Returns
    -------
    dict
        Figure spec; ``customdata`` of each bar is ``[left, right]`` (codes).
    """
    codes = views.histogram_rows(histograms, key, "code", variants, index=index)
    if codes.empty:
        return empty_figure("No quantized codes for this layer (left in float?).", height=200)
    by_var = dict(tuple(codes.groupby("variant", sort=False)))
    shown = [v for v in variants if v in by_var]
    colors = colors or views.variant_colors(variants)
    xdom = _domains(len(shown), 0.06)
    data, axes, titles = [], {}, []
    for i, v in enumerate(shown, start=1):
        data.append({"type": "bar", "name": _txt(v), "marker": {"color": colors.get(v)}, "showlegend": False,
                     "xaxis": f"x{_ax(i)}", "yaxis": f"y{_ax(i)}", **_bars(by_var[v]),
                     "hovertemplate": "codes [%{customdata[0]:.0f}, %{customdata[1]:.0f}): %{y}<extra></extra>"})
        axes[f"xaxis{_ax(i)}"] = {"domain": xdom[i - 1], "anchor": f"y{_ax(i)}", "title": {"text": "integer code"}}
        axes[f"yaxis{_ax(i)}"] = {"domain": [0.0, 1.0], "anchor": f"x{_ax(i)}", "type": "log" if log else "linear",
                                  **({"title": {"text": "count"}} if i == 1 else {})}
        titles.append(_title(_txt(shorten(v, 34)), xdom[i - 1], [0.0, 1.0]))
    return {"data": data, "layout": _layout(260, key, margin={"l": 60, "r": 10, "t": 40, "b": 40}, bargap=0,
                                            annotations=titles, **axes)}


def channel_chart(channels: pd.DataFrame, key: str | None, *, variants: Sequence[str],
                  colors: dict | None = None, index: views.TableIndex | None = None) -> dict:
    """Per-channel view of one layer: FP32 and dequantized ranges, and scales.

    Top: each channel's FP32 [min, max] (grey floating bar) and each variant's dequantized
    [min, max] (coloured markers joined by a line).  Bottom: each variant's scale per
    channel (min to max over the channel's blocks for block-wise tensors).

    Returns
    -------
    dict
        Figure spec.
    """
    ch = views.channel_rows(channels, key, variants, index=index)
    if ch.empty:
        return empty_figure("No per-channel or block-wise tensor for this layer.", height=160)
    colors = colors or views.variant_colors(variants)
    ydom = _domains(2, 0.08, [0.4, 0.6])          # bottom (scales) first
    first = ch.drop_duplicates("channel")
    lo = first["fp32_min"].to_numpy(float)
    data = [{"type": "bar", "x": _index(first["channel"]), "y": _typed(first["fp32_max"].to_numpy(float) - lo),
             "base": _typed(lo), "name": "FP32 range", "marker": {"color": _FP32_COLOR}, "opacity": 0.45,
             "xaxis": "x", "yaxis": "y",
             "hovertemplate": "channel %{x}: FP32 [%{base:.4g}, +%{y:.4g}]<extra></extra>"}]
    by_var = dict(tuple(ch.groupby("variant", sort=False)))
    for v in variants:
        d = by_var.get(v)
        if d is None or d.empty:
            continue
        c = colors.get(v)
        x = _index(d["channel"])
        for col in ("dq_min", "dq_max"):
            data.append({"type": "scatter", "x": x, "y": _typed(d[col]), "mode": "markers", "xaxis": "x",
                         "yaxis": "y", "name": _txt(f"{v} (dequantized min/max)"), "legendgroup": _txt(v),
                         "showlegend": col == "dq_min",
                         "marker": {"color": c, "size": 5, "symbol": "line-ew-open", "line": {"width": 2, "color": c}},
                         "hovertemplate": "%{fullData.name}, channel %{x}: " + col[3:] + " %{y:.4g}<extra></extra>"})
        smin, smax = d["scale_min"].to_numpy(float), d["scale_max"].to_numpy(float)
        blockwise = bool((smax != smin).any())
        tr = {"type": "scatter", "x": x, "y": _typed(smax if blockwise else smin), "mode": "markers",
              "xaxis": "x2", "yaxis": "y2", "name": _txt(f"{v} scale"), "legendgroup": _txt(v),
              "showlegend": False, "marker": {"color": c, "size": 5},
              "hovertemplate": "%{fullData.name}, channel %{x}: %{y:.4g}" + (" (max over blocks)" if blockwise else "")
                               + "<extra></extra>"}
        if blockwise:
            tr["error_y"] = {"type": "data", "symmetric": False, "array": _typed(np.zeros(len(d))),
                             "arrayminus": _typed(smax - smin), "thickness": 1, "width": 0}
        data.append(tr)
    axes = {"xaxis": {"domain": [0.0, 1.0], "anchor": "y", "matches": "x2", "showticklabels": False},
            "yaxis": {"domain": ydom[1], "anchor": "x", "title": {"text": "range"}},
            "xaxis2": {"domain": [0.0, 1.0], "anchor": "y2", "title": {"text": "output channel"}},
            "yaxis2": {"domain": ydom[0], "anchor": "x2", "title": {"text": "scale"}}}
    # the top panel's title is its axis ("range"): the legend row above it would cover one
    titles = [_title("scale per channel", [0.0, 1.0], ydom[0])]
    return {"data": data, "layout": _layout(
        420, key, margin={"l": 60, "r": 10, "t": 50, "b": 40}, barmode="overlay", annotations=titles,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0, "font": {"size": 11}}, **axes)}
