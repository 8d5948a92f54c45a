"""URL <-> controls: restore the view from the link on load, write it back on every change."""

from __future__ import annotations

from dash import Input, Output, State, no_update

from .. import components as c
from .. import ids
from ..state import decode_url, encode_url, make_filters
from ..uploads import dropdown_options, missing_upload_note, session_ids


def register(app, results) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    catalogue = results.catalogue

    @app.callback(
        Output(ids.REF_DROPDOWN, "value"), Output(ids.VARIANT_DROPDOWN, "value"),
        Output(ids.TABS, "active_tab"), Output(ids.OP_FILTER, "value"), Output(ids.ROLE_FILTER, "value"),
        Output(ids.VARIANT_FILTER, "value"), Output(ids.SEARCH_FILTER, "value"),
        Output(ids.SQNR_FILTER, "value"), Output(ids.RESTORED_LAYER_STORE, "data"),
        Output(ids.OP_FILTER, "options"), Output(ids.ROLE_FILTER, "options"),
        Output(ids.VARIANT_FILTER, "options"), Output(ids.URL_ALERT, "children"),
        Output(ids.REF_DROPDOWN, "options"), Output(ids.VARIANT_DROPDOWN, "options"),
        Input(ids.URL, "search"), State(ids.UPLOAD_STORE, "data"),
    )
    def restore_view_from_url(search, session_uploads=None):
        s = decode_url(search)
        ref, variants, problems = s["ref"], s["variants"], []
        if ref and catalogue.get(ref) is None:
            problems.append("The link names a reference model this server does not have; choose one from the list.")
            ref = None
        elif not ref:
            guess = catalogue.reference_guess()
            ref = guess.id if guess else None
        known = [v for v in variants if catalogue.get(v) is not None]
        if len(known) < len(variants):
            problems.append(f"{len(variants) - len(known)} variant(s) named in the link are not on this server.")
        if not variants and ref:
            known = [e.id for e in catalogue.default_variants(catalogue.get(ref))]
        expired = missing_upload_note(catalogue, [s["ref"], *variants])
        if expired:
            problems.append(expired)
        # the dropdowns drop values missing from their options: offer the link's values
        # until the analysis fills in the full lists
        # uploads are offered to the session that made them and to whoever holds their link;
        # options and values arrive together, so the pickers keep the uploaded ids
        models = dropdown_options(catalogue, session_ids([ref, *known]) + session_ids(session_uploads))
        return (ref, known, s["tab"], s["ops"], s["roles"], s["filter_variants"], s["search"],
                s["sqnr_below"], {"layer": s["layer"]}, s["ops"], s["roles"], s["filter_variants"],
                c.url_problems(problems), models, models)

    @app.callback(
        Output(ids.FILTER_STORE, "data"),
        Input(ids.OP_FILTER, "value"), Input(ids.ROLE_FILTER, "value"), Input(ids.VARIANT_FILTER, "value"),
        Input(ids.SEARCH_FILTER, "value"), Input(ids.SQNR_FILTER, "value"),
    )
    def update_filter_store(ops, roles, variants, search, sqnr):
        return make_filters(ops, roles, variants, search, sqnr)

    @app.callback(
        Output(ids.OP_FILTER, "value", allow_duplicate=True),
        Output(ids.ROLE_FILTER, "value", allow_duplicate=True),
        Output(ids.VARIANT_FILTER, "value", allow_duplicate=True),
        Output(ids.SEARCH_FILTER, "value", allow_duplicate=True),
        Output(ids.SQNR_FILTER, "value", allow_duplicate=True),
        Input(ids.RESET_FILTERS, "n_clicks"), prevent_initial_call=True,
    )
    def reset_filters(_):
        return [], [], [], "", None

    @app.callback(
        Output(ids.URL_WRITER, "search"),
        Input(ids.REF_DROPDOWN, "value"), Input(ids.VARIANT_DROPDOWN, "value"), Input(ids.TABS, "active_tab"),
        Input(ids.FILTER_STORE, "data"), Input(ids.SELECTION_STORE, "data"),
        State(ids.URL_WRITER, "search"), prevent_initial_call=True,
    )
    def write_view_to_url(ref, variants, tab, filters, selection, old):
        if not ref:  # not restored from the URL yet
            return no_update
        f = filters or {}
        new = encode_url(ref=ref, variants=variants or [], layer=(selection or {}).get("layer"), tab=tab,
                         ops=f.get("ops") or (), roles=f.get("roles") or (),
                         filter_variants=f.get("variants") or (), search=f.get("search") or "",
                         sqnr_below=f.get("sqnr_below"))
        return no_update if new == (old or "") else new

    return {
        "restore_view_from_url": restore_view_from_url,
        "update_filter_store": update_filter_store,
        "reset_filters": reset_filters,
        "write_view_to_url": write_view_to_url,
    }
