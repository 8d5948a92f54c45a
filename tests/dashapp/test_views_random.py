"""The vectorised layer views against plain-Python references on random layer tables
(missing values, repeated keys, several rows per key and variant, unknown roles)."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis import tables, views


def _layers(seed):
    rng = np.random.default_rng(seed)
    n = 400
    names = [f"L{i:02d}.w" for i in range(30)] + ["", None]
    pick = lambda seq, p=None: [seq[i] for i in rng.integers(0, len(seq), n)]  # noqa: E731
    df = pd.DataFrame({
        "variant": pick(["a", "b", "c"]), "fp32_name": pick(names), "layer": pick(["n1", "N2", None, "gemm_7"]),
        "quant_tensor": pick(["q1", "Q2", None]), "status": pick(["quantized", "quantized", "left_in_float"]),
        "role": pick(["weight", "bias", "other", "odd", None]),
        "consumer_ops": pick(["Conv", "Gemm,MatMul", "", None, "MatMul"]),
        "order": pd.array([None if x < 0 else int(x) for x in rng.integers(-3, 40, n)], dtype="Int64"),
        "sqnr_db": np.where(rng.random(n) < 0.1, np.nan, np.where(rng.random(n) < 0.05, np.inf,
                                                                   rng.normal(35, 10, n))),
        "fp32_bytes": pd.array([None if x < 2 else int(x) for x in rng.integers(0, 1000, n)], dtype="Int64"),
        "quant_bytes": pd.array([int(x) for x in rng.integers(0, 300, n)], dtype="Int64"),
        "diagnostics": pick(["", None, "clipping", "outliers"]),
    })
    for c in ("variant", "fp32_name", "layer", "quant_tensor", "status", "role", "consumer_ops", "diagnostics"):
        df[c] = df[c].astype("str")
    return df


def _py(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


@pytest.mark.parametrize("seed", range(4))
def test_filter_layers_matches_a_row_loop(seed):
    L = _layers(seed)
    recs = [{k: _py(v) for k, v in r.items()} for r in L.astype(object).to_dict("records")]
    for ops, search, below in [(["MatMul"], "", None), (["Conv", "Gemm"], "n", 40.0), ([], "GEMM", 30.0),
                               ([], "", None)]:
        exp = [i for i, r in enumerate(recs)
               if (not ops or set(ops) & set(o for o in (r["consumer_ops"] or "").split(",") if o))
               and (not search or any(search.lower() in (r[c] or "").lower()
                                      for c in ("fp32_name", "layer", "quant_tensor")))
               and (below is None or (r["status"] == "quantized" and r["sqnr_db"] is not None
                                      and r["sqnr_db"] < below))]
        got = views.filter_layers(L, ops=ops, search=search, sqnr_below=below)
        assert list(got.index) == exp


@pytest.mark.parametrize("seed", range(4))
def test_layer_keys_and_summary_match_python(seed):
    L = _layers(seed)
    recs = [{k: _py(v) for k, v in r.items()} for r in L.astype(object).to_dict("records")]
    keyed = [r for r in recs if r["fp32_name"]]
    first = {}
    for r in keyed:
        f = first.setdefault(r["fp32_name"], {"order": None, "role": None})
        if r["order"] is not None and (f["order"] is None or r["order"] < f["order"]):
            f["order"] = r["order"]
        if f["role"] is None and r["role"] is not None:
            f["role"] = r["role"]
    exp = sorted(first, key=lambda k: (first[k]["order"] if first[k]["order"] is not None else 10**9,
                                       views.ROLE_RANK.get(first[k]["role"], 9), k))
    assert views.layer_keys(L) == exp
    for got in views.summary(L, ["a", "b", "zz"]):
        rows = [r for r in keyed if r["variant"] == got["variant"]]
        per = {}
        for r in rows:
            per.setdefault(r["fp32_name"], r)
        q = [r for r in rows if r["status"] == "quantized"]
        qn = {r["fp32_name"] for r in q}
        total = sum(r["fp32_bytes"] or 0 for r in per.values())
        s = [r["sqnr_db"] for r in q if r["sqnr_db"] is not None]
        worst = min((r for r in q if r["sqnr_db"] is not None), key=lambda r: r["sqnr_db"], default=None)
        assert got["tensors"] == len(per) and got["quantized"] == len(qn)
        assert got["fp32_bytes"] == total
        assert got["variant_bytes"] == sum(r["quant_bytes"] for r in q) + sum(
            r["fp32_bytes"] or 0 for k, r in per.items() if k not in qn)
        assert got["worst_layer"] == (worst["fp32_name"] if worst else None)
        if s:
            assert got["median_sqnr_db"] == float(np.median(s))
        else:
            assert math.isnan(got["median_sqnr_db"])


@pytest.mark.parametrize("seed", range(4))
def test_default_table_order_matches_python_sort(seed):
    L = _layers(seed)
    recs = [{k: _py(v) for k, v in r.items()} for r in L.astype(object).to_dict("records")]
    last = lambda v: (v is None, v if v is not None else "")  # noqa: E731 - missing last
    exp = sorted(range(len(recs)), key=lambda i: (
        (recs[i]["order"] is None, recs[i]["order"] or 0), views.ROLE_RANK.get(recs[i]["role"], 9),
        last(recs[i]["fp32_name"]), last(recs[i]["variant"])))
    assert list(tables.sort_rows(L, None).index) == exp
