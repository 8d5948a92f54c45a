"""The fused kernel and the NumPy reference path measure the same numbers, on
every layout the readers produce (per tensor, per channel on any axis, block-wise
with a partial last block, LSTM's two channel axes), with and without NaN/Inf."""

import math

import numpy as np
import pytest

from analysis.histograms import MAX_EXTRA_BINS, make_grid
from analysis.kernels import HIST_SIZE, fp32_hist, plan
from analysis.metrics import fp32_stats
from analysis.quant_tensor import Decoded, TYPE_RANGES
from analysis.tensor_stats import measure, measure_numpy

LAYOUTS = [
    # shape, param view shape, block axis, block, channel axes, dtype
    ((64, 3, 3, 3), (), None, None, (), "int8"),
    ((64, 3, 3, 3), (64, 1, 1, 1), None, None, (0,), "int8"),
    ((16, 24), (1, 24), None, None, (1,), "uint8"),
    ((8, 12, 5), (1, 12, 1), None, None, (1,), "int16"),
    ((10, 6), (3, 6), 0, 4, (1,), "uint4"),         # partial last block along axis 0
    ((6, 10), (6, 3), 1, 4, (0,), "int4"),
    ((2, 8, 5), (2, 8, 1), None, None, (0, 1), "int8"),  # LSTM per direction and gate row
    ((33,), (), None, None, (), "uint16"),
    ((), (), None, None, (), "int8"),
]

# Layouts large enough for the vectorised kernels (finite weights: lanes of columns or of
# one run); partial lane tiles, several parameter segments and outer rows on purpose.
FAST_LAYOUTS = [
    ((300, 700), (), None, None, (), "int8"),             # per tensor, table, tail lanes
    ((3, 257), (), None, None, (), "uint8"),
    ((200, 300), (), None, None, (), "int16"),            # per tensor without table
    ((40, 300), (), None, None, (), "uint16"),
    ((300, 200), (1, 200), None, None, (1,), "int8"),     # column mode, 200 = 128 + 72 lanes
    ((7, 2100), (1, 2100), None, None, (1,), "uint8"),
    ((50, 64), (1, 64), None, None, (1,), "int16"),       # column mode, int16 codes
    ((3, 40, 50), (3, 1, 50), None, None, (0, 2), "int8"),  # column mode, several outer rows
    ((64, 40), (4, 40), 0, 16, (1,), "uint4"),            # blocks across rows: column segments
    ((70, 33), (5, 33), 0, 16, (1,), "int8"),             # ... with a partial last block
    ((64, 40), (11, 40), 0, 6, (1,), "int8"),             # blocks of 6 rows: 4-row passes straddle them
    ((40, 300), (40, 1), None, None, (0,), "int8"),       # per row (runs with channels)
    ((10, 512), (10, 4), 1, 128, (0,), "int4"),           # blocks along the inner axis
    ((6, 1000), (6, 4), 1, 256, (0,), "int16"),           # ... without table, partial block
]


def _case(rng, shape, pshape, baxis, block, ch, dtype, nonfinite=False, signs=False):
    lo, hi = TYPE_RANGES[dtype]
    q = rng.integers(lo, hi + 1, size=shape).astype(np.int8 if dtype in ("int4", "uint4") else dtype)
    s = rng.uniform(0.001, 0.05, size=pshape).astype(np.float32)
    if signs and s.size > 2:  # negative and zero scales: dq decreasing / constant in q
        s.reshape(-1)[::3] *= -1
        s.reshape(-1)[1] = 0
    z = rng.integers(lo, hi + 1, size=pshape).astype(np.int64) if dtype.startswith("u") else np.zeros(pshape, np.int64)
    d = Decoded(q, s, z, baxis, block, ch)
    from analysis import dequantize
    w = dequantize(d) + rng.normal(0, 0.004, size=shape).astype(np.float32)
    w = np.asarray(w, np.float32)
    if nonfinite and w.size > 4:
        w.reshape(-1)[[1, 3]] = [np.nan, np.inf]
    return w, d, (lo, hi)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: f"{l[0]}-{l[5]}-{l[2]}")
@pytest.mark.parametrize("nonfinite", [False, True])
def test_kernel_equals_numpy(rng, layout, nonfinite):
    _check(*_case(rng, *layout, nonfinite=nonfinite))


@pytest.mark.parametrize("layout", FAST_LAYOUTS, ids=lambda l: f"{l[0]}-{l[5]}-{l[2]}")
@pytest.mark.parametrize("variant", ["plain", "signs", "nonfinite"])
def test_fast_kernels_equal_numpy(rng, monkeypatch, layout, variant):
    import analysis.tensor_stats as ts
    monkeypatch.setattr(ts, "FAST_MIN_SIZE", 0)  # small layouts on the lane kernels too
    calls = []
    for name in ("fast_column", "fast_runs"):
        monkeypatch.setattr(ts, name, (lambda f: lambda *a: calls.append(f) or f(*a))(getattr(ts, name)))
    _check(*_case(rng, *layout, nonfinite=variant == "nonfinite", signs=variant == "signs"))
    assert bool(calls) == (variant != "nonfinite")  # NaN/Inf weights take the generic kernel


