"""Compile (or load from numba's cache) every kernel specialisation before serving.

A Dash background job runs in a forked process: if the parent has not compiled
the kernels, every job pays the compilation again.  ``warm_up`` runs each kernel
path once on tiny inputs of every code type the readers produce, then one whole
analysis of a tiny generated pair (model parsing, matching, the tables and their
encoding): the first real analysis of a process was 0.1-0.3 s slower without it.
Last, everything alive (modules, compiled kernels) is frozen out of the garbage
collector's reach: its full collections,
which an analysis' row dicts trigger, no longer walk those objects each time
(70 ms of a 300M-parameter analysis), and forked workers do not touch, hence
copy, the pages holding them.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .histograms import make_grid
from .kernels import HIST_SIZE, fp32_hist, frozen
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
            # writable inputs only: measure() passes every tensor to the kernels read-only
            # (analysis.kernels.frozen), whatever it was given
            for ww in (w, np.where(w > 0.9, np.nan, w).astype(np.float32)):
                known = fp32_stats(ww)
                grid = make_grid(known["fp32_min"], known["fp32_max"])
                # weights left in float: FP32 histogram alone
                fp32_hist(frozen(ww.reshape(-1)), grid.origin, grid.inv, np.zeros(HIST_SIZE, np.int64))
                for s, z, ba, bs, ch in layouts:
                    measure(ww, Decoded(q, s, z, ba, bs, ch), (lo, hi), grid, known,
                            np.zeros(HIST_SIZE, np.int64))
    _warm_pipeline()
    gc.collect()
    gc.freeze()


def _warm_pipeline() -> None:
    """One end-to-end :func:`analysis.analyze` (no cache) of a generated FP32 model and its
    per-channel QDQ int8 variant, written to a temporary folder and deleted."""
    from .api import analyze  # here: api imports this package's modules

    w = np.linspace(-1, 1, 64 * 32, dtype=np.float32).reshape(64, 32)
    b = np.linspace(-0.5, 0.5, 32, dtype=np.float32)
    s = (np.abs(w).max(0) / 127).astype(np.float32)
    q = np.clip(np.round(w / s), -127, 127).astype(np.int8)
    io = ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])])
    fp32 = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
                              helper.make_node("Add", ["h", "B"], ["y"], name="add")], "fp32", *io,
                             initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")])
    qdq = helper.make_graph([helper.make_node("DequantizeLinear", ["W_q", "W_s", "W_z"], ["W_dq"], name="dq", axis=1),
                             helper.make_node("MatMul", ["x", "W_dq"], ["h"], name="mm"),
                             helper.make_node("Add", ["h", "B"], ["y"], name="add")], "qdq", *io,
                            initializer=[numpy_helper.from_array(q, "W_q"), numpy_helper.from_array(s, "W_s"),
                                         numpy_helper.from_array(np.zeros(32, np.int8), "W_z"),
                                         numpy_helper.from_array(b, "B")])
    try:
        tmp = tempfile.TemporaryDirectory(prefix="quantlens-warm.")
    except OSError:  # no writable temporary folder: skip this part, it only saves time
        return
    with tmp as d:
        paths = []
        for name, g in (("fp32", fp32), ("qdq", qdq)):
            m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
            m.ir_version = 8
            p = Path(d) / f"{name}.onnx"
            onnx.save_model(m, str(p))
            paths.append(p)
        analyze(paths[0], [paths[1]], cache=False)
