"""Histograms on a bin grid fixed by the FP32 weights.

Each FP32 tensor defines one grid: ``NBINS`` equal bins over its finite range.
Every variant's dequantized values are counted on the *same* grid, extended
outwards with bins of the same width when they fall outside, so any set of
variants shares identical bin edges and can be cached one variant at a time.
Integer codes get their own histogram per variant.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NBINS", "MAX_EXTRA_BINS", "Grid", "make_grid", "value_histogram", "code_histogram"]

NBINS = 64
#: Bins allowed beyond the FP32 range on each side; values further out land in the end bins.
MAX_EXTRA_BINS = 64
CODE_BINS = 256


class Grid:
    """Equal-width bins: bin ``k`` is ``[origin + k*width, origin + (k+1)*width)``."""

    def __init__(self, origin: float, width: float):
        self.origin, self.width = float(origin), float(width)
        #: Values are binned as ``floor((x - origin) * inv)`` everywhere (NumPy and kernels).
        self.inv = 1.0 / self.width

    def edges(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Left and right edges of bins ``k`` (float64, identical for every caller)."""
        k = np.asarray(k, np.float64)
        return self.origin + k * self.width, self.origin + (k + 1) * self.width


def make_grid(fp32_min: float, fp32_max: float) -> Grid:
    """The grid of an FP32 tensor with finite range ``[fp32_min, fp32_max]``."""
    if not (math.isfinite(fp32_min) and math.isfinite(fp32_max)):
        return Grid(-1.0, 2.0 / NBINS)
    span = fp32_max - fp32_min
    if span <= 0:
        half = max(abs(fp32_min) * 1e-3, 1e-12)
        return Grid(fp32_min - half, 2 * half / NBINS)
    return Grid(fp32_min, span / NBINS)


def value_histogram(x: np.ndarray, grid: Grid, clamp_top: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the finite values of ``x`` on ``grid``.

    Returns
    -------
    bins, counts : np.ndarray
        Bin indices (contiguous from the lowest to the highest used bin; may be
        negative or >= NBINS for values outside the FP32 range) and counts.
    """
    v = np.asarray(x, np.float32).reshape(-1)
    lo, hi = (v.min(), v.max()) if v.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        v = v[np.isfinite(v)]
    if v.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # float64 for the index so every caller bins a value the same way
    k = np.floor((v.astype(np.float64) - grid.origin) * grid.inv).astype(np.int64)
    if clamp_top:
        k[k == NBINS] = NBINS - 1  # the FP32 maximum belongs to the last bin
    np.clip(k, -MAX_EXTRA_BINS, NBINS - 1 + MAX_EXTRA_BINS, out=k)
    kmin = int(k.min())
    counts = np.bincount(k - kmin)
    return np.arange(kmin, kmin + counts.size), counts


def code_histogram(q: np.ndarray, qrange: tuple | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histogram of integer codes: one bin per code up to 256 levels, else 256 equal bins.

    Returns
    -------
    left, right, counts : np.ndarray
        Bin ``i`` holds codes ``left[i] <= q < right[i]``.  Float8 codes are
        binned by value over their range (64 bins).
    """
    q = np.asarray(q).reshape(-1)
    if q.size == 0:
        e = np.zeros(0)
        return e, e, np.zeros(0, np.int64)
    if qrange is None or q.dtype.kind == "f":
        counts, edges = np.histogram(q.astype(np.float64), bins=NBINS)
        return edges[:-1], edges[1:], counts
    lo, hi = qrange
    levels = hi - lo + 1
    if levels > 65536:  # int32 biases: equal bins over the used range
        qmin, qmax = int(q.min()), int(q.max())
        width = max(1, -(-(qmax - qmin + 1) // NBINS))
        idx = (q.astype(np.int64) - qmin) // width
        counts = np.bincount(idx)
        left = qmin + np.arange(counts.size, dtype=np.int64) * width
        return left, left + width, counts
    counts = np.bincount(q.astype(np.int64) - lo, minlength=levels)
    if levels <= CODE_BINS:
        left = lo + np.arange(levels, dtype=np.int64)
        return left, left + 1, counts
    width = levels // CODE_BINS
    counts = counts.reshape(CODE_BINS, width).sum(1)
    left = lo + np.arange(CODE_BINS, dtype=np.int64) * width
    return left, left + width, counts
