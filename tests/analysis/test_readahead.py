"""The read-ahead thread: order, the byte budget, errors, and stopping early."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest

from analysis.readahead import ReadAhead


def _wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.005)


def test_results_in_order_read_once_in_another_thread():
    seen = []

    def read(x):
        seen.append((x, threading.get_ident()))
        return x * x

    with ReadAhead(range(20), read, lambda x: 1, budget=4) as ra:
        got = []
        for i in range(20):
            got.append(ra.get(i))
    assert got == [i * i for i in range(20)]
    assert [x for x, _ in seen] == list(range(20))
    assert {t for _, t in seen} != {threading.get_ident()}


def test_reader_stays_within_budget_of_items_not_taken():
    read = []
    with ReadAhead(range(6), lambda x: read.append(x) or x, lambda x: 10, budget=25) as ra:
        _wait_for(lambda: len(read) == 2)
        time.sleep(0.2)  # item 2 (10 more bytes) would make 30 > 25: it must wait
        assert read == [0, 1]
        assert ra.get(0) == 0  # taken: its bytes leave the budget
        _wait_for(lambda: len(read) == 3)
        time.sleep(0.1)
        assert read == [0, 1, 2]
        for i in range(1, 6):
            assert ra.get(i) == i
    assert read == list(range(6))


def test_taken_item_cannot_be_taken_twice():
    with ReadAhead([1], lambda x: x, lambda x: 1, budget=1) as ra:
        assert ra.get(0) == 1
        with pytest.raises(RuntimeError, match="already taken"):
            ra.get(0)


def test_item_larger_than_budget_is_read_when_nothing_is_waiting():
    read = []
    with ReadAhead(["a", "big", "c"], lambda x: read.append(x) or x.upper(),
                   lambda x: 100 if x == "big" else 1, budget=10) as ra:
        _wait_for(lambda: len(read) == 1)
        time.sleep(0.1)
        assert read == ["a"]  # "a" not taken yet: "big" does not fit beside it
        assert ra.get(0) == "A"
        assert ra.get(1) == "BIG"
        assert ra.get(2) == "C"


def test_error_goes_to_the_worker_of_that_item_only():
    def read(x):
        if x == 1:
            raise ValueError("bad item 1")
        return x

    with ReadAhead(range(3), read, lambda x: 1, budget=10) as ra:
        assert ra.get(0) == 0
        with pytest.raises(ValueError, match="bad item 1"):
            ra.get(1)
        assert ra.get(2) == 2


def test_close_with_items_left_does_not_hang():
    read = []
    ra = ReadAhead(range(100), lambda x: read.append(x) or x, lambda x: 10, budget=10)
    _wait_for(lambda: len(read) == 1)  # 0 is never taken: the reader is blocked on the budget
    t = threading.Thread(target=ra.close)
    t.start()
    t.join(10)
    assert not t.is_alive()
    assert read == [0]
    with pytest.raises(CancelledError):
        ra.get(1)


def test_worker_failure_inside_pool_still_ends_the_reader():
    from concurrent.futures import ThreadPoolExecutor

    def run(i, ra):
        v = ra.get(i)
        if v == 3:
            raise RuntimeError("worker failed")
        return v

    with pytest.raises(RuntimeError, match="worker failed"):
        with ReadAhead(range(8), lambda x: x, lambda x: 1, budget=2) as ra, \
                ThreadPoolExecutor(2) as pool:
            list(pool.map(run, range(8), [ra] * 8))
    assert not ra._thread.is_alive()


def test_analyze_pair_loads_the_variant_while_the_fp32_weights_are_read(sample_models, monkeypatch):
    """The variant loader runs after the reader has started on the FP32 weights, and the
    tables are those of an analysis given the loaded variant."""
    import pandas as pd

    import analysis.pair as pair
    from analysis.model import load_model

    fp32_path, variants = sample_models
    fp32 = load_model(fp32_path)
    started = []
    real = pair._read_weight
    monkeypatch.setattr(pair, "_read_weight", lambda m, fw: started.append(fw.name) or real(m, fw))

    def loader():
        _wait_for(lambda: len(started) > 0)
        return load_model(variants[0])

    lazy = pair.analyze_pair(fp32, loader, "v")
    eager = pair.analyze_pair(fp32, load_model(variants[0]), "v")
    for a, b in ((lazy.layers, eager.layers), (lazy.channels, eager.channels),
                 (lazy.histograms, eager.histograms)):
        pd.testing.assert_frame_equal(a, b)
    assert lazy.problems == eager.problems


def test_analyze_pair_stops_the_reader_when_the_variant_cannot_be_loaded(sample_models):
    import threading as th

    import analysis.pair as pair
    from analysis.errors import ModelLoadError
    from analysis.model import load_model

    fp32 = load_model(sample_models[0])

    def loader():
        raise ModelLoadError("variant is broken")

    with pytest.raises(ModelLoadError, match="variant is broken"):
        pair.analyze_pair(fp32, loader, "v")
    assert not [t for t in th.enumerate() if t.name == "quantlens-readahead"]


def test_read_ahead_budget_is_one_largest_tensor_per_worker():
    from analysis.pair import READ_AHEAD_BYTES, READ_AHEAD_MAX_BYTES, read_ahead_budget

    mib = 1 << 20
    assert READ_AHEAD_BYTES == 32 * mib and READ_AHEAD_MAX_BYTES == 256 * mib
    assert read_ahead_budget([1 * mib, 64 * mib, 16 * mib], 2) == 128 * mib   # 1B: 2 x 64 MiB
    assert read_ahead_budget([4 * mib, 16 * mib], 2) == 32 * mib              # 300M: the floor
    assert read_ahead_budget([4 * mib, 20 * mib], 2) == 40 * mib
    assert read_ahead_budget([1 << 30], 4) == 256 * mib                       # capped
    assert read_ahead_budget([], 2) == 32 * mib
    assert read_ahead_budget([48 * mib], 0) == 48 * mib                       # at least one worker


def test_analyze_pair_reads_ahead_one_largest_fp32_tensor_per_worker(tmp_path, monkeypatch):
    """The reader's budget comes from the model's own FP32 tensors (W: 6 x 10 float32 =
    240 bytes, B: 40 bytes) and the worker count."""
    import analysis.pair as pair
    from analysis.model import load_model

    from builders import fp32_single

    path = fp32_single(tmp_path / "f.onnx", "Gemm", {"W": np.ones((6, 10)), "B": np.ones(10)},
                       ["X", "W", "B"], "gemm")
    budgets = []
    real = pair.ReadAhead
    monkeypatch.setattr(pair, "ReadAhead", lambda *a: budgets.append(a[3]) or real(*a))
    monkeypatch.setattr(pair, "READ_AHEAD_BYTES", 0)
    monkeypatch.setenv("QUANTLENS_THREADS", "3")
    m = load_model(path)
    pair.analyze_pair(m, m, "v")
    assert budgets == [3 * 6 * 10 * 4]
