"""Error metrics and grid diagnostics of one quantized tensor against its FP32 original.

All sums are accumulated in float64; the dequantized tensor is computed with
one float32 rounding, as the runtime does.  Non-finite FP32 values are counted
and left out of every statistic.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .quant_tensor import Decoded, expand_param

__all__ = ["tensor_metrics", "channel_metrics", "fp32_stats", "sqnr_db", "FLOAT8_LEVELS"]

#: Finite values of float8e4m3fn (256 bit patterns minus the two NaNs).
FLOAT8_LEVELS = 254


def sqnr_db(signal_energy: float, noise_energy: float) -> float:
    """``10 log10(sum w^2 / sum (w - dq)^2)``; ``inf`` for an exact match."""
    if math.isnan(noise_energy) or math.isnan(signal_energy):
        return math.nan
    if noise_energy == 0.0:
        return math.inf
    if signal_energy == 0.0 or math.isinf(noise_energy):
        return -math.inf
    return 10.0 * math.log10(signal_energy / noise_energy)


def _finite_view(w: np.ndarray):
    """``(values, mask or None, n_nonfinite)``; the mask is only built when needed."""
    lo, hi = (np.min(w), np.max(w)) if w.size else (0.0, 0.0)
    if np.isfinite(lo) and np.isfinite(hi):
        return w, None, 0
    mask = np.isfinite(w)
    return w, mask, int(w.size - mask.sum())


def fp32_stats(w: np.ndarray) -> dict:
    """Finite min / max and count of NaN/Inf of an FP32 tensor."""
    w = np.asarray(w)
    if w.size == 0:
        return {"fp32_min": math.nan, "fp32_max": math.nan, "fp32_nonfinite": 0}
    lo, hi = np.min(w), np.max(w)
    if np.isfinite(lo) and np.isfinite(hi):  # the common case: two passes, not four
        return {"fp32_min": float(lo), "fp32_max": float(hi), "fp32_nonfinite": 0}
    mask = np.isfinite(w)
    vals = w[mask]
    bad = int(w.size - vals.size)
    if vals.size == 0:
        return {"fp32_min": math.nan, "fp32_max": math.nan, "fp32_nonfinite": bad}
    return {"fp32_min": float(vals.min()), "fp32_max": float(vals.max()), "fp32_nonfinite": bad}


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """float64 dot product of two float32 vectors, chunked so the sums stay exact enough."""
    total = 0.0
    step = 1 << 16
    for i in range(0, a.size, step):
        total += float(np.dot(a[i:i + step].astype(np.float64), b[i:i + step].astype(np.float64)))
    return total


def tensor_metrics(w: np.ndarray, d: Decoded, dq: np.ndarray, qrange: tuple | None) -> dict:
    """Per-tensor error metrics and grid diagnostics.

    Parameters
    ----------
    w : np.ndarray
        FP32 original, in the same layout as ``dq``.
    d : Decoded
        Codes and parameters.
    dq : np.ndarray
        ``dequantize(d)``.
    qrange : tuple or None
        ``(lowest, highest)`` code of the storage type (``None`` for float8).

    Returns
    -------
    dict
        Keys ``fp32_min, fp32_max, fp32_nonfinite, dq_min, dq_max, q_min, q_max, mse,
        max_abs_err, sqnr_db, cosine, clipped_frac, at_limits_frac, levels_used,
        levels_available, absmax_over_rms, zp_out_of_range, scale_zero, scale_negative,
        scale_nonfinite``.
    """
    w = np.asarray(w, np.float32).reshape(-1)
    dqf = dq.reshape(-1)
    q = d.q.reshape(-1)
    out = fp32_stats(w)
    _, mask, _ = _finite_view(w)
    if mask is not None:
        w, dqf, q = w[mask], dqf[mask], q[mask]
    n = w.size
    s = np.asarray(d.scale, np.float32)
    z = np.asarray(d.zero_point)
    out.update(
        scale_zero=int((s == 0).sum()), scale_negative=int((s < 0).sum()),
        scale_nonfinite=int((~np.isfinite(s)).sum()),
        zp_out_of_range=bool(qrange is not None and z.size and z.dtype.kind in "iu"
                             and (z.min() < qrange[0] or z.max() > qrange[1])),
    )
    if n == 0:
        out.update(dq_min=math.nan, dq_max=math.nan, q_min=math.nan, q_max=math.nan, mse=math.nan,
                   max_abs_err=math.nan, sqnr_db=math.nan, cosine=math.nan, clipped_frac=math.nan,
                   at_limits_frac=math.nan, levels_used=0, absmax_over_rms=math.nan,
                   levels_available=_levels_available(qrange))
        return out
    err = w.astype(np.float64) - dqf.astype(np.float64)  # the error itself in float64
    ee = float(np.dot(err, err))
    ww = _dot(w, w)
    dd = _dot(dqf, dqf)
    wd = _dot(w, dqf)
    # Outside the grid: the error exceeds half a step, so the value was clipped.
    s_full = np.abs(expand_param(s, d.q.shape, d.block_axis, d.block_size))
    half = np.broadcast_to(s_full, d.q.shape).reshape(-1)
    if mask is not None:
        half = half[mask]
    clipped = np.abs(err) > half * np.float32(0.5 * (1 + 1e-3)) + np.float32(1e-30)

    out.update(
        dq_min=float(dqf.min()), dq_max=float(dqf.max()),
        q_min=float(q.min()), q_max=float(q.max()),
        mse=ee / n, max_abs_err=float(np.abs(err).max()), sqnr_db=sqnr_db(ww, ee),
        cosine=(wd / math.sqrt(ww * dd)) if ww > 0 and dd > 0 else (1.0 if ww == dd == 0 else math.nan),
        clipped_frac=float(clipped.sum()) / n,
        absmax_over_rms=(max(abs(float(w.min())), abs(float(w.max()))) / math.sqrt(ww / n)
                         if ww > 0 else math.nan),
    )
    out.update(_grid_use(q, qrange, n))
    return out


def _levels_available(qrange: tuple | None) -> int:
    return FLOAT8_LEVELS if qrange is None else int(qrange[1] - qrange[0] + 1)


def _grid_use(q: np.ndarray, qrange: tuple | None, n: int) -> dict:
    """Integer levels used, and the share of codes sitting on the type's limits."""
    avail = _levels_available(qrange)
    if qrange is None:  # float8 values
        return {"levels_used": int(np.unique(q).size), "levels_available": avail,
                "at_limits_frac": math.nan}
    lo, hi = qrange
    if avail <= 65536:
        counts = np.bincount((q.astype(np.int64) - lo), minlength=avail)
        used = int((counts > 0).sum())
        low = counts[0] + (counts[-hi - lo] if lo < 0 else 0)  # signed: -hi is the symmetric floor
        at = float(low + counts[-1]) / n
    else:
        used = int(np.unique(q).size)
        at = float(((q == lo) | (q == hi)).sum()) / n
    return {"levels_used": used, "levels_available": avail, "at_limits_frac": at}


