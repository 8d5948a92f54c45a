"""Slices and aggregates of the precomputed tables, for the dashboard and notebooks.

Every function here is pure: it reads the DataFrames :func:`analysis.analyze`
returns (``layers``, ``channels``, ``histograms``) and returns new objects; it
never mutates its input, does no I/O and holds no state.  The dashboard's
callbacks only call these (and :mod:`analysis.figures`, :mod:`analysis.tables`).

The layer key that links every view is ``fp32_name`` (the FP32 initializer).
"""

from __future__ import annotations

import math
import threading
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "LOW_SQNR_DB", "MATCH_WARN_FRACTION", "TYPE_RANGES", "FP32_LABEL", "ROLE_RANK",
    "filter_layers", "layer_keys", "range_rows", "sqnr_rows", "summary", "reference_summary",
    "match_report", "next_steps", "nodes_to_exclude", "layer_rows", "callouts", "grid_limits",
    "histogram_rows", "channel_rows", "filter_options", "progress_fraction", "variant_colors",
    "TableIndex",
]

#: SQNR (dB) under which a quantized tensor is called low (tables, next steps).
LOW_SQNR_DB = 30.0
#: A variant matching fewer than this share of the FP32 weights/biases is flagged.
MATCH_WARN_FRACTION = 0.5
#: Name of the reference in the range chart.
FP32_LABEL = "FP32"
#: Integer range of each storage type (the dequantization grid spans these codes).
TYPE_RANGES = {
    "int4": (-8, 7), "uint4": (0, 15), "int8": (-128, 127), "uint8": (0, 255),
    "int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-2**31, 2**31 - 1),
    "uint2": (0, 3), "int2": (-2, 1),
}
#: Sort rank of each role: a layer's weight comes before its bias.
ROLE_RANK = {"weight": 0, "bias": 1, "gather_table": 2, "norm_scale": 3, "elementwise": 4, "other": 5}
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#17becf", "#bcbd22", "#7f7f7f"]


def _codes(s: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 for missing) and the values they stand for, of any column."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy(np.int64), s.cat.categories
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    return codes.astype(np.int64), pd.Index(uniques)


class _KeyIndex:
    """Row positions of a table by a tuple of key columns, from runs of equal keys.

    The key columns are coded (categorical codes, else ``pd.factorize``); the codes combine
    into one integer per row, rows are cut into runs of equal keys (the tables are written
    tensor by tensor, so there are few runs) and the runs sorted by key.  A lookup is a
    binary search; the positions come back in table order.  A trailing key may be ``None``:
    every value of that column.
    """

    def __init__(self, df: pd.DataFrame, columns: Sequence[str]):
        self.n = len(df)
        self.values, combined = [], np.zeros(len(df), np.int64)
        self.radix = []
        for c in columns:
            codes, uniq = _codes(df[c])
            self.values.append(uniq)
            r = len(uniq) + 1
            self.radix.append(r)
            combined = combined * r + (codes + 1)
        starts = np.flatnonzero(np.r_[True, combined[1:] != combined[:-1]]) if len(df) else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], len(df)].astype(np.int64)
        keys = combined[starts]
        order = np.argsort(keys, kind="stable")
        self.keys, self.starts, self.ends = keys[order], starts[order], ends[order]

    def _code(self, i: int, value) -> int | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        j = self.values[i].get_indexer([value])[0]
        return None if j < 0 else int(j) + 1

    def positions(self, *key) -> np.ndarray:
        """Row positions (ascending) whose key columns equal ``key`` (``None`` at the end: any)."""
        lo = 0
        for i, v in enumerate(key):
            if v is None:
                break
            c = self._code(i, v)
            if c is None:
                return np.zeros(0, np.int64)
            lo = lo * self.radix[i] + c
        else:
            i = len(key)
        span = 1
        for r in self.radix[i:]:
            lo, span = lo * r, span * r
        a, b = np.searchsorted(self.keys, [lo, lo + span])
        if b - a == 1:
            return np.arange(self.starts[a], self.ends[a])
        if b == a:
            return np.zeros(0, np.int64)
        return np.sort(np.concatenate([np.arange(s0, e0) for s0, e0 in zip(self.starts[a:b], self.ends[a:b])]))


