"""Overview tab: headline cards, "What to do next", the range chart and the SQNR chart;
also the filter dropdowns' options (they depend on the loaded models)."""

from __future__ import annotations

from dash import Input, Output, no_update

from analysis import figures, views

from .. import components as c
from .. import ids
from .common import box_selection, current_analysis, filtered_layers, present_variants, shown_variants

_WAIT = "Choose an FP32 reference and at least one variant."


def register(app, results) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    @app.callback(
        Output(ids.OP_FILTER, "options", allow_duplicate=True),
        Output(ids.ROLE_FILTER, "options", allow_duplicate=True),
        Output(ids.VARIANT_FILTER, "options", allow_duplicate=True),
        Input(ids.ANALYSIS_STORE, "data"), prevent_initial_call=True,
    )
    def update_filter_options(store):
        a = current_analysis(results, store)
        if a is None:
            return no_update, no_update, no_update
        opts = views.filter_options(a.layers)
        return opts["ops"], opts["roles"], list(a.variants)

    @app.callback(
        Output(ids.SUMMARY_CARDS, "children"), Output(ids.NEXT_STEPS, "children"),
        Input(ids.ANALYSIS_STORE, "data"), Input(ids.FILTER_STORE, "data"),
    )
    def update_summary(store, filters):
        a = current_analysis(results, store)
        if a is None:
            return c.empty_state(_WAIT), None
        rows = filtered_layers(a, filters)
        shown = present_variants(rows, shown_variants(a, filters))
        cards = c.summary_cards(views.reference_summary(rows), views.summary(rows, shown))
        return cards, c.next_steps(views.next_steps(rows))

    @app.callback(
        Output(ids.RANGE_CHART, "figure"), Output(ids.RANGE_CHART, "style"),
        Input(ids.ANALYSIS_STORE, "data"), Input(ids.FILTER_STORE, "data"), Input(ids.SELECTION_STORE, "data"),
    )
    def update_range_chart(store, filters, selection):
        a = current_analysis(results, store)
        if a is None:
            fig = figures.empty_figure(_WAIT)
        else:
            fig = figures.layer_range_chart(filtered_layers(a, filters), variants=shown_variants(a, filters),
                                            selected=(selection or {}).get("layer"),
                                            highlighted=box_selection(selection), uirevision=store.get("ref"))
        return fig, c.graph_height(fig)

    @app.callback(
        Output(ids.SQNR_CHART, "figure"),
        Input(ids.ANALYSIS_STORE, "data"), Input(ids.FILTER_STORE, "data"), Input(ids.SELECTION_STORE, "data"),
    )
    def update_sqnr_chart(store, filters, selection):
        a = current_analysis(results, store)
        if a is None:
            return figures.empty_figure(_WAIT, height=340)
        return figures.sqnr_chart(filtered_layers(a, filters), variants=shown_variants(a, filters),
                                  threshold=(filters or {}).get("sqnr_below"),
                                  selected=(selection or {}).get("layer"),
                                  highlighted=box_selection(selection), uirevision=store.get("ref"),
                                  colors=views.variant_colors(a.variants))

    return {
        "update_filter_options": update_filter_options,
        "update_summary": update_summary,
        "update_range_chart": update_range_chart,
        "update_sqnr_chart": update_sqnr_chart,
    }
