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

__all__ = ["frozen", "plan", "fused_stats", "fast_column", "fast_runs", "fp32_hist", "table_to_hist", "runs_supported",
           "HIST_SIZE", "ACC", "LANES"]

#: Length of a value-histogram array: NBINS plus the extension bins each side (at most
#: 256: the column kernel packs a bin into 8 bits, see :func:`_pack`).
HIST_SIZE = NBINS + 2 * MAX_EXTRA_BINS
if HIST_SIZE > 256:
    raise ImportError("HIST_SIZE > 256: the column kernel's packed bins need 8 bits")


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


def frozen(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``, for the tensor arguments of every kernel.

    Numba compiles one specialisation per writability of each array argument.  Mapped
    and parsed tensors are read-only, converted ones writable: passing every tensor
    read-only halves the variants per argument (52 -> 15 specialisations loaded by
    :func:`analysis.warmup.warm_up`, which each server process and job holds).
    """
    v = a.view()
    v.flags.writeable = False
    return v


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


# --------------------------------------------------------------------------- fast path
# Tensors without NaN/Inf whose scales are finite (so every dq and error is finite):
# the per-element work runs on "lanes" (the columns of a tile in column mode, the
# positions of a block of LANES elements in run mode) with one accumulator per lane
# and statistic, in a loop without cross-element dependencies that LLVM vectorises;
# the histogram scatters are a second loop over the same lanes.  Lane accumulators
# live in one float64 array ``S`` and one int32 array ``Q`` at constant row offsets
# (so LLVM knows the rows never overlap).  Each dq is still ``float32(q - z) * s``,
# each error ``w - dq`` in float64; sums are float64 (in another order than the
# generic kernel: equal to ~1e-15), counts, minima and maxima are exact.

LANES = 128  # tile width: 13 float64 rows of 128 lanes stay in L1

# rows of S (float64)
_SH, _WW, _EE, _DD, _ME, _CL, _WMN, _WMX, _DMN, _DMX = range(10)
_NS = 10
# rows of F (float32): scale and zero point of each lane
_FS, _FZ = range(2)
_NF = 2
# rows of Q (int32)
_QMN, _QMX, _BW, _BD, _QAMN, _QAMX = range(6)
_NQ = 6
_BIG = 2**30


@numba.njit(cache=True, nogil=True, inline="always")
def _bin_fast(x, origin, inv):
    """:func:`_bin` for a finite ``x``: clamped in float64 first (branch-free, vectorisable)."""
    k = np.floor(min(max((x - origin) * inv, -np.float64(MAX_EXTRA_BINS)),
                     np.float64(NBINS - 1 + MAX_EXTRA_BINS)))
    if k == np.float64(NBINS):
        k = np.float64(NBINS - 1)  # the FP32 maximum belongs to the last bin
    return np.int32(k + np.float64(MAX_EXTRA_BINS))  # all in float64: no int64 lanes


@numba.njit(cache=True, nogil=True, inline="always")
def _col_step(wv, qv, z, s, h, origin, inv, acc):
    """One element of a column lane with scale ``s``, zero point ``z`` (float32, exact
    integer) and clipping threshold ``h``, on the lane's state ``acc`` held in registers
    (see :func:`_col_load`): returns the new state, the FP32 bin and the dq bin."""
    ww, ee, dd, me, cl, wmn, wmx, qmn, qmx = acc
    w64 = np.float64(wv)
    qi = np.int32(qv)
    # float32(q) - z is exact (|q - z| < 2**24): one rounding, in the product, as the runtime
    d64 = np.float64((np.float32(qi) - z) * s)
    e = w64 - d64
    ae = abs(e)
    return ((ww + w64 * w64, ee + e * e, dd + d64 * d64, max(me, ae), cl + (1.0 if ae > h else 0.0),
             min(wmn, w64), max(wmx, w64), min(qmn, qi), max(qmx, qi)),
            _bin_fast(w64, origin, inv), _bin_fast(d64, origin, inv))


@numba.njit(cache=True, nogil=True, inline="always")
def _col_load(S, Q, j):
    """Lane ``j``'s state for :func:`_col_step`."""
    L = LANES
    return (S[_WW * L + j], S[_EE * L + j], S[_DD * L + j], S[_ME * L + j], S[_CL * L + j],
            S[_WMN * L + j], S[_WMX * L + j], Q[_QMN * L + j], Q[_QMX * L + j])


@numba.njit(cache=True, nogil=True, inline="always")
def _col_store(S, Q, j, a):
    L = LANES
    (S[_WW * L + j], S[_EE * L + j], S[_DD * L + j], S[_ME * L + j], S[_CL * L + j],
     S[_WMN * L + j], S[_WMX * L + j], Q[_QMN * L + j], Q[_QMX * L + j]) = a


@numba.njit(cache=True, nogil=True, inline="always")
def _pack(bw, bd, qi, lo):
    """One element's FP32 bin, dq bin and code (``qi - lo``) in one uint32: bits 16-23,
    24-31 and 0-15 (bins < :data:`HIST_SIZE` <= 256, codes < 65536).  One store per
    element instead of three: with the three increments that follow, stores were the
    column kernel's limit (12-15 % faster on real per-channel matrices)."""
    return (np.uint32(qi - lo) | (np.uint32(bw) << np.uint32(16))
            | (np.uint32(bd) << np.uint32(24)))


@numba.njit(cache=True, nogil=True, inline="always")
def _unpack(v):
    """``(FP32 bin, dq bin, code - lo)`` of a word of :func:`_pack`, as int64 indices."""
    return (np.int64((v >> np.uint32(16)) & np.uint32(0xFF)), np.int64(v >> np.uint32(24)),
            np.int64(v & np.uint32(0xFFFF)))


@numba.njit(cache=True, nogil=True)
def _lanes_col(w, q, F, S, Q, P, origin, inv, lo):
    """One row of a column tile: lane ``j`` has its own scale ``F[_FS, j]``, zero point
    ``F[_FZ, j]`` and clipping threshold ``S[_SH, j]``; its bins and code go to ``P[j]``
    (see :func:`_pack`)."""
    L = LANES
    for j in range(w.size):
        a = _col_load(S, Q, j)
        a, bw, bd = _col_step(w[j], q[j], F[_FZ * L + j], F[_FS * L + j], S[_SH * L + j], origin, inv, a)
        P[j] = _pack(bw, bd, np.int32(q[j]), lo)
        _col_store(S, Q, j, a)


@numba.njit(cache=True, nogil=True)
def _lanes_col4(w0, w1, w2, w3, q0, q1, q2, q3, F, S, Q, P, origin, inv, lo):
    """:func:`_lanes_col` over 4 rows that share their parameters.  The lane state is
    loaded and stored once per 4 elements instead of once per element (in registers
    meanwhile: the store traffic was the single-row loop's limit; 8 rows gain nothing
    more); each lane still adds its rows in row order, so the sums are the same bit for
    bit.  Row ``k``'s packed bins and codes go to ``P[k * LANES:]``."""
    L = LANES
    for j in range(w0.size):
        z, s = F[_FZ * L + j], F[_FS * L + j]
        h = S[_SH * L + j]
        a = _col_load(S, Q, j)
        a, bw, bd = _col_step(w0[j], q0[j], z, s, h, origin, inv, a)
        P[j] = _pack(bw, bd, np.int32(q0[j]), lo)
        a, bw, bd = _col_step(w1[j], q1[j], z, s, h, origin, inv, a)
        P[L + j] = _pack(bw, bd, np.int32(q1[j]), lo)
        a, bw, bd = _col_step(w2[j], q2[j], z, s, h, origin, inv, a)
        P[2 * L + j] = _pack(bw, bd, np.int32(q2[j]), lo)
        a, bw, bd = _col_step(w3[j], q3[j], z, s, h, origin, inv, a)
        P[3 * L + j] = _pack(bw, bd, np.int32(q3[j]), lo)
        _col_store(S, Q, j, a)


@numba.njit(cache=True, nogil=True)
def _lanes_run(w, q, s, z, h, S, Q, origin, inv):
    """Lanes of a run sharing ``s``, ``z`` (float32) when the dq side comes from the code
    table: error sums, maximum, clipping, FP32 range, code range and FP32 bins (the FP32
    range is only used when the run is a channel; two vector min/max cost < 2 %)."""
    L = LANES
    for j in range(w.size):
        w64 = np.float64(w[j])
        qi = np.int32(q[j])
        e = w64 - np.float64((np.float32(qi) - z) * s)
        ae = abs(e)
        S[_WW * L + j] += w64 * w64
        S[_EE * L + j] += e * e
        S[_ME * L + j] = max(S[_ME * L + j], ae)
        if ae > h:
            S[_CL * L + j] += 1.0
        S[_WMN * L + j] = min(S[_WMN * L + j], w64)
        S[_WMX * L + j] = max(S[_WMX * L + j], w64)
        Q[_QMN * L + j] = min(Q[_QMN * L + j], qi)
        Q[_QMX * L + j] = max(Q[_QMX * L + j], qi)
        Q[_BW * L + j] = _bin_fast(w64, origin, inv)


@numba.njit(cache=True, nogil=True)
def _lanes_run_full(w, q, s, z, h, S, Q, origin, inv):
    """Lanes of a run without code table (16-bit codes): also dq sums and dq bins."""
    L = LANES
    for j in range(w.size):
        w64 = np.float64(w[j])
        qi = np.int32(q[j])
        d64 = np.float64((np.float32(qi) - z) * s)
        e = w64 - d64
        ae = abs(e)
        S[_WW * L + j] += w64 * w64
        S[_EE * L + j] += e * e
        S[_DD * L + j] += d64 * d64
        S[_ME * L + j] = max(S[_ME * L + j], ae)
        if ae > h:
            S[_CL * L + j] += 1.0
        S[_WMN * L + j] = min(S[_WMN * L + j], w64)
        S[_WMX * L + j] = max(S[_WMX * L + j], w64)
        Q[_QMN * L + j] = min(Q[_QMN * L + j], qi)
        Q[_QMX * L + j] = max(Q[_QMX * L + j], qi)
        Q[_BW * L + j] = _bin_fast(w64, origin, inv)
        Q[_BD * L + j] = _bin_fast(d64, origin, inv)


@numba.njit(cache=True, nogil=True, inline="always")
def _count4(idx, shift, H, stride):
    """``H[idx[j] + shift] += 1`` spread over 4 sub-histograms ``stride`` apart: a run of
    equal bins no longer waits on its own previous increment."""
    n = idx.size
    n4 = n - n % 4
    for j in range(0, n4, 4):
        H[np.int64(idx[j]) + shift] += 1
        H[stride + np.int64(idx[j + 1]) + shift] += 1
        H[2 * stride + np.int64(idx[j + 2]) + shift] += 1
        H[3 * stride + np.int64(idx[j + 3]) + shift] += 1
    for j in range(n4, n):
        H[np.int64(idx[j]) + shift] += 1


#: Sub-histograms of the value bins: quantized weights crowd into a few of the 64 bins
#: (3/4 of an MLP matrix in one bin when outliers stretch the range), and each
#: increment of a bin waits for the previous one; 16 copies keep 16 in flight.
#: int32 counts (16 x 192 x 4 bytes each for the FP32 and dq bins: both stay in L1);
#: tensors of 2**31 elements or more take the generic kernel.
SUB = 16


@numba.njit(cache=True, nogil=True, inline="always")
def _count16(idx, H):
    """``H[u * HIST_SIZE + idx[j]] += 1`` with ``u = j % SUB`` (see :data:`SUB`)."""
    n = idx.size
    m = n - n % SUB
    for j in range(0, m, SUB):
        for u in range(SUB):
            H[u * HIST_SIZE + np.int64(idx[j + u])] += 1
    for j in range(m, n):
        H[np.int64(idx[j])] += 1


@numba.njit(cache=True, nogil=True, inline="always")
def _merge16(H, out):
    """``out += `` the :data:`SUB` sub-histograms of :func:`_count16`; clears ``H``."""
    for u in range(SUB):
        for k in range(HIST_SIZE):
            out[k] += H[u * HIST_SIZE + k]
            H[u * HIST_SIZE + k] = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _count_tile(P, rows, n, HD, HF, HC, levels, code_hist):
    """Count ``rows`` rows of ``n`` lanes (column mode: packed by :func:`_pack` in ``P``)
    into ``HD``, ``HF`` (:data:`SUB` sub-histograms each) and the codes into ``HC`` (4
    sub-histograms; ``code_hist`` itself for 16-bit codes).  One loop for the three:
    their chains of increments overlap (separate loops measured 20-40 % slower)."""
    L = LANES
    m = n - n % SUB
    for k in range(rows):
        b = k * L
        for j in range(0, m, SUB):
            for u in range(SUB):
                fb, db, c = _unpack(P[b + j + u])
                HF[u * HIST_SIZE + fb] += 1
                HD[u * HIST_SIZE + db] += 1
                if HC.size:
                    HC[(u % 4) * levels + c] += 1
                else:
                    code_hist[c] += 1
        for j in range(m, n):
            fb, db, c = _unpack(P[b + j])
            HF[fb] += 1
            HD[db] += 1
            if HC.size:
                HC[c] += 1
            else:
                code_hist[c] += 1


@numba.njit(cache=True, nogil=True, inline="always")
def _merge4(H, stride, out, base):
    """``out[base + k] += `` the 4 sub-histograms of :func:`_count4`; clears ``H``."""
    for k in range(stride):
        out[base + k] += H[k] + H[stride + k] + H[2 * stride + k] + H[3 * stride + k]
        H[k] = H[stride + k] = H[2 * stride + k] = H[3 * stride + k] = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _lanes_reset(S, Q, n):
    L = LANES
    for j in range(n):
        for f in range(_WW, _WMN):  # sums, maximum error, clipped count
            S[f * L + j] = 0.0
        S[_WMN * L + j] = np.inf
        S[_WMX * L + j] = -np.inf
        S[_DMN * L + j] = np.inf
        S[_DMX * L + j] = -np.inf
        Q[_QMN * L + j] = _BIG
        Q[_QMX * L + j] = -_BIG
        Q[_QAMN * L + j] = _BIG
        Q[_QAMX * L + j] = -_BIG


@numba.njit(cache=True, nogil=True, inline="always")
def _segment_end(F, S, Q, n):
    """Fold the lanes' code range of one parameter segment into dq and code ranges.

    dq is monotonic in q for a fixed (finite) scale, so the extreme codes give the
    extreme dq values."""
    L = LANES
    for j in range(n):
        a, b = Q[_QMN * L + j], Q[_QMX * L + j]
        if a > b:
            continue
        z, s = F[_FZ * L + j], F[_FS * L + j]
        da = np.float64((np.float32(a) - z) * s)
        db = np.float64((np.float32(b) - z) * s)
        if db < da:
            da, db = db, da
        S[_DMN * L + j] = min(S[_DMN * L + j], da)
        S[_DMX * L + j] = max(S[_DMX * L + j], db)
        Q[_QAMN * L + j] = min(Q[_QAMN * L + j], a)
        Q[_QAMX * L + j] = max(Q[_QAMX * L + j], b)
        Q[_QMN * L + j] = _BIG
        Q[_QMX * L + j] = -_BIG


@numba.njit(cache=True, nogil=True, inline="always")
def _lanes_into(S, Q, j, nrows, out, c):
    """Fold lane ``j`` (``nrows`` elements) into ``out[:, c]`` (ACC fields)."""
    L = LANES
    out[0, c] += nrows
    out[1, c] += S[_WW * L + j]
    out[2, c] += S[_EE * L + j]
    out[3, c] += S[_DD * L + j]
    out[5, c] = max(out[5, c], S[_ME * L + j])
    out[6, c] += S[_CL * L + j]
    out[7, c] = min(out[7, c], S[_WMN * L + j])
    out[8, c] = max(out[8, c], S[_WMX * L + j])
    out[9, c] = min(out[9, c], S[_DMN * L + j])
    out[10, c] = max(out[10, c], S[_DMX * L + j])
    out[11, c] = min(out[11, c], np.float64(Q[_QAMN * L + j]))
    out[12, c] = max(out[12, c], np.float64(Q[_QAMX * L + j]))


@numba.njit(cache=True, nogil=True, inline="always")
def _acc_init(a):
    a[:] = 0.0
    a[7] = a[9] = np.inf
    a[8] = a[10] = -np.inf
    a[11] = 2.0**62
    a[12] = -(2.0**62)


@numba.njit(cache=True, nogil=True, inline="always")
def _fold(dst, c, src, k):
    """``dst[:, c]`` combined with ``src[:, k]`` (sums, maxima, minima)."""
    for f in range(ACC):
        if f == 5 or f == 8 or f == 10 or f == 12:
            dst[f, c] = max(dst[f, c], src[f, k])
        elif f == 7 or f == 9 or f == 11:
            dst[f, c] = min(dst[f, c], src[f, k])
        else:
            dst[f, c] += src[f, k]


@numba.njit(cache=True, nogil=True)
def _fast_run(w, q, s, z, h, base, lo_code, levels, use_table, table, code_hist, origin,
              inv, do_fp, F, S, Q, HF, HD, HC, out, c):
    """One run sharing a scale, on lanes; folded into ``out[:, c]``.

    Codes go to ``table[base:base + levels]`` (``use_table``) or ``code_hist``, through the
    sub-histograms ``HC`` when the run is long enough; dq and FP32 bins to ``HD``, ``HF``;
    the FP32 range is always taken (a run may be a channel)."""
    L = LANES
    m = w.size
    nl = min(L, m)
    sub_codes = HC.size > 0 and m >= HC.size
    s32, z32 = np.float32(s), np.float32(z)
    _lanes_reset(S, Q, nl)
    for j in range(nl):
        F[_FS * L + j] = s32
        F[_FZ * L + j] = z32
    for o in range(0, m, L):
        n = min(L, m - o)
        qr = q[o:o + n]
        if use_table:
            _lanes_run(w[o:o + n], qr, s32, z32, h, S, Q, origin, inv)
            if sub_codes:
                _count4(qr, -lo_code, HC, levels)
            else:
                for j in range(n):
                    table[base + np.int64(qr[j]) - lo_code] += 1
        else:
            _lanes_run_full(w[o:o + n], qr, s32, z32, h, S, Q, origin, inv)
            _count16(Q[_BD * L:_BD * L + n], HD)
            if sub_codes:
                _count4(qr, -lo_code, HC, levels)
            else:
                for j in range(n):
                    code_hist[np.int64(qr[j]) - lo_code] += 1
        if do_fp:
            _count16(Q[_BW * L:_BW * L + n], HF)
    if sub_codes:
        if use_table:
            _merge4(HC, levels, table, base)
        else:
            _merge4(HC, levels, code_hist, 0)
    _segment_end(F, S, Q, nl)
    rows = m // L
    for j in range(nl):
        _lanes_into(S, Q, j, rows + (1 if j < m - rows * L else 0), out, c)


@numba.njit(cache=True, nogil=True)
def fast_runs(w, q, scale, zp, half, pstr, pblk, cstr, origin, inv, lo_code, levels,
              use_table, table, fp_hist, dq_hist, code_hist, ch_acc, do_fp):
    """Run mode of :func:`fused_stats` for finite weights and scales (see above)."""
    d0, d1, d2 = w.shape
    L = LANES
    per_ch = ch_acc.shape[1] > 0
    tot = np.empty((ACC, 1))
    _acc_init(tot[:, 0])
    acc = np.empty((ACC, 1))
    S = np.empty(_NS * L)
    Q = np.empty(_NQ * L, np.int32)
    F = np.empty(_NF * L, np.float32)
    b2, s2 = pblk[2], pstr[2]
    step = d2 if s2 == 0 else b2
    HD = np.zeros(SUB * HIST_SIZE, np.int32)
    HF = np.zeros(SUB * HIST_SIZE, np.int32)
    HC = np.zeros(4 * levels if levels <= 256 else 0, np.int64)
    for i0 in range(d0):
        p0 = (i0 // pblk[0]) * pstr[0]
        c0 = i0 * cstr[0]
        for i1 in range(d1):
            p1 = p0 + (i1 // pblk[1]) * pstr[1]
            c1 = c0 + i1 * cstr[1]
            for t0 in range(0, d2, step):
                p = p1 + (t0 // b2) * s2
                t1 = min(t0 + step, d2)
                _acc_init(acc[:, 0])
                _fast_run(w[i0, i1, t0:t1], q[i0, i1, t0:t1], scale[p], zp[p], half[p], p * levels,
                          lo_code, levels, use_table, table, code_hist, origin, inv, do_fp,
                          F, S, Q, HF, HD, HC, acc, 0)
                if per_ch:
                    _fold(ch_acc, c1, acc, 0)
                _fold(tot, 0, acc, 0)
    if not use_table:
        _merge16(HD, dq_hist)
    if do_fp:
        _merge16(HF, fp_hist)
    tot[4, 0] = (tot[1, 0] + tot[3, 0] - tot[2, 0]) / 2  # wd (the table path derives it too)
    return tot[:, 0]


@numba.njit(cache=True, nogil=True)
def fast_column(w, q, scale, zp, half, pstr, pblk, cstr, origin, inv, lo_code, fp_hist, dq_hist,
                code_hist, ch_acc, do_fp, rows):
    """Column mode of :func:`fused_stats` for finite weights and scales (see above).

    ``zp`` is float64 (exact integers), ``half`` float64.  The rows are walked ``rows``
    at a time across every column tile, each tile keeping its lanes' state: with
    ``rows`` >= the row count a tile sees all its rows at once; a small ``rows`` reads a
    tall matrix a few rows at a time instead of one 128-column strip of every row (whose
    row stride defeats the hardware prefetcher: 15-30 % faster at 4,096+ rows).  Within
    a tile, rows that share their parameters go 4 at a time through
    :func:`_lanes_col4` (the rest one at a time), which packs each element's bins and
    code into one word (:func:`_pack`), and each pass is counted by :func:`_count_tile`.
    Returns the ACC totals."""
    d0, d1, d2 = w.shape
    L = LANES
    per_ch = ch_acc.shape[1] > 0
    nt = (d2 + L - 1) // L
    tot = np.empty((ACC, 1))
    _acc_init(tot[:, 0])
    S_all = np.empty((nt, _NS * L))
    Q_all = np.empty((nt, _NQ * L), np.int32)
    F_all = np.empty((nt, _NF * L), np.float32)
    P = np.empty(4 * L, np.uint32)  # one pass's packed bins and codes
    lo = np.int32(lo_code)
    pcur = np.empty(nt, np.int64)
    levels = code_hist.size
    sub_codes = levels <= 256
    HD = np.zeros(SUB * HIST_SIZE, np.int32)
    HF = np.zeros(SUB * HIST_SIZE, np.int32)
    HC = np.zeros(4 * levels if sub_codes else 0, np.int64)
    for i0 in range(d0):
        p0 = (i0 // pblk[0]) * pstr[0]
        for t in range(nt):
            _lanes_reset(S_all[t], Q_all[t], min(L, d2 - t * L))
            pcur[t] = -1
        for r0 in range(0, d1, rows):
            r1 = min(d1, r0 + rows)
            for t in range(nt):
                c0 = t * L
                n = min(L, d2 - c0)
                S = S_all[t]
                Q = Q_all[t]
                F = F_all[t]
                i1 = r0
                while i1 < r1:
                    p1 = p0 + (i1 // pblk[1]) * pstr[1]
                    if p1 != pcur[t]:
                        if pcur[t] >= 0:
                            _segment_end(F, S, Q, n)
                        for j in range(n):
                            F[_FS * L + j] = scale[p1 + c0 + j]
                            F[_FZ * L + j] = zp[p1 + c0 + j]
                            S[_SH * L + j] = half[p1 + c0 + j]
                        pcur[t] = p1
                    if i1 + 4 <= r1 and p0 + ((i1 + 3) // pblk[1]) * pstr[1] == p1:
                        _lanes_col4(w[i0, i1, c0:c0 + n], w[i0, i1 + 1, c0:c0 + n],
                                    w[i0, i1 + 2, c0:c0 + n], w[i0, i1 + 3, c0:c0 + n],
                                    q[i0, i1, c0:c0 + n], q[i0, i1 + 1, c0:c0 + n],
                                    q[i0, i1 + 2, c0:c0 + n], q[i0, i1 + 3, c0:c0 + n],
                                    F, S, Q, P, origin, inv, lo)
                        _count_tile(P, 4, n, HD, HF, HC, levels, code_hist)
                        i1 += 4
                    else:
                        _lanes_col(w[i0, i1, c0:c0 + n], q[i0, i1, c0:c0 + n], F, S, Q, P, origin, inv, lo)
                        _count_tile(P, 1, n, HD, HF, HC, levels, code_hist)
                        i1 += 1
        for t in range(nt):
            c0 = t * L
            n = min(L, d2 - c0)
            S = S_all[t]
            Q = Q_all[t]
            _segment_end(F_all[t], S, Q, n)
            for j in range(n):
                if per_ch:
                    _lanes_into(S, Q, j, d1, ch_acc, i0 * cstr[0] + c0 + j)
                _lanes_into(S, Q, j, d1, tot, 0)
    _merge16(HD, dq_hist)
    if do_fp:
        _merge16(HF, fp_hist)
    if sub_codes:
        _merge4(HC, levels, code_hist, 0)
    tot[4, 0] = (tot[1, 0] + tot[3, 0] - tot[2, 0]) / 2  # wd, from ee = ww - 2 wd + dd
    return tot[:, 0]
