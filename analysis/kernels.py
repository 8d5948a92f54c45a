"""Fused one-pass statistics of a quantized tensor against its FP32 original (numba).

One pass over the FP32 weights and the codes computes, element by element and
exactly as :mod:`analysis.metrics` and :mod:`analysis.histograms` define them:
the dequantized value ``float32(q - z) * float32(s)``, the error sums in float64,
the clipping count, the FP32 and dequantized histograms on the shared grid, the
integer-code histogram and the per-channel accumulators.  No tensor-sized
temporary is allocated: that is what keeps a billion-parameter analysis close to
the cost of reading the weights once.

Two ways to histogram the dequantized values:

* ``table``: count codes per parameter group (``table[p, code]``) and map each
  (group, code) to its value afterwards: one scatter per element instead of a
  float binning, used when the table is no larger than the tensor (8-bit and
  4-bit codes, per-tensor and per-channel);
* otherwise bin every dequantized value (16-bit codes, small blocks).

Layouts are described by a 3-D view of the tensor (consecutive axes merged)
with, per view axis, the parameter stride and block size and the channel
stride; :func:`plan` builds it, and returns ``None`` for the rare layout that
does not fit (the NumPy path in :mod:`analysis.metrics` then runs).  The inner
axis is walked in tiles of :data:`TILE` so per-column parameters, the code
table rows and the per-channel accumulators in use stay in L1.
"""

from __future__ import annotations

import numba
import numpy as np

from .histograms import MAX_EXTRA_BINS, NBINS

__all__ = ["plan", "fused_stats", "fp32_hist", "table_to_hist", "HIST_SIZE", "TILE"]

#: Length of a value-histogram array: NBINS plus the extension bins each side.
HIST_SIZE = NBINS + 2 * MAX_EXTRA_BINS
TILE = 16


