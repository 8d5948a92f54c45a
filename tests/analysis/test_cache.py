"""The on-disk cache: hits are identical, changed files are never served stale,
damaged entries are recomputed, cache=False bypasses it."""

import os
import shutil

import pandas as pd
import pytest

import analysis.cache as cache
from analysis import analyze


def _frames_equal(a, b):
    for name in ("layers", "channels", "histograms"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_dtype=True)


def test_hit_is_identical(sample_models):
    fp32, variants = sample_models
    first = analyze(fp32, variants[:2])
    assert len(list((cache.cache_dir() / "entries").glob("*.npz"))) == 2
    _frames_equal(first, analyze(fp32, variants[:2]))
    _frames_equal(first, analyze(fp32, variants[:2], cache=False))


def test_no_cache_writes_nothing(sample_models):
    fp32, variants = sample_models
    analyze(fp32, variants[:1], cache=False)
    assert not list((cache.cache_dir() / "entries").glob("*.npz")) if (cache.cache_dir() / "entries").exists() else True


def test_changed_file_not_served_stale(sample_models, tmp_path):
    fp32, variants = sample_models
    v = tmp_path / "v.onnx"
    shutil.copy(variants[0], v)
    before = analyze(fp32, [v]).layers
    shutil.copy(variants[1], v)  # same name, other content
    st = os.stat(v)
    os.utime(v, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = analyze(fp32, [v]).layers
    assert set(after.quant_op.dropna()) != set(before.quant_op.dropna())
    _frames_equal(analyze(fp32, [v], cache=False), analyze(fp32, [v]))


def test_label_follows_caller(sample_models, tmp_path):
    fp32, variants = sample_models
    analyze(fp32, variants[:1])
    a = analyze(fp32, variants[:1], labels=["mine"])
    assert set(a.layers.variant) == {"mine"}
    assert set(a.histograms.variant) == {"", "mine"}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_damaged_entry_is_recomputed(sample_models, damage):
    fp32, variants = sample_models
    good = analyze(fp32, variants[:1])
    (entry,) = (cache.cache_dir() / "entries").glob("*.npz")
    data = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        entry.write_bytes(b"not a zip at all")
    else:
        mid = len(data) // 2
        entry.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:])
    _frames_equal(good, analyze(fp32, variants[:1]))


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x" / "entry.bin"

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        cache._atomic_write(target, b"data")
    assert not target.exists() and not list(target.parent.glob(".tmp-*"))


def _entry(key: str, rows: int) -> "os.stat_result":
    import numpy as np
    cache.store_entry(key, {"layers": pd.DataFrame({"x": np.arange(rows, dtype=np.float64)})}, {})
    return (cache.cache_dir() / "entries" / f"{key}.npz").stat()


def test_cache_folder_is_bounded_least_recently_used_first(monkeypatch):
    """An upload-heavy server must not fill its disk: past QUANTLENS_CACHE_MAX_BYTES the
    least recently used entries go; the one just written and the ones just read stay."""
    monkeypatch.setenv("QUANTLENS_CACHE_MAX_BYTES", "0")  # unbounded while filling
    sizes = {k: _entry(k, 20_000).st_size for k in ("a", "b", "c")}
    now = os.stat(cache.cache_dir()).st_mtime
    for i, k in enumerate(("a", "b", "c")):  # a oldest, c newest
        p = cache.cache_dir() / "entries" / f"{k}.npz"
        os.utime(p, (now - 100 + i, now - 100 + i))
    assert cache.load_entry("a") is not None  # reading refreshes 'a'
    limit = sizes["a"] + sizes["c"] + sizes["b"] // 2  # room for two of the three, plus change
    monkeypatch.setenv("QUANTLENS_CACHE_MAX_BYTES", str(limit))
    d = _entry("d", 100)  # a small write triggers the trim
    left = {p.stem for p in (cache.cache_dir() / "entries").glob("*.npz")}
    assert left == {"a", "c", "d"}, left  # 'b' was least recently used
    assert sum(os.stat(cache.cache_dir() / "entries" / f"{k}.npz").st_size for k in left) <= limit
    assert d.st_size > 0 and cache.load_entry("b") is None


def test_entry_bigger_than_the_bound_is_still_kept(monkeypatch):
    monkeypatch.setenv("QUANTLENS_CACHE_MAX_BYTES", "1000")
    _entry("small", 10)
    _entry("big", 50_000)  # > 1000 bytes alone: stays (it is what the user is looking at)
    left = {p.stem for p in (cache.cache_dir() / "entries").glob("*.npz")}
    assert left == {"big"}
    frames, _ = cache.load_entry("big")
    assert len(frames["layers"]) == 50_000


def test_one_variant_tables_match_the_general_join(sample_models):
    """One variant's channels skip the join: the result must equal the join of its halves."""
    from analysis.api import _concat
    from analysis.schema import CHANNEL_COLUMNS

    fp32, variants = sample_models
    ch = analyze(fp32, variants[:1], cache=False).channels
    assert len(ch) > 10
    k = len(ch) // 2
    joined = _concat([(ch.iloc[:k], None), (ch.iloc[k:], None)], CHANNEL_COLUMNS)
    pd.testing.assert_frame_equal(_concat([(ch, None)], CHANNEL_COLUMNS), joined, check_dtype=True)
    pd.testing.assert_frame_equal(ch, joined, check_dtype=True)
