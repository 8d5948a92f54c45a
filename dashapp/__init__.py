"""QuantLens dashboard (Plotly Dash): layout and callbacks over :mod:`analysis` tables."""
