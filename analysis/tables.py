"""The parameter table: server-side filter, sort and paging, JSON-safe rows, highlights, exports.

Pure functions over the layers table (see :data:`analysis.schema.LAYER_COLUMNS`); none
mutates its input.  :func:`parse_filter_query` reads the query language of Dash's
DataTable (``filter_action="custom"``), e.g. ``{sqnr_db} i< 30 && {variant} icontains "int8"``
(``i``/``s`` prefixes: case-insensitive/sensitive), without importing Dash.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .diagnostics import CLIP_FRAC
from .views import LOW_SQNR_DB, ROLE_RANK

__all__ = ["TABLE_COLUMNS", "FilterClause", "parse_filter_query", "apply_filter_query", "sort_rows",
           "table_rows", "page_of", "json_records", "table_styles", "table_tooltips", "TableView",
           "table_view", "to_csv", "to_json"]

#: Columns of the dashboard's table: (id, header, kind) with kind ``text``, ``int``,
#: ``float``, ``db`` or ``percent`` (the UI formats by kind).
TABLE_COLUMNS = [
    ("variant", "variant", "text"), ("fp32_name", "tensor", "text"), ("layer", "node", "text"),
    ("role", "role", "text"), ("status", "status", "text"), ("quant_op", "quant op", "text"),
    ("quant_dtype", "dtype", "text"), ("granularity", "granularity", "text"), ("axis", "axis", "int"),
    ("block_size", "block", "int"), ("fp32_shape", "shape", "text"), ("n_scales", "# scales", "int"),
    ("scale_min", "scale min", "float"), ("scale_max", "scale max", "float"),
    ("zero_point_min", "zp min", "int"), ("zero_point_max", "zp max", "int"),
    ("sqnr_db", "SQNR dB", "db"), ("mse", "MSE", "float"), ("max_abs_err", "max |err|", "float"),
    ("clipped_frac", "clipped", "percent"), ("levels_used", "levels used", "int"),
    ("levels_available", "of", "int"), ("diagnostics", "diagnostics", "text"),
    ("reason", "why no parameters", "text"),
]
_IDS = [c for c, _, _ in TABLE_COLUMNS]
_NUMERIC = {c for c, _, k in TABLE_COLUMNS if k != "text"}

_OPS = {"=": "eq", "eq": "eq", "!=": "ne", "ne": "ne", "<": "lt", "lt": "lt", "<=": "le", "le": "le",
        ">": "gt", "gt": "gt", ">=": "ge", "ge": "ge", "contains": "contains",
        "datestartswith": "startswith"}
_TOKEN = re.compile(r"""
    \s*(?:
      \{(?P<col>(?:[^}\\]|\\.)*)\}                  # {column}
    | (?P<q>["'`])(?P<str>(?:(?!(?P=q))[^\\]|\\.)*)(?P=q)  # quoted value
    | (?P<logic>&&|\|\||\band\b|\bor\b)
    | (?P<op>\b[is]?(?:>=|<=|!=|=|<|>)|>=|<=|!=|=|<|>|\b[is]?(?:eq|ne|lt|le|gt|ge|contains)\b|\bdatestartswith\b
         |\bis\s+not\s+(?:blank|nil)\b|\bis\s+(?:blank|nil)\b)
    | (?P<bare>[^\s{}"'`]+)
    )""", re.VERBOSE | re.IGNORECASE)


@dataclass(frozen=True)
class FilterClause:
    """One ``{column} operator value`` term: ``op`` is ``eq, ne, lt, le, gt, ge, contains,
    startswith, blank, notblank``; ``case`` is ``"i"`` (insensitive), ``"s"`` or ``""``."""

    column: str
    op: str
    value: object = None
    case: str = ""


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def parse_filter_query(query: str | None) -> list[FilterClause]:
    """Clauses of a DataTable filter query (terms joined by ``&&``).

    Parameters
    ----------
    query : str
        As DataTable sends it in ``filter_query``.

    Returns
    -------
    list of FilterClause

    Raises
    ------
    ValueError
        Unknown column, unsupported ``||``, or a term that is not ``{col} op value``;
        the message is meant for the user.

    Examples
    --------
    >>> parse_filter_query('{sqnr_db} < 30 && {variant} icontains "int8"')
    [FilterClause(column='sqnr_db', op='lt', value=30.0, case=''), FilterClause(column='variant', op='contains', value='int8', case='i')]
    """
    if not query or not query.strip():
        return []
    tokens = []
    pos = 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            if query[pos:].strip() == "":
                break
            raise ValueError(f"cannot read the filter near '{query[pos:pos + 20]}'")
        pos = m.end()
        if m.group("col") is not None:
            tokens.append(("col", _unescape(m.group("col"))))
        elif m.group("q") is not None:
            tokens.append(("val", _unescape(m.group("str"))))
        elif m.group("logic") is not None:
            if m.group("logic").lower() in ("||", "or"):
                raise ValueError("only && (and) between filter terms is supported")
            tokens.append(("and", None))
        elif m.group("op") is not None:
            tokens.append(("op", " ".join(m.group("op").lower().split())))
        else:
            tokens.append(("bare", m.group("bare")))
    clauses, term = [], []
    for tok in tokens + [("and", None)]:
        if tok[0] != "and":
            term.append(tok)
            continue
        if term:
            clauses.append(_clause(term))
        term = []
    return clauses


def _clause(term: list) -> FilterClause:
    if len(term) < 2 or term[0][0] != "col" or term[1][0] != "op":
        raise ValueError("each filter term must read {column} operator value")
    col = term[0][1]
    if col not in _IDS:
        raise ValueError(f"unknown column '{col}'")
    op = term[1][1]
    if op.startswith("is"):
        if len(term) != 2:
            raise ValueError(f"'{op}' takes no value")
        return FilterClause(col, "notblank" if "not" in op else "blank")
    if len(term) != 3 or term[2][0] not in ("val", "bare"):
        raise ValueError(f"filter on {col}: give one value after '{op}'")
    case = ""
    if op not in _OPS and op[:1] in ("i", "s") and op[1:] in _OPS:
        case, op = op[0], op[1:]
    value = term[2][1]
    if term[2][0] == "bare":
        try:
            value = float(value)
        except ValueError:
            pass
    return FilterClause(col, _OPS[op], value, case)


def _clause_mask(df: pd.DataFrame, c: FilterClause) -> pd.Series:
    s = df[c.column]
    if c.op == "blank":
        return s.isna() | (s.astype(str) == "")
    if c.op == "notblank":
        return ~(s.isna() | (s.astype(str) == ""))
    numeric = c.column in _NUMERIC and c.op not in ("contains", "startswith")
    if numeric:
        try:
            v = float(c.value)
        except (TypeError, ValueError):
            raise ValueError(f"{c.column} is a number column: '{c.value}' is not a number") from None
        x = pd.to_numeric(s, errors="coerce").astype(float)
    else:
        v = str(c.value)
        x = s.astype(object).where(s.notna(), None).map(lambda t: "" if t is None else str(t))
        if c.case != "s":  # DataTable's default here is case-insensitive
            v, x = v.lower(), x.str.lower()
    if c.op == "contains":
        return x.str.contains(v, regex=False)
    if c.op == "startswith":
        return x.str.startswith(v)
    cmp = {"eq": x == v, "ne": x != v, "lt": x < v, "le": x <= v, "gt": x > v, "ge": x >= v}[c.op]
    return pd.Series(cmp, index=df.index).fillna(False).astype(bool)


def apply_filter_query(df: pd.DataFrame, query: str | None) -> pd.DataFrame:
    """Rows of ``df`` matching a DataTable filter query (see :func:`parse_filter_query`).

    Raises
    ------
    ValueError
        The query cannot be read.
    """
    keep = pd.Series(True, index=df.index)
    for c in parse_filter_query(query):
        keep &= _clause_mask(df, c)
    return df[keep]


def sort_rows(df: pd.DataFrame, sort_by: Sequence[dict] | None) -> pd.DataFrame:
    """Rows sorted as DataTable's ``sort_by`` says (``[{"column_id", "direction"}]``); blanks last.

    Without ``sort_by``: graph order (``order``; a layer's weight before its bias), then variant.
    """
    spec = [s for s in (sort_by or []) if s.get("column_id") in df.columns]
    if not spec:
        if not {"order", "role", "fp32_name", "variant"} <= set(df.columns):
            return df
        # one stable lexsort over (order, role rank, name, variant), missing values last:
        # each text column ranked by pd.factorize(sort=True), i.e. Python string order
        def ranks(col):
            codes, uniq = pd.factorize(df[col], sort=True)
            return np.where(codes < 0, len(uniq), codes)
        rank = df["role"].map(ROLE_RANK).astype(float).fillna(9).to_numpy(float)
        order = pd.to_numeric(df["order"], errors="coerce").to_numpy(float)
        order = np.where(np.isnan(order), np.inf, order)
        return df.iloc[np.lexsort((ranks("variant"), ranks("fp32_name"), rank, order))]
    cols = [s["column_id"] for s in spec]
    asc = [s.get("direction", "asc") != "desc" for s in spec]
    return df.sort_values(cols, ascending=asc, kind="stable", na_position="last")


def table_rows(layers: pd.DataFrame, query: str | None = None,
               sort_by: Sequence[dict] | None = None) -> pd.DataFrame:
    """The table's rows after the filter query and the sort, table columns only."""
    df = sort_rows(apply_filter_query(layers, query), sort_by)
    return df[_IDS].reset_index(drop=True)


def page_of(rows: pd.DataFrame, key: str | None, page_size: int) -> int | None:
    """Page (0-based) holding the first row of layer ``key`` in ``rows``; ``None`` if absent."""
    if not key or rows.empty:
        return None
    hit = np.flatnonzero((rows["fp32_name"] == key).to_numpy(bool))
    return int(hit[0] // page_size) if hit.size else None


def _json_value(v):
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    return str(v)


def json_records(rows: pd.DataFrame) -> list[dict]:
    """Rows as JSON-safe dicts: NaN/NA -> ``None``, +-inf -> ``"inf"``/``"-inf"``."""
    cols = list(rows.columns)
    return [{c: _json_value(v) for c, v in zip(cols, tup)}
            for tup in rows.itertuples(index=False, name=None)]


def _flag(v) -> int:
    """Count/flag value of a cell as int (NA, None and NaN are 0)."""
    try:
        return 0 if v is None or pd.isna(v) else int(v)
    except (TypeError, ValueError):
        return 0


_BAD = {"backgroundColor": "#fadbd8", "color": "#922b21", "fontWeight": "bold"}
_WARN = {"backgroundColor": "#fdebd0", "color": "#7e5109"}
_SELECTED = {"backgroundColor": "#d6eaf8"}


def table_styles(page_rows: pd.DataFrame, layers: pd.DataFrame | None = None,
                 selected: str | None = None, low_sqnr_db: float = LOW_SQNR_DB) -> list[dict]:
    """``style_data_conditional`` rules for one page: one rule per flagged cell.

    Flags: SQNR below ``low_sqnr_db`` or not finite for a quantized tensor; clipping above
    :data:`analysis.diagnostics.CLIP_FRAC`; zero point outside the type; zero, negative or
    non-finite scales; NaN/Inf in the FP32 weights; rows without parameters (status cell);
    rows of the ``selected`` layer.  ``layers`` (the full table rows of the page, same order,
    with ``zp_out_of_range, scale_zero, scale_negative, scale_nonfinite, fp32_nonfinite``)
    supplies flags that are not table columns.
    """
    rules = []

    def cell(i, col, style):
        rules.append({"if": {"row_index": int(i), "column_id": col}, **style})

    extra = layers.reset_index(drop=True) if layers is not None else None
    for i, r in enumerate(page_rows.itertuples(index=False)):
        if selected and r.fp32_name == selected:
            rules.append({"if": {"row_index": i}, **_SELECTED})
        if r.status != "quantized":
            cell(i, "status", _WARN)
            cell(i, "reason", _WARN)
            continue
        s = r.sqnr_db
        if s is None or (isinstance(s, float) and (math.isnan(s) or s < low_sqnr_db)) or s == -math.inf:
            cell(i, "sqnr_db", _BAD)
        if r.clipped_frac is not None and not pd.isna(r.clipped_frac) and r.clipped_frac > CLIP_FRAC:
            cell(i, "clipped_frac", _BAD)
        if r.diagnostics:
            cell(i, "diagnostics", _WARN)
        if extra is None:
            continue
        e = extra.iloc[i]
        if _flag(e.get("zp_out_of_range")):
            cell(i, "zero_point_min", _BAD)
            cell(i, "zero_point_max", _BAD)
        bad_scale = _flag(e.get("scale_zero")) + _flag(e.get("scale_nonfinite")) + (
            _flag(e.get("scale_negative")) if e.get("quant_op") != "MatMulNBits" else 0)
        if bad_scale:
            cell(i, "scale_min", _BAD)
            cell(i, "scale_max", _BAD)
        if _flag(e.get("fp32_nonfinite")):
            cell(i, "fp32_name", _BAD)
    return rules


def table_tooltips(records: list[dict], columns: Sequence[str] = ("diagnostics", "reason")) -> list[dict]:
    """DataTable ``tooltip_data`` for one page: the full text of the long text columns."""
    return [{c: {"value": str(r[c]), "type": "text"} for c in columns if r.get(c)} for r in records]


@dataclass
class TableView:
    """One page of the table: ``records`` for DataTable ``data``, its styles, and counts."""

    records: list
    styles: list
    page: int
    page_count: int
    total: int
    error: str | None = None
    rows: pd.DataFrame = field(default=None, repr=False)


def table_view(layers: pd.DataFrame, *, query: str | None = None, sort_by: Sequence[dict] | None = None,
               page: int = 0, page_size: int = 20, selected: str | None = None,
               follow_selected: bool = False) -> TableView:
    """Filter, sort and cut one page of ``layers`` for the DataTable.

    Parameters
    ----------
    layers : pandas.DataFrame
        Layers table rows (already filtered by the dashboard's filters).
    query, sort_by :
        DataTable's ``filter_query`` and ``sort_by``; a query that cannot be read leaves
        the rows unfiltered and sets ``error``.
    page, page_size : int
        Page wanted (clamped to the pages there are).
    selected : str, optional
        Layer key to highlight.
    follow_selected : bool
        Go to the page of the first row of ``selected`` instead of ``page``.

    Returns
    -------
    TableView
    """
    error = None
    try:
        filtered = apply_filter_query(layers, query)
    except ValueError as e:
        filtered, error = layers, str(e)
    ordered = sort_rows(filtered, sort_by)
    rows = ordered[_IDS].reset_index(drop=True)
    size = max(int(page_size or 20), 1)
    count = max(1, math.ceil(len(rows) / size))
    if follow_selected:
        p = page_of(rows, selected, size)
        page = p if p is not None else page
    page = min(max(int(page or 0), 0), count - 1)
    part = rows.iloc[page * size:(page + 1) * size]
    extra = ordered.iloc[page * size:(page + 1) * size].reset_index(drop=True)
    return TableView(records=json_records(part), styles=table_styles(part, extra, selected),
                     page=page, page_count=count, total=len(rows), error=error, rows=rows)


def to_csv(rows: pd.DataFrame) -> str:
    """CSV text of table rows (infinite SQNR written as ``inf``)."""
    buf = io.StringIO()
    rows.to_csv(buf, index=False)
    return buf.getvalue()


def to_json(rows: pd.DataFrame) -> str:
    """JSON array of row objects (NaN -> null, +-inf -> "inf"/"-inf")."""
    return json.dumps(json_records(rows), indent=1)
