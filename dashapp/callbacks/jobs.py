"""The analysis job: a background callback (progress bar, cancel) that analyses the chosen
models (or loads them from the disk cache) and points the analysis store at the result."""

from __future__ import annotations

from dash import Input, Output

from analysis import QuantLensError, views

from .. import components as c
from .. import ids
from ..results import SelectionError
from .common import current_analysis


def register(app, results, manager) -> dict:
    """Attach this module's callbacks to ``app``; returns them by name (tests call them directly)."""
    @app.callback(
        Output(ids.ANALYSIS_STORE, "data"), Output(ids.JOB_STATUS, "children"),
        Input(ids.REF_DROPDOWN, "value"), Input(ids.VARIANT_DROPDOWN, "value"),
        background=True, manager=manager, interval=500, prevent_initial_call=True,
        progress=[Output(ids.JOB_PROGRESS, "value"), Output(ids.JOB_PROGRESS, "label")],
        progress_default=[0, ""],
        # the pickers stay usable: a new choice replaces the running job (Dash cancels it)
        running=[(Output(ids.JOB_BOX, "style"), {"display": "block"}, {"display": "none"})],
        cancel=[Input(ids.JOB_CANCEL, "n_clicks")],
    )
    def run_analysis(set_progress, ref, variants):
        try:
            ref_entry, entries = results.resolve(ref, variants)
        except SelectionError as e:
            return {"ref": ref, "variants": variants or [], "error": str(e)}, ""
        labels = [e.label for e in entries]

        def progress(done, total, label):
            set_progress((views.progress_fraction(labels, label, done, total), f"{label}: {done}/{total}"))

        chosen = [e.id for e in entries]
        try:
            a = results.run(ref_entry.id, chosen, progress=progress)
        except (QuantLensError, OSError) as e:
            return {"ref": ref, "variants": chosen, "error": f"Cannot analyse these models: {e}"}, ""
        problems = {k: list(v) for k, v in a.problems.items() if v}
        status = f"{len(entries)} variant(s) against {ref_entry.name}"
        return {"ref": ref_entry.id, "variants": chosen, "error": None, "problems": problems}, status

    @app.callback(
        Output(ids.JOB_STATUS, "children", allow_duplicate=True),
        Input(ids.JOB_CANCEL, "n_clicks"), prevent_initial_call=True,
    )
    def report_cancelled(_):
        return "Analysis cancelled. Change the model choice to start it again."

    @app.callback(
        Output(ids.MODEL_BADGES, "children"), Output(ids.ANALYSIS_ALERT, "children"),
        Input(ids.ANALYSIS_STORE, "data"),
    )
    def update_model_status(store):
        if not isinstance(store, dict):
            return None, None
        if store.get("error"):
            return None, c.analysis_error(store["error"])
        a = current_analysis(results, store)
        if a is None:
            return None, c.analysis_error("The analysis result is not available; choose the models again.")
        ref = results.catalogue.get(store.get("ref"))
        badges = c.model_badges(views.match_report(a.layers, a.variants), ref.name if ref else "the reference")
        return badges, c.problems_alert(store.get("problems") or {})

    return {
        "run_analysis": run_analysis,
        "report_cancelled": report_cancelled,
        "update_model_status": update_model_status,
    }
