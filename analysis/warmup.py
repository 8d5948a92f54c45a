"""Compile (or load from numba's cache) every kernel specialisation before serving.

A Dash background job runs in a forked process: if the parent has not compiled
the kernels, every job pays the compilation again.  ``warm_up`` runs each kernel
path once on tiny inputs of every code type the readers produce.
"""

from __future__ import annotations

import numpy as np

from .histograms import make_grid
from .kernels import HIST_SIZE
from .metrics import fp32_stats
from .quant_tensor import TYPE_RANGES, Decoded
from .tensor_stats import measure

__all__ = ["warm_up"]

_CODE_TYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
               "int4": np.int8, "uint4": np.int8}


def warm_up() -> None:
    """Run every kernel path once (per tensor, per row, per column, blocks; finite and NaN)."""
    w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    for name, dt in _CODE_TYPES.items():
        lo, hi = TYPE_RANGES[name]
        q = np.clip(np.arange(64).reshape(8, 8) + lo, lo, hi).astype(dt)
        layouts = [
            (np.float32(0.01), np.int64(0), None, None, ()),
            (np.full((8, 1), 0.01, np.float32), np.zeros((8, 1), np.int64), None, None, (0,)),
            (np.full((1, 8), 0.01, np.float32), np.zeros((1, 8), np.int64), None, None, (1,)),
            (np.full((2, 8), 0.01, np.float32), np.zeros((2, 8), np.int64), 0, 4, (1,)),
            (np.full((8, 2), 0.01, np.float32), np.zeros((8, 2), np.int64), 1, 4, (0,)),
        ]
        for ww in (w, np.where(w > 0.9, np.nan, w).astype(np.float32)):
            known = fp32_stats(ww)
            grid = make_grid(known["fp32_min"], known["fp32_max"])
            for s, z, ba, bs, ch in layouts:
                measure(ww, Decoded(q, s, z, ba, bs, ch), (lo, hi), grid, known,
                        np.zeros(HIST_SIZE, np.int64))
