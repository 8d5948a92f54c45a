"""Layers tab: the parameter table (server-side filter, sort, paging) and the callout for
a selected layer without quantization parameters."""

from __future__ import annotations

from dash import Input, Output, State, ctx

from analysis import tables, views

from .. import components as c
from .. import ids
from .common import box_selection, current_analysis, filtered_layers


def register(app, results) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    @app.callback(
        Output(ids.LAYER_TABLE, "data"), Output(ids.LAYER_TABLE, "page_count"),
        Output(ids.LAYER_TABLE, "page_current"), Output(ids.LAYER_TABLE, "style_data_conditional"),
        Output(ids.LAYER_TABLE, "tooltip_data"), Output(ids.TABLE_INFO, "children"),
        Input(ids.ANALYSIS_STORE, "data"), Input(ids.FILTER_STORE, "data"), Input(ids.SELECTION_STORE, "data"),
        Input(ids.LAYER_TABLE, "page_current"), Input(ids.LAYER_TABLE, "sort_by"),
        Input(ids.LAYER_TABLE, "filter_query"), State(ids.LAYER_TABLE, "page_size"),
    )
    def update_layer_table(store, filters, selection, page, sort_by, query, page_size):
        a = current_analysis(results, store)
        if a is None:
            return [], 1, 0, [], [], "No models analysed yet."
        sel = selection or {}
        rows = filtered_layers(a, filters, only=box_selection(sel))
        # paging, sorting or filtering the table keeps its page; anything else shows the selection
        own = all(p.startswith(ids.LAYER_TABLE + ".") for p in ctx.triggered_prop_ids)
        view = tables.table_view(rows, query=query, sort_by=sort_by, page=page or 0, page_size=page_size,
                                 selected=sel.get("layer"), follow_selected=not own)
        return (view.records, view.page_count, view.page, view.styles, tables.table_tooltips(view.records),
                c.table_info(view, box_selection(sel)))

    @app.callback(
        Output(ids.LAYER_CALLOUT, "children"),
        Input(ids.ANALYSIS_STORE, "data"), Input(ids.SELECTION_STORE, "data"), Input(ids.FILTER_STORE, "data"),
    )
    def update_layer_callout(store, selection, filters):
        a = current_analysis(results, store)
        key = (selection or {}).get("layer")
        if a is None or not key:
            return None
        return c.callout(views.callouts(filtered_layers(a, filters, sqnr=False, key=key), key), key)

    return {
        "update_layer_table": update_layer_table,
        "update_layer_callout": update_layer_callout,
    }
