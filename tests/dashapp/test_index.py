"""analysis.views.TableIndex and the views that take ``index=``: the same rows as a boolean
mask over the table, on random keys of shuffled synthetic tables and on the tiny models."""

import threading

import numpy as np
import pandas as pd
import pytest

from analysis import views
from analysis.views import TableIndex


def _synthetic(seed, categorical):
    rng = np.random.default_rng(seed)
    n = 3000
    names = np.array([f"t{i}" for i in range(40)] + ["", "a,b"], dtype=object)
    kinds = np.array(["fp32", "dq", "code"], dtype=object)
    variants = np.array(["", "v1", "v2", "w"], dtype=object)
    h = pd.DataFrame({
        "variant": variants[rng.integers(0, 4, n)], "fp32_name": names[rng.integers(0, len(names), n)],
        "quant_tensor": names[rng.integers(0, len(names), n)], "kind": kinds[rng.integers(0, 3, n)],
        "bin": rng.integers(0, 64, n), "left": rng.standard_normal(n), "right": rng.standard_normal(n),
        "count": rng.integers(0, 9, n)})
    h.loc[rng.random(n) < 0.05, "fp32_name"] = None
    # sort in runs so some keys are contiguous and others split across several runs
    h = h.sort_values(["fp32_name", "kind"], kind="stable").iloc[np.r_[0:n:2, 1:n:2]].reset_index(drop=True)
    if categorical:
        for c in ("variant", "fp32_name", "quant_tensor", "kind"):
            h[c] = h[c].astype("category")
    else:
        for c in ("variant", "fp32_name", "quant_tensor", "kind"):
            h[c] = h[c].astype("str")
    return h


def _mask_rows(h, key, kind, variants):
    if not key:  # no layer key: no rows (the views' contract)
        return np.zeros(0, np.int64)
    obj = {c: h[c].astype(object).where(h[c].notna(), None) for c in ("fp32_name", "kind", "variant")}
    m = np.array([f == key and k == kind and (kind == "fp32" or v in set(variants))
                  for f, k, v in zip(obj["fp32_name"], obj["kind"], obj["variant"])], bool)
    return np.flatnonzero(m)


@pytest.mark.parametrize("categorical", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_lookups_equal_a_mask(seed, categorical):
    h = _synthetic(seed, categorical)
    idx = TableIndex(h.iloc[0:0], h.iloc[0:0], h)
    rng = np.random.default_rng(100 + seed)
    keys = list(h["fp32_name"].dropna().astype(object).unique()) + ["missing"]
    for _ in range(60):
        key = keys[rng.integers(0, len(keys))]
        kind = ["fp32", "dq", "code", "nope"][rng.integers(0, 4)]
        vs = list(rng.choice(["v1", "v2", "w", "x", ""], rng.integers(0, 4), replace=False))
        expected = _mask_rows(h, key, kind, vs)
        if not key:
            got = np.zeros(0, np.int64)
        elif kind == "fp32":
            got = idx.positions("histograms", key, kind, None)
        else:
            parts = [idx.positions("histograms", key, kind, v) for v in dict.fromkeys(vs)]
            got = np.sort(np.concatenate([np.zeros(0, np.int64)] + parts))
        assert got.tolist() == expected.tolist()
        with_index = views.histogram_rows(h, key, kind, vs, index=idx)
        without = views.histogram_rows(h, key, kind, vs)
        pd.testing.assert_frame_equal(with_index, without)
        ref = h.iloc[expected].astype({c: object for c in ("variant", "fp32_name", "quant_tensor", "kind")})
        ref = ref.sort_values(["variant", "quant_tensor", "bin"], kind="stable").reset_index(drop=True)
        assert with_index.astype(object).values.tolist() == ref.astype(object).values.tolist()
        assert all(with_index[c].dtype == "str" for c in ("variant", "fp32_name", "quant_tensor", "kind"))


def test_index_is_ignored_for_another_frame():
    h = _synthetic(3, True)
    idx = TableIndex(h.iloc[0:0], h.iloc[0:0], h)
    sub = h.iloc[::3]
    key = sub["fp32_name"].dropna().iloc[0]
    pd.testing.assert_frame_equal(views.histogram_rows(sub, key, "dq", ["v1", "v2"], index=idx),
                                  views.histogram_rows(sub, key, "dq", ["v1", "v2"]))


def test_lazy_build_once_under_threads():
    h = _synthetic(4, True)
    idx = TableIndex(h.iloc[0:0], h.iloc[0:0], h)
    built = []
    out = []

    def run():
        built.append(idx._get("histograms"))
        out.append(idx.positions("histograms", "t1", "dq", "v1").tolist())
    ts = [threading.Thread(target=run) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len({id(b) for b in built}) == 1 and len({tuple(o) for o in out}) == 1


def test_analysis_views_with_index_equal_masks(tiny):
    a = tiny
    keys = list(dict.fromkeys(a.layers["fp32_name"].dropna())) + ["nope", None, ""]
    for key in keys:
        L = a.layers
        expected = L[(L["fp32_name"].astype(object) == key).to_numpy(bool)] if key else L.iloc[0:0]
        pd.testing.assert_frame_equal(views.layer_rows(L, key, index=a.index), expected)
        assert views.callouts(L, key, index=a.index) == views.callouts(L, key)
        for vs in (a.variants, a.variants[:2], []):
            pd.testing.assert_frame_equal(views.channel_rows(a.channels, key, vs, index=a.index),
                                          views.channel_rows(a.channels, key, vs))
            pd.testing.assert_frame_equal(views.grid_limits(L, a.channels, key, vs, index=a.index),
                                          views.grid_limits(L, a.channels, key, vs))
            for kind in ("fp32", "dq", "code"):
                got = views.histogram_rows(a.histograms, key, kind, vs, index=a.index)
                pd.testing.assert_frame_equal(got, views.histogram_rows(a.histograms, key, kind, vs))
                H = a.histograms.astype({c: object for c in ("variant", "fp32_name", "kind")})
                m = (H["fp32_name"] == key) & (H["kind"] == kind) & bool(key)
                if kind != "fp32":
                    m &= H["variant"].isin(vs)
                assert len(got) == int(m.sum())
                assert sorted(got["count"].tolist()) == sorted(H.loc[m, "count"].tolist())


def test_analysis_index_is_lazy_and_shared(tiny):
    import pickle
    assert tiny.index is tiny.index
    again = pickle.loads(pickle.dumps(tiny))
    assert again.index is not tiny.index
    pd.testing.assert_frame_equal(again.layers, tiny.layers)
