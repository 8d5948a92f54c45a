"""Compile (or load from numba's cache) every kernel specialisation before serving.

A Dash background job runs in a forked process: if the parent has not compiled
the kernels, every job pays the compilation again.  ``warm_up`` runs each kernel
path once on tiny inputs of every code type the readers produce.
"""

from __future__ import annotations

import numpy as np

from .histograms import make_grid
from .kernels import HIST_SIZE, fp32_hist
from .metrics import fp32_stats
from .quant_tensor import TYPE_RANGES, Decoded
from .tensor_stats import measure

__all__ = ["warm_up"]

_CODE_TYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
               "int4": np.int8, "uint4": np.int8}


def warm_up() -> None:
    """Run every kernel path once (per tensor, per row, per column, blocks; finite and NaN;
    the generic kernel on small tensors, the lane kernels on tensors past ``FAST_MIN_SIZE``)."""
    for n in (8, 128):  # 128 x 128 = FAST_MIN_SIZE: the lane kernels
        w = np.linspace(-1, 1, n * n, dtype=np.float32).reshape(n, n)
        b = n // 2
        for name, dt in _CODE_TYPES.items():
            lo, hi = TYPE_RANGES[name]
            q = np.clip(np.arange(n * n).reshape(n, n) % (hi - lo + 1) + lo, lo, hi).astype(dt)
            layouts = [
                (np.float32(0.01), np.int64(0), None, None, ()),
                (np.full((n, 1), 0.01, np.float32), np.zeros((n, 1), np.int64), None, None, (0,)),
                (np.full((1, n), 0.01, np.float32), np.zeros((1, n), np.int64), None, None, (1,)),
                (np.full((2, n), 0.01, np.float32), np.zeros((2, n), np.int64), 0, b, (1,)),
                (np.full((n, 2), 0.01, np.float32), np.zeros((n, 2), np.int64), 1, b, (0,)),
            ]
            # read-only too: memory-mapped and frombuffer tensors are, and numba compiles
            # (or loads) a separate specialisation for them
            qr = q.copy()
            qr.setflags(write=False)
            for ww in (w, np.where(w > 0.9, np.nan, w).astype(np.float32)):
                wr = ww.copy()
                wr.setflags(write=False)
                known = fp32_stats(ww)
                grid = make_grid(known["fp32_min"], known["fp32_max"])
                for a in (ww, wr):  # weights left in float: FP32 histogram alone
                    fp32_hist(a.reshape(-1), grid.origin, grid.inv, np.zeros(HIST_SIZE, np.int64))
                for s, z, ba, bs, ch in layouts:
                    for a, c in ((ww, q), (wr, qr), (wr, q), (ww, qr)):
                        measure(a, Decoded(c, s, z, ba, bs, ch), (lo, hi), grid, known,
                                np.zeros(HIST_SIZE, np.int64))