class TableIndex:
    """Lookups of row positions by layer key over one analysis's three tables.

    Built lazily per table, once, under a lock (safe to share between threads); it refers
    to the frames it indexes and is used by a view only when handed the very same frame
    (``index.histograms is histograms``), so a filtered copy is never read through it.
    :attr:`analysis.Analysis.index` keeps one per analysis.

    * ``histograms``: by ``(fp32_name, kind, variant)``;
    * ``channels``: by ``(fp32_name, variant)``;
    * ``layers``: by ``fp32_name``.

    Examples
    --------
    >>> views.histogram_rows(a.histograms, key, "dq", a.variants, index=a.index)  # doctest: +SKIP
    """

    _COLUMNS = {"layers": ("fp32_name",), "channels": ("fp32_name", "variant"),
                "histograms": ("fp32_name", "kind", "variant")}

    def __init__(self, layers: pd.DataFrame, channels: pd.DataFrame, histograms: pd.DataFrame):
        self.layers, self.channels, self.histograms = layers, channels, histograms
        self._built: dict[str, _KeyIndex] = {}
        self._lock = threading.Lock()

    def covers(self, name: str, df: pd.DataFrame) -> bool:
        """True when ``df`` is the very frame this index was built for (table ``name``)."""
        return getattr(self, name) is df and len(df) == self._get(name).n

    def _get(self, name: str) -> _KeyIndex:
        with self._lock:
            if name not in self._built:
                self._built[name] = _KeyIndex(getattr(self, name), self._COLUMNS[name])
            return self._built[name]

    def positions(self, name: str, *key) -> np.ndarray:
        """Row positions of table ``name`` (ascending) whose key columns equal ``key``;
        trailing ``None``: any value."""
        return self._get(name).positions(*key)


def _usable(index, name: str, df: pd.DataFrame) -> bool:
    return index is not None and index.covers(name, df)


