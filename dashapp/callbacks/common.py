"""Helpers shared by the view callbacks: the current result and the filtered rows."""

from __future__ import annotations

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


def filtered_layers(a, filters, *, only=None, sqnr=True):
    """``a.layers`` through the page filters (and a box selection when ``only`` is given)."""
    f = filters or {}
    return views.filter_layers(a.layers, ops=f.get("ops") or (), roles=f.get("roles") or (),
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
