"""Distributions tab: histograms of the selected layer (FP32 and dequantized on the same
bins, with grid clip limits), integer codes, and the per-channel view.

The figures of a layer are memoized per process (:mod:`dashapp.figure_memo`); flipping the
log switch alone sends a :class:`dash.Patch` of the count axes' type.
"""

from __future__ import annotations

from dash import Input, Output, Patch, html, no_update

from analysis import figures, views

from .. import components as c
from .. import ids
from ..figure_memo import FigureMemo
from .common import current_analysis, fired, shown_variants

_PICK = "Click a layer in a chart or the table to see its distributions."
_LOG = f"{ids.LOG_SWITCH}.value"


def _log_patch(fig: dict, log: bool):
    if not fig.get("data"):
        return no_update
    p = Patch()
    for name in fig["layout"]:
        if name.startswith("yaxis"):
            p["layout"][name]["type"] = "log" if log else "linear"
    return p


def register(app, results, memo: FigureMemo | None = None) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    memo = memo or FigureMemo(per_analysis=16)

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

        def build():
            colors = views.variant_colors(a.variants)
            idx = a.index
            limits = views.grid_limits(a.layers, a.channels, key, variants, index=idx)
            value = figures.value_histogram_chart(a.histograms, key, variants=variants, limits=limits,
                                                  colors=colors, index=idx)
            code = figures.code_histogram_chart(a.histograms, key, variants=variants, colors=colors, index=idx)
            chan = figures.channel_chart(a.channels, key, variants=variants, colors=colors, index=idx)
            return value, c.limits_table(limits), code, chan
        value, limits_table, code, chan = memo.get(a, ("dist", key, tuple(variants)), build)
        trig = fired()
        if trig and trig <= {_LOG}:
            return (no_update, _log_patch(value, bool(log)), no_update, _log_patch(code, bool(log))) + (no_update,) * 4
        value, code = figures.set_log_axes(value, bool(log)), figures.set_log_axes(code, bool(log))
        title = [html.Span("Layer ", className="text-muted"), html.Span(key, className="font-monospace")]
        return (title, value, limits_table, code, chan,
                c.graph_height(value), c.graph_height(code), c.graph_height(chan))

    return {
        "update_distributions": update_distributions,
    }
