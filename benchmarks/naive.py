"""Straightforward reference implementation of the QuantLens weight analysis.

This is deliberately what a typical engineer would write first: ``onnx.load``
everything (external data included), ``numpy_helper.to_array`` every
initializer, dequantize in numpy, compute the statistics tensor by tensor and
build pandas DataFrames.  It is the "naive" baseline of the benchmark, and its
``reference_metrics`` is the float64 ground truth for the exactness check.

    analyze(fp32_path, variant_paths, bins=64) -> NaiveResult(layers, channels, histograms)
    reference_metrics(fp32_path, variant_path) -> DataFrame[fp32_name, quant_tensor, n, mse, sqnr_db, ...]

Quantized tensors are found two ways:

* QDQ: every ``DequantizeLinear`` node whose input 0 is an initializer
  (scale / zero point are its inputs 1 / 2, the channel axis its ``axis``
  attribute, default 1, used only when the scale is a vector).
* dynamic (MatMulInteger / ConvInteger) and anything else: initializers named
  ``X_quantized`` with siblings ``X_scale`` and ``X_zero_point``.

The FP32 tensor is the one named like the quantized tensor with
``_quantized`` stripped.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import numpy_helper

QUANT_SUFFIX = "_quantized"


@dataclass
class NaiveResult:
    layers: pd.DataFrame
    channels: pd.DataFrame
    histograms: pd.DataFrame


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def find_quantized_tensors(model: onnx.ModelProto, inits: dict) -> list[dict]:
    """[{quant_tensor, fp32_name, scale, zero_point, axis, source}] for one quantized model."""
    found = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        qname = node.input[0]
        zname = node.input[2] if len(node.input) > 2 and node.input[2] else None
        found[qname] = {
            "quant_tensor": qname,
            "fp32_name": qname[: -len(QUANT_SUFFIX)] if qname.endswith(QUANT_SUFFIX) else qname,
            "scale": node.input[1],
            "zero_point": zname,
            "axis": _attr(node, "axis", 1),
            "source": "DequantizeLinear",
        }
    for qname in inits:
        if qname in found or not qname.endswith(QUANT_SUFFIX):
            continue
        base = qname[: -len(QUANT_SUFFIX)]
        if base + "_scale" in inits:
            found[qname] = {
                "quant_tensor": qname,
                "fp32_name": base,
                "scale": base + "_scale",
                "zero_point": base + "_zero_point" if base + "_zero_point" in inits else None,
                "axis": 1,
                "source": "name",
            }
    return list(found.values())


def dequantize(q: np.ndarray, s: np.ndarray, z: np.ndarray | None, axis: int, dtype=np.float32) -> np.ndarray:
    """(q - z) * s with per-channel broadcast along ``axis`` when s is a vector."""
    s = np.asarray(s, dtype=dtype)
    z = np.zeros((), dtype=dtype) if z is None else np.asarray(z).astype(dtype)
    if s.size > 1:
        shape = [1] * q.ndim
        shape[axis % q.ndim] = s.size
        s = s.reshape(shape)
        z = z.reshape(shape) if z.size > 1 else z.reshape(())
    else:
        s = s.reshape(())
        z = z.reshape(())
    return (q.astype(dtype) - z) * s


def _code_range(dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def analyze(fp32_path, variant_paths, bins: int = 64) -> NaiveResult:
    if isinstance(variant_paths, (str, os.PathLike)):
        variant_paths = [variant_paths]
    fp32_model = onnx.load(str(fp32_path))  # loads external data
    fp32 = {t.name: numpy_helper.to_array(t) for t in fp32_model.graph.initializer}

    layer_rows, chan_rows, hist_rows = [], [], []
    for vp in variant_paths:
        variant = Path(vp).stem
        model = onnx.load(str(vp))
        inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        quantized = find_quantized_tensors(model, inits)
        seen = set()
        for qt in quantized:
            name = qt["fp32_name"]
            if name not in fp32:
                layer_rows.append({"variant": variant, "fp32_name": name, "quant_tensor": qt["quant_tensor"],
                                   "status": "no_fp32_match"})
                continue
            seen.add(name)
            w = fp32[name]
            q = inits[qt["quant_tensor"]]
            s = inits[qt["scale"]]
            z = inits[qt["zero_point"]] if qt["zero_point"] else None
            per_channel = s.size > 1
            axis = qt["axis"] % q.ndim if per_channel else None
            dq = dequantize(q, s, z, axis if per_channel else 0)
            if dq.shape != w.shape:
                layer_rows.append({"variant": variant, "fp32_name": name, "quant_tensor": qt["quant_tensor"],
                                   "status": "shape_mismatch"})
                continue

            w64 = w.astype(np.float64)
            err = w64 - dq.astype(np.float64)
            mse = float(np.mean(err * err))
            signal = float(np.mean(w64 * w64))
            sqnr = 10.0 * math.log10(signal / mse) if mse > 0 else math.inf
            denom = float(np.linalg.norm(w64) * np.linalg.norm(dq.astype(np.float64)))
            cosine = float(np.dot(w64.ravel(), dq.astype(np.float64).ravel()) / denom) if denom > 0 else math.nan
            qmin, qmax = _code_range(q.dtype)
            layer_rows.append({
                "variant": variant,
                "fp32_name": name,
                "quant_tensor": qt["quant_tensor"],
                "status": "quantized",
                "source": qt["source"],
                "shape": tuple(w.shape),
                "numel": int(w.size),
                "quant_dtype": str(q.dtype),
                "granularity": "per_channel" if per_channel else "per_tensor",
                "axis": axis,
                "fp32_min": float(w.min()),
                "fp32_max": float(w.max()),
                "dq_min": float(dq.min()),
                "dq_max": float(dq.max()),
                "mse": mse,
                "max_abs_err": float(np.abs(err).max()),
                "sqnr_db": sqnr,
                "cosine": cosine,
                "n_clipped_low": int((q == qmin).sum()),
                "n_clipped_high": int((q == qmax).sum()),
            })

            # histograms: fp32 and dq on shared edges, integer codes
            lo = min(float(w.min()), float(dq.min()))
            hi = max(float(w.max()), float(dq.max()))
            if hi <= lo:
                hi = lo + 1e-12
            edges = np.linspace(lo, hi, bins + 1)
            h_fp32, _ = np.histogram(w, bins=edges)
            h_dq, _ = np.histogram(dq, bins=edges)
            if q.dtype.itemsize <= 2:  # one bin per integer code
                code_edges = np.arange(qmin, qmax + 2) - 0.5
            else:  # int32 biases: 64 bins over the used range
                code_edges = np.linspace(float(q.min()) - 0.5, float(q.max()) + 0.5, bins + 1)
            h_codes, _ = np.histogram(q, bins=code_edges)
            for kind, counts, e in (("fp32", h_fp32, edges), ("dq", h_dq, edges), ("codes", h_codes, code_edges)):
                hist_rows.append({"variant": variant, "fp32_name": name, "kind": kind,
                                  "edges": e, "counts": counts})

            # per-channel statistics along the quantization axis
            if per_channel:
                ws = np.moveaxis(w64, axis, 0).reshape(w.shape[axis], -1)
                es = np.moveaxis(err, axis, 0).reshape(w.shape[axis], -1)
                ch_mse = np.mean(es * es, axis=1)
                ch_sig = np.mean(ws * ws, axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ch_sqnr = 10.0 * np.log10(ch_sig / ch_mse)
                sc = np.asarray(s, dtype=np.float64).ravel()
                zp = np.zeros_like(sc) if z is None else np.asarray(z, dtype=np.float64).ravel()
                chan_rows.append(pd.DataFrame({
                    "variant": variant, "fp32_name": name, "channel": np.arange(ws.shape[0]),
                    "fp32_min": ws.min(axis=1), "fp32_max": ws.max(axis=1), "absmax": np.abs(ws).max(axis=1),
                    "scale": sc, "zero_point": zp, "mse": ch_mse, "sqnr_db": ch_sqnr,
                }))
        # FP32 tensors the variant left in float
        for name, w in fp32.items():
            if name in seen or w.dtype.kind != "f":
                continue
            layer_rows.append({"variant": variant, "fp32_name": name, "quant_tensor": None,
                               "status": "not_quantized", "shape": tuple(w.shape), "numel": int(w.size),
                               "fp32_min": float(w.min()) if w.size else math.nan,
                               "fp32_max": float(w.max()) if w.size else math.nan})

    channels = pd.concat(chan_rows, ignore_index=True) if chan_rows else pd.DataFrame()
    return NaiveResult(pd.DataFrame(layer_rows), channels, pd.DataFrame(hist_rows))


# ---------------------------------------------------------------------------
# float64 reference
# ---------------------------------------------------------------------------


def _dequantize_onnx(q: np.ndarray, s: np.ndarray, z: np.ndarray | None, axis: int | None) -> np.ndarray:
    """DequantizeLinear exactly as ONNX / onnxruntime evaluate it:
    (q - z) in integer arithmetic, converted to float32, times the float32 scale."""
    qi = q.astype(np.int64)
    zi = np.zeros((), dtype=np.int64) if z is None else np.asarray(z).astype(np.int64)
    s32 = np.asarray(s, dtype=np.float32)
    if axis is not None and s32.size > 1:
        shape = [1] * q.ndim
        shape[axis] = s32.size
        s32 = s32.reshape(shape)
        zi = zi.reshape(shape) if zi.size > 1 else zi.reshape(())
    else:
        s32 = s32.reshape(())
        zi = zi.reshape(())
    return (qi - zi).astype(np.float32) * s32


def reference_metrics(fp32_path, variant_path) -> pd.DataFrame:
    """Per-layer ground truth for one variant, error statistics in float64.

    Columns:

    * ``mse``, ``sqnr_db``, ``max_abs_err``: the dequantized tensor is what
      the model computes (ONNX DequantizeLinear semantics: ``(q - z)`` in
      integers, then ``* scale`` in float32); w - dq, the sums and the log are
      evaluated in float64 (sqnr_db = 10 log10(sum w^2 / sum (w - dq)^2)).
    * ``mse_exact``, ``sqnr_db_exact``: the same with dq = (q - z) * s in
      float64 (the exact real value of the quantized tensor).  The two differ
      by float32 rounding of dq only (~1e-6 relative on mse), except where
      the error itself is ~0 (e.g. a scalar that quantizes exactly).

    Tensors are read one at a time (external data per tensor) to bound memory.
    """
    fp32_model = onnx.load(str(fp32_path), load_external_data=False)
    fp32_dir = str(Path(fp32_path).parent)
    fp32_inits = {t.name: t for t in fp32_model.graph.initializer}
    model = onnx.load(str(variant_path), load_external_data=False)
    var_dir = str(Path(variant_path).parent)
    q_inits = {t.name: t for t in model.graph.initializer}

    def arr(t, base):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            t2 = onnx.TensorProto()
            t2.CopyFrom(t)
            onnx.external_data_helper.load_external_data_for_tensor(t2, base)
            return numpy_helper.to_array(t2)
        return numpy_helper.to_array(t)

    def stats(w, dq):
        err = w - dq.astype(np.float64)
        sse = float(np.dot(err.ravel(), err.ravel()))
        sig = float(np.dot(w.ravel(), w.ravel()))
        sq = 10.0 * math.log10(sig / sse) if sse > 0 else math.inf
        return sse / w.size, sq, float(np.abs(err).max()) if err.size else 0.0

    rows = []
    for qt in find_quantized_tensors(model, q_inits):
        name = qt["fp32_name"]
        if name not in fp32_inits:
            continue
        w = arr(fp32_inits[name], fp32_dir).astype(np.float64)
        q = arr(q_inits[qt["quant_tensor"]], var_dir)
        s = arr(q_inits[qt["scale"]], var_dir)
        z = arr(q_inits[qt["zero_point"]], var_dir) if qt["zero_point"] else None
        axis = qt["axis"] % q.ndim if s.size > 1 else None
        dq32 = _dequantize_onnx(q, s, z, axis)
        if dq32.shape != w.shape:
            continue
        mse, sq, mae = stats(w, dq32)
        del dq32
        dq64 = dequantize(q, s, z, axis if axis is not None else 0, dtype=np.float64)
        mse_x, sq_x, _ = stats(w, dq64)
        rows.append({
            "fp32_name": name,
            "quant_tensor": qt["quant_tensor"],
            "numel": int(w.size),
            "mse": mse,
            "sqnr_db": sq,
            "max_abs_err": mae,
            "mse_exact": mse_x,
            "sqnr_db_exact": sq_x,
        })
    return pd.DataFrame(rows)


def run(fp32_path, variant_paths) -> dict:
    """Entry point for isolated timing: run analyze and return a small summary."""
    r = analyze(fp32_path, variant_paths)
    return {"n_layers": int(len(r.layers)), "n_quantized": int((r.layers["status"] == "quantized").sum()),
            "n_channel_rows": int(len(r.channels)), "n_hist_rows": int(len(r.histograms))}


if __name__ == "__main__":
    import argparse
    import time

    ap = argparse.ArgumentParser()
    ap.add_argument("fp32")
    ap.add_argument("variants", nargs="+")
    a = ap.parse_args()
    t0 = time.perf_counter()
    res = analyze(a.fp32, a.variants)
    print(f"naive analyze: {time.perf_counter() - t0:.2f} s")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(res.layers.head(20))
