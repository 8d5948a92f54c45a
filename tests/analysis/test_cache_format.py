"""Cache entry format (ANALYSIS_VERSION 3): dictionary-encoded text decoded straight to
Categorical / the original dtype, every member checked whole; expected values come from
the frames written, compared as plain Python objects."""

import io
import zipfile

import numpy as np
import pandas as pd
import pytest

import analysis.cache as cache
from analysis import analyze


def _as_objects(s: pd.Series) -> list:
    return [None if (v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA) else v
            for v in s.astype(object).tolist()]


@pytest.fixture
def frame():
    rng = np.random.default_rng(7)
    names = np.array(["b", "a", "é", "", "z" * 300, "a\udcff"], dtype=object)  # surrogate kept
    n = 500
    text = names[rng.integers(0, len(names), n)].copy()
    text[rng.random(n) < 0.2] = None
    df = pd.DataFrame({"f": rng.standard_normal(n), "i": rng.integers(-5, 5, n)})
    df["s"] = pd.Series(list(text), dtype="str")
    df["o"] = pd.Series(list(text), dtype=object)
    df["I"] = pd.array([None if k % 7 == 0 else k for k in range(n)], dtype="Int64")
    df["B"] = pd.array([None if k % 5 == 0 else bool(k % 2) for k in range(n)], dtype="boolean")
    df.loc[3, "f"] = np.inf
    return df


def test_roundtrip_keeps_dtypes_and_values(frame):
    back = cache.roundtrip({"t": frame})["t"]
    pd.testing.assert_frame_equal(back, frame, check_dtype=True)
    assert _as_objects(back["o"]) == _as_objects(frame["o"])


def test_categorical_decode_has_sorted_categories_and_same_values(frame):
    back = cache.roundtrip({"t": frame}, categorical=["t"])["t"]
    for c in ("s", "o"):
        assert isinstance(back[c].dtype, pd.CategoricalDtype)
        cats = list(back[c].cat.categories)
        assert cats == sorted({v for v in _as_objects(frame[c]) if v is not None})
        assert _as_objects(back[c]) == _as_objects(frame[c])
        assert back[c].isna().sum() == frame[c].isna().sum()
    pd.testing.assert_series_equal(back["f"], frame["f"])


def test_store_then_load_equals_what_store_returned(frame):
    returned = cache.store_entry("k", {"t": frame}, {"x": [1, "y"]}, categorical=["t"])
    frames, extra = cache.load_entry("k", categorical=["t"])
    assert extra == {"x": [1, "y"]}
    pd.testing.assert_frame_equal(frames["t"], returned["t"], check_dtype=True)


def _rewrite_member(path, member, fn):
    with zipfile.ZipFile(path) as z:
        items = [(i.filename, z.read(i)) for i in z.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # valid CRCs: only the content is inconsistent
        for name, data in items:
            z.writestr(name, fn(data) if name == member else data)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("damage", ["short_header", "code_out_of_range", "object_member"])
def test_consistent_zip_with_bad_member_is_dropped(frame, damage):
    cache.store_entry("k", {"t": frame}, {})
    p = cache.cache_dir() / "entries" / "k.npz"
    if damage == "short_header":  # header claims fewer elements than the member holds
        member, fn = "t/f/v.npy", lambda d: d.replace(b"(500,)", b"(50,) ")
    elif damage == "code_out_of_range":
        def fn(d):
            b = io.BytesIO(d)
            a = np.load(b)
            a = a.copy()
            a[0] = 120
            out = io.BytesIO()
            np.save(out, a)
            return out.getvalue()
        member = "t/s/v.npy"
    else:
        def fn(d):
            out = io.BytesIO()
            np.save(out, np.array(["x", 1], dtype=object), allow_pickle=True)
            return out.getvalue()
        member = "t/f/v.npy"
    _rewrite_member(p, member, fn)
    assert cache.load_entry("k") is None
    assert not p.exists()


def test_tables_are_categorical_and_equal_without_cache(sample_models):
    fp32, variants = sample_models
    hit = analyze(fp32, variants[:3])
    hit = analyze(fp32, variants[:3])  # from the entries
    fresh = analyze(fp32, variants[:3], cache=False)
    for name in ("channels", "histograms"):
        df = getattr(hit, name)
        for c in ("variant", "fp32_name", "quant_tensor"):
            assert isinstance(df[c].dtype, pd.CategoricalDtype)
            assert list(df[c].cat.categories) == sorted(set(df[c].dropna()))
        pd.testing.assert_frame_equal(df, getattr(fresh, name), check_dtype=True)
    for c in ("channel", "n"):
        assert hit.channels[c].dtype == np.int64
    for c in ("fp32_min", "scale_max", "sqnr_db"):
        assert hit.channels[c].dtype == np.float64
    assert set(hit.histograms["variant"]) == {"", *hit.variants}
    assert (hit.histograms.loc[hit.histograms["kind"] == "fp32", "variant"] == "").all()


def test_relabel_of_a_cached_entry(sample_models):
    fp32, variants = sample_models
    a = analyze(fp32, variants[:1])
    b = analyze(fp32, variants[:1], labels=["mine"])
    assert list(b.histograms["variant"].cat.categories) == ["", "mine"]
    old = a.histograms["variant"].astype(object).replace({a.variants[0]: "mine"})
    assert old.tolist() == b.histograms["variant"].astype(object).tolist()
