"""The page layout, built from small builders: navbar, sidebar (models, filters, exports),
selection bar, and the three tabs (overview, layers, distributions).

Controls start empty: the URL callback fills them on page load (from the link, or with
the catalogue's defaults), so a copied link reopens the same view.
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme

from analysis.tables import TABLE_COLUMNS

from . import components as c
from . import ids
from .models import Catalogue

PAGE_SIZE = 15


def navbar():
    return dbc.Navbar(dbc.Container([
        dbc.NavbarBrand("QuantLens", className="fw-bold"),
        html.Span("what quantization did to your ONNX model, layer by layer",
                  className="navbar-text small text-white-50 d-none d-md-inline"),
    ], fluid=True), color="primary", dark=True, className="py-1 mb-3")


def model_panel(catalogue: Catalogue):
    opts = catalogue.options()
    body = [
        c.labelled("FP32 reference", dcc.Dropdown(id=ids.REF_DROPDOWN, options=opts, clearable=False,
                                                  placeholder="choose the FP32 model")),
        c.labelled("Quantized variants", dcc.Dropdown(id=ids.VARIANT_DROPDOWN, options=opts, multi=True,
                                                      placeholder="choose one or more variants")),
        html.Div(id=ids.MODEL_BADGES),
        html.Div([
            dbc.Progress(id=ids.JOB_PROGRESS, value=0, max=1, striped=True, animated=True, className="mb-1",
                         style={"height": "18px"}),
            dbc.Button("Cancel", id=ids.JOB_CANCEL, size="sm", color="secondary", outline=True),
        ], id=ids.JOB_BOX, style={"display": "none"}),
        html.Div(id=ids.JOB_STATUS, className="small text-muted"),
    ]
    if not len(catalogue):
        body.insert(0, dbc.Alert(f"No .onnx models found in {catalogue.root.name}/. Set QUANTLENS_MODEL_DIR.",
                                 color="warning", className="small py-2"))
    return c.panel("Models", body)


def filter_panel():
    return c.panel("Filters", [
        c.labelled("Op type", dcc.Dropdown(id=ids.OP_FILTER, multi=True, placeholder="all ops")),
        c.labelled("Role", dcc.Dropdown(id=ids.ROLE_FILTER, multi=True, placeholder="all roles")),
        c.labelled("Variant", dcc.Dropdown(id=ids.VARIANT_FILTER, multi=True, placeholder="all variants")),
        c.labelled("Name contains", dbc.Input(id=ids.SEARCH_FILTER, type="text", debounce=True, size="sm",
                                              placeholder="e.g. conv, fc1")),
        c.labelled("SQNR below (dB)", dbc.Input(id=ids.SQNR_FILTER, type="number", debounce=True, size="sm",
                                                placeholder="e.g. 30")),
        dbc.Button("Reset filters", id=ids.RESET_FILTERS, size="sm", color="secondary", outline=True),
    ])


def export_panel():
    return c.panel("Export", [
        html.Div("Current table (filters, box selection and table filter applied):", className="small mb-1"),
        dbc.ButtonGroup([dbc.Button("CSV", id=ids.EXPORT_CSV, size="sm", color="primary", outline=True),
                         dbc.Button("JSON", id=ids.EXPORT_JSON, size="sm", color="primary", outline=True)],
                        className="mb-2"),
        html.Div("Keep weak layers in float on the next run (onnxruntime nodes_to_exclude):",
                 className="small mb-1"),
        dbc.InputGroup([
            dbc.Input(id=ids.EXCLUDE_THRESHOLD, type="number", value=30, size="sm", debounce=True),
            dbc.InputGroupText("dB", className="small"),
            dbc.Button("nodes_to_exclude", id=ids.EXPORT_EXCLUDE, size="sm", color="primary", outline=True),
        ], size="sm"),
        dcc.Download(id=ids.TABLE_DOWNLOAD),
        dcc.Download(id=ids.EXCLUDE_DOWNLOAD),
    ])


def selection_bar():
    return html.Div([
        html.Div([
            html.Div(id=ids.SELECTION_INFO, className="small me-2"),
            dbc.Button("Clear selection", id=ids.CLEAR_SELECTION, size="sm", color="secondary", outline=True,
                       className="ms-auto py-0"),
        ], className="d-flex align-items-center mb-2"),
        html.Div(id=ids.URL_ALERT),
        html.Div(id=ids.ANALYSIS_ALERT),
        html.Div(id=ids.LAYER_CALLOUT),
    ])


def overview_tab():
    return dbc.Tab(tab_id=ids.TAB_OVERVIEW, label="Overview", children=html.Div([
        dcc.Loading(html.Div(c.empty_state("Analysing the chosen models\u2026"), id=ids.SUMMARY_CARDS,
                             className="mb-3"), delay_show=300),
        dbc.Row([
            dbc.Col(c.panel("SQNR per layer (higher is better; drag to select layers)",
                            c.graph(ids.SQNR_CHART, height=340)), lg=8),
            dbc.Col(c.panel("What to do next", dcc.Loading(html.Div(id=ids.NEXT_STEPS,
                                                                    style={"maxHeight": "340px", "overflowY": "auto"}),
                                                           delay_show=300)), lg=4),
        ], className="g-3"),
        c.panel("Weight range per layer: FP32 beside each variant (click a layer, drag to select several)",
                html.Div(c.graph(ids.RANGE_CHART, height=300), id=ids.RANGE_SCROLL_BOX,
                         style={"maxHeight": "640px", "overflowY": "auto"}),
                header_extra=c.pager(ids.RANGE_PAGER, ids.RANGE_PREV, ids.RANGE_PAGE_LABEL, ids.RANGE_NEXT)),
    ], className="pt-3"))


def _table_column(col_id: str, name: str, kind: str) -> dict:
    col = {"id": col_id, "name": name}
    if kind == "text":
        col["type"] = "text"
    elif kind == "int":
        col["type"] = "numeric"
    elif kind == "percent":
        col.update(type="numeric", format=Format(precision=2, scheme=Scheme.percentage))
    elif kind == "db":
        col.update(type="numeric", format=Format(precision=2, scheme=Scheme.fixed))
    else:
        col.update(type="numeric", format=Format(precision=4, scheme=Scheme.decimal_or_exponent))
    return col


def layer_table():
    wide = {"diagnostics", "reason"}
    return dash_table.DataTable(
        id=ids.LAYER_TABLE, columns=[_table_column(*col) for col in TABLE_COLUMNS], data=[],
        page_action="custom", page_current=0, page_size=PAGE_SIZE, page_count=1,
        sort_action="custom", sort_mode="multi", sort_by=[],
        filter_action="custom", filter_query="", filter_options={"case": "insensitive"},
        style_table={"overflowX": "auto"},
        style_cell={"fontSize": "12px", "padding": "3px 6px", "fontFamily": "var(--bs-body-font-family)",
                    "textAlign": "right", "maxWidth": "220px", "overflow": "hidden", "textOverflow": "ellipsis"},
        style_cell_conditional=[{"if": {"column_id": cid}, "textAlign": "left"}
                                for cid, _, kind in TABLE_COLUMNS if kind == "text"]
        + [{"if": {"column_id": cid}, "minWidth": "200px", "maxWidth": "320px"} for cid in wide],
        tooltip_data=[], tooltip_delay=300, tooltip_duration=None,
        style_header={"fontWeight": "bold", "backgroundColor": "#ecf0f1", "whiteSpace": "normal"},
        style_filter={"backgroundColor": "#fbfcfc"},
        style_data_conditional=[],
        css=[{"selector": ".dash-spreadsheet td div", "rule": "line-height: 1.2;"}],
    )


def layers_tab():
    return dbc.Tab(tab_id=ids.TAB_LAYERS, label="Layers", children=html.Div([
        html.Div(id=ids.TABLE_INFO, className="small text-muted mb-1"),
        dcc.Loading(layer_table(), delay_show=300),
        html.Div("Type in the row under the headers to filter (e.g. < 30 in SQNR dB, int8 in dtype); "
                 "click a header to sort; click a cell to select that layer.",
                 className="small text-muted mt-1"),
    ], className="pt-3"))


def distributions_tab():
    return dbc.Tab(tab_id=ids.TAB_DISTRIBUTIONS, label="Distributions", children=html.Div([
        html.Div([
            html.Div(id=ids.DIST_TITLE, className="fw-bold me-3"),
            dbc.Switch(id=ids.LOG_SWITCH, label="log counts", value=False, className="ms-auto mb-0"),
        ], className="d-flex align-items-center mb-2"),
        c.panel("Values: dequantized (bars) and FP32 (outlines), on the same bins",
                [c.graph(ids.VALUE_HIST), html.Div(id=ids.GRID_LIMITS, className="mt-1")]),
        c.panel("Stored integer codes", c.graph(ids.CODE_HIST)),
        c.panel("Per channel (per-channel and block-wise tensors)", c.graph(ids.CHANNEL_CHART)),
    ], className="pt-3"))


def stores():
    return [
        dcc.Location(id=ids.URL, refresh=False),
        dcc.Location(id=ids.URL_WRITER, refresh=False),
        dcc.Store(id=ids.SELECTION_STORE, data={"layer": None, "layers": []}),
        dcc.Store(id=ids.RESTORED_LAYER_STORE),
        dcc.Store(id=ids.ANALYSIS_STORE),
        dcc.Store(id=ids.FILTER_STORE),
        dcc.Store(id=ids.RANGE_PAGE_STORE, data=0),
        dcc.Store(id=ids.RANGE_SCROLL_SINK),
        dcc.Store(id=ids.UPLOAD_STORE, storage_type="session"),
    ]


def build_layout(catalogue: Catalogue, uploads=None):
    """The whole page for one model catalogue (``uploads``: the upload panel, if offered)."""
    return html.Div([
        *stores(),
        navbar(),
        dbc.Container(dbc.Row([
            dbc.Col([model_panel(catalogue), *([uploads] if uploads is not None else []), filter_panel(),
                     export_panel()], lg=3, className="sidebar"),
            dbc.Col([
                selection_bar(),
                dbc.Tabs([overview_tab(), layers_tab(), distributions_tab()], id=ids.TABS,
                         active_tab=ids.TAB_OVERVIEW),
            ], lg=9),
        ]), fluid=True, className="pb-4"),
    ])