@pytest.mark.parametrize("layout", [l for l in FAST_LAYOUTS if len(l[0]) >= 2],
                         ids=lambda l: f"{l[0]}-{l[5]}-{l[2]}")
@pytest.mark.parametrize("rows", [1, 3, 7, 16])
def test_column_kernel_in_row_blocks_equals_numpy(rng, monkeypatch, layout, rows):
    """Tall matrices are read a few rows at a time across all tiles: blocks of rows that
    do not divide the row count, nor the scale blocks, give the same numbers."""
    import analysis.tensor_stats as ts
    monkeypatch.setattr(ts, "FAST_MIN_SIZE", 0)
    monkeypatch.setattr(ts, "COLUMN_BLOCK_MIN_ROWS", 0)
    monkeypatch.setattr(ts, "COLUMN_BLOCK_ROWS", rows)
    _check(*_case(rng, *layout))


@pytest.mark.parametrize("layout", [FAST_LAYOUTS[0], FAST_LAYOUTS[4], FAST_LAYOUTS[6]],
                         ids=lambda l: f"{l[0]}-{l[5]}-{l[2]}")
def test_crowded_bins_equal_numpy(rng, monkeypatch, layout):
    """One outlier stretches the range so that most weights share one or two of the 64
    bins (as in real MLP matrices): the sub-histograms still add up to the exact counts."""
    import analysis.tensor_stats as ts
    monkeypatch.setattr(ts, "FAST_MIN_SIZE", 0)
    w, d, qrange = _case(rng, *layout)
    w.reshape(-1)[7] = 200 * np.abs(w).max()
    grid = make_grid(float(w.min()), float(w.max()))
    counts = np.zeros(HIST_SIZE, np.int64)
    fp32_hist(w.reshape(-1), grid.origin, grid.inv, counts)
    assert counts.max() > 0.6 * w.size  # crowded indeed
    _check(w, d, qrange)