def _plain_text(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with categorical columns as the ``str`` dtype (slices keep the dtypes they had
    before the tables became categorical)."""
    cat = [c for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)]
    if not cat:
        return df
    return df.assign(**{c: pd.array(np.asarray(df[c], dtype=object), dtype="str") for c in cat})


def _keyed(layers: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry a layer key (drops quantized tensors with no FP32 original)."""
    return layers[layers["fp32_name"].notna() & (layers["fp32_name"].astype(str) != "")]


def _split_ops(s) -> list[str]:
    return [o for o in str(s).split(",") if o] if isinstance(s, str) else []


def _per_value(s: pd.Series, fn, missing: bool = False) -> np.ndarray:
    """``fn`` of every cell as a bool array, calling ``fn`` once per distinct value."""
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    table = np.array([bool(fn(u)) for u in uniques] + [missing], dtype=bool)
    return table[codes]


def filter_layers(layers: pd.DataFrame, *, ops: Sequence[str] = (), roles: Sequence[str] = (),
                  variants: Sequence[str] = (), search: str = "", sqnr_below: float | None = None,
                  only: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of ``layers`` that pass the dashboard's filters.

    Parameters
    ----------
    layers : pandas.DataFrame
        The layers table (columns ``variant, fp32_name, layer, role, consumer_ops, sqnr_db``).
    ops : sequence of str
        Keep rows whose FP32 consumer op types (``consumer_ops``) include one of these.
    roles : sequence of str
        Keep rows with one of these ``role`` values.
    variants : sequence of str
        Keep rows of these variant labels.
    search : str
        Case-insensitive substring of ``fp32_name``, ``layer`` or ``quant_tensor``.
    sqnr_below : float, optional
        Keep quantized rows whose ``sqnr_db`` is below this (rows without an SQNR drop out).
    only : sequence of str, optional
        Keep these layer keys (``fp32_name``), e.g. a box selection.

    Returns
    -------
    pandas.DataFrame
        A filtered copy; same columns.

    Examples
    --------
    >>> filter_layers(a.layers, roles=["weight"], sqnr_below=35)  # doctest: +SKIP
    """
    keep = np.ones(len(layers), dtype=bool)
    if ops:
        wanted = set(ops)
        keep &= _per_value(layers["consumer_ops"], lambda s: wanted.intersection(_split_ops(s)))
    if roles:
        keep &= layers["role"].isin(list(roles)).to_numpy(bool)
    if variants:
        keep &= layers["variant"].isin(list(variants)).to_numpy(bool)
    if search and search.strip():
        needle = search.strip().lower()
        hit = np.zeros(len(layers), dtype=bool)
        for col in ("fp32_name", "layer", "quant_tensor"):  # a missing cell reads as ""
            hit |= _per_value(layers[col], lambda u: needle in str(u).lower())
        keep &= hit
    if sqnr_below is not None and math.isfinite(float(sqnr_below)):
        s = pd.to_numeric(layers["sqnr_db"], errors="coerce").to_numpy(float)
        with np.errstate(invalid="ignore"):
            keep &= (layers["status"] == "quantized").to_numpy(bool) & (s < float(sqnr_below))
    if only is not None:
        keep &= layers["fp32_name"].isin(list(only)).to_numpy(bool)
    return layers[keep].copy()


def layer_keys(layers: pd.DataFrame) -> list[str]:
    """Layer keys (``fp32_name``) in graph order: ``order``, then weight before bias, then name."""
    k = _keyed(layers)
    if k.empty:
        return []
    codes, names = pd.factorize(k["fp32_name"])
    n = len(names)
    order = pd.to_numeric(k["order"], errors="coerce").to_numpy(float)
    lowest = np.full(n, np.inf)
    np.fmin.at(lowest, codes, order)  # the smallest order of each key (NaN skipped)
    lowest[np.isinf(lowest)] = 10**9
    role = k["role"].to_numpy(dtype=object)
    has = np.array([r is not None and r == r for r in role], dtype=bool)  # first non-missing role
    first_role = np.full(n, None, dtype=object)
    idx = np.flatnonzero(has)
    kc, at = np.unique(codes[idx], return_index=True)
    first_role[kc] = role[idx[at]]
    rank = np.array([ROLE_RANK.get(r, 9) if r is not None else 9 for r in first_role], float)
    lexical = pd.factorize(np.asarray(names, dtype=object), sort=True)[0]
    return [names[i] for i in np.lexsort((lexical, rank, lowest))]


def range_rows(layers: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """Tidy [min, max] rows of the range chart: the FP32 weights and each variant.

    Parameters
    ----------
    layers : pandas.DataFrame
        The (possibly filtered) layers table.
    variants : sequence of str
        Variant labels, in column order.

    Returns
    -------
    pandas.DataFrame
        Columns ``model`` (:data:`FP32_LABEL` or a variant), ``fp32_name``, ``layer``, ``role``,
        ``status``, ``reason``, ``lo``, ``hi``, ``absmax``, ``quantized`` (bool).  FP32 rows use
        ``fp32_min/fp32_max``; quantized variant rows ``dq_min/dq_max``; a variant's weight left
        without parameters keeps the FP32 range with ``quantized`` False.  Rows follow
        :func:`layer_keys` order.
    """
    k = _keyed(layers)
    keys = layer_keys(k)
    cols = ["model", "fp32_name", "layer", "role", "status", "reason", "lo", "hi", "absmax", "quantized"]
    if not keys:
        return pd.DataFrame(columns=cols)
    ref = k.drop_duplicates("fp32_name").set_index("fp32_name").loc[keys]
    parts = [pd.DataFrame({
        "model": FP32_LABEL, "fp32_name": keys, "layer": ref["layer"].to_numpy(),
        "role": ref["role"].to_numpy(), "status": "reference", "reason": None,
        "lo": ref["fp32_min"].to_numpy(float), "hi": ref["fp32_max"].to_numpy(float),
        "quantized": False})]
    pos = {n: i for i, n in enumerate(keys)}
    for v in variants:
        rows = k[k["variant"] == v].drop_duplicates("fp32_name")
        if rows.empty:
            continue
        q = rows["status"] == "quantized"
        parts.append(pd.DataFrame({
            "model": v, "fp32_name": rows["fp32_name"].to_numpy(), "layer": rows["layer"].to_numpy(),
            "role": rows["role"].to_numpy(), "status": rows["status"].to_numpy(),
            "reason": rows["reason"].to_numpy(),
            "lo": np.where(q, rows["dq_min"].to_numpy(float), rows["fp32_min"].to_numpy(float)),
            "hi": np.where(q, rows["dq_max"].to_numpy(float), rows["fp32_max"].to_numpy(float)),
            "quantized": q.to_numpy(bool)}).assign(
                _pos=lambda d: d["fp32_name"].map(pos)).sort_values("_pos").drop(columns="_pos"))
    out = pd.concat(parts, ignore_index=True)
    out["absmax"] = np.fmax(np.abs(out["lo"].to_numpy(float)), np.abs(out["hi"].to_numpy(float)))
    return out[cols]


def sqnr_rows(layers: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """Per-layer SQNR of each variant's quantized tensors, in graph order.

    Returns
    -------
    pandas.DataFrame
        Columns ``variant, fp32_name, layer, role, sqnr_db, exact`` (``exact`` marks an
        infinite SQNR: the grid reproduces the weights exactly).
    """
    k = _keyed(layers)
    keys = layer_keys(k)
    pos = {n: i for i, n in enumerate(keys)}
    q = k[(k["status"] == "quantized") & k["variant"].isin(list(variants))]
    q = q.drop_duplicates(["variant", "fp32_name"])
    s = pd.to_numeric(q["sqnr_db"], errors="coerce").to_numpy(float)
    out = pd.DataFrame({"variant": q["variant"].to_numpy(), "fp32_name": q["fp32_name"].to_numpy(),
                        "layer": q["layer"].to_numpy(), "role": q["role"].to_numpy(),
                        "sqnr_db": s, "exact": np.isposinf(s),
                        "_pos": q["fp32_name"].map(pos).to_numpy()})
    return out.sort_values(["_pos"], kind="stable").drop(columns="_pos").reset_index(drop=True)


def _bytes(series) -> int:
    return int(pd.to_numeric(series, errors="coerce").fillna(0).sum())


def reference_summary(layers: pd.DataFrame) -> dict:
    """Headline numbers of the FP32 reference.

    Returns
    -------
    dict
        ``tensors`` (FP32 constants analysed), ``weights`` (of role weight), ``nodes``
        (distinct first consumers), ``fp32_bytes``.
    """
    k = _keyed(layers).drop_duplicates("fp32_name")
    return {"tensors": int(len(k)), "weights": int((k["role"] == "weight").sum()),
            "nodes": int(k["layer"].nunique()), "fp32_bytes": _bytes(k["fp32_bytes"])}


def summary(layers: pd.DataFrame, variants: Sequence[str]) -> list[dict]:
    """Headline numbers per variant.

    Returns
    -------
    list of dict
        One per variant with ``variant, tensors, quantized, coverage`` (share of FP32
        tensors with quantization parameters), ``coverage_bytes`` (same, by FP32 bytes),
        ``median_sqnr_db`` (over quantized tensors; NaN if none), ``worst_layer``,
        ``worst_sqnr_db``, ``fp32_bytes`` (all FP32 tensors) and ``variant_bytes`` (stored
        codes of quantized tensors + FP32 bytes of those left in float; parameters not counted).
    """
    k = _keyed(layers)
    var = k["variant"].to_numpy(dtype=object)
    names = pd.factorize(k["fp32_name"])[0]
    quant = (k["status"] == "quantized").to_numpy(bool)
    fbytes = np.nan_to_num(pd.to_numeric(k["fp32_bytes"], errors="coerce").to_numpy(float))
    qbytes = np.nan_to_num(pd.to_numeric(k["quant_bytes"], errors="coerce").to_numpy(float))
    sqnr = pd.to_numeric(k["sqnr_db"], errors="coerce").to_numpy(float)
    key_of = k["fp32_name"].to_numpy(dtype=object)
    out = []
    for v in variants:
        rows = np.flatnonzero(var == v)
        _, first = np.unique(names[rows], return_index=True)
        per = rows[first]  # first row of each key
        qrows = rows[quant[rows]]
        is_q = np.isin(names[per], names[qrows])
        total_bytes = int(fbytes[per].sum())
        qbytes_fp32 = int(fbytes[per][is_q].sum())
        s = sqnr[qrows]
        ok = ~np.isnan(s)
        worst = qrows[int(np.nanargmin(s))] if ok.any() else None  # first of the lowest, as idxmin
        nq = int(is_q.sum())
        out.append({
            "variant": v, "tensors": int(len(per)), "quantized": nq,
            "coverage": nq / len(per) if len(per) else math.nan,
            "coverage_bytes": qbytes_fp32 / total_bytes if total_bytes else math.nan,
            "median_sqnr_db": float(np.median(s[ok])) if ok.any() else math.nan,
            "worst_layer": None if worst is None else key_of[worst],
            "worst_sqnr_db": math.nan if worst is None else float(sqnr[worst]),
            "fp32_bytes": total_bytes,
            "variant_bytes": int(qbytes[qrows].sum()) + int(fbytes[per][~is_q].sum()),
        })
    return out


def match_report(layers: pd.DataFrame, variants: Sequence[str],
                 warn_below: float = MATCH_WARN_FRACTION) -> dict[str, dict]:
    """How much of the FP32 model each variant corresponds to.

    A weight or bias counts as matched when the variant holds it quantized or still in
    float (``status`` other than ``not_matched``).

    Returns
    -------
    dict
        Variant -> ``{"matched", "total", "fraction", "unmatched_quant", "suspicious"}``;
        ``suspicious`` is True when ``fraction < warn_below``: the variant is probably not a
        quantization of this FP32 model.
    """
    out = {}
    for v in variants:
        rows = layers[layers["variant"] == v]
        wb = _keyed(rows)
        wb = wb[wb["role"].isin(["weight", "bias"])].drop_duplicates("fp32_name", keep="first")
        # a tensor matched by any row of this variant counts once
        matched_names = set(_keyed(rows).loc[lambda d: d["status"] != "not_matched", "fp32_name"])
        total = int(len(wb))
        matched = int(wb["fp32_name"].isin(matched_names).sum())
        frac = matched / total if total else 0.0
        out[v] = {"matched": matched, "total": total, "fraction": frac,
                  "unmatched_quant": int((rows["status"] == "unmatched_quant").sum()),
                  "suspicious": bool(total == 0 or frac < warn_below)}
    return out


_ADVICE = [
    ("zero scale", "A scale of zero maps every weight to one value: re-run the quantizer and check "
                   "the tensor is not constant."),
    ("NaN/Inf scale", "Non-finite scales: the quantizer saw NaN/Inf; check the FP32 weights and calibration."),
    ("negative scale", "Negative scales are invalid for this operator: re-quantize."),
    ("zero point outside", "Zero point outside the storage type: a quantizer or export bug; re-quantize."),
    ("NaN/Inf in the FP32", "Fix the FP32 model first: it holds non-finite weights."),
    ("clipping", "Values fall outside the grid: widen the range (MinMax, no reduce_range) or keep "
                 "this node in float."),
    ("outliers", "A few large weights stretch one grid for the whole tensor: use per-channel "
                 "quantization (per_channel=True)."),
    ("wasted grid", "Most integer levels are unused: per-channel scales or symmetric weights would use "
                    "the grid better."),
]


def _suggestions(row) -> list[str]:
    diag = str(row.get("diagnostics") or "")
    out = [text for key, text in _ADVICE if key in diag]
    gran = row.get("granularity")
    if not out:
        if gran == "blockwise":
            out.append("Block-wise low-bit weights lose precision here: try a smaller block_size or "
                       "8 bits for this layer.")
        elif gran == "per_tensor":
            out.append("Try per-channel quantization (per_channel=True) for this weight.")
    cons = str(row.get("consumers") or "")
    if cons:
        out.append(f"Or keep it in float: add {', '.join(c for c in cons.split(';') if c)} to nodes_to_exclude.")
    return out


def next_steps(layers: pd.DataFrame, n: int = 5, low_sqnr_db: float = LOW_SQNR_DB) -> pd.DataFrame:
    """The worst quantized tensors, why they are bad, and what to try next.

    A tensor is listed when its SQNR is below ``low_sqnr_db`` or it has diagnostics;
    worst SQNR first.

    Returns
    -------
    pandas.DataFrame
        Columns ``variant, fp32_name, layer, role, sqnr_db, why, suggestions`` (``why``: the
        ``diagnostics`` text or "low SQNR"; ``suggestions``: list of str). At most ``n`` rows.
    """
    q = layers[(layers["status"] == "quantized").to_numpy(bool)]
    s = pd.to_numeric(q["sqnr_db"], errors="coerce").to_numpy(float)
    with np.errstate(invalid="ignore"):
        low = s < low_sqnr_db
    bad = q[low | _per_value(q["diagnostics"], lambda d: str(d) != "")]
    bad = bad.assign(_s=pd.to_numeric(bad["sqnr_db"], errors="coerce").fillna(-math.inf))
    bad = bad.sort_values(["_s", "variant", "fp32_name"], kind="stable").head(n)
    rows = []
    for _, r in bad.iterrows():
        why = str(r["diagnostics"] or "") or f"low SQNR (below {low_sqnr_db:g} dB)"
        rows.append({"variant": r["variant"], "fp32_name": r["fp32_name"], "layer": r["layer"],
                     "role": r["role"], "sqnr_db": float(r["sqnr_db"]), "why": why,
                     "suggestions": _suggestions(r)})
    return pd.DataFrame(rows, columns=["variant", "fp32_name", "layer", "role", "sqnr_db", "why",
                                       "suggestions"])


def nodes_to_exclude(layers: pd.DataFrame, threshold_db: float) -> list[str]:
    """FP32 node names to keep in float on the next quantization run.

    The consumers (column ``consumers``, ``;``-separated) of quantized weight tensors whose
    SQNR is below ``threshold_db``, as a sorted list for onnxruntime's ``nodes_to_exclude``.

    Examples
    --------
    >>> quantize_static(..., nodes_to_exclude=nodes_to_exclude(a.layers, 30))  # doctest: +SKIP
    """
    s = pd.to_numeric(layers["sqnr_db"], errors="coerce")
    bad = layers[(layers["status"] == "quantized") & (layers["role"] == "weight")
                 & (s < float(threshold_db)).fillna(False)]
    names = set()
    for cons in bad["consumers"].dropna():
        names.update(c for c in str(cons).split(";") if c)
    return sorted(names)


def layer_rows(layers: pd.DataFrame, key: str | None, *, index: TableIndex | None = None) -> pd.DataFrame:
    """All rows of one layer key (every variant).  ``index``: :attr:`analysis.Analysis.index`."""
    if not key:
        return layers.iloc[0:0].copy()
    if _usable(index, "layers", layers):
        return layers.iloc[index.positions("layers", key)].copy()
    return layers[(layers["fp32_name"] == key).to_numpy(bool)].copy()


def callouts(layers: pd.DataFrame, key: str | None, *, index: TableIndex | None = None) -> list[dict]:
    """Why a layer has no quantization parameters in some variants.

    Returns
    -------
    list of dict
        ``{"variant", "status", "reason"}`` for each row of ``key`` whose status is not
        ``quantized``.
    """
    rows = layer_rows(layers, key, index=index)
    rows = rows[rows["status"] != "quantized"]
    return [{"variant": v, "status": st, "reason": r or st}
            for v, st, r in zip(rows["variant"].tolist(), rows["status"].tolist(), rows["reason"].tolist())]


def _grid_ends(scale, zp, lo_code, hi_code) -> tuple[float, float]:
    a, b = scale * (lo_code - zp), scale * (hi_code - zp)
    return (min(a, b), max(a, b))


def grid_limits(layers: pd.DataFrame, channels: pd.DataFrame, key: str | None,
                variants: Sequence[str], *, index: TableIndex | None = None) -> pd.DataFrame:
    """Clip limits of each variant's grid for one layer: the dequantized values of the
    lowest and highest code of the storage type.

    * per-tensor: ``scale * (qmin - zero_point)`` and ``scale * (qmax - zero_point)``;
    * per-channel: the lowest and highest of those over the channels (the widest channel
      grid: a single channel may clip earlier);
    * block-wise: an envelope from each channel's min/max scale and zero point over its
      blocks (no block's grid reaches further).

    Returns
    -------
    pandas.DataFrame
        Columns ``variant, quant_tensor, lo, hi, basis`` (``basis`` says which of the above);
        tensors without an integer grid (float8) are left out.  ``index``:
        :attr:`analysis.Analysis.index` (for ``layers`` and ``channels``).
    """
    rows = layer_rows(layers, key, index=index)
    rows = rows[(rows["status"] == "quantized") & rows["variant"].isin(list(variants))]
    out = []
    layer_ch = None
    for r in rows.itertuples():
        rng = TYPE_RANGES.get(str(r.quant_dtype))
        if rng is None:
            continue
        qlo, qhi = rng
        if r.granularity == "per_tensor":
            if not (np.isfinite(r.scale) and np.isfinite(r.zero_point)):
                continue
            lo, hi = _grid_ends(r.scale, r.zero_point, qlo, qhi)
            basis = "per-tensor grid"
        else:
            if layer_ch is None:
                layer_ch = _channel_slice(channels, key, list(variants), index)
            ch = layer_ch[((layer_ch["variant"] == r.variant) & (layer_ch["quant_tensor"] == r.quant_tensor))
                          .to_numpy(bool)]
            if ch.empty:
                continue
            # every (scale, zero point) pair of a channel's min/max: the same ends as the
            # per-channel loop over {scale_min, scale_max} x {zp_min, zp_max}
            smin, smax = (ch[c].to_numpy(float) for c in ("scale_min", "scale_max"))
            zmin, zmax = (ch[c].to_numpy(float) for c in ("zero_point_min", "zero_point_max"))
            ends_lo, ends_hi = [], []
            for sc in (smin, smax):
                for zp in (zmin, zmax):
                    a, b = sc * (qlo - zp), sc * (qhi - zp)
                    ends_lo.append(np.where(b < a, b, a))  # Python's min(a, b) / max(a, b)
                    ends_hi.append(np.where(b > a, b, a))
            with np.errstate(invalid="ignore"):
                lo, hi = float(np.nanmin(np.concatenate(ends_lo))), float(np.nanmax(np.concatenate(ends_hi)))
            basis = ("widest channel grid" if r.granularity == "per_channel"
                     else "envelope over blocks")
        out.append({"variant": r.variant, "quant_tensor": r.quant_tensor, "lo": float(lo),
                    "hi": float(hi), "basis": basis})
    return pd.DataFrame(out, columns=["variant", "quant_tensor", "lo", "hi", "basis"])


def histogram_rows(histograms: pd.DataFrame, key: str | None, kind: str,
                   variants: Sequence[str] = (), *, index: TableIndex | None = None) -> pd.DataFrame:
    """Histogram rows of one layer: ``kind`` ``"fp32"`` (reference) or ``"dq"`` / ``"code"``
    (of ``variants``), sorted by variant and bin.  Columns as the histograms table (text
    columns as ``str``).  ``index`` (:attr:`analysis.Analysis.index`) makes it a lookup."""
    if not key:
        return _plain_text(histograms.iloc[0:0])
    if _usable(index, "histograms", histograms):
        if kind == "fp32":
            pos = index.positions("histograms", key, kind, None)
        else:
            wanted = list(dict.fromkeys(variants))
            pos = np.sort(np.concatenate([np.zeros(0, np.int64)] + [
                index.positions("histograms", key, kind, v) for v in wanted]))
        h = histograms.iloc[pos]
    else:
        h = histograms[(histograms["fp32_name"] == key) & (histograms["kind"] == kind)]
        if kind != "fp32":
            h = h[h["variant"].isin(list(variants))]
    h = _plain_text(h)
    return h.sort_values(["variant", "quant_tensor", "bin"], kind="stable").reset_index(drop=True)


def _channel_slice(channels: pd.DataFrame, key, variants, index) -> pd.DataFrame:
    if _usable(index, "channels", channels):
        wanted = list(dict.fromkeys(variants))
        pos = np.sort(np.concatenate([np.zeros(0, np.int64)] + [
            index.positions("channels", key, v) for v in wanted]))
        return channels.iloc[pos]
    return channels[(channels["fp32_name"] == key) & channels["variant"].isin(list(variants))]


def channel_rows(channels: pd.DataFrame, key: str | None, variants: Sequence[str], *,
                 index: TableIndex | None = None) -> pd.DataFrame:
    """Per-channel rows of one layer for ``variants`` (per-channel and block-wise tensors);
    text columns as ``str``.  ``index`` (:attr:`analysis.Analysis.index`) makes it a lookup."""
    if not key:
        return _plain_text(channels.iloc[0:0])
    c = _plain_text(_channel_slice(channels, key, variants, index))
    return c.sort_values(["variant", "quant_tensor", "channel"], kind="stable").reset_index(drop=True)


def filter_options(layers: pd.DataFrame) -> dict[str, list[str]]:
    """Values offered by the filters: ``ops`` (FP32 consumer op types), ``roles``."""
    ops = sorted({o for s in pd.unique(layers["consumer_ops"].dropna()) for o in _split_ops(s)})
    roles = sorted({str(r) for r in pd.unique(layers["role"].dropna())}, key=lambda r: (ROLE_RANK.get(r, 9), r))
    return {"ops": ops, "roles": roles}


def progress_fraction(labels: Sequence[str], label: str, done: int, total: int) -> float:
    """Share of the whole job done, from ``analyze``'s per-variant ``progress(done, total, label)``."""
    n = max(len(labels), 1)
    i = list(labels).index(label) if label in labels else 0
    part = (done / total) if total else 1.0
    return max(0.0, min(1.0, (i + part) / n))


def variant_colors(variants: Iterable[str]) -> dict[str, str]:
    """A stable colour per variant (position in the list)."""
    return {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(variants)}
