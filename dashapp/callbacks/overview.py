"""Overview tab: headline cards, "What to do next", the range chart (paged) and the SQNR
chart; also the filter dropdowns' options (they depend on the loaded models).

Figures are memoized per process (:mod:`dashapp.figure_memo`, keyed by the analysis, the
filters and the range chart's page) without the selection; when only the selection
changed, the charts get a :class:`dash.Patch` that moves the band / line and the
``selectedpoints`` instead of the whole figure.
"""

from __future__ import annotations

from dash import ClientsideFunction, Input, Output, Patch, State, ctx, no_update

from analysis import figures, views

from .. import components as c
from .. import ids
from ..config import range_page_size
from ..figure_memo import FigureMemo, filters_key
from .common import box_selection, current_analysis, filtered_layers, fired, present_variants, shown_variants

_WAIT = "Choose an FP32 reference and at least one variant."
_SEL = f"{ids.SELECTION_STORE}.data"
_PREV, _NEXT = f"{ids.RANGE_PREV}.n_clicks", f"{ids.RANGE_NEXT}.n_clicks"
_HIDDEN, _SHOWN = {"display": "none"}, {"display": "flex"}


def selection_patch(fig: dict, selection) -> Patch:
    """A Patch that moves ``fig``'s selection band/line and ``selectedpoints`` to ``selection``."""
    upd = figures.selection_update(fig, (selection or {}).get("layer"), box_selection(selection))
    p = Patch()
    p["layout"]["shapes"] = upd["shapes"]
    for i, sp in enumerate(upd["selectedpoints"]):
        p["data"][i]["selectedpoints"] = sp
    return p


def register(app, results, memo: FigureMemo | None = None) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    memo = memo or FigureMemo()
    rows_memo = FigureMemo(per_analysis=1)   # a filtered layers table is ~15 MB at 2,000 layers: keep one

    def rows_of(a, filters):
        return rows_memo.get(a, ("rows", filters_key(filters)), lambda: filtered_layers(a, filters))

    def keys_of(a, filters):
        def build():
            keys = views.layer_keys(rows_of(a, filters))
            return keys, {k: i for i, k in enumerate(keys)}
        return memo.get(a, ("keys", filters_key(filters)), build)

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

        def build():
            rows = rows_of(a, filters)
            shown = present_variants(rows, shown_variants(a, filters))
            cards = c.summary_cards(views.reference_summary(rows), views.summary(rows, shown))
            return cards, c.next_steps(views.next_steps(rows))
        return memo.get(a, ("summary", filters_key(filters)), build)

    @app.callback(
        Output(ids.RANGE_CHART, "figure"), Output(ids.RANGE_CHART, "style"),
        Output(ids.RANGE_PAGE_STORE, "data"), Output(ids.RANGE_PAGE_LABEL, "children"),
        Output(ids.RANGE_PAGER, "style"), Output(ids.RANGE_PREV, "disabled"), Output(ids.RANGE_NEXT, "disabled"),
        Input(ids.ANALYSIS_STORE, "data"), Input(ids.FILTER_STORE, "data"), Input(ids.SELECTION_STORE, "data"),
        Input(ids.RANGE_PREV, "n_clicks"), Input(ids.RANGE_NEXT, "n_clicks"),
        State(ids.RANGE_PAGE_STORE, "data"),
    )
    def update_range_chart(store, filters, selection, _prev=None, _next=None, page=0):
        a = current_analysis(results, store)
        trig = fired()
        if a is None:
            fig = figures.empty_figure(_WAIT)
            return fig, c.graph_height(fig), 0, "", _HIDDEN, True, True
        size = range_page_size()
        keys, pos = keys_of(a, filters)
        cur = page if isinstance(page, int) else 0
        layer = (selection or {}).get("layer")
        only_selection = bool(trig) and trig <= {_SEL}
        if trig & {_PREV, _NEXT}:            # the pager wins over the selection
            want = cur + (1 if ctx.triggered_id == ids.RANGE_NEXT else -1)
        elif layer in pos:                   # the page follows the selected layer
            want = pos[layer] // size
        else:
            want = cur if only_selection else 0
        pg = figures.range_page(len(keys), want, size)
        variants = shown_variants(a, filters)
        base = memo.get(a, ("range", filters_key(filters), pg["page"], size), lambda: figures.layer_range_chart(
            rows_of(a, filters), variants=variants, page=pg["page"], page_size=size, keys=keys,
            uirevision=f"{store.get('ref')}:{pg['page']}"))
        if only_selection and pg["page"] == cur:
            if not base.get("data"):
                return (no_update,) * 7
            return (selection_patch(base, selection),) + (no_update,) * 6
        fig = figures.with_selection(base, layer, box_selection(selection))
        many = pg["pages"] > 1
        return (fig, c.graph_height(fig), pg["page"], pg["label"] if many else "", _SHOWN if many else _HIDDEN,
                pg["page"] == 0, pg["page"] >= pg["pages"] - 1)

    # in the browser: keep the selected row in view when the page it is on opens
    app.clientside_callback(
        ClientsideFunction(namespace="quantlens", function_name="scrollToSelection"),
        Output(ids.RANGE_SCROLL_SINK, "data"),
        Input(ids.RANGE_CHART, "figure"), State(ids.RANGE_SCROLL_BOX, "id"), State(ids.RANGE_CHART, "id"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.SQNR_CHART, "figure"),
        Input(ids.ANALYSIS_STORE, "data"), Input(ids.FILTER_STORE, "data"), Input(ids.SELECTION_STORE, "data"),
    )
    def update_sqnr_chart(store, filters, selection):
        a = current_analysis(results, store)
        if a is None:
            return figures.empty_figure(_WAIT, height=340)
        base = memo.get(a, ("sqnr", filters_key(filters)), lambda: figures.sqnr_chart(
            rows_of(a, filters), variants=shown_variants(a, filters), threshold=(filters or {}).get("sqnr_below"),
            uirevision=store.get("ref"), colors=views.variant_colors(a.variants), keys=keys_of(a, filters)[0]))
        trig = fired()
        if trig and trig <= {_SEL}:
            return selection_patch(base, selection) if base.get("data") else no_update
        return figures.with_selection(base, (selection or {}).get("layer"), box_selection(selection))

    return {
        "update_filter_options": update_filter_options,
        "update_summary": update_summary,
        "update_range_chart": update_range_chart,
        "update_sqnr_chart": update_sqnr_chart,
    }
