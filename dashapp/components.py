"""Reusable page pieces: labelled controls, panels, graphs, and the small components built
from :mod:`analysis.views` results (summary cards, badges, callouts, next steps).

Model-controlled strings (file and layer names, reasons) only ever go in as plain text
children, never as HTML or Markdown.
"""

from __future__ import annotations

import math

import dash_bootstrap_components as dbc
from dash import dcc, html

from analysis.figures import empty_figure

from . import ids

GRAPH_CONFIG = {"displaylogo": False, "responsive": True,
                "modeBarButtonsToRemove": ["toImage", "autoScale2d"]}


def fmt_db(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if math.isinf(x):
        return "exact" if x > 0 else "-inf dB"
    return f"{x:.1f} dB"


def fmt_pct(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.0f}%"


def fmt_bytes(n) -> str:
    n = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def labelled(label: str, control, *, hint: str | None = None, class_name: str = "mb-2"):
    """A control with its label above (and an optional small hint below)."""
    kids = [dbc.Label(label, className="small fw-bold mb-1"), control]
    if hint:
        kids.append(dbc.FormText(hint, className="d-block"))
    return html.Div(kids, className=class_name)


def panel(title, body, *, class_name: str = "mb-3", header_extra=None):
    """A card with a small header."""
    header = [html.Span(title, className="fw-bold")]
    if header_extra is not None:
        header.append(html.Span(header_extra, className="ms-auto"))
    return dbc.Card([dbc.CardHeader(header, className="d-flex align-items-center py-2"),
                     dbc.CardBody(body, className="p-2")], className=class_name)


def graph(graph_id: str, *, height: int | None = None, loading: bool = True):
    """A responsive ``dcc.Graph`` in a ``dcc.Loading``, blank until its callback fills it."""
    g = dcc.Graph(id=graph_id, config=GRAPH_CONFIG, responsive=True,
                  figure=empty_figure("", height=height or 160),
                  style={"height": f"{height or 160}px"})
    return dcc.Loading(g, type="default", delay_show=300) if loading else g


def graph_height(fig) -> dict:
    """``style`` of a responsive ``dcc.Graph`` that keeps the figure's own height (dict spec or
    ``go.Figure``)."""
    height = (fig.get("layout") or {}).get("height") if isinstance(fig, dict) else fig.layout.height
    return {"height": f"{height or 400}px"}


def pager(pager_id: str, prev_id: str, label_id: str, next_id: str):
    """Prev / "layers 1-150 of 2,000" / next, hidden until there is more than one page."""
    return html.Div([
        dbc.Button("‹ prev", id=prev_id, size="sm", color="secondary", outline=True, className="py-0",
                   disabled=True, title="previous layers"),
        html.Span(id=label_id, className="small text-muted mx-2 text-nowrap"),
        dbc.Button("next ›", id=next_id, size="sm", color="secondary", outline=True, className="py-0",
                   disabled=True, title="next layers"),
    ], id=pager_id, className="align-items-center ms-2", style={"display": "none"})


def empty_state(text: str):
    """Muted guidance shown where there is nothing to draw yet."""
    return html.Div(text, className="text-muted fst-italic small p-2")


def summary_cards(ref: dict, rows: list[dict]):
    """Headline cards: the reference, then one per variant (from ``views.summary``)."""
    cards = [dbc.Col(dbc.Card(dbc.CardBody([
        html.Div("FP32 reference", className="text-uppercase small text-muted"),
        html.Div([html.Span(str(ref["tensors"]), className="fs-5 fw-bold"),
                  html.Span(" tensors", className="small text-muted")]),
        html.Div(f"{ref['weights']} weights, {ref['nodes']} nodes", className="small"),
        html.Div(fmt_bytes(ref["fp32_bytes"]), className="small"),
    ], className="p-2"), className="h-100 border-secondary"), className="mb-2", xs=12, sm=6, xl=True)]
    for r in rows:
        worst = r["worst_layer"]
        cards.append(dbc.Col(dbc.Card(dbc.CardBody([
            html.Div(r["variant"], className="text-uppercase small text-muted text-truncate",
                     title=r["variant"]),
            html.Div([html.Span(fmt_db(r["median_sqnr_db"]), className="fs-5 fw-bold"),
                      html.Span(" median SQNR", className="small text-muted")]),
            html.Div(f"{r['quantized']}/{r['tensors']} tensors quantized \u00b7 {fmt_pct(r['coverage_bytes'])} "
                     "of bytes", className="small", title="quantized coverage: tensors, and share of FP32 bytes"),
            html.Div(["worst ", html.Span(worst or "n/a", className="font-monospace"),
                      f" {fmt_db(r['worst_sqnr_db'])}"], className="small text-truncate", title=worst or ""),
            html.Div(f"{fmt_bytes(r['fp32_bytes'])} \u2192 {fmt_bytes(r['variant_bytes'])}",
                     className="small"),
        ], className="p-2"), className="h-100"), className="mb-2", xs=12, sm=6, xl=True))
    return dbc.Row(cards, className="g-2")


def model_badges(match: dict, reference_name: str):
    """One line per variant: matched share, and a warning badge when it is probably not a
    quantization of the reference (from ``views.match_report``)."""
    lines = []
    for label, m in match.items():
        if m["suspicious"]:
            badge = dbc.Badge("not a quantization of this reference?", color="warning", text_color="dark",
                              className="ms-1")
            tip = (f"Only {m['matched']} of {m['total']} FP32 weights/biases of {reference_name} were "
                   "found in this model: it is probably not a quantization of it.")
        else:
            badge = dbc.Badge(f"{m['matched']}/{m['total']} matched", color="success", className="ms-1")
            tip = f"{m['matched']} of {m['total']} FP32 weights/biases found in this model."
        lines.append(html.Div([html.Span(label, className="text-truncate d-inline-block align-middle",
                                         style={"maxWidth": "55%"}), badge],
                              title=tip, className="small mb-1 model-badge"))
    return lines


def callout(items: list[dict], key: str):
    """The reasons a layer has no quantization parameters in some variants."""
    if not items:
        return None
    return dbc.Alert([
        html.Div(["No quantization parameters for ", html.Span(key, className="font-monospace"), ":"],
                 className="fw-bold mb-1"),
        html.Ul([html.Li([html.Span(i["variant"], className="fw-bold"), ": ", i["reason"]])
                 for i in items], className="mb-0 small"),
    ], color="warning", className="py-2 mb-2", id=ids.LAYER_CALLOUT_ALERT)


def next_steps(df):
    """The "What to do next" list (from ``views.next_steps``)."""
    if df is None or df.empty:
        return empty_state("Nothing stands out: no quantized tensor below the SQNR threshold or with "
                           "diagnostics.")
    items = []
    for r in df.itertuples():
        items.append(dbc.ListGroupItem([
            html.Div([
                html.Span(r.fp32_name, className="font-monospace fw-bold me-2 text-break"),
                dbc.Badge(fmt_db(r.sqnr_db), color="danger" if r.sqnr_db < 30 else "warning", className="me-1"),
                html.Span(r.variant, className="small text-muted"),
                dbc.Button("show", id=ids.next_step_button(r.fp32_name), size="sm", color="link",
                           className="ms-auto p-0"),
            ], className="d-flex align-items-center flex-wrap"),
            html.Div(r.why, className="small text-danger"),
            html.Ul([html.Li(s) for s in r.suggestions], className="small mb-0 ps-3"),
        ], className="py-2"))
    return dbc.ListGroup(items, flush=True)


def limits_table(df):
    """Small table of each variant's grid clip limits for the shown layer."""
    if df is None or df.empty:
        return empty_state("No integer grid limits for this layer.")
    head = html.Thead(html.Tr([html.Th("variant"), html.Th("grid min"), html.Th("grid max"), html.Th("basis")]))
    body = html.Tbody([html.Tr([html.Td(r.variant), html.Td(f"{r.lo:.5g}"), html.Td(f"{r.hi:.5g}"),
                                html.Td(r.basis)]) for r in df.itertuples()])
    return dbc.Table([head, body], size="sm", bordered=False, striped=True, className="small mb-0")


def analysis_error(message: str):
    """Why the chosen models cannot be shown."""
    return dbc.Alert(message, color="danger", className="py-2 small", id=ids.ANALYSIS_ERROR_ALERT)


def problems_alert(problems: dict):
    """What the analysis could not read, per variant (collapsed into one warning)."""
    if not problems:
        return None
    return dbc.Alert([html.Div("Some tensors could not be read:", className="fw-bold"),
                      html.Ul([html.Li(f"{label}: {p}") for label, ps in problems.items() for p in ps[:5]],
                              className="mb-0")],
                     color="warning", className="py-2 small", dismissable=True)


def selection_info(selection: dict | None):
    """The selection bar text: selected layer and box-selection size."""
    sel = selection or {}
    parts = [html.Span("Layer: ", className="text-muted")]
    layer = sel.get("layer")
    parts.append(html.Span(layer, className="font-monospace fw-bold", id=ids.SELECTED_LAYER_TEXT)
                 if layer else html.Span("none (click a layer in a chart or the table)",
                                         className="fst-italic text-muted", id=ids.SELECTED_LAYER_TEXT))
    n = len(sel.get("layers") or [])
    if n:
        parts += [html.Span(" \u00b7 ", className="mx-1"),
                  dbc.Badge(f"{n} layers box-selected", color="info", id=ids.BOX_SELECTION_BADGE)]
    return parts


def table_info(view, box: list | None):
    """Line above the table: row count, box-selection note, filter-query error."""
    parts = [f"{view.total} rows"]
    if box:
        parts.append(f" (limited to {len(box)} box-selected layers; 'Clear selection' shows all)")
    out = [html.Span("".join(parts))]
    if view.error:
        out.append(html.Span(f" \u2014 table filter ignored: {view.error}", className="text-danger ms-1"))
    return out


def url_problems(problems: list[str]):
    """Warning about parts of the opened link this server cannot honour."""
    if not problems:
        return None
    return dbc.Alert(" ".join(problems), color="warning", className="py-2 small", dismissable=True)
