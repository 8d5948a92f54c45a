"""Uploads: a file dropped on either zone is checked and kept (:mod:`dashapp.uploads`),
added to this session's list and to the model pickers, and chosen as the reference or
as one more variant (which starts the analysis job like any other choice)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from .. import ids
from ..components import fmt_bytes
from ..results import MAX_VARIANTS
from ..uploads import MAX_SESSION_UPLOADS, UploadError, dropdown_options, session_ids


def upload_error(message: str):
    """Why an upload was refused."""
    return dbc.Alert(message, color="danger", className="py-2 small mb-0", id=ids.UPLOAD_ERROR_ALERT,
                     dismissable=True)


def upload_ok(entry, slot: str):
    """What was kept, and how it is used (a warning when the slot looks wrong)."""
    role = "FP32 reference" if slot == "ref" else "variant"
    kids = [html.Span("Uploaded "), html.Span(entry.name, className="fw-bold text-break"),
            html.Span(f" ({fmt_bytes(entry.size)}) as the {role}.")]
    color = "success"
    if slot == "ref" and entry.quantized:
        kids.append(html.Div("It holds quantization operators: is it really the FP32 model?"))
        color = "warning"
    elif slot == "variant" and not entry.quantized:
        kids.append(html.Div("It holds no quantization operators: it will show no quantized tensors."))
        color = "warning"
    return dbc.Alert(kids, color=color, className="py-2 small mb-0", id=ids.UPLOAD_OK_ALERT, dismissable=True)


def register(app, results, store) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    catalogue = results.catalogue

    @app.callback(
        Output(ids.UPLOAD_STORE, "data"),
        Output(ids.REF_DROPDOWN, "options", allow_duplicate=True),
        Output(ids.VARIANT_DROPDOWN, "options", allow_duplicate=True),
        Output(ids.REF_DROPDOWN, "value", allow_duplicate=True),
        Output(ids.VARIANT_DROPDOWN, "value", allow_duplicate=True),
        Output(ids.UPLOAD_ALERT, "children"),
        Output(ids.UPLOAD_REF, "contents"), Output(ids.UPLOAD_VARIANT, "contents"),
        Input(ids.UPLOAD_REF, "contents"), Input(ids.UPLOAD_VARIANT, "contents"),
        State(ids.UPLOAD_REF, "filename"), State(ids.UPLOAD_VARIANT, "filename"),
        State(ids.UPLOAD_STORE, "data"), State(ids.REF_DROPDOWN, "value"), State(ids.VARIANT_DROPDOWN, "value"),
        prevent_initial_call=True,
    )
    def receive_upload(ref_contents, variant_contents, ref_name, variant_name, session, ref, variants):
        slot = "ref" if ctx.triggered_id == ids.UPLOAD_REF else "variant"
        contents, name = (ref_contents, ref_name) if slot == "ref" else (variant_contents, variant_name)
        if contents is None:  # our own reset of the zone
            raise PreventUpdate
        try:
            entry = store.save(contents, name)
        except UploadError as e:
            return (no_update, no_update, no_update, no_update, no_update, upload_error(str(e)), None, None)
        mine = [entry.id] + [i for i in session_ids(session) if i != entry.id and catalogue.get(i) is not None]
        mine = mine[:MAX_SESSION_UPLOADS]
        chosen = [v for v in (variants if isinstance(variants, list) else []) if isinstance(v, str)]
        if slot == "ref":
            new_ref, new_variants = entry.id, no_update
        else:
            new_ref = no_update
            new_variants = ([v for v in chosen if v != entry.id] + [entry.id])[-MAX_VARIANTS:]
        opts = dropdown_options(catalogue, mine + session_ids([ref]) + session_ids(chosen))
        return mine, opts, opts, new_ref, new_variants, upload_ok(entry, slot), None, None

    return {"receive_upload": receive_upload}
