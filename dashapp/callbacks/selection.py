"""The selection hub: every chart click, box/lasso selection, table cell, "show" button and
the URL's layer feed this one callback, the only writer of the selection store."""

from __future__ import annotations

from dash import ALL, Input, Output, State, ctx, no_update

from .. import ids
from ..components import selection_info
from ..state import reduce_selection

_CLICKS = {ids.RANGE_CHART, ids.SQNR_CHART}


def _apply(current, source, payload):
    new = reduce_selection(current, source, payload)
    return no_update if new == current else new


def register(app, results) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    @app.callback(
        Output(ids.SELECTION_STORE, "data"),
        Input(ids.RANGE_CHART, "clickData"), Input(ids.RANGE_CHART, "selectedData"),
        Input(ids.SQNR_CHART, "clickData"), Input(ids.SQNR_CHART, "selectedData"),
        Input(ids.LAYER_TABLE, "active_cell"), Input(ids.next_step_button(ALL), "n_clicks"),
        Input(ids.CLEAR_SELECTION, "n_clicks"), Input(ids.RESTORED_LAYER_STORE, "data"),
        State(ids.LAYER_TABLE, "data"), State(ids.SELECTION_STORE, "data"),
        prevent_initial_call=True,
    )
    def update_selection(_rc, _rs, _sc, _ss, cell, _steps, _clear, restored, rows, current):
        trig = ctx.triggered_id
        fired = {t["prop_id"]: t["value"] for t in ctx.triggered or []}
        clicks = [v for p, v in fired.items() if p.endswith(".clickData")]
        if clicks:  # a click may also (de)select the point: the click wins
            return _apply(current, "click", clicks[0])
        value = ctx.triggered[0]["value"] if ctx.triggered else None
        prop = ctx.triggered[0]["prop_id"].rsplit(".", 1)[-1] if ctx.triggered else ""
        if isinstance(trig, str) and trig in _CLICKS:
            event = ("click", value) if prop == "clickData" else ("select", value)
        elif trig == ids.LAYER_TABLE:
            event = ("table", (cell, rows))
        elif isinstance(trig, dict) and trig.get("type") == "next-step-button":
            if not value:
                return no_update
            event = ("key", trig.get("index"))
        elif trig == ids.CLEAR_SELECTION:
            event = ("clear", None)
        elif trig == ids.RESTORED_LAYER_STORE:
            event = ("key", (restored or {}).get("layer"))
        else:
            return no_update
        return _apply(current, *event)

    @app.callback(Output(ids.SELECTION_INFO, "children"), Input(ids.SELECTION_STORE, "data"))
    def update_selection_info(selection):
        return selection_info(selection)

    return {
        "update_selection": update_selection,
        "update_selection_info": update_selection_info,
    }
