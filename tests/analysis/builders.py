"""Hand-built ONNX graphs for the layout tests.

Everything here is written from the ONNX / onnxruntime operator definitions,
independently of ``analysis/``: tensors are made with ``numpy_helper.from_array``
(raw_data), ``helper.make_tensor`` with a Python list (typed fields such as
``int32_data``, as ONNX Runtime writes scales and zero points) or hand-packed
bytes (4-bit types, MatMulNBits).  Expected values are computed with the tiny
reference formulas at the bottom of this module, never with QuantLens code.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

MS = "com.microsoft"


# ------------------------------------------------------------------ tensors
def arr(name: str, a, dtype=None) -> onnx.TensorProto:
    """Initializer with ``raw_data`` (how ORT stores quantized weights)."""
    a = np.asarray(a, dtype) if dtype is not None else np.asarray(a)
    return numpy_helper.from_array(a, name)


def listed(name: str, data_type: int, dims, vals) -> onnx.TensorProto:
    """Initializer in the typed fields (``int32_data`` for small ints, ``float_data``),
    the way ORT writes scales and zero points with ``helper.make_tensor(..., list)``."""
    t = helper.make_tensor(name, data_type, list(dims), [v for v in np.asarray(vals).reshape(-1).tolist()])
    assert not t.HasField("raw_data")
    return t


def pack_nibbles(values) -> bytes:
    """Pack 4-bit values: element ``2i`` in the low nibble, ``2i+1`` in the high one;
    an odd count leaves the last high nibble 0.  Values may be signed (-8..7)."""
    v = [int(x) & 0xF for x in np.asarray(values).reshape(-1)]
    out = bytearray()
    for i in range(0, len(v), 2):
        lo = v[i]
        hi = v[i + 1] if i + 1 < len(v) else 0
        out.append(lo | (hi << 4))
    return bytes(out)


def int4_tensor(name: str, values, signed: bool, dims=None) -> onnx.TensorProto:
    """INT4/UINT4 initializer whose ``raw_data`` is packed here by hand."""
    values = np.asarray(values)
    t = onnx.TensorProto()
    t.name = name
    t.data_type = TP.INT4 if signed else TP.UINT4
    t.dims.extend(values.shape if dims is None else dims)
    t.raw_data = pack_nibbles(values)
    return t


def float8_tensor(name: str, bytes_, dims) -> onnx.TensorProto:
    """FLOAT8E4M3FN initializer from raw bit patterns."""
    t = onnx.TensorProto()
    t.name = name
    t.data_type = TP.FLOAT8E4M3FN
    t.dims.extend(dims)
    t.raw_data = bytes(int(b) for b in np.asarray(bytes_).reshape(-1))
    return t


# ------------------------------------------------------------------- graphs
def node(op, inputs, outputs, name, domain="", **attrs) -> onnx.NodeProto:
    return helper.make_node(op, list(inputs), list(outputs), name=name, domain=domain, **attrs)


def dq(x, s, z, out, name, domain="", **attrs) -> onnx.NodeProto:
    """DequantizeLinear node (``z`` may be ``None``)."""
    ins = [x, s] + ([z] if z else [])
    return node("DequantizeLinear", ins, [out], name, domain=domain, **attrs)


def make_model(nodes, inits, *, opset=13, ms=None, ir=10, inputs=None,
               outputs=None, constants_as_nodes=False) -> onnx.ModelProto:
    """Model from nodes and initializers.

    Graph inputs default to every node input that is neither produced nor an
    initializer (float, unknown shape); graph outputs to every output nobody reads.
    ``constants_as_nodes`` turns every initializer into a ``Constant`` node.
    """
    nodes = list(nodes)
    inits = list(inits)
    produced = {o for n in nodes for o in n.output}
    consumed = {i for n in nodes for i in n.input if i}
    init_names = {t.name for t in inits}
    inputs = dict(inputs or {})
    for n in nodes:
        for i in n.input:
            if i and i not in produced and i not in init_names and i not in inputs:
                inputs[i] = (TP.FLOAT, None)
    vi_in = [helper.make_tensor_value_info(k, t, s) for k, (t, s) in inputs.items()]
    outputs = outputs or {o: (TP.FLOAT, None) for n in nodes for o in n.output if o not in consumed}
    vi_out = [helper.make_tensor_value_info(k, t, s) for k, (t, s) in outputs.items()]
    if constants_as_nodes:
        nodes = [helper.make_node("Constant", [], [t.name], name=f"const_{t.name}", value=t)
                 for t in inits] + nodes
        inits = []
    g = helper.make_graph(nodes, "g", vi_in, vi_out, initializer=inits)
    opsets = [helper.make_opsetid("", opset)]
    if ms is not None:
        opsets.append(helper.make_opsetid(MS, ms))
    m = helper.make_model(g, opset_imports=opsets, producer_name="quantlens-tests")
    m.ir_version = ir
    return m


def save(model: onnx.ModelProto, path, external: bool = False, threshold: int = 0,
         location: str | None = None) -> Path:
    """Write ``model``; with ``external`` its raw tensors go to ``location``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=location or (path.name + ".data"), size_threshold=threshold)
    else:
        onnx.save_model(model, str(path))
    return path


