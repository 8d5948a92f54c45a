"""Everything measured about one quantized tensor, by the fused kernel when the
layout allows and by the NumPy reference path otherwise (float8 codes, int32
biases, layouts that do not collapse to three axes).  Both paths give the same
numbers; ``tests/analysis/test_kernels.py`` holds them to it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .histograms import CODE_BINS, MAX_EXTRA_BINS, Grid, code_histogram, value_histogram
from .kernels import (ACC, HIST_SIZE, LANES, fast_column, fast_runs, frozen, fused_stats, plan,
                      runs_supported, table_to_hist)
from .metrics import _levels_available, channel_metrics, fp32_stats, sqnr_db, tensor_metrics
from .quant_tensor import Decoded, dequantize

__all__ = ["TensorStats", "measure", "measure_numpy"]


@dataclass
class TensorStats:
    """Metrics row fields, histograms and per-channel table of one tensor."""

    metrics: dict
    dq_bins: np.ndarray
    dq_counts: np.ndarray
    code_left: np.ndarray
    code_right: np.ndarray
    code_counts: np.ndarray
    channels: dict | None
    fp_done: bool = False
    engine: str = "numpy"


def measure_numpy(w: np.ndarray, d: Decoded, qrange, grid: Grid) -> TensorStats:
    """Reference implementation with whole-tensor NumPy operations."""
    dq = dequantize(d)
    met = tensor_metrics(w, d, dq, qrange)
    finite = np.isfinite(w)
    bins, counts = value_histogram(dq if finite.all() else dq[finite], grid)
    q = d.q if finite.all() else d.q[finite]
    cl, cr, cc = code_histogram(q, qrange)
    return TensorStats(met, bins, counts, cl, cr, cc, channel_metrics(w, d, dq))


def _summary_params(d: Decoded, qrange) -> dict:
    s = np.asarray(d.scale, np.float32)
    z = np.asarray(d.zero_point)
    return dict(
        scale_zero=int((s == 0).sum()), scale_negative=int((s < 0).sum()),
        scale_nonfinite=int((~np.isfinite(s)).sum()),
        zp_out_of_range=bool(qrange is not None and z.size and z.dtype.kind in "iu"
                             and (z.min() < qrange[0] or z.max() > qrange[1])))


def measure(w: np.ndarray, d: Decoded, qrange, grid: Grid, known: dict | None = None,
            fp_hist: np.ndarray | None = None) -> TensorStats:
    """Metrics, histograms and per-channel rows of ``d`` against FP32 ``w``.

    Parameters
    ----------
    w : np.ndarray
        FP32 original in the layout of ``d.q`` (any float dtype).
    d : Decoded
    qrange : tuple or None
        Code range of the storage type (``None`` for float8).
    grid : Grid
        The FP32 tensor's histogram grid.
    known : dict, optional
        ``fp32_min``, ``fp32_max``, ``fp32_nonfinite`` of ``w`` when already measured
        (no NaN/Inf lets the kernel skip its per-element check).
    fp_hist : np.ndarray, optional
        A zeroed :data:`~analysis.kernels.HIST_SIZE` array: when given and the fused
        kernel runs, the FP32 histogram is counted into it in the same pass.

    Returns
    -------
    TensorStats
        ``fp_done`` tells whether ``fp_hist`` was filled.
    """
    levels = _levels_available(qrange)
    p = None
    float32_scale = np.asarray(d.scale).dtype == np.float32
    if qrange is not None and levels <= 65536 and d.q.dtype.kind in "iu" and d.q.size and float32_scale:
        p = plan(d.q.shape, np.shape(d.scale), d.block_axis, d.block_size, d.channel_axes)
    if p is None:
        return measure_numpy(w, d, qrange, grid)
    vshape, pstr, pblk, cstr, nch = p
    nch = nch if d.channel_axes else 0
    if not runs_supported(pstr, pblk, cstr, nch > 0):
        return measure_numpy(w, d, qrange, grid)
    w3 = frozen(np.ascontiguousarray(w, dtype=np.float32).reshape(vshape))
    q3 = frozen(np.ascontiguousarray(d.q).reshape(vshape))
    scale = np.ascontiguousarray(d.scale, dtype=np.float32).reshape(-1)
    zp = np.ascontiguousarray(d.zero_point, dtype=np.int64).reshape(-1)
    half = np.abs(scale) * np.float32(0.5 * (1 + 1e-3)) + np.float32(1e-30)
    column_mode = pstr[2] != 0 and pblk[2] == 1
    use_table = (not column_mode and levels <= CODE_BINS
                 and scale.size * levels <= max(d.q.size, 1 << 16))
    table = np.zeros(scale.size * levels if use_table else 0, np.int64)
    dq_hist = np.zeros(HIST_SIZE, np.int64)
    code_hist = np.zeros(levels, np.int64)
    ch_acc = np.zeros((ACC, nch), np.float64)
    ch_acc[7, :] = ch_acc[9, :] = np.inf
    ch_acc[8, :] = ch_acc[10, :] = -np.inf
    ch_acc[11, :] = 2.0**62
    ch_acc[12, :] = -(2.0**62)
    lo = int(qrange[0])
    do_fp = fp_hist is not None
    check_finite = known is None or bool(known.get("fp32_nonfinite"))
    pstr_a, pblk_a, cstr_a = (np.array(pstr, np.int64), np.array(pblk, np.int64),
                              np.array(cstr, np.int64))
    if _fast_ok(check_finite, column_mode, vshape, pstr, pblk, scale, zp):
        args = (w3, q3, scale, zp.astype(np.float64), half.astype(np.float64), pstr_a, pblk_a, cstr_a,
                grid.origin, grid.inv, lo)
        if column_mode:
            rows = COLUMN_BLOCK_ROWS if vshape[1] >= COLUMN_BLOCK_MIN_ROWS else vshape[1]
            tot = fast_column(*args, fp_hist if do_fp else dq_hist, dq_hist, code_hist, ch_acc, do_fp,
                              max(rows, 1))
        else:
            tot = fast_runs(*args, levels, use_table, table, fp_hist if do_fp else dq_hist, dq_hist,
                            code_hist, ch_acc, do_fp)
    else:
        tot = fused_stats(
            w3, q3, scale, zp, half, pstr_a, pblk_a, cstr_a, grid.origin, grid.inv, lo, levels,
            use_table, table, fp_hist if do_fp else dq_hist, dq_hist, code_hist, ch_acc,
            check_finite, do_fp)
    n, ww, ee, dd, wd, max_err, clipped = (float(x) for x in tot[:7])
    dq_lo, dq_hi, q_lo, q_hi = tot[9], tot[10], tot[11], tot[12]
    if n == 0:
        if do_fp:
            fp_hist[:] = 0
        return measure_numpy(w, d, qrange, grid)
    if use_table:
        dd, dq_lo, dq_hi, q_lo, q_hi = table_to_hist(table, scale, zp, levels, lo, grid.origin,
                                                     grid.inv, dq_hist, code_hist)
        wd = (ww + dd - ee) / 2  # from ee = ww - 2 wd + dd
    met = dict(known) if known is not None else fp32_stats(w3)
    met.update(_summary_params(d, qrange))
    hi = int(qrange[1])
    at_low = code_hist[0] + (code_hist[-hi - lo] if lo < 0 else 0)
    met.update(
        dq_min=float(dq_lo), dq_max=float(dq_hi), q_min=float(q_lo), q_max=float(q_hi),
        mse=ee / n, max_abs_err=float(max_err), sqnr_db=sqnr_db(ww, ee),
        cosine=(min(1.0, wd / math.sqrt(ww * dd))) if ww > 0 and dd > 0 else (1.0 if ww == dd == 0 else math.nan),
        clipped_frac=clipped / n,
        absmax_over_rms=(max(abs(met["fp32_min"]), abs(met["fp32_max"])) / math.sqrt(ww / n)
                         if ww > 0 else math.nan),
        levels_used=int((code_hist > 0).sum()), levels_available=levels,
        at_limits_frac=float(at_low + code_hist[-1]) / n,
    )
    nz = np.nonzero(dq_hist)[0]
    k0, k1 = int(nz[0]), int(nz[-1]) + 1
    bins = np.arange(k0, k1) - MAX_EXTRA_BINS
    if levels <= CODE_BINS:
        cl = lo + np.arange(levels, dtype=np.int64)
        cr, cc = cl + 1, code_hist
    else:
        width = levels // CODE_BINS
        cc = code_hist.reshape(CODE_BINS, width).sum(1)
        cl = lo + np.arange(CODE_BINS, dtype=np.int64) * width
        cr = cl + width
    channels = None
    if nch:
        cnt, cww, cee = ch_acc[0], ch_acc[1], ch_acc[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            sq = np.where(cee == 0, np.inf, 10 * np.log10(cww / cee))
            mse = np.where(cnt > 0, cee / np.maximum(cnt, 1), np.nan)
        mm = ch_acc[[7, 8, 9, 10]].T.copy()
        mm[cnt == 0] = np.nan
        s_min, s_max = _per_channel_params(d.scale, d, nch)
        z_min, z_max = _per_channel_params(d.zero_point, d, nch)
        channels = {"channel": np.arange(nch), "n": cnt.astype(np.int64), "fp32_min": mm[:, 0],
                    "fp32_max": mm[:, 1], "dq_min": mm[:, 2], "dq_max": mm[:, 3],
                    "scale_min": s_min, "scale_max": s_max, "zero_point_min": z_min,
                    "zero_point_max": z_max, "mse": mse, "sqnr_db": sq}
    st = TensorStats(met, bins, dq_hist[k0:k1], cl, cr, cc, channels)
    st.fp_done = do_fp
    st.engine = "kernel"
    return st


#: Smaller tensors take the generic kernel: the lane kernels' fixed cost (scratch and
#: sub-histograms) is ~7 us, more than they save below this many elements.
FAST_MIN_SIZE = 1 << 14

#: The lane kernels count value bins in int32 sub-histograms (see
#: :data:`analysis.kernels.SUB`): larger tensors take the generic kernel.
FAST_MAX_SIZE = 1 << 31

#: Column mode reads matrices of at least this many rows in blocks of
#: ``COLUMN_BLOCK_ROWS`` rows (see :func:`analysis.kernels.fast_column`; measured on
#: int8 per-channel [4096, 1024] and [8192, 2048]: 3.8-4.3 -> 3.3-3.4 ns per element;
#: no gain at 1,024-2,048 rows).
COLUMN_BLOCK_MIN_ROWS = 4096
COLUMN_BLOCK_ROWS = 16


def _fast_ok(check_finite: bool, column_mode: bool, vshape, pstr, pblk, scale: np.ndarray,
             zp: np.ndarray) -> bool:
    """Whether the vectorised kernels apply: no NaN/Inf weights, finite scales small
    enough that no dq overflows, zero points whose ``q - z`` is exact in float32, and
    runs (or rows of columns) long enough to fill the lanes, and a size between
    ``FAST_MIN_SIZE`` and ``FAST_MAX_SIZE``."""
    if check_finite or not FAST_MIN_SIZE <= int(np.prod(vshape)) < FAST_MAX_SIZE:
        return False
    if column_mode:
        if vshape[2] < 16:
            return False
    elif (vshape[2] if pstr[2] == 0 else min(pblk[2], vshape[2])) < LANES:
        return False
    a = np.abs(scale)
    if not a.max() < 1e30:  # also False for NaN
        return False
    return bool(zp.size == 0 or (zp.min() >= -(1 << 23) and zp.max() <= 1 << 23))


def _per_channel_params(p, d: Decoded, nch: int):
    p = np.asarray(p, np.float64)
    if p.ndim == 0:
        return np.full(nch, float(p)), np.full(nch, float(p))
    axes = d.channel_axes
    r = np.moveaxis(p, axes, range(len(axes))).reshape(nch, -1)
    return r.min(1), r.max(1)
