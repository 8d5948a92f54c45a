"""Tiny hand-built ONNX models for the dashboard's unit tests.

FP32 graph (``X [1, 8]``)::

    fc1: MatMul(X, fc1.weight [8, 16]) -> fc1_add: Add(fc1.bias [16]) -> relu
    fc2: MatMul(., fc2.weight [16, 4]) -> fc3: Gemm(., fc3.weight [4, 4], fc3.bias [4], transB=1)

Variants are written by hand as QDQ graphs (``DequantizeLinear`` in front of the
consumer), with the codes computed here with NumPy, never with QuantLens code:

* ``good``: every weight and bias int8 per-tensor, symmetric, scale = max|w| / 127.
* ``coarse``: like ``good`` but ``fc2.weight`` gets scale = max|w| / 2 (5 levels: low
  SQNR) and ``fc1.weight`` is per-channel (axis 1).
* ``partial``: only ``fc1.weight`` quantized; the rest stays float.
* ``other``: an unrelated model (other names, other values).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

WEIGHTS = {  # name -> shape
    "fc1.weight": (8, 16), "fc1.bias": (16,), "fc2.weight": (16, 4), "fc3.weight": (4, 4), "fc3.bias": (4,),
}
CONSUMER = {"fc1.weight": "fc1", "fc1.bias": "fc1_add", "fc2.weight": "fc2", "fc3.weight": "fc3",
            "fc3.bias": "fc3"}


def make_weights(seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: (rng.standard_normal(s) * 0.3).astype(np.float32) for n, s in WEIGHTS.items()}


def _graph(weights: dict, rename: dict | None = None, extra_nodes=(), extra_inits=()) -> onnx.ModelProto:
    """The FP32 graph; ``rename`` maps a weight name to the tensor its consumer reads."""
    r = rename or {}
    w = lambda n: r.get(n, n)  # noqa: E731
    nodes = list(extra_nodes) + [
        helper.make_node("MatMul", ["X", w("fc1.weight")], ["h1"], name="fc1"),
        helper.make_node("Add", ["h1", w("fc1.bias")], ["h2"], name="fc1_add"),
        helper.make_node("Relu", ["h2"], ["h3"], name="relu"),
        helper.make_node("MatMul", ["h3", w("fc2.weight")], ["h4"], name="fc2"),
        helper.make_node("Gemm", ["h4", w("fc3.weight"), w("fc3.bias")], ["Y"], name="fc3", transB=1),
    ]
    inits = list(extra_inits) + [numpy_helper.from_array(a, n) for n, a in weights.items()]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("X", TP.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info("Y", TP.FLOAT, [1, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _scales(scale, ndim: int, axis: int | None) -> np.ndarray:
    """``scale`` as float32, shaped to broadcast along ``axis`` (per channel) or as is."""
    s = np.asarray(scale, np.float32)
    if axis is None:
        return s
    shape = [1] * ndim
    shape[axis] = -1
    return s.reshape(shape)


def quantize(w: np.ndarray, scale, axis: int | None = None) -> np.ndarray:
    """Symmetric int8 codes: round(w / scale) clipped to [-128, 127] (per channel along ``axis``)."""
    return np.clip(np.round(w / _scales(scale, w.ndim, axis)), -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale, axis: int | None = None) -> np.ndarray:
    return (q.astype(np.float32) * _scales(scale, q.ndim, axis)).astype(np.float32)


def qdq_model(weights: dict, params: dict) -> onnx.ModelProto:
    """QDQ variant: each weight in ``params`` (name -> (scale, axis)) stored as int8 + DQ."""
    nodes, inits, rename, floats = [], [], {}, {}
    for name, a in weights.items():
        if name not in params:
            floats[name] = a
            continue
        scale, axis = params[name]
        q = quantize(a, scale, axis)
        s = np.asarray(scale, np.float32)
        inits += [numpy_helper.from_array(q, f"{name}_quantized"),
                  numpy_helper.from_array(s, f"{name}_scale"),
                  numpy_helper.from_array(np.zeros(s.shape, np.int8), f"{name}_zero_point")]
        attrs = {"axis": axis} if axis is not None else {}
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale",
                                                          f"{name}_zero_point"], [f"{name}_dq"],
                                      name=f"{name}_DequantizeLinear", **attrs))
        rename[name] = f"{name}_dq"
    return _graph(floats, rename, nodes, inits)


def sqnr(w, dq) -> float:
    w = w.astype(np.float64)
    e = w - dq.astype(np.float64)
    return 10 * np.log10((w * w).sum() / (e * e).sum())


def _other_model(other: dict) -> onnx.ModelProto:
    names = list(other)
    nodes, inits = [], []
    for n in names:
        a = other[n]
        s = np.float32(np.abs(a).max() / 127)
        inits += [numpy_helper.from_array(quantize(a, s), f"{n}_quantized"),
                  numpy_helper.from_array(np.asarray(s), f"{n}_scale"),
                  numpy_helper.from_array(np.zeros((), np.int8), f"{n}_zero_point")]
        nodes.append(helper.make_node("DequantizeLinear", [f"{n}_quantized", f"{n}_scale", f"{n}_zero_point"],
                                      [f"{n}_dq"], name=f"{n}_dq_node"))
    nodes += [
        helper.make_node("MatMul", ["X", f"{names[0]}_dq"], ["a1"], name="o1"),
        helper.make_node("Add", ["a1", f"{names[1]}_dq"], ["a2"], name="o1_add"),
        helper.make_node("MatMul", ["a2", f"{names[2]}_dq"], ["a3"], name="o2"),
        helper.make_node("Gemm", ["a3", f"{names[3]}_dq", f"{names[4]}_dq"], ["Y"], name="o3", transB=1),
    ]
    g = helper.make_graph(nodes, "other", [helper.make_tensor_value_info("X", TP.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info("Y", TP.FLOAT, [1, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