def fp32_single(path, op, weights: dict, slot_names: list, name: str, opset=13, attrs=None,
                constants_as_nodes=False, inputs=None) -> Path:
    """FP32 model with one ``op`` node named ``name`` whose inputs are ``slot_names``
    (constants from ``weights``, anything else a graph input)."""
    inits = [arr(k, np.asarray(v, np.float32)) for k, v in weights.items()]
    n = node(op, slot_names, ["Y"], name, **(attrs or {}))
    return save(make_model([n], inits, opset=opset, inputs=inputs,
                           constants_as_nodes=constants_as_nodes), path)


def qdq_single(path, op, slot_names: list, qslot: int, q_init, s_init, z_init, name: str,
               opset=13, ms=None, attrs=None, dq_attrs=None, dq_domain="", extra_inits=(),
               constants_as_nodes=False, inputs=None, dq_out=None) -> Path:
    """Variant: ``q_init -> DequantizeLinear -> op`` at input ``qslot`` (QDQ format)."""
    base = q_init.name[: -len("_quantized")] if q_init.name.endswith("_quantized") else q_init.name
    out = dq_out or f"{base}_DequantizeLinear_Output"
    ins = list(slot_names)
    ins[qslot] = out
    d = dq(q_init.name, s_init.name, z_init.name if z_init is not None else None, out,
           f"{base}_DequantizeLinear", domain=dq_domain, **(dq_attrs or {}))
    n = node(op, ins, ["Y"], name, **(attrs or {}))
    inits = [q_init, s_init] + ([z_init] if z_init is not None else []) + list(extra_inits)
    return save(make_model([d, n], inits, opset=opset, ms=ms, inputs=inputs,
                           constants_as_nodes=constants_as_nodes), path)


# ------------------------------------------------------ reference formulas
def ref_dq(q, z, s) -> np.ndarray:
    """``float32(q - z) * float32(s)``: the DequantizeLinear definition, with the
    subtraction in int64 (never in the storage type).  ``z`` and ``s`` must already
    broadcast against ``q`` (the caller reshapes / repeats them explicitly)."""
    diff = np.asarray(q, np.int64) - np.asarray(z, np.int64)
    return diff.astype(np.float32) * np.asarray(s, np.float32)


def metrics64(w, dq) -> dict:
    """Reference metrics in float64 over the finite FP32 values (section 8 of the doc)."""
    w = np.asarray(w, np.float64).reshape(-1)
    d = np.asarray(dq, np.float64).reshape(-1)
    keep = np.isfinite(w)
    w, d = w[keep], d[keep]
    e = w - d
    ee, ww, dd, wd = (e * e).sum(), (w * w).sum(), (d * d).sum(), (w * d).sum()
    return {
        "mse": ee / w.size,
        "max_abs_err": np.abs(e).max(),
        "sqnr_db": math.inf if ee == 0 else 10 * math.log10(ww / ee),
        "cosine": wd / math.sqrt(ww * dd),
        "fp32_min": w.min(), "fp32_max": w.max(), "dq_min": d.min(), "dq_max": d.max(),
    }


def e4m3fn_value(byte: int) -> float:
    """Value of a FLOAT8E4M3FN bit pattern (1 sign, 4 exponent bits bias 7, 3 mantissa
    bits, no infinities, 0x7F / 0xFF are NaN)."""
    sign = -1.0 if byte & 0x80 else 1.0
    e, m = (byte >> 3) & 0xF, byte & 0x7
    if e == 0xF and m == 0x7:
        return math.nan
    if e == 0:
        return sign * (m / 8) * 2.0 ** -6
    return sign * (1 + m / 8) * 2.0 ** (e - 7)


# ------------------------------------------------------- running QuantLens
def quant_tensors(path) -> dict:
    """``find_quantized`` on the model at ``path``: name -> QuantTensor (no problems allowed)."""
    from analysis import find_quantized, load_model

    qts, problems = find_quantized(load_model(path))
    assert problems == [], problems
    names = [qt.name for qt in qts]
    assert len(names) == len(set(names)), f"a tensor is reported twice: {names}"
    return {qt.name: qt for qt in qts}


def read(path, name):
    """``(QuantTensor, Decoded, dequantized)`` of quantized tensor ``name``."""
    from analysis import dequantize

    qt = quant_tensors(path)[name]
    d = qt.read()
    return qt, d, dequantize(d)


def analyze_rows(fp32_path, variant_path):
    """Layers table of ``analyze`` (no cache) for one variant, with no problems reported."""
    from analysis import analyze

    a = analyze(fp32_path, [variant_path], cache=False)
    assert all(p == [] for p in a.problems.values()), a.problems
    return a


