"""Exports: the current table as CSV or JSON, and the nodes to keep in float as an
onnxruntime ``nodes_to_exclude`` JSON list."""

from __future__ import annotations

import json

from dash import Input, Output, State, ctx, dcc, no_update

from analysis import tables, views

from .. import ids
from ..state import make_filters
from .common import box_selection, current_analysis, filtered_layers


def register(app, results) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    @app.callback(
        Output(ids.TABLE_DOWNLOAD, "data"),
        Input(ids.EXPORT_CSV, "n_clicks"), Input(ids.EXPORT_JSON, "n_clicks"),
        State(ids.ANALYSIS_STORE, "data"), State(ids.FILTER_STORE, "data"), State(ids.SELECTION_STORE, "data"),
        State(ids.LAYER_TABLE, "filter_query"), State(ids.LAYER_TABLE, "sort_by"),
        prevent_initial_call=True,
    )
    def download_table(_csv, _json, store, filters, selection, query, sort_by):
        a = current_analysis(results, store)
        if a is None:
            return no_update
        view = tables.table_view(filtered_layers(a, filters, only=box_selection(selection)),
                                 query=query, sort_by=sort_by, page_size=1)
        if ctx.triggered_id == ids.EXPORT_JSON:
            return dcc.send_string(tables.to_json(view.rows), "quantlens-layers.json", type="application/json")
        return dcc.send_string(tables.to_csv(view.rows), "quantlens-layers.csv", type="text/csv")

    @app.callback(
        Output(ids.EXCLUDE_DOWNLOAD, "data"),
        Input(ids.EXPORT_EXCLUDE, "n_clicks"), State(ids.EXCLUDE_THRESHOLD, "value"),
        State(ids.ANALYSIS_STORE, "data"), State(ids.FILTER_STORE, "data"),
        prevent_initial_call=True,
    )
    def download_nodes_to_exclude(_n, threshold, store, filters):
        a = current_analysis(results, store)
        thr = make_filters(sqnr_below=threshold)["sqnr_below"]
        if a is None or thr is None:
            return no_update
        names = views.nodes_to_exclude(filtered_layers(a, filters, sqnr=False), thr)
        return dcc.send_string(json.dumps(names, indent=1), f"nodes_to_exclude_below_{thr:g}dB.json",
                               type="application/json")

    return {
        "download_table": download_table,
        "download_nodes_to_exclude": download_nodes_to_exclude,
    }
