"""Distributions tab: histograms of the selected layer (FP32 and dequantized on the same
bins, with grid clip limits), integer codes, and the per-channel view."""

from __future__ import annotations

from dash import Input, Output, html

from analysis import figures, views

from .. import components as c
from .. import ids
from .common import current_analysis, shown_variants

_PICK = "Click a layer in a chart or the table to see its distributions."


def register(app, results) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    @app.callback(
        Output(ids.DIST_TITLE, "children"), Output(ids.VALUE_HIST, "figure"), Output(ids.GRID_LIMITS, "children"),
        Output(ids.CODE_HIST, "figure"), Output(ids.CHANNEL_CHART, "figure"),
        Output(ids.VALUE_HIST, "style"), Output(ids.CODE_HIST, "style"), Output(ids.CHANNEL_CHART, "style"),
        Input(ids.ANALYSIS_STORE, "data"), Input(ids.FILTER_STORE, "data"), Input(ids.SELECTION_STORE, "data"),
        Input(ids.LOG_SWITCH, "value"),
    )
    def update_distributions(store, filters, selection, log):
        a = current_analysis(results, store)
        key = (selection or {}).get("layer")
        if a is None or not key:
            empty = figures.empty_figure(_PICK, height=160)
            return (c.empty_state(_PICK), empty, None, empty, empty) + (c.graph_height(empty),) * 3
        variants = shown_variants(a, filters)
        colors = views.variant_colors(a.variants)
        limits = views.grid_limits(a.layers, a.channels, key, variants)
        title = [html.Span("Layer ", className="text-muted"), html.Span(key, className="font-monospace")]
        value = figures.value_histogram_chart(a.histograms, key, variants=variants, limits=limits, log=bool(log),
                                              colors=colors)
        code = figures.code_histogram_chart(a.histograms, key, variants=variants, log=bool(log), colors=colors)
        chan = figures.channel_chart(a.channels, key, variants=variants, colors=colors)
        return (title, value, c.limits_table(limits), code, chan,
                c.graph_height(value), c.graph_height(code), c.graph_height(chan))

    return {
        "update_distributions": update_distributions,
    }
