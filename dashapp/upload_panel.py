"""The "Upload" panel of the sidebar: one drop zone for an FP32 reference, one for a
quantized variant, and the message area of the last upload (filled by
:mod:`dashapp.callbacks.uploads`)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from . import components as c
from . import ids

_ZONE_STYLE = {"border": "1px dashed #95a5a6", "borderRadius": "4px", "cursor": "pointer",
               "padding": "6px", "textAlign": "center"}


def _zone(zone_id: str, what: str, max_bytes: int):
    return dcc.Upload(
        id=zone_id, multiple=False, accept=".onnx", max_size=max_bytes,
        children=html.Div([html.Span("Drop or "), html.Span("choose", className="text-primary text-decoration-underline"),
                           html.Span(f" {what}")]),
        className="small mb-2", style=_ZONE_STYLE,
        style_active={**_ZONE_STYLE, "borderColor": "#18bc9c", "backgroundColor": "#eafaf6"},
        style_reject={**_ZONE_STYLE, "borderColor": "#e74c3c", "backgroundColor": "#fdedec"},
    )


def upload_panel(max_bytes: int, ttl_hours: float):
    """The panel; ``max_bytes`` is the browser-side size limit (the server enforces its own)."""
    mb = max_bytes / 2**20
    return c.panel("Upload models", [
        _zone(ids.UPLOAD_REF, "an FP32 model (.onnx)", max_bytes),
        _zone(ids.UPLOAD_VARIANT, "a quantized variant (.onnx)", max_bytes),
        dbc.FormText(f"Self-contained .onnx files up to {mb:.0f} MB (models with external data "
                     f"belong in the model folder). Kept {ttl_hours:g} h, visible only through "
                     "this session or its link.", className="d-block mb-1"),
        dcc.Loading(html.Div(id=ids.UPLOAD_ALERT), delay_show=200),
    ])
