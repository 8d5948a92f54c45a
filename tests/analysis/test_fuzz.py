"""Fuzzing the loader and the analysis (hypothesis).

Inputs: mutated bytes of valid models (the sample models in ``data/`` and small hand-built
quantized models: bytes flipped, set, inserted, deleted, duplicated, the file truncated), random
field values in hand-built graphs (dims, element types, raw_data lengths, typed fields, scale /
zero-point values and types, ``axis`` / ``block_size`` / ``K`` / ``N`` / ``bits`` attributes, opset),
random external-data entries, and random bytes.

Property: ``parse_model_bytes``, ``load_model``, ``find_quantized`` + every reader, and
``analyze`` either succeed or raise a documented :class:`~analysis.QuantLensError` subclass
(``ModelLoadError``, ``TensorReadError``, ``UnsafeModelError``), never anything else, within a
30 s deadline per example (generous: CI machines may be loaded); and nothing outside a model's folder is ever opened.

``QUANTLENS_FUZZ_EXAMPLES`` sets the examples per test (default 200).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from analysis import (ModelLoadError, QuantLensError, TensorReadError, UnsafeModelError, analyze,
                      dequantize, find_quantized, load_model, parse_model_bytes)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
EXAMPLES = int(os.environ.get("QUANTLENS_FUZZ_EXAMPLES", "200"))
DOCUMENTED = (ModelLoadError, TensorReadError, UnsafeModelError)
FUZZ = settings(max_examples=EXAMPLES, deadline=30000, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
MS = "com.microsoft"


def only_documented(fn):
    """Run ``fn``; a QuantLensError must be one of the documented subclasses."""
    try:
        return fn()
    except QuantLensError as e:
        assert isinstance(e, DOCUMENTED), type(e)
        assert str(e)
        _LAST_ERROR[:] = [e]
        return None


_LAST_ERROR: list = []


@pytest.fixture(scope="module", autouse=True)
def _warm_kernels():
    """Compile the numba kernels for every code type and layout before the deadline applies
    (a first compile takes seconds; the deadline is about the analysis)."""
    for fp32, variant, side in _seeds().values():
        if side == "variant":
            _run_pair(fp32, variant, False, record=False)
    w = np.random.default_rng(0).normal(size=(8, 6)).astype(np.float32)
    for np_t, dt in ((np.int8, TP.INT8), (np.uint8, TP.UINT8), (np.int16, TP.INT16), (np.uint16, TP.UINT16),
                     (np.int32, TP.INT32)):
        for attrs, sshape in (({}, ()), ({"axis": 1}, (6,)), ({"axis": 0, "block_size": 4}, (2, 6))):
            nodes = [helper.make_node("DequantizeLinear", ["W_quantized", "W_scale", "W_zero_point"], ["W_dq"],
                                      name="dq", **attrs), helper.make_node("MatMul", ["X", "W_dq"], ["Y"], name="n")]
            inits = [numpy_helper.from_array(np.arange(48).reshape(8, 6).astype(np_t), "W_quantized"),
                     numpy_helper.from_array(np.full(sshape, 0.1, np.float32), "W_scale"),
                     numpy_helper.from_array(np.zeros(sshape, np_t), "W_zero_point")]
            _run_pair(_fp32(w).SerializeToString(), _model(nodes, inits, opset=21).SerializeToString(), False,
                      record=False)


# ------------------------------------------------------------------ hand-built seeds
def _model(nodes, inits, opset=17, ms=False, inputs=("X",)):
    produced = {o for n in nodes for o in n.output}
    names = {t.name for t in inits}
    ins = [helper.make_tensor_value_info(i, TP.FLOAT, None) for i in inputs]
    outs = [helper.make_tensor_value_info(o, TP.FLOAT, None) for o in produced
            if not any(o in n.input for n in nodes)]
    assert not (set(inputs) & names)
    g = helper.make_graph(nodes, "g", ins, outs, initializer=inits)
    ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(MS, 1)] if ms else [])
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 10 if opset >= 21 else 8
    return m


def _fp32(w: np.ndarray, op="MatMul", slot=1) -> onnx.ModelProto:
    ins = ["X", "X"]
    ins[slot] = "W"
    return _model([helper.make_node(op, ins, ["Y"], name="n")], [numpy_helper.from_array(w.astype(np.float32), "W")])


def _pack4(v: np.ndarray) -> bytes:
    v = (np.asarray(v).reshape(-1).astype(np.int64) & 0xF).tolist()
    v += [0] * (len(v) % 2)
    return bytes(v[i] | (v[i + 1] << 4) for i in range(0, len(v), 2))


def hand_built_pairs(rng) -> dict:
    """name -> (fp32 bytes, variant bytes): small models in several layouts."""
    w = rng.normal(size=(8, 6)).astype(np.float32)
    s = np.float32(np.abs(w).max() / 127)
    q8 = np.clip(np.rint(w / s), -127, 127).astype(np.int8)
    fp = _fp32(w).SerializeToString()
    pairs = {}
    # QDQ per tensor, int8
    pairs["qdq_per_tensor"] = (fp, _model(
        [helper.make_node("DequantizeLinear", ["W_quantized", "W_scale", "W_zero_point"], ["W_dq"], name="dq"),
         helper.make_node("MatMul", ["X", "W_dq"], ["Y"], name="n")],
        [numpy_helper.from_array(q8, "W_quantized"), numpy_helper.from_array(np.array(s), "W_scale"),
         numpy_helper.from_array(np.array(0, np.int8), "W_zero_point")]).SerializeToString())
    # QDQ per channel, uint8, axis 1, typed fields (as ORT writes scales)
    sc = (np.abs(w).max(0) / 127).astype(np.float32)
    qu = (np.clip(np.rint(w / sc), -127, 127) + 128).astype(np.uint8)
    pairs["qdq_per_channel"] = (fp, _model(
        [helper.make_node("DequantizeLinear", ["W_quantized", "W_scale", "W_zero_point"], ["W_dq"], name="dq",
                          axis=1),
         helper.make_node("MatMul", ["X", "W_dq"], ["Y"], name="n")],
        [numpy_helper.from_array(qu, "W_quantized"), helper.make_tensor("W_scale", TP.FLOAT, [6], sc.tolist()),
         helper.make_tensor("W_zero_point", TP.UINT8, [6], [128] * 6)]).SerializeToString())
    # block-wise int4 (opset 21), block 4 along axis 0
    sb = (np.abs(w).reshape(2, 4, 6).max(1) / 7).astype(np.float32)
    q4 = np.clip(np.rint(w / np.repeat(sb, 4, 0)), -8, 7).astype(np.int8)
    t4 = onnx.TensorProto(name="W_quantized", data_type=TP.INT4, dims=[8, 6], raw_data=_pack4(q4))
    pairs["blockwise_int4"] = (fp, _model(
        [helper.make_node("DequantizeLinear", ["W_quantized", "W_scale"], ["W_dq"], name="dq", axis=0,
                          block_size=4),
         helper.make_node("MatMul", ["X", "W_dq"], ["Y"], name="n")],
        [t4, numpy_helper.from_array(sb, "W_scale")], opset=21).SerializeToString())
    # QLinearMatMul (QOperator), uint8
    pairs["qlinear_matmul"] = (fp, _model(
        [helper.make_node("QLinearMatMul", ["Xq", "xs", "xz", "W_quantized", "W_scale", "W_zero_point",
                                            "ys", "yz"], ["Y"], name="n")],
        [numpy_helper.from_array((q8.astype(np.int16) + 128).astype(np.uint8), "W_quantized"),
         numpy_helper.from_array(np.array(s), "W_scale"), numpy_helper.from_array(np.array(128, np.uint8), "W_zero_point"),
         numpy_helper.from_array(np.array(0.1, np.float32), "xs"), numpy_helper.from_array(np.array(0, np.uint8), "xz"),
         numpy_helper.from_array(np.array(0.1, np.float32), "ys"), numpy_helper.from_array(np.array(0, np.uint8), "yz")],
        inputs=("Xq",)).SerializeToString())
    # MatMulInteger (dynamic), scale found by name
    pairs["matmul_integer"] = (fp, _model(
        [helper.make_node("MatMulInteger", ["Xq", "W_quantized", "xz", "W_zero_point"], ["Yi"], name="n"),
         helper.make_node("Cast", ["Yi"], ["Yf"], to=TP.FLOAT, name="c"),
         helper.make_node("Mul", ["Yf", "W_scale"], ["Y"], name="m")],
        [numpy_helper.from_array(q8, "W_quantized"), numpy_helper.from_array(np.array(s), "W_scale"),
         numpy_helper.from_array(np.array(0, np.int8), "W_zero_point"),
         numpy_helper.from_array(np.array(0, np.uint8), "xz")], inputs=("Xq",)).SerializeToString())
    # MatMulNBits 4-bit, K=8, N=6, block 16 (one padded block)
    K, N, bs = 8, 6, 16
    wt = w.T  # [N, K]
    snb = (np.abs(wt).max(1) / 7).astype(np.float32)
    codes = np.clip(np.rint(wt / snb[:, None]) + 8, 0, 15).astype(np.uint8)
    codes = np.concatenate([codes, np.full((N, bs - K), 8, np.uint8)], 1)
    packed = np.frombuffer(b"".join(_pack4(r) for r in codes), np.uint8).reshape(N, 1, bs // 2)
    pairs["matmul_nbits"] = (fp, _model(
        [helper.make_node("MatMulNBits", ["X", "W_Q4", "W_scales"], ["Y"], name="n_Q4", domain=MS,
                          K=K, N=N, bits=4, block_size=bs)],
        [numpy_helper.from_array(packed, "W_Q4"), numpy_helper.from_array(snb, "W_scales")],
        ms=True).SerializeToString())
    return pairs


SEEDS: dict = {}  # name -> (fp32 bytes or path, variant bytes, which side is fuzzed)


def _seeds():
    if not SEEDS:
        for name, (fp, v) in hand_built_pairs(np.random.default_rng(7)).items():
            SEEDS[f"{name}:variant"] = (fp, v, "variant")
            SEEDS[f"{name}:fp32"] = (fp, v, "fp32")
        fp = (DATA / "cnn_fp32.onnx").read_bytes()
        for p in sorted(DATA.glob("cnn_*.onnx")):
            if p.name != "cnn_fp32.onnx":
                SEEDS[f"{p.stem}:variant"] = (fp, p.read_bytes(), "variant")
        SEEDS["cnn_fp32:fp32"] = (fp, (DATA / "cnn_int8_qdq_perchannel.onnx").read_bytes(), "fp32")
    return SEEDS


def _run_pair(fp32: bytes, variant: bytes, cache: bool, record: bool = True) -> None:
    """Everything a caller does with a pair of files; only documented errors allowed, and no
    RuntimeWarning from the analysis (invalid values are reported in columns, not warned about)."""
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fp, v = Path(d) / "fp32.onnx", Path(d) / "variant.onnx"
        fp.write_bytes(fp32)
        v.write_bytes(variant)
        for data in (fp32, variant):
            only_documented(lambda: parse_model_bytes(data))
        mg = only_documented(lambda: load_model(v))
        if mg is not None:
            qts, problems = find_quantized(mg)
            assert all(isinstance(p, str) and p for p in problems)
            for qt in qts:
                with np.errstate(all="ignore"):  # dequantize() itself may meet Inf * 0
                    only_documented(lambda: dequantize(qt.read()))
        a = only_documented(lambda: analyze(fp, [v], cache=cache))
        if record:  # shown by --hypothesis-show-statistics
            event("variant loads" if mg is not None else "variant refused")
            event("analysis done" if a is not None else
                  f"analysis refused: {type(_LAST_ERROR[0]).__name__} " + " ".join(str(_LAST_ERROR[0]).split()[1:4]))
        if a is not None:
            assert all(isinstance(p, str) for p in a.problems["variant"])
            assert set(a.layers["status"].dropna()) <= {"quantized", "left_in_float", "op_not_quantized",
                                                        "not_matched", "unmatched_quant", "unreadable"}


# ------------------------------------------------------------------ 1. mutated bytes
# flip / set keep the protobuf framing (so most such models still parse and get analysed);
# the others shift it (decode errors, or fields read as other fields)
MUTATIONS = st.lists(st.tuples(st.sampled_from(["flip"] * 4 + ["set"] * 4 + ["insert", "delete", "truncate", "dup"]),
                               st.floats(0, 1, exclude_max=True), st.integers(0, 255),
                               st.integers(1, 64)), min_size=1, max_size=4)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, where, value, n in ops:
        if not b:
            b = bytearray([value])
            continue
        i = int(where * len(b))
        if kind == "flip":
            b[i] ^= 1 << (value % 8)
        elif kind == "set":
            b[i] = value
        elif kind == "insert":
            b[i:i] = bytes([value]) * n
        elif kind == "delete":
            del b[i:i + n]
        elif kind == "truncate":
            del b[i:]
        else:  # dup: repeat a slice, e.g. a whole field
            b[i:i] = b[i:i + n]
    return bytes(b)


@FUZZ
@given(seed=st.sampled_from(sorted(_seeds())), ops=MUTATIONS, cache=st.booleans())
def test_fuzz_mutated_model_bytes(seed, ops, cache):
    fp32, variant, side = SEEDS[seed]
    if side == "variant":
        _run_pair(fp32, mutate(variant, ops), cache)
    else:
        _run_pair(mutate(fp32, ops), variant, cache)


@FUZZ
@given(data=st.binary(max_size=4096))
def test_fuzz_random_bytes(data):
    only_documented(lambda: parse_model_bytes(data))


# ------------------------------------------------------------------ 2. random field values
ALL_TYPES = [v for k, v in TP.DataType.items() if k != "UNDEFINED"]
DIMS = st.one_of(st.integers(0, 6), st.integers(-3, -1), st.sampled_from([2**31, 2**40 - 1, 2**40, 2**62, 2**63 - 1]))
SMALL_DIMS = st.integers(0, 6)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from(
    [0.0, -0.0, 1e-45, 1e-40, 1.17e-38, 3.4e38, float("nan"), float("inf"), float("-inf")])
ATTR_INT = st.one_of(st.integers(-3, 8), st.sampled_from([0, 16, 32, 128, 2**31 - 1, 2**40, -(2**40)]))


@st.composite
def tensors(draw, name, dims=None, types=None):
    """A TensorProto with random dims / type / payload: exact raw_data, random-length
    raw_data, or typed fields."""
    dt = draw(st.sampled_from(types or ALL_TYPES))
    if dims is None:
        dims = draw(st.lists(draw(st.sampled_from([SMALL_DIMS, DIMS])), max_size=3))
    t = onnx.TensorProto(name=name, data_type=dt, dims=dims)
    how = draw(st.sampled_from(["exact", "random", "typed", "float"]))
    n = math.prod(dims) if all(0 <= d <= 64 for d in dims) else 0
    if how == "exact" and n and dt in (TP.FLOAT, TP.INT8, TP.UINT8, TP.INT16, TP.INT32, TP.FLOAT16,
                                       TP.UINT4, TP.INT4, TP.FLOAT8E4M3FN, TP.DOUBLE, TP.INT64):
        size = {TP.FLOAT: 4, TP.INT16: 2, TP.INT32: 4, TP.FLOAT16: 2, TP.DOUBLE: 8, TP.INT64: 8}.get(dt, 1)
        nbytes = (n + 1) // 2 if dt in (TP.UINT4, TP.INT4) else n * size
        t.raw_data = draw(st.binary(min_size=nbytes, max_size=nbytes))
    elif how == "random":
        t.raw_data = draw(st.binary(max_size=80))
    elif how == "typed":
        t.int32_data.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=min(n, 40) + 2)))
    else:
        t.float_data.extend(draw(st.lists(FLOATS, max_size=min(n, 40) + 2)))
    return t


@st.composite
def param(draw, name, qshape, floaty):
    """A scale (``floaty``) or zero point: right-looking shape most of the time, values anything."""
    shapes = [[], [1]] + [[d] for d in qshape if 0 <= d <= 64] + [[draw(SMALL_DIMS)], [2, 2]]
    if qshape and all(0 <= d <= 64 for d in qshape):
        shapes.append([max(1, -(-d // 2)) if i == 0 else d for i, d in enumerate(qshape)])
    dims = draw(st.sampled_from(shapes))
    n = math.prod(dims)
    if floaty and draw(st.booleans()):
        dt = draw(st.sampled_from([TP.FLOAT, TP.FLOAT16, TP.DOUBLE, TP.BFLOAT16]))
        vals = np.array(draw(st.lists(FLOATS, min_size=n, max_size=n)), np.float64)
        with np.errstate(all="ignore"):
            arr = vals.astype(onnx.helper.tensor_dtype_to_np_dtype(dt)) if dt != TP.BFLOAT16 else None
        if arr is not None:
            return numpy_helper.from_array(arr.reshape(dims), name)
    types = ([TP.FLOAT, TP.FLOAT16] if floaty else []) + [TP.INT8, TP.UINT8, TP.INT16, TP.INT32, TP.UINT4, TP.INT4]
    return draw(tensors(name, dims=dims, types=types))


OPS = ["DequantizeLinear", "QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger", "MatMulNBits",
       "GatherBlockQuantized", "Gather", "DynamicQuantizeLSTM", "QGemm", "DynamicQuantizeMatMul", "by_name"]


@st.composite
def random_graphs(draw):
    """(fp32 model, variant model): one quantized tensor ``W_quantized`` read by a random
    quantized operator with random attributes, and an FP32 ``W`` of a related shape."""
    op = draw(st.sampled_from(OPS))
    q = draw(tensors("W_quantized", types=[TP.INT8, TP.UINT8, TP.INT16, TP.UINT16, TP.INT32, TP.INT4, TP.UINT4,
                                           TP.FLOAT8E4M3FN, TP.FLOAT8E5M2, TP.FLOAT, TP.UINT8, TP.INT8]
                     if draw(st.integers(0, 4)) else None))
    qshape = list(q.dims)
    s = draw(param("W_scale", qshape, True))
    z = draw(param("W_zero_point", qshape, False)) if draw(st.integers(0, 3)) else None
    attrs = {}
    for key in draw(st.lists(st.sampled_from(["axis", "block_size", "K", "N", "bits", "quantize_axis",
                                              "transB", "output_dtype"]), max_size=4, unique=True)):
        attrs[key] = draw(ATTR_INT)
    if draw(st.integers(0, 6)) == 0:  # an attribute of the wrong kind
        attrs[draw(st.sampled_from(["axis", "block_size", "K"]))] = draw(st.sampled_from([1.5, "x", [1, 2]]))
    inits = [q, s] + ([z] if z is not None else [])
    zname = "W_zero_point" if z is not None else ""
    nodes, ms, inputs = [], False, ["X"]
    if op == "DequantizeLinear":
        ins = ["W_quantized", "W_scale"] + ([zname] if zname else [])
        nodes = [helper.make_node("DequantizeLinear", ins, ["W_dq"], name="dq", **attrs),
                 helper.make_node("MatMul", ["X", "W_dq"], ["Y"], name="n")]
    elif op in ("QLinearMatMul", "QLinearConv", "QGemm"):
        inits += [numpy_helper.from_array(np.array(0.1, np.float32), "xs"),
                  numpy_helper.from_array(np.array(0, np.uint8), "xz")]
        if op == "QLinearMatMul":
            ins = ["Xq", "xs", "xz", "W_quantized", "W_scale", zname, "xs", "xz"]
        elif op == "QLinearConv":
            ins = ["Xq", "xs", "xz", "W_quantized", "W_scale", zname, "xs", "xz", "W_bias"]
            inits.append(draw(tensors("W_bias", types=[TP.INT32, TP.FLOAT])))
        else:
            ins = ["Xq", "xs", "xz", "W_quantized", "W_scale", zname, "W_bias", "xs", "xz"]
            inits.append(draw(tensors("W_bias", types=[TP.INT32])))
        ms = op == "QGemm"
        nodes = [helper.make_node(op, ins, ["Y"], name="n", domain=MS if ms else "", **attrs)]
        inputs = ["Xq"]
    elif op in ("MatMulInteger", "ConvInteger"):
        nodes = [helper.make_node(op, ["Xq", "W_quantized", "", zname], ["Yi"], name="n", **attrs),
                 helper.make_node("Cast", ["Yi"], ["Yf"], to=TP.FLOAT, name="c"),
                 helper.make_node("Mul", ["Yf", "W_scale"], ["Y"], name="m")]
        inputs = ["Xq"]
    elif op == "MatMulNBits":
        nodes = [helper.make_node("MatMulNBits", ["X", "W_quantized", "W_scale", zname], ["Y"], name="n",
                                  domain=MS, **attrs)]
        ms = True
    elif op == "GatherBlockQuantized":
        nodes = [helper.make_node("GatherBlockQuantized", ["W_quantized", "idx", "W_scale", zname], ["Y"],
                                  name="n", domain=MS, **attrs)]
        ms, inputs = True, ["idx"]
    elif op == "Gather":
        nodes = [helper.make_node("Gather", ["W_quantized", "idx"], ["G"], name="n"),
                 helper.make_node("DequantizeLinear", ["G", "W_scale"] + ([zname] if zname else []), ["Y"],
                                  name="dq", **attrs)]
        inputs = ["idx"]
    elif op == "DynamicQuantizeLSTM":
        ins = ["X", "W_quantized", "W_quantized", "", "", "", "", "", "W_scale"] + [zname, "W_scale", zname]
        nodes = [helper.make_node("DynamicQuantizeLSTM", ins, ["Y"], name="n", domain=MS, **attrs)]
        ms = True
    elif op == "DynamicQuantizeMatMul":
        nodes = [helper.make_node("DynamicQuantizeMatMul", ["X", "W_quantized", "W_scale", zname], ["Y"],
                                  name="n", domain=MS, **attrs)]
        ms = True
    else:  # by_name: no known operator reads it
        nodes = [helper.make_node("Custom", ["X", "W_quantized"], ["Y"], name="n", domain="x.y")]
    opset = draw(st.sampled_from([10, 13, 17, 19, 21, 23, 99]))
    variant = _model(nodes, inits, opset=opset, ms=ms, inputs=tuple(inputs))
    if draw(st.booleans()):
        variant.opset_import.append(helper.make_opsetid("x.y", 1))
    # FP32: same shape as the codes when that is sane, else something else
    fshape = qshape if all(0 <= d <= 64 for d in qshape) and draw(st.booleans()) else draw(
        st.lists(SMALL_DIMS, max_size=3))
    w = np.asarray(draw(st.lists(FLOATS, min_size=math.prod(fshape), max_size=math.prod(fshape))),
                   np.float32).reshape(fshape)
    fp = _fp32(w, op="MatMul")
    return fp.SerializeToString(), variant.SerializeToString()


@FUZZ
@given(pair=random_graphs(), cache=st.booleans())
def test_fuzz_random_field_values(pair, cache):
    fp32, variant = pair
    _run_pair(fp32, variant, cache)


# ------------------------------------------------------------------ 3. external data entries
_OPENED: list | None = None


def _audit(event, args):
    if _OPENED is not None and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)

LOC_PARTS = st.sampled_from(["..", ".", "w.bin", "sub", "lnk", "hl.bin", "secret.bin", "outside", "/", "\\",
                             "C:", "\0", "~", "%2e%2e", "dev", "zero", "fifo", "", "a" * 300])
KEYS = st.sampled_from(["location", "offset", "length", "checksum", "basepath", "__class__", "__dict__",
                        "Location", "junk"])
VALUES = st.one_of(st.integers(-5, 64).map(str), st.sampled_from(["", "x", "1e3", "0x10", str(10**12),
                                                                   str(2**63), "-0", " 4", "9" * 5000]))


@st.composite
def external_entries(draw):
    loc = "".join(draw(st.lists(LOC_PARTS, min_size=1, max_size=5)))
    sep = draw(st.sampled_from(["/", "\\", ""]))
    if sep:
        loc = sep.join(draw(st.lists(LOC_PARTS, min_size=1, max_size=5)))
    entries = [("location", loc)] if draw(st.integers(0, 5)) else []
    entries += draw(st.lists(st.tuples(KEYS, VALUES), max_size=3))
    return entries


@FUZZ
@given(entries=external_entries(), which=st.sampled_from(["W_quantized", "W_scale", "W"]), cache=st.booleans())
def test_fuzz_external_data_entries(entries, which, cache):
    """Random ``external_data`` entries on a server-side model whose folder holds a good data
    file, a symlink and a hard link to an outside folder, a FIFO and a subfolder: only
    documented errors, and the outside secret is never opened."""
    global _OPENED
    fp32, variant, _ = _seeds()["qdq_per_tensor:variant"]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "outside").mkdir()
        secret = root / "outside" / "secret.bin"
        secret.write_bytes(b"S" * 4096)
        folder = root / "m"
        (folder / "sub").mkdir(parents=True)
        (folder / "lnk").symlink_to(root / "outside", target_is_directory=True)
        os.link(secret, folder / "hl.bin")
        os.mkfifo(folder / "fifo")
        (folder / "w.bin").write_bytes(bytes(range(256)) * 2)
        fp_model, v_model = onnx.load_model_from_string(fp32), onnx.load_model_from_string(variant)
        m = fp_model if which == "W" else v_model
        t = next(t for t in m.graph.initializer if t.name == which)
        t.ClearField("raw_data")
        t.data_location = TP.EXTERNAL
        for k, v in entries:
            t.external_data.add(key=k, value=v)
        (folder / "fp32.onnx").write_bytes(fp_model.SerializeToString())
        (folder / "variant.onnx").write_bytes(v_model.SerializeToString())
        _OPENED = []
        try:
            only_documented(lambda: load_model(folder / "variant.onnx"))
            only_documented(lambda: load_model(folder / "fp32.onnx"))
            only_documented(lambda: analyze(folder / "fp32.onnx", [folder / "variant.onnx"], cache=cache))
            only_documented(lambda: parse_model_bytes(m.SerializeToString()))
            seen = list(_OPENED)
        finally:
            _OPENED = None
        st_secret = secret.stat()
        for p in seen:
            try:
                s = os.stat(p)
            except OSError:
                continue
            assert (s.st_dev, s.st_ino) != (st_secret.st_dev, st_secret.st_ino), (p, entries)
            assert not Path(p).is_fifo(), p