def row_of(a, fp32_name):
    rows = a.layers[a.layers["fp32_name"] == fp32_name]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def approx_eq(got, want, rel=1e-9):
    """Float comparison that treats inf/nan as values."""
    got, want = float(got), float(want)
    if math.isnan(want):
        return math.isnan(got)
    if math.isinf(want):
        return got == want
    return math.isclose(got, want, rel_tol=rel, abs_tol=1e-300)


def assert_row(row, *, w, dq, q, scale, zero_point, rel=1e-9, **exact):
    """Check a layers row against reference values computed in the test.

    ``w`` FP32 weight, ``dq`` expected dequantized array, ``q`` expected codes,
    ``scale`` / ``zero_point`` the compact parameters (any shape).  ``exact`` holds
    more columns compared with ``==`` (granularity, axis, ...).
    """
    ref = metrics64(w, dq)
    bad = {k: (row[k], v) for k, v in ref.items() if not approx_eq(row[k], v, rel)}
    assert not bad, bad
    qf = np.asarray(q, np.float64).reshape(-1)[np.isfinite(np.asarray(w, np.float64).reshape(-1))]
    assert float(row["q_min"]) == qf.min() and float(row["q_max"]) == qf.max()
    for col, p in (("scale", scale), ("zero_point", zero_point)):
        p = np.asarray(p, np.float64).reshape(-1)
        assert float(row[f"{col}_min"]) == p.min(), (col, row[f"{col}_min"], p.min())
        assert float(row[f"{col}_max"]) == p.max(), (col, row[f"{col}_max"], p.max())
        if p.size == 1:
            assert float(row[col]) == p[0]
        else:
            assert math.isnan(float(row[col]))
    for k, v in exact.items():
        got = row[k]
        if v is None:
            assert got is None or got is np.nan or (not isinstance(got, str) and _isna(got)), (k, got)
        else:
            assert got == v, (k, got, v)


def _isna(x):
    import pandas as pd
    return bool(pd.isna(x))


# ------------------------------------------------------ onnxruntime reference
_ORT_OPS = ("DequantizeLinear", "MatMulNBits", "GatherBlockQuantized")


def ort_dequant(path, qname) -> np.ndarray:
    """The dequantized tensor as onnxruntime computes it (no QuantLens code involved).

    Cuts the node that reads ``qname`` out of the model at ``path``: a
    DequantizeLinear (with its QuantizeLinear for a Q->DQ pair on a float weight) is
    run as is (with the Transpose that may follow it); MatMulNBits gets the identity
    matrix as A (so it returns the [K, N] weight); GatherBlockQuantized gathers every
    index of its gather axis.
    """
    import onnxruntime as ort

    m = onnx.load(str(path))
    consts = {t.name: t for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Constant":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            consts[t.name] = t
    nodes = list(m.graph.node)
    first = [n for n in nodes if qname in n.input and n.op_type in _ORT_OPS + ("QuantizeLinear",)]
    assert first, f"no DequantizeLinear / MatMulNBits / GatherBlockQuantized reads {qname}"
    keep, feeds, inputs = first[:1], {}, []
    if keep[0].op_type == "QuantizeLinear":
        keep.append(next(n for n in nodes if keep[0].output[0] in n.input and n.op_type == "DequantizeLinear"))
    last = keep[-1]
    out = last.output[0]
    if last.op_type == "DequantizeLinear":
        tr = [n for n in nodes if out in n.input and n.op_type == "Transpose"]
        if tr:
            keep.append(tr[0])
            out = tr[0].output[0]
    if last.op_type == "MatMulNBits":
        K = next(a.i for a in last.attribute if a.name == "K")
        feeds[last.input[0]] = np.eye(K, dtype=np.float32)
        inputs.append(helper.make_tensor_value_info(last.input[0], TP.FLOAT, [K, K]))
    elif last.op_type == "GatherBlockQuantized":
        ax = next((a.i for a in last.attribute if a.name == "gather_axis"), 0)
        feeds[last.input[1]] = np.arange(consts[qname].dims[ax], dtype=np.int64)
        inputs.append(helper.make_tensor_value_info(last.input[1], TP.INT64, None))
    used = {i for n in keep for i in n.input if i and i in consts}
    # DequantizeLinear returns the scale's float type (FLOAT16 for an FP16 model)
    dqn = next((n for n in keep if n.op_type == "DequantizeLinear"), None)
    otype = consts[dqn.input[1]].data_type if dqn is not None else TP.FLOAT
    g = helper.make_graph(keep, "ref", inputs, [helper.make_tensor_value_info(out, otype, None)],
                          initializer=[consts[k] for k in sorted(used)])
    sub = helper.make_model(g, opset_imports=list(m.opset_import))
    sub.ir_version = m.ir_version
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(sub.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run([out], feeds)[0].astype(np.float32)