def plan(shape: tuple, pshape: tuple, block_axis: int | None, block: int | None,
         channel_axes: tuple):
    """Collapse a layout to a 3-D view.

    Parameters
    ----------
    shape : tuple
        Tensor shape (FP32 layout).
    pshape : tuple
        Compact parameter shape (``()`` per tensor, else same rank as ``shape``).
    block_axis, block : int or None
        Block-wise axis and size.
    channel_axes : tuple of int
        Axes indexed by the per-channel statistics.

    Returns
    -------
    tuple or None
        ``(view_shape, param_strides, param_blocks, channel_strides, n_channels)``.
    """
    nd = len(shape)
    if nd == 0:
        return (1, 1, 1), (0, 0, 0), (1, 1, 1), (0, 0, 0), 1
    if len(pshape) not in (0, nd):
        return None
    kinds = []
    for a in range(nd):
        pe = pshape[a] if pshape else 1
        if block_axis is not None and a == block_axis:
            pk = "block"
        elif pe == shape[a] and pe != 1:
            pk = "full"
        elif pe == 1:
            pk = "bcast"
        else:
            return None
        kinds.append((pk, a in channel_axes))
    groups = []  # runs of equal kinds merge (never a block axis)
    for a in range(nd):
        if groups and kinds[a] == kinds[groups[-1][-1]] and kinds[a][0] != "block":
            groups[-1].append(a)
        else:
            groups.append([a])
    if len(groups) > 3:
        return None
    while len(groups) < 3:
        groups.insert(0, [])
    vshape = [int(np.prod([shape[a] for a in g])) if g else 1 for g in groups]
    pstr, pblk, cstr = [0, 0, 0], [1, 1, 1], [0, 0, 0]
    stride = 1
    for i in (2, 1, 0):  # C-order strides over the compact parameter array
        g = groups[i]
        kind = kinds[g[0]][0] if g else "bcast"
        if kind == "block":
            pstr[i], pblk[i] = stride, int(block)
            stride *= -(-vshape[i] // block)
        elif kind == "full":
            pstr[i] = stride
            stride *= vshape[i]
    stride = 1
    for i in (2, 1, 0):
        if groups[i] and kinds[groups[i][0]][1]:
            cstr[i] = stride
            stride *= vshape[i]
    return tuple(vshape), tuple(pstr), tuple(pblk), tuple(cstr), int(stride)


@numba.njit(cache=True, nogil=True, inline="always")
def _bin(x, origin, inv):
    k = int(np.floor((x - origin) * inv))
    if k == NBINS:
        k = NBINS - 1  # the FP32 maximum belongs to the last bin
    return min(max(k, -MAX_EXTRA_BINS), NBINS - 1 + MAX_EXTRA_BINS) + MAX_EXTRA_BINS


@numba.njit(cache=True, nogil=True)
def fp32_hist(w, origin, inv, hist):
    """Histogram of the finite values of a flat float32 array on a grid."""
    for e in range(w.size):
        v = w[e]
        if np.isfinite(v):
            hist[_bin(np.float64(v), origin, inv)] += 1


@numba.njit(cache=True, nogil=True)
def fused_stats(w, q, scale, zp, half, pstr, pblk, cstr, origin, inv, lo_code, levels,
                use_table, table, fp_hist, dq_hist, code_hist, ch_acc, ch_mm, check_finite, do_fp):
    """One pass over a tensor; see the module docstring.

    ``w`` and ``q`` are 3-D views of one shape; ``scale``, ``zp`` and ``half``
    (``|s| * 0.5 * (1 + 1e-3) + 1e-30`` in float32: the clipping threshold) are
    flat compact parameters.  ``ch_acc[c] = (n, sum w^2, sum e^2)``,
    ``ch_mm[c] = (w min, w max, dq min, dq max)``; empty arrays when there are no channels.

    Returns ``(n, ww, ee, dd, wd, max_err, dq_min, dq_max, q_min, q_max, clipped)``;
    with ``use_table`` the dq sums and ranges come from :func:`table_to_hist`.
    """
    n = 0
    ww = 0.0
    ee = 0.0
    dd = 0.0
    wd = 0.0
    max_err = 0.0
    dq_lo = np.float32(np.inf)
    dq_hi = np.float32(-np.inf)
    q_lo = np.int64(2**62)
    q_hi = np.int64(-(2**62))
    clipped = 0
    d0, d1, d2 = w.shape
    per_ch = ch_acc.shape[0] > 0
    b2, s2, cs2 = pblk[2], pstr[2], cstr[2]
    for i0 in range(d0):
        p0 = (i0 // pblk[0]) * pstr[0]
        c0 = i0 * cstr[0]
        for t0 in range(0, d2, TILE if s2 != 0 or cs2 != 0 else d2):
            t1 = min(t0 + (TILE if s2 != 0 or cs2 != 0 else d2), d2)
            for i1 in range(d1):
                p1 = p0 + (i1 // pblk[1]) * pstr[1]
                c1 = c0 + i1 * cstr[1]
                for i2 in range(t0, t1):
                    wv = w[i0, i1, i2]
                    if check_finite and not np.isfinite(wv):
                        continue
                    p = p1 + (i2 // b2) * s2 if b2 > 1 else p1 + i2 * s2
                    qi = np.int64(q[i0, i1, i2])
                    dqv = np.float32(qi - zp[p]) * scale[p]
                    w64 = np.float64(wv)
                    e64 = w64 - np.float64(dqv)  # exact: no float32 rounding of the error
                    ae = abs(e64)
                    n += 1
                    ww += w64 * w64
                    ee += e64 * e64
                    max_err = max(max_err, ae)
                    clipped += ae > half[p]
                    if do_fp:
                        fp_hist[_bin(w64, origin, inv)] += 1
                    if use_table:
                        table[p * levels + (qi - lo_code)] += 1
                    else:
                        d64 = np.float64(dqv)
                        dd += d64 * d64
                        wd += w64 * d64
                        dq_lo = min(dq_lo, dqv)
                        dq_hi = max(dq_hi, dqv)
                        q_lo = min(q_lo, qi)
                        q_hi = max(q_hi, qi)
                        dq_hist[_bin(d64, origin, inv)] += 1
                        code_hist[qi - lo_code] += 1
                    if per_ch:
                        c = c1 + i2 * cs2
                        ch_acc[c, 0] += 1.0
                        ch_acc[c, 1] += w64 * w64
                        ch_acc[c, 2] += e64 * e64
                        ch_mm[c, 0] = min(ch_mm[c, 0], wv)
                        ch_mm[c, 1] = max(ch_mm[c, 1], wv)
                        ch_mm[c, 2] = min(ch_mm[c, 2], dqv)
                        ch_mm[c, 3] = max(ch_mm[c, 3], dqv)
    return n, ww, ee, dd, wd, max_err, dq_lo, dq_hi, q_lo, q_hi, clipped


@numba.njit(cache=True, nogil=True)
def table_to_hist(table, scale, zp, levels, lo_code, origin, inv, dq_hist, code_hist):
    """Turn per-group code counts into the dq and code histograms, dq sums and ranges.

    Returns ``(dd, dq_min, dq_max, q_min, q_max)``.
    """
    dd = 0.0
    dq_lo = np.float32(np.inf)
    dq_hi = np.float32(-np.inf)
    q_lo = np.int64(2**62)
    q_hi = np.int64(-(2**62))
    for p in range(scale.size):
        base = p * levels
        for j in range(levels):
            c = table[base + j]
            if c == 0:
                continue
            qi = np.int64(j) + lo_code
            dqv = np.float32(qi - zp[p]) * scale[p]
            d64 = np.float64(dqv)
            dd += c * d64 * d64
            dq_lo = min(dq_lo, dqv)
            dq_hi = max(dq_hi, dqv)
            q_lo = min(q_lo, qi)
            q_hi = max(q_hi, qi)
            dq_hist[_bin(d64, origin, inv)] += c
            code_hist[j] += c
    return dd, dq_lo, dq_hi, q_lo, q_hi