def channel_metrics(w: np.ndarray, d: Decoded, dq: np.ndarray) -> dict | None:
    """Per-channel range, scale, zero point and error of a per-channel or block-wise tensor.

    The channel axes are ``d.channel_axes`` (for block-wise: the axis across the
    blocks, so each row aggregates all blocks of one output channel).

    Returns
    -------
    dict of np.ndarray or None
        Keys ``channel, n, fp32_min, fp32_max, dq_min, dq_max, scale_min, scale_max,
        zero_point_min, zero_point_max, mse, sqnr_db``; ``None`` per tensor.
    """
    axes = d.channel_axes
    if not axes or d.q.ndim == 0:
        return None
    shape_c = tuple(d.q.shape[a] for a in axes)
    C = int(np.prod(shape_c))

    def rows(a):
        a = np.moveaxis(np.asarray(a), axes, range(len(axes)))
        return a.reshape(C, -1) if C else a.reshape(0, 0)  # (0, -1) cannot be reshaped

    W = rows(np.asarray(w, np.float32)).astype(np.float64)
    DQ = rows(dq).astype(np.float64)
    finite = np.isfinite(W)
    Wf = np.where(finite, W, 0.0)
    E = np.where(finite, W - DQ, 0.0)
    ee = (E * E).sum(1)
    ww = (Wf * Wf).sum(1)
    n = finite.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sq = np.where(ee == 0, np.inf, 10 * np.log10(ww / ee))
        mse = np.where(n > 0, ee / np.maximum(n, 1), np.nan)

    def prm(p):
        p = np.asarray(p, np.float64)
        if p.ndim and (C == 0 or p.size == 0):  # empty channels or an empty block axis
            return np.full(C, np.nan), np.full(C, np.nan)
        r = rows(p) if p.ndim else np.full((C, 1), float(p))
        return r.min(1), r.max(1)

    s_min, s_max = prm(d.scale)
    z_min, z_max = prm(d.zero_point)
    big = np.where(finite, W, np.nan)
    dqf = np.where(finite, DQ, np.nan)
    if W.shape[1] == 0:  # channels of an empty tensor: no values at all
        fmin = fmax = dmin = dmax = np.full(C, np.nan)
    else:
        with warnings.catch_warnings():  # an all-NaN channel is reported as NaN, silently
            warnings.simplefilter("ignore", RuntimeWarning)
            fmin, fmax = np.nanmin(big, 1), np.nanmax(big, 1)
            dmin, dmax = np.nanmin(dqf, 1), np.nanmax(dqf, 1)
    return {
        "channel": np.arange(C), "n": n, "fp32_min": fmin, "fp32_max": fmax,
        "dq_min": dmin, "dq_max": dmax, "scale_min": s_min, "scale_max": s_max,
        "zero_point_min": z_min, "zero_point_max": z_max, "mse": mse, "sqnr_db": sq,
    }
