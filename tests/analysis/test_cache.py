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
