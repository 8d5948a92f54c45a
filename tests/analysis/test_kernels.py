"""The fused kernel and the NumPy reference path measure the same numbers, on
every layout the readers produce (per tensor, per channel on any axis, block-wise
with a partial last block, LSTM's two channel axes), with and without NaN/Inf."""

import math

import numpy as np
import pytest

from analysis.histograms import make_grid
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


def _case(rng, shape, pshape, baxis, block, ch, dtype, nonfinite=False):
    lo, hi = TYPE_RANGES[dtype]
    q = rng.integers(lo, hi + 1, size=shape).astype(np.int8 if dtype in ("int4", "uint4") else dtype)
    s = rng.uniform(0.001, 0.05, size=pshape).astype(np.float32)
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
    w, d, qrange = _case(rng, *layout, nonfinite=nonfinite)
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
