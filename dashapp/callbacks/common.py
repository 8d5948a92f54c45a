"""Helpers shared by the view callbacks: the current result and the filtered rows."""

from __future__ import annotations

from dash import ctx

from analysis import QuantLensError, views

from ..results import Results, SelectionError


def current_analysis(results: Results, store):
    """The analysis the analysis store points at, or ``None`` (no choice yet, or an error)."""
    if not isinstance(store, dict) or store.get("error") or not store.get("ref"):
        return None
    try:
        return results.get(store.get("ref"), store.get("variants") or [])
    except (SelectionError, QuantLensError, OSError):
        return None


def shown_variants(a, filters) -> list[str]:
    """Variants of ``a`` that the variant filter keeps, in the chosen order."""
    wanted = (filters or {}).get("variants") or []
    return [v for v in a.variants if not wanted or v in wanted]


def filtered_layers(a, filters, *, only=None, sqnr=True, key=None):
    """``a.layers`` through the page filters (and a box selection when ``only`` is given);
    with ``key``, only that layer's rows (looked up through ``a.index``, then filtered: every
    filter is per row, so this equals filtering everything and then taking the key)."""
    f = filters or {}
    rows = a.layers if key is None else views.layer_rows(a.layers, key, index=a.index)
    return views.filter_layers(rows, ops=f.get("ops") or (), roles=f.get("roles") or (),
                               variants=shown_variants(a, f), search=f.get("search") or "",
                               sqnr_below=f.get("sqnr_below") if sqnr else None, only=only)


def box_selection(selection):
    """The box/lasso-selected layer keys, or ``None`` when nothing is box-selected."""
    layers = (selection or {}).get("layers") or []
    return layers or None


def present_variants(rows, variants) -> list[str]:
    """``variants`` that still have rows after filtering (cards are not shown for the others)."""
    have = set(rows["variant"])
    return [v for v in variants if v in have]


def fired() -> set[str]:
    """Prop ids that triggered the running callback (empty outside a callback: full update)."""
    try:
        return {t["prop_id"] for t in ctx.triggered or [] if t.get("prop_id") not in (None, ".")}
    except Exception:  # noqa: BLE001 - called as a plain function (tests): no callback context
        return set()
