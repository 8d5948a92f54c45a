"""Dash application factory; ``server`` is the WSGI entry point (placeholder page)."""

from dash import Dash, html

__all__ = ["create_app", "server"]


def create_app() -> Dash:
    """Build the Dash app."""
    app = Dash(__name__, title="QuantLens")
    app.layout = html.Div([html.H1("QuantLens"), html.P("Dashboard under construction.")])
    return app


app = create_app()
server = app.server