@pytest.mark.parametrize("dtype", ["uint16", "int16", "uint8", "int8"])
def test_column_kernel_extreme_codes_and_bins_equal_numpy(rng, monkeypatch, dtype):
    """The column kernel packs each element's FP32 bin, dq bin and code into one word:
    the lowest and highest code of the type and dq values far outside the FP32 range
    (both clamped extension bins) still count exactly."""
    import analysis.tensor_stats as ts
    monkeypatch.setattr(ts, "FAST_MIN_SIZE", 0)
    calls = []
    monkeypatch.setattr(ts, "fast_column", (lambda f: lambda *a: calls.append(1) or f(*a))(ts.fast_column))
    lo, hi = TYPE_RANGES[dtype]
    rows, cols = 37, 48
    q = rng.choice(np.array([lo, hi, (lo + hi) // 2], np.int64), size=(rows, cols)).astype(dtype)
    big = 3.0 / (hi - (lo + hi) // 2)  # the extreme codes dequantize to about +-3
    s = np.full((1, cols), big / 100, np.float32)
    s[0, ::5] = big  # these columns reach far beyond the FP32 range (|w| < ~0.2)
    z = np.zeros((1, cols), np.int64) if lo < 0 else np.full((1, cols), (lo + hi) // 2, np.int64)
    w = rng.normal(0, 0.05, size=(rows, cols)).astype(np.float32)
    d = Decoded(q, s, z, None, None, (1,))
    _check(w, d, (lo, hi))
    assert calls
    ref = measure_numpy(w, d, (lo, hi), make_grid(float(w.min()), float(w.max())))
    assert ref.code_counts[0] > 0 and ref.code_counts[-1] > 0  # both ends of the code range
    assert ref.dq_bins[0] == -MAX_EXTRA_BINS and ref.dq_bins[-1] == HIST_SIZE - 1 - MAX_EXTRA_BINS


def test_tensor_past_fast_max_size_takes_generic_kernel(rng, monkeypatch):
    """The lane kernels' int32 sub-histograms are bounded: a larger tensor is measured by
    the generic kernel (limit lowered here), with the same numbers."""
    import analysis.tensor_stats as ts
    monkeypatch.setattr(ts, "FAST_MIN_SIZE", 0)
    monkeypatch.setattr(ts, "FAST_MAX_SIZE", 1000)
    called = []
    for name in ("fast_column", "fast_runs"):
        monkeypatch.setattr(ts, name, lambda *a: called.append(1))
    _check(*_case(rng, (300, 200), (1, 200), None, None, (1,), "int8"))
    _check(*_case(rng, (300, 700), (), None, None, (), "int8"))
    assert not called


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")
def test_fast_kernel_skips_huge_scale(rng, monkeypatch):
    """A scale whose dq could overflow float32 takes the generic kernel."""
    import analysis.tensor_stats as ts
    monkeypatch.setattr(ts, "FAST_MIN_SIZE", 0)
    called = []
    monkeypatch.setattr(ts, "fast_column", lambda *a: called.append(1))
    w, d, qrange = _case(rng, (30, 40), (1, 40), None, None, (1,), "int8")
    d.scale.reshape(-1)[5] = 1e31
    _check(w, d, qrange)
    assert not called


def _check(w, d, qrange):
    assert plan(d.q.shape, np.shape(d.scale), d.block_axis, d.block_size, d.channel_axes) is not None
    known = fp32_stats(w)
    grid = make_grid(known["fp32_min"], known["fp32_max"])
    fp_hist = np.zeros(HIST_SIZE, np.int64)
    fast = measure(w, d, qrange, grid, known, fp_hist)
    ref = measure_numpy(w, d, qrange, grid)
    assert fast.engine == "kernel" and ref.engine == "numpy"
    for k, v in ref.metrics.items():
        f = fast.metrics[k]
        if isinstance(v, float) and math.isnan(v):
            assert math.isnan(f), k
        else:
            assert f == pytest.approx(v, rel=1e-9, abs=1e-12), k
    np.testing.assert_array_equal(fast.dq_bins, ref.dq_bins)
    np.testing.assert_array_equal(fast.dq_counts, ref.dq_counts)
    np.testing.assert_array_equal(fast.code_counts, ref.code_counts)
    np.testing.assert_array_equal(fast.code_left, ref.code_left)
    if ref.channels is None:
        assert fast.channels is None
    else:
        for k, v in ref.channels.items():
            np.testing.assert_allclose(fast.channels[k], v, rtol=1e-9, err_msg=k)
    # the FP32 histogram counted in the same pass equals a separate count
    sep = np.zeros(HIST_SIZE, np.int64)
    fp32_hist(np.ascontiguousarray(w).reshape(-1), grid.origin, grid.inv, sep)
    if fast.fp_done:
        np.testing.assert_array_equal(fp_hist, sep)
    assert sep.sum() == np.isfinite(w).sum()


def test_tiny_tensor_takes_generic_kernel(rng, monkeypatch):
    """Below FAST_MIN_SIZE elements (biases) the generic kernel runs, same numbers."""
    import analysis.tensor_stats as ts
    called = []
    monkeypatch.setattr(ts, "fast_runs", lambda *a: called.append(1))
    _check(*_case(rng, (1024,), (), None, None, (), "uint8"))
    assert not called


def test_warm_up_covers_every_kernel_specialisation_the_samples_use(sample_models):
    """A server warms its kernels at start-up: analysing real models afterwards must not
    compile (or load) another numba specialisation inside a user's request."""
    import numba

    import analysis.kernels as K
    from analysis import analyze
    from analysis.warmup import warm_up
    warm_up()
    disp = {n: f for n, f in vars(K).items() if isinstance(f, numba.core.registry.CPUDispatcher)}
    before = {n: set(f.signatures) for n, f in disp.items()}
    fp32, variants = sample_models
    analyze(fp32, variants, cache=False)
    new = {n: set(f.signatures) - before[n] for n, f in disp.items() if set(f.signatures) - before[n]}
    assert not new, new


def test_kernels_are_handed_read_only_tensors_whatever_the_input(rng, monkeypatch, sample_models):
    """Numba compiles one specialisation per writability of each array argument:
    measure() and the FP32 histogram pass tensors read-only, so the writable variants
    are never built nor loaded (warm_up holds 15 specialisations, not 52)."""
    import analysis.pair as pair
    import analysis.tensor_stats as ts
    from analysis import analyze

    seen = []

    def spy(name, f, n_tensors):
        def g(*a):
            seen.append((name, [a[i].flags.writeable for i in range(n_tensors)]))
            return f(*a)
        return g

    for name in ("fast_column", "fast_runs", "fused_stats"):
        monkeypatch.setattr(ts, name, spy(name, getattr(ts, name), 2))
    monkeypatch.setattr(pair, "fp32_hist", spy("fp32_hist", pair.fp32_hist, 1))
    # writable inputs (np.ones / rng arrays are) through each kernel path
    w = rng.normal(0, 0.1, (256, 128)).astype(np.float32)
    grid = make_grid(float(w.min()), float(w.max()))
    q = np.clip(np.round(w / 0.002), -127, 127).astype(np.int8)
    assert w.flags.writeable and q.flags.writeable
    col = Decoded(q, np.full((1, 128), 0.002, np.float32), np.zeros((1, 128), np.int64), None, None, (1,))
    row = Decoded(q, np.full((256, 1), 0.002, np.float32), np.zeros((256, 1), np.int64), None, None, (0,))
    small = Decoded(q[:4, :4].copy(), np.float32(0.002), np.int64(0), None, None, ())
    for d, ww in ((col, w), (row, w), (small, w[:4, :4].copy())):
        measure(ww, d, (-128, 127), grid, fp32_stats(ww), np.zeros(HIST_SIZE, np.int64))
    fp32, variants = sample_models
    analyze(fp32, [variants[2]], cache=False)  # dynamic: biases left in float get fp32_hist
    names = {n for n, _ in seen}
    assert {"fast_column", "fast_runs", "fused_stats", "fp32_hist"} <= names, names
    assert all(not any(flags) for _, flags in seen), [s for s in seen if any(s[1])]
