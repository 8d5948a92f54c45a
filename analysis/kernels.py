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
axis is walked either in runs that share one scale (per tensor, per row, blocks
along the inner axis) or in column mode, where each element of a row has its
own scale (per column, blocks across rows) and the accumulators are per column.
"""

from __future__ import annotations

import numba
import numpy as np

from .histograms import MAX_EXTRA_BINS, NBINS

__all__ = ["plan", "fused_stats", "fp32_hist", "table_to_hist", "runs_supported", "HIST_SIZE", "ACC"]

#: Length of a value-histogram array: NBINS plus the extension bins each side.
HIST_SIZE = NBINS + 2 * MAX_EXTRA_BINS


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
def _run_const(w, q, s, z, h, base, lo_code, use_table, table, fp_hist, dq_hist, code_hist,
               origin, inv, check_finite, do_fp, acc):
    """A run of elements sharing one scale and zero point (per tensor, per row, one block).

    ``acc`` = (n, ww, ee, dd, wd, max_err, clipped, w_min, w_max, dq_min, dq_max, q_min, q_max).
    """
    n = 0
    ww = 0.0
    ee = 0.0
    dd = 0.0
    wd = 0.0
    me = 0.0
    cl = 0
    wmn, wmx = np.inf, -np.inf
    dmn, dmx = np.inf, -np.inf
    qmn, qmx = np.int64(2**62), np.int64(-(2**62))
    for i in range(w.size):
        wv = w[i]
        if check_finite and not np.isfinite(wv):
            continue
        qi = np.int64(q[i])
        dqv = np.float32(qi - z) * s
        w64 = np.float64(wv)
        d64 = np.float64(dqv)
        e = w64 - d64  # exact: no float32 rounding of the error
        ae = abs(e)
        n += 1
        ww += w64 * w64
        ee += e * e
        me = max(me, ae)
        cl += ae > h
        wmn = min(wmn, w64)
        wmx = max(wmx, w64)
        if do_fp:
            fp_hist[_bin(w64, origin, inv)] += 1
        if use_table:
            table[base + qi - lo_code] += 1
        else:
            dd += d64 * d64
            wd += w64 * d64
            dmn = min(dmn, d64)
            dmx = max(dmx, d64)
            qmn = min(qmn, qi)
            qmx = max(qmx, qi)
            dq_hist[_bin(d64, origin, inv)] += 1
            code_hist[qi - lo_code] += 1
    acc[0] += n
    acc[1] += ww
    acc[2] += ee
    acc[3] += dd
    acc[4] += wd
    acc[5] = max(acc[5], me)
    acc[6] += cl
    acc[7] = min(acc[7], wmn)
    acc[8] = max(acc[8], wmx)
    acc[9] = min(acc[9], dmn)
    acc[10] = max(acc[10], dmx)
    acc[11] = min(acc[11], qmn)
    acc[12] = max(acc[12], qmx)


@numba.njit(cache=True, nogil=True)
def _run_var(w, q, s, z, h, lo_code, fp_hist, dq_hist, code_hist, origin, inv, check_finite,
             do_fp, cols, dqbuf):
    """A run whose element ``i`` has its own scale ``s[i]`` (per column, column blocks).

    Per-element accumulators go to the column arrays ``cols`` (n, ww, ee, dd, wd,
    max_err, clipped, w_min, w_max, dq_min, dq_max, q_min, q_max), a loop without
    cross-element dependencies; the histograms are a second, scatter-only loop.
    """
    for i in range(w.size):
        wv = w[i]
        if check_finite and not np.isfinite(wv):
            dqbuf[i] = np.nan
            continue
        qi = np.int64(q[i])
        dqv = np.float32(qi - z[i]) * s[i]
        dqbuf[i] = dqv
        w64 = np.float64(wv)
        d64 = np.float64(dqv)
        e = w64 - d64
        ae = abs(e)
        cols[i, 0] += 1.0
        cols[i, 1] += w64 * w64
        cols[i, 2] += e * e
        cols[i, 3] += d64 * d64
        cols[i, 4] += w64 * d64
        cols[i, 5] = max(cols[i, 5], ae)
        if ae > h[i]:
            cols[i, 6] += 1.0
        q64 = np.float64(qi)
        cols[i, 7] = min(cols[i, 7], w64)
        cols[i, 8] = max(cols[i, 8], w64)
        cols[i, 9] = min(cols[i, 9], d64)
        cols[i, 10] = max(cols[i, 10], d64)
        cols[i, 11] = min(cols[i, 11], q64)
        cols[i, 12] = max(cols[i, 12], q64)
    for i in range(w.size):
        d = dqbuf[i]
        if check_finite and np.isnan(d):
            continue
        code_hist[np.int64(q[i]) - lo_code] += 1
        dq_hist[_bin(np.float64(d), origin, inv)] += 1
        if do_fp:
            fp_hist[_bin(np.float64(w[i]), origin, inv)] += 1


ACC = 13  # accumulator fields, see _run_const


@numba.njit(cache=True, nogil=True)
def fused_stats(w, q, scale, zp, half, pstr, pblk, cstr, origin, inv, lo_code, levels,
                use_table, table, fp_hist, dq_hist, code_hist, ch_acc, check_finite, do_fp):
    """One pass over a tensor; see the module docstring.

    ``w`` and ``q`` are 3-D views of one shape; ``scale``, ``zp`` and ``half``
    (``|s| * 0.5 * (1 + 1e-3) + 1e-30`` in float32: the clipping threshold) are flat
    compact parameters.  ``ch_acc`` is ``[ACC, n_channels]`` (empty without channels).
    Returns the totals (the :data:`ACC` fields; with ``use_table`` the dq fields
    are filled afterwards by :func:`table_to_hist`).
    """
    d0, d1, d2 = w.shape
    per_ch = ch_acc.shape[1] > 0
    tot = np.zeros(ACC)
    tot[7] = tot[9] = np.inf
    tot[8] = tot[10] = -np.inf
    tot[11] = 2.0**62
    tot[12] = -(2.0**62)
    b2, s2, cs2 = pblk[2], pstr[2], cstr[2]
    if s2 != 0 and b2 == 1:  # parameters vary along the inner axis: column mode
        # one 128-byte record per column: rows of a [ACC, d2] array 2^k bytes apart
        # would alias in the L1 cache and make this loop ~50x slower
        cols = np.zeros((d2, 16))
        cols[:, 7] = cols[:, 9] = np.inf
        cols[:, 8] = cols[:, 10] = -np.inf
        cols[:, 11] = 2.0**62
        cols[:, 12] = -(2.0**62)
        dqbuf = np.empty(d2, np.float32)
        for i0 in range(d0):
            p0 = (i0 // pblk[0]) * pstr[0]
            for i1 in range(d1):
                p1 = p0 + (i1 // pblk[1]) * pstr[1]
                _run_var(w[i0, i1], q[i0, i1], scale[p1:p1 + d2], zp[p1:p1 + d2],
                         half[p1:p1 + d2], lo_code, fp_hist, dq_hist, code_hist, origin, inv,
                         check_finite, do_fp, cols, dqbuf)
            if per_ch:  # channels are the inner axis (cs2 == 1) plus an outer offset
                c0 = i0 * cstr[0]
                for f in range(ACC):
                    for i in range(d2):
                        v = cols[i, f]
                        if f == 5 or f == 8 or f == 10 or f == 12:
                            ch_acc[f, c0 + i] = max(ch_acc[f, c0 + i], v)
                        elif f == 7 or f == 9 or f == 11:
                            ch_acc[f, c0 + i] = min(ch_acc[f, c0 + i], v)
                        else:
                            ch_acc[f, c0 + i] += v
            for i in range(d2):
                tot[0] += cols[i, 0]
                tot[1] += cols[i, 1]
                tot[2] += cols[i, 2]
                tot[3] += cols[i, 3]
                tot[4] += cols[i, 4]
                tot[5] = max(tot[5], cols[i, 5])
                tot[6] += cols[i, 6]
                tot[7] = min(tot[7], cols[i, 7])
                tot[8] = max(tot[8], cols[i, 8])
                tot[9] = min(tot[9], cols[i, 9])
                tot[10] = max(tot[10], cols[i, 10])
                tot[11] = min(tot[11], cols[i, 11])
                tot[12] = max(tot[12], cols[i, 12])
            if d0 > 1:
                cols[:, :7] = 0.0
                cols[:, 7] = cols[:, 9] = np.inf
                cols[:, 8] = cols[:, 10] = -np.inf
                cols[:, 11] = 2.0**62
                cols[:, 12] = -(2.0**62)
        return tot
    # run mode: one scale per run of `step` elements along the inner axis
    step = d2 if s2 == 0 else b2
    acc = np.zeros(ACC)
    for i0 in range(d0):
        p0 = (i0 // pblk[0]) * pstr[0]
        c0 = i0 * cstr[0]
        for i1 in range(d1):
            p1 = p0 + (i1 // pblk[1]) * pstr[1]
            c1 = c0 + i1 * cstr[1]
            for t0 in range(0, d2, step):
                p = p1 + (t0 // b2) * s2
                acc[:] = 0.0
                acc[7] = acc[9] = np.inf
                acc[8] = acc[10] = -np.inf
                acc[11] = 2.0**62
                acc[12] = -(2.0**62)
                t1 = min(t0 + step, d2)
                _run_const(w[i0, i1, t0:t1], q[i0, i1, t0:t1], scale[p], zp[p], half[p],
                           p * levels, lo_code, use_table, table, fp_hist, dq_hist, code_hist,
                           origin, inv, check_finite, do_fp, acc)
                if per_ch:
                    c = c1
                    if use_table:  # the run's dq/q range from its table row (one group per channel)
                        base = p * levels
                        for j in range(levels):
                            if table[base + j] > 0:
                                qi = np.int64(j) + lo_code
                                d64 = np.float64(np.float32(qi - zp[p]) * scale[p])
                                acc[9] = min(acc[9], d64)
                                acc[10] = max(acc[10], d64)
                                acc[11] = min(acc[11], qi)
                                acc[12] = max(acc[12], qi)
                    for f in range(ACC):
                        if f == 5 or f == 8 or f == 10 or f == 12:
                            ch_acc[f, c] = max(ch_acc[f, c], acc[f])
                        elif f == 7 or f == 9 or f == 11:
                            ch_acc[f, c] = min(ch_acc[f, c], acc[f])
                        else:
                            ch_acc[f, c] += acc[f]
                for f in range(ACC):
                    if f == 5 or f == 8 or f == 10 or f == 12:
                        tot[f] = max(tot[f], acc[f])
                    elif f == 7 or f == 9 or f == 11:
                        tot[f] = min(tot[f], acc[f])
                    else:
                        tot[f] += acc[f]
    return tot


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


def runs_supported(pstr, pblk, cstr, has_channels: bool) -> bool:
    """Whether :func:`fused_stats` handles this view (else the NumPy path runs)."""
    if pstr[2] != 0 and pblk[2] == 1:  # column mode: channels must be the inner axis, or none
        return pstr[2] == 1 and (not has_channels or (cstr[2] == 1 and cstr[1] == 0))
    return cstr[2] == 0
