"""Find every quantized tensor of a model, in every layout ONNX Runtime and the
ONNX standard use (see ``docs/formats.md`` for the table of layouts).

:func:`find_quantized` walks the graph once and returns one
:class:`~analysis.quant_tensor.QuantTensor` per stored quantized tensor: QDQ
(standard and com.microsoft), QOperator (QLinearConv, QLinearMatMul, QGemm,
QAttention, QLinear element-wise ops), dynamic (MatMulInteger, ConvInteger,
DynamicQuantizeMatMul, MatMulIntegerToFloat, DynamicQuantizeLSTM, quantized
Gather tables), MatMulNBits, GatherBlockQuantized, and a name-based fallback.
No payload is read here: readers decode on demand.
"""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
from onnx import TensorProto

from .errors import QuantLensError, TensorReadError
from .model import ModelGraph, int_attr, node_attr
from .quant_tensor import TYPE_RANGES, Decoded, QuantTensor
from .roles import role_of
from .tensors import FLOAT8_TYPES, FLOAT_TYPES, INTEGER_TYPES, dtype_name, tensor_np_dtype, tensor_numel

__all__ = ["find_quantized", "strip_quant_suffix", "OUTPUT_REF"]

_MS = "com.microsoft"
_SUFFIXES = ("_quantized", "_DQ_Q2", "_DQ_Q4", "_DQ_Q8", "_Q2", "_Q4", "_Q8")
_NODE_SUFFIXES = ("_matmul_Q2", "_matmul_Q4", "_matmul_Q8", "_DQ_Q4", "_quant", "_Q2", "_Q4",
                  "_Q8", "_MatMul")
_TRANSPOSED = re.compile(r"^(.*)_Transposed(_\d+)?$")


def strip_quant_suffix(name: str) -> list[tuple[str, bool]]:
    """FP32 name candidates for a quantized tensor name (ONNX Runtime's naming).

    Returns
    -------
    list of (str, bool)
        Candidate names, with ``True`` when the candidate was stored transposed
        (``<B>_Transposed``).
    """
    out = []
    for suf in _SUFFIXES:
        if name.endswith(suf) and len(name) > len(suf):
            out.append(name[: -len(suf)])
    out.append(name)
    res = []
    for c in out:
        m = _TRANSPOSED.match(c)
        if m:
            res.append((m.group(1), True))
        res.append((c, False))
    return res


def _node_candidates(name: str) -> list[str]:
    """The FP32 node names a (possibly renamed) quantized node may come from."""
    out, cur = [name], name
    changed = True
    while changed:
        changed = False
        for suf in _NODE_SUFFIXES:
            if cur.endswith(suf) and len(cur) > len(suf):
                cur = cur[: -len(suf)]
                out.append(cur)
                changed = True
    return out


class _Ctx:
    """Per-model helpers shared by the layout handlers."""

    def __init__(self, mg: ModelGraph):
        self.mg = mg
        self.found: dict[str, QuantTensor] = {}

    def const(self, node, slot):
        if slot < len(node.input) and self.mg.is_const(node.input[slot]):
            return node.input[slot]
        return None

    def param(self, name):
        return None if not name else self.mg.array(name)

    def storage(self, name):
        return self.mg.constant_storage.get(name, "initializer")

    def consumers_of(self, tensor):
        """``[(node_index, slot)]`` reading ``tensor``, looking through Transpose/Reshape
        that only rearrange a dequantized weight."""
        return self.mg.consumers.get(tensor, [])

    def add(self, qt: QuantTensor, consumer: str, op: str):
        prev = self.found.get(qt.name)
        if prev is None:
            qt.consumers, qt.consumer_ops = [consumer], [op]
            self.found[qt.name] = qt
        elif consumer not in prev.consumers:
            prev.consumers.append(consumer)
            prev.consumer_ops.append(op)
            prev.node_refs.extend(r for r in qt.node_refs if r not in prev.node_refs)


def _norm_axis(axis: int, ndim: int, what: str) -> int:
    a = axis + ndim if axis < 0 else axis
    if not 0 <= a < max(ndim, 1):
        raise TensorReadError(f"{what}: axis {axis} is out of range for a {ndim}-D tensor")
    return a


def _layout_params(s: np.ndarray, z: np.ndarray | None, qshape: tuple, axis: int | None,
                   block: int, what: str, default_axis: int = 1):
    """Classify granularity (ONNX DequantizeLinear rules) and shape the parameters.

    Returns ``(s_c, z_c, granularity, axis, block_size, channel_axes)`` in storage layout.
    """
    nd = len(qshape)
    if z is not None and z.shape != s.shape and z.size != s.size:
        raise TensorReadError(f"{what}: zero point shape {z.shape} differs from scale shape {s.shape}")
    if z is not None:
        z = z.reshape(s.shape)
    if block and block > 0:
        if nd == 0:
            raise TensorReadError(f"{what}: block_size {block} on a 0-d tensor")
        a = _norm_axis(default_axis if axis is None else axis, nd, what)
        nb = -(-qshape[a] // block)
        exp = tuple(nb if i == a else d for i, d in enumerate(qshape))
        if s.shape != exp:
            raise TensorReadError(f"{what}: block-wise scale shape {s.shape}, expected {exp} "
                                  f"(block_size {block} on axis {a})")
        others = [i for i in range(nd) if i != a]
        return s, z, "blockwise", a, int(block), tuple(others[:1])
    if s.ndim == 0 or (s.size == 1 and axis is None):
        return s.reshape(()), None if z is None else z.reshape(()), "per_tensor", None, None, ()
    if s.ndim != 1:
        raise TensorReadError(f"{what}: {s.ndim}-D scale without block_size is not a valid layout")
    if nd == 0:
        raise TensorReadError(f"{what}: {s.size} scales for a 0-d tensor")
    a = _norm_axis(default_axis if axis is None else axis, nd, what)
    if s.size == 1 and qshape[a] != 1:
        # onnxruntime applies a one-element scale to the whole tensor, whatever the axis says
        return s.reshape(()), None if z is None else z.reshape(()), "per_tensor", None, None, ()
    if s.size != qshape[a]:
        raise TensorReadError(f"{what}: {s.size} scales for axis {a} of length {qshape[a]}")
    view = [1] * nd
    view[a] = -1
    return (s.reshape(view), None if z is None else z.reshape(view), "per_channel", a, None, (a,))


def _zp_array(z: np.ndarray | None, s_c: np.ndarray, floaty: bool) -> np.ndarray:
    if z is None:
        return np.zeros(s_c.shape, np.float32 if floaty else np.int64)
    if floaty or z.dtype.kind == "f" or z.dtype.kind == "V":
        return np.asarray(z, np.float32)
    return z.astype(np.int64)


def _transpose2d(d: Decoded) -> Decoded:
    ax = None if d.block_axis is None else 1 - d.block_axis
    return Decoded(d.q.T, d.scale.T if d.scale.ndim == 2 else d.scale,
                   d.zero_point.T if d.zero_point.ndim == 2 else d.zero_point,
                   ax, d.block_size, tuple(1 - a for a in d.channel_axes))


def _make_linear(ctx: _Ctx, what: str, q_name: str | None, s_name: str, z_name: str | None,
                 axis: int | None, block: int, role: str, quant_op: str, default_axis: int = 1,
                 transposed: bool = False, q_compute=None, scale_fn=None, dtype_override=None):
    """Build a QuantTensor for a (q, s, z) triple in the DequantizeLinear sense."""
    mg = ctx.mg
    name = q_name if q_name else q_compute[0]
    dt = mg.dtype(name) if q_name else q_compute[1]
    qshape = mg.shape(name)
    s_raw = mg.array(s_name) if scale_fn is None else scale_fn()
    z_raw = ctx.param(z_name) if z_name and mg.is_const(z_name) else None
    s_c, z_c, gran, a, bs, ch = _layout_params(np.asarray(s_raw), None if z_raw is None else np.asarray(z_raw),
                                               qshape, axis, block, what, default_axis)
    floaty = dt in FLOAT8_TYPES
    notes = []
    if z_name and z_name in mg.constants and q_name and mg.dtype(z_name) != dt:
        notes.append(f"zero point type {dtype_name(mg.dtype(z_name))} differs from code type {dtype_name(dt)}")
    dname = dtype_override or dtype_name(dt)

    def reader():
        if q_compute is not None:
            q = q_compute[2]()
        else:
            q = mg.array(q_name)
        if floaty:
            q = q.astype(np.float32)
        s_arr = np.asarray(mg.array(s_name) if scale_fn is None else scale_fn())
        z_arr = ctx.param(z_name) if z_name and mg.is_const(z_name) else None
        s2, z2, _, a2, b2, ch2 = _layout_params(s_arr, None if z_arr is None else np.asarray(z_arr),
                                                qshape, axis, block, what, default_axis)
        d = Decoded(q, s2, _zp_array(z2, s2, floaty), a2 if b2 else None, b2, ch2)
        return _transpose2d(d) if transposed else d

    shape = tuple(reversed(qshape)) if transposed else qshape
    rep_axis = a if not transposed or a is None else 1 - a
    if transposed:
        notes.append("stored transposed; reported in the FP32 layout")
    return QuantTensor(
        name=name, role=role, quant_op=quant_op, storage=ctx.storage(name) if q_name else "computed",
        consumers=[], consumer_ops=[], dtype=dname, shape=shape, granularity=gran, axis=rep_axis,
        block_size=bs, n_scales=int(s_c.size), reader=reader,
        name_candidates=strip_quant_suffix(name), layout="transposed" if transposed else "identity",
        notes=notes, qrange=TYPE_RANGES.get(dname))


# ----------------------------------------------------------------------------- QDQ
def _dq_consumers(ctx: _Ctx, out: str):
    """Consumers of a DQ output; a Transpose([1,0]) right after it means the weight
    was stored transposed (MatMulNBits QDQ with channel_wised_quantize)."""
    mg = ctx.mg
    res, transposed = [], False
    for ni, slot in mg.consumers.get(out, []):
        n = mg.nodes[ni]
        perm = node_attr(n, "perm", [1, 0]) if n.op_type == "Transpose" else None
        if isinstance(perm, list) and (perm or [1, 0]) == [1, 0]:
            transposed = True
            res.extend(mg.consumers.get(n.output[0], []))
        else:
            res.append((ni, slot))
    return res, transposed


def _handle_dq(ctx: _Ctx, i: int, node) -> None:
    mg = ctx.mg
    x = node.input[0]
    if not x:
        return
    q_compute = None
    if mg.is_const(x):
        dt = mg.dtype(x)
        if dt not in INTEGER_TYPES and dt not in FLOAT8_TYPES:
            return
        q_name = x
    else:
        # Q -> DQ pair on a float constant (AddQDQPairToWeight): recompute the codes.
        pi = mg.producer.get(x)
        if pi is None or mg.nodes[pi].op_type != "QuantizeLinear":
            return  # an activation
        qn = mg.nodes[pi]
        if not mg.is_const(qn.input[0]) or mg.dtype(qn.input[0]) not in FLOAT_TYPES:
            return
        q_name = None
        q_compute = _quantize_spec(ctx, qn)
    cons, transposed = _dq_consumers(ctx, node.output[0])
    axis = int_attr(node, "axis")
    block = int_attr(node, "block_size", 0)
    s_name = node.input[1]
    z_name = node.input[2] if len(node.input) > 2 else None
    first_op = mg.nodes[cons[0][0]].op_type if cons else ""
    other = _other_producer(ctx, cons[0]) if cons else None
    name = q_name or q_compute[0]
    dt = mg.dtype(name)
    role = "bias" if dt == TensorProto.INT32 else role_of(first_op, cons[0][1], other) if cons else "other"
    qt = _make_linear(ctx, f"DequantizeLinear '{node.name}'", q_name, s_name, z_name, axis, block,
                      role, "DequantizeLinear" + ("" if node.domain in ("", "ai.onnx") else f" ({node.domain})"),
                      transposed=transposed, q_compute=q_compute)
    out = node.output[0]
    extra = [(out[: -len("_DequantizeLinear_Output")], False)] if out.endswith("_DequantizeLinear_Output") else []
    qt.name_candidates = extra + qt.name_candidates + [(out, False)]
    if q_compute is not None:
        qt.name_candidates.insert(0, (q_compute[0], False))
        qt.notes.append("codes recomputed from the float weight by its QuantizeLinear (Q->DQ pair)")
    for ni, slot in cons:
        qt.node_refs.extend((nm, slot) for nm in _node_candidates(mg.node_name(ni)))
        qt.node_refs.extend(_output_refs(mg.nodes[ni], slot))
    if not cons:
        ctx.add(qt, mg.node_name(i), "DequantizeLinear")
    for ni, slot in cons:
        ctx.add(qt, mg.node_name(ni), mg.nodes[ni].op_type)


def _quantize_spec(ctx: _Ctx, qn):
    """(float name, code type, compute()) for a QuantizeLinear on a float constant."""
    mg = ctx.mg
    w_name = qn.input[0]
    z_name = qn.input[2] if len(qn.input) > 2 and qn.input[2] else None
    dt = mg.dtype(z_name) if z_name else (int_attr(qn, "output_dtype", 0) or TensorProto.UINT8)
    lo, hi = TYPE_RANGES.get(dtype_name(dt), (0, 255))
    axis = int_attr(qn, "axis")
    block = int_attr(qn, "block_size", 0)
    floaty = dt in FLOAT8_TYPES
    saturate = bool(node_attr(qn, "saturate", 1))

    def compute():
        from .quant_tensor import expand_param
        w = np.asarray(mg.array(w_name), np.float32)
        s = np.asarray(mg.array(qn.input[1]), np.float32)
        z = None
        if z_name:
            z = mg.array(z_name)
            z = np.asarray(z, np.float32) if floaty else z.astype(np.int64)
        s_c, z_c, _, a, b, _ = _layout_params(s, z, w.shape, axis, block, "QuantizeLinear")
        s_e = expand_param(s_c, w.shape, a if b else None, b)
        z_e = expand_param(_zp_array(z_c, s_c, floaty), w.shape, a if b else None, b)
        if floaty:
            # ONNX: cast(x / s + z) to float8, round to nearest even; saturate=1 clips
            # to the largest finite value instead of overflowing to NaN/Inf.
            f8 = tensor_np_dtype(dt)
            x = np.divide(w, s_e, dtype=np.float32) + np.asarray(z_e, np.float32)
            if saturate:
                big = float(ml_dtypes.finfo(f8).max)
                x = np.clip(x, -big, big)
            return x.astype(f8)
        q = np.clip(np.rint(w / s_e) + z_e, lo, hi)  # ONNX: saturate(round_half_even(x / s) + z)
        return q.astype(np.int32)

    return (w_name, dt, compute)


def _other_producer(ctx: _Ctx, cons) -> str | None:
    ni, slot = cons
    n = ctx.mg.nodes[ni]
    if n.op_type != "Add" or len(n.input) != 2:
        return None
    other = n.input[1 - slot]
    pi = ctx.mg.producer.get(other)
    return ctx.mg.nodes[pi].op_type if pi is not None else None


# ----------------------------------------------------------------------- QOperator
#: op -> list of (q slot, scale slot, zp slot, fp32 slot, role, default-axis rule)
_TRIPLES = {
    "QLinearConv": [(3, 4, 5, 1, "weight", "first")],
    "QLinearMatMul": [(0, 1, 2, 0, "weight", "rows"), (3, 4, 5, 1, "weight", "last")],
    "QGemm": [(0, 1, 2, 0, "weight", "gemmA"), (3, 4, 5, 1, "weight", "gemmB")],
    "QAttention": [(1, 4, 7, 1, "weight", "last")],
    "DynamicQuantizeMatMul": [(1, 2, 3, 1, "weight", "last")],
    "MatMulIntegerToFloat": [(1, 3, 5, 1, "weight", "last")],
    "QLinearAdd": [(0, 1, 2, 0, "elementwise", "none"), (3, 4, 5, 1, "elementwise", "none")],
    "QLinearMul": [(0, 1, 2, 0, "elementwise", "none"), (3, 4, 5, 1, "elementwise", "none")],
}


def _default_axis(rule: str, node, ndim: int) -> int:
    if rule == "first":
        return 0
    if rule == "last":
        return max(ndim - 1, 0)
    if rule == "rows":
        return max(ndim - 2, 0)
    if rule == "gemmB":
        return 0 if node_attr(node, "transB", 0) else 1
    if rule == "gemmA":
        return 1 if node_attr(node, "transA", 0) else 0
    return 1


def _refs(ctx: _Ctx, i: int, slot: int) -> list:
    return [(nm, slot) for nm in _node_candidates(ctx.mg.node_name(i))] + _output_refs(ctx.mg.nodes[i], slot)


#: Prefix of node references by output tensor (for nodes without a name).
OUTPUT_REF = "output:"


def _output_refs(node, slot: int) -> list:
    """References of an unnamed node by its first output: positional names
    (``Conv_7``) shift once quantization inserts nodes, output names do not
    (QOperator ops suffix theirs with ``_quantized``)."""
    if node.name or not node.output or not node.output[0]:
        return []
    out = node.output[0]
    refs = [(OUTPUT_REF + out, slot)]
    if out.endswith("_quantized") and len(out) > len("_quantized"):
        refs.append((OUTPUT_REF + out[: -len("_quantized")], slot))
    return refs


def _handle_triples(ctx: _Ctx, i: int, node) -> None:
    mg = ctx.mg
    for qs, ss, zs, fs, role, rule in _TRIPLES[node.op_type]:
        q = ctx.const(node, qs)
        if not q or mg.dtype(q) not in INTEGER_TYPES | FLOAT8_TYPES or ss >= len(node.input):
            continue
        if not mg.is_const(node.input[ss]):
            raise TensorReadError(f"scale '{node.input[ss]}' of '{q}' is not a constant")
        z = node.input[zs] if zs < len(node.input) and node.input[zs] else None
        qt = _make_linear(ctx, f"{node.op_type} '{node.name}'", q, node.input[ss], z, None, 0, role,
                          node.op_type, default_axis=_default_axis(rule, node, len(mg.shape(q))))
        qt.node_refs = _refs(ctx, i, fs)
        ctx.add(qt, mg.node_name(i), node.op_type)
    _handle_int32_bias(ctx, i, node)


#: op -> (bias slot, input-scale slot, weight-scale slot, fp32 slot)
_BIASES = {"QLinearConv": (8, 1, 4, 2), "QGemm": (6, 1, 4, 2)}


def _handle_int32_bias(ctx: _Ctx, i: int, node) -> None:
    """int32 bias of QLinearConv / QGemm: implicit scale ``x_scale * w_scale``, zero point 0."""
    if node.op_type not in _BIASES:
        return
    mg = ctx.mg
    bs, xs, ws, fs = _BIASES[node.op_type]
    b = ctx.const(node, bs)
    if not b or mg.dtype(b) != TensorProto.INT32:
        return
    if not (mg.is_const(node.input[xs]) and mg.is_const(node.input[ws])):
        raise TensorReadError(f"bias '{b}': input or weight scale is not a constant")

    def scale():
        x = np.asarray(mg.array(node.input[xs]), np.float32).reshape(-1)
        w = np.asarray(mg.array(node.input[ws]), np.float32).reshape(-1)
        s = np.multiply(x, w, dtype=np.float32)  # the runtime multiplies the two in float32
        return s.reshape(()) if s.size == 1 else s

    qt = _make_linear(ctx, f"{node.op_type} '{node.name}' bias", b, "", None, None, 0, "bias",
                      node.op_type, default_axis=max(len(mg.shape(b)) - 1, 0), scale_fn=scale)
    qt.notes.append("implicit scale = input scale x weight scale")
    qt.node_refs = _refs(ctx, i, fs)
    ctx.add(qt, mg.node_name(i), node.op_type)


# -------------------------------------------------------------------------- dynamic
def _find_dyn_scale(ctx: _Ctx, i: int, q_name: str) -> str:
    """Weight scale of MatMulInteger/ConvInteger, which take none as input: by name
    (``W_quantized`` -> ``W_scale``), else through ``Cast -> Mul(x_scale * w_scale)``."""
    mg = ctx.mg
    for base, _ in strip_quant_suffix(q_name):
        if mg.is_const(base + "_scale") and mg.dtype(base + "_scale") in FLOAT_TYPES:
            return base + "_scale"
    frontier = [mg.nodes[i].output[0]]
    for _ in range(3):  # output -> Cast -> Mul
        nxt = []
        for t in frontier:
            for ni, slot in mg.consumers.get(t, []):
                n = mg.nodes[ni]
                if n.op_type == "Cast":
                    nxt.append(n.output[0])
                elif n.op_type == "Mul":
                    other = n.input[1 - slot]
                    if mg.is_const(other):
                        return other
                    pi = mg.producer.get(other)
                    if pi is not None and mg.nodes[pi].op_type == "Mul":
                        for inp in mg.nodes[pi].input:
                            if mg.is_const(inp):
                                return inp
        frontier = nxt
    raise TensorReadError(f"weight '{q_name}': no scale found (neither '<name>_scale' nor a Cast->Mul chain)")


def _handle_integer_op(ctx: _Ctx, i: int, node) -> None:
    """MatMulInteger (A, B, a_zp, b_zp) and ConvInteger (x, w, x_zp, w_zp)."""
    mg = ctx.mg
    q = ctx.const(node, 1)
    if not q or mg.dtype(q) not in INTEGER_TYPES:
        return
    s = _find_dyn_scale(ctx, i, q)
    z = node.input[3] if len(node.input) > 3 and node.input[3] else None
    axis = 0 if node.op_type == "ConvInteger" else max(len(mg.shape(q)) - 1, 0)
    qt = _make_linear(ctx, f"{node.op_type} '{node.name}'", q, s, z, None, 0, "weight",
                      node.op_type, default_axis=axis)
    transposed = [c for c in qt.name_candidates if c[1]]
    if transposed and len(qt.shape) == 2:
        # `<B>_Transposed` from the Gemm(transB=1) rewrite: undo the layout.
        qt = _make_linear(ctx, f"{node.op_type} '{node.name}'", q, s, z, None, 0, "weight",
                          node.op_type, default_axis=axis, transposed=True)
    qt.node_refs = _refs(ctx, i, 1)
    ctx.add(qt, mg.node_name(i), node.op_type)


def _handle_lstm(ctx: _Ctx, i: int, node) -> None:
    """DynamicQuantizeLSTM: W [D, in, 4H] and R [D, H, 4H], stored transposed."""
    mg = ctx.mg
    for qs, ss, zs in ((1, 8, 9), (2, 10, 11)):
        q = ctx.const(node, qs)
        if not q or ss >= len(node.input) or not mg.is_const(node.input[ss]):
            continue
        z = node.input[zs] if zs < len(node.input) and node.input[zs] else None
        sh = mg.shape(q)
        s_shape = mg.shape(node.input[ss])
        if len(sh) != 3:
            raise TensorReadError(f"DynamicQuantizeLSTM weight '{q}' is {len(sh)}-D, expected 3-D")
        per_ch = len(s_shape) == 2
        if s_shape not in ((sh[0],), (sh[0], sh[2])):
            raise TensorReadError(f"DynamicQuantizeLSTM weight '{q}' {sh}: scale shape {s_shape}, expected "
                                  f"{(sh[0],)} or {(sh[0], sh[2])}")
        if z and mg.is_const(z) and mg.shape(z) != s_shape:
            raise TensorReadError(f"DynamicQuantizeLSTM weight '{q}': zero point shape {mg.shape(z)} "
                                  f"differs from scale shape {s_shape}")

        def reader(q=q, s=node.input[ss], z=z, per_ch=per_ch):
            codes = mg.array(q).transpose(0, 2, 1)
            sc = np.asarray(mg.array(s), np.float32)
            zp = mg.array(z).astype(np.int64) if z and mg.is_const(z) else np.zeros(sc.shape, np.int64)
            view = (sc.shape[0], sc.shape[1], 1) if per_ch else (sc.shape[0], 1, 1)
            ch = (0, 1) if per_ch else (0,)
            return Decoded(codes, sc.reshape(view), zp.reshape(view), None, None, ch)

        dn = dtype_name(mg.dtype(q))
        qt = QuantTensor(
            name=q, role="weight", quant_op="DynamicQuantizeLSTM", storage=ctx.storage(q),
            consumers=[], consumer_ops=[], dtype=dn, shape=(sh[0], sh[2], sh[1]),
            granularity="per_channel", axis=1 if per_ch else 0, block_size=None,
            n_scales=tensor_numel(mg.constants[node.input[ss]]), reader=reader,
            name_candidates=strip_quant_suffix(q), layout="lstm",
            notes=["stored [D, in, 4H]; reported in ONNX's [D, 4H, in]"]
                  + (["one scale per direction and gate row (axes 0 and 1)"] if per_ch else []),
            qrange=TYPE_RANGES.get(dn))
        qt.node_refs = _refs(ctx, i, qs)
        ctx.add(qt, mg.node_name(i), node.op_type)


def _handle_gather(ctx: _Ctx, i: int, node) -> None:
    """Gather on a quantized table (dynamic): parameters by name, else the DQ after it."""
    mg = ctx.mg
    q = ctx.const(node, 0)
    if not q or mg.dtype(q) not in INTEGER_TYPES:
        return
    s = z = None
    for base, _ in strip_quant_suffix(q):
        if base != q and mg.is_const(base + "_scale"):
            s = base + "_scale"
            z = base + "_zero_point" if mg.is_const(base + "_zero_point") else None
            break
    if s is None:
        for ni, _slot in mg.consumers.get(node.output[0], []):
            n = mg.nodes[ni]
            if n.op_type == "DequantizeLinear" and mg.is_const(n.input[1]):
                s = n.input[1]
                z = n.input[2] if len(n.input) > 2 and n.input[2] else None
                break
    if s is None:
        return  # an integer lookup table, not a quantized one
    qt = _make_linear(ctx, f"Gather '{node.name}'", q, s, z, None, 0, "gather_table", "Gather")
    qt.node_refs = _refs(ctx, i, 0)
    ctx.add(qt, mg.node_name(i), node.op_type)


def _handle_gather_block(ctx: _Ctx, i: int, node) -> None:
    """com.microsoft GatherBlockQuantized(data, indices, scales[, zero_points])."""
    mg = ctx.mg
    q = ctx.const(node, 0)
    if not q or not mg.is_const(node.input[2]):
        return
    if mg.dtype(q) == TensorProto.UINT8:
        _gather_block_uint8(ctx, i, node, q)
        return
    if mg.dtype(q) not in (TensorProto.INT4, TensorProto.UINT4):
        raise TensorReadError(f"GatherBlockQuantized data '{q}' of type {dtype_name(mg.dtype(q))} "
                              "is not a quantized table type (int4, uint4, packed uint8)")
    z = node.input[3] if len(node.input) > 3 and node.input[3] else None
    axis = int_attr(node, "quantize_axis", 1)
    block = int_attr(node, "block_size", 128)
    qt = _make_linear(ctx, f"GatherBlockQuantized '{node.name}'", q, node.input[2], z, axis, block,
                      "gather_table", "GatherBlockQuantized")
    if z is None and mg.dtype(q) == TensorProto.UINT4:
        qt.notes.append("uint4 table without zero points: zero point 0 assumed")
    qt.node_refs = _refs(ctx, i, 0)
    ctx.add(qt, mg.node_name(i), node.op_type)


def _gather_block_uint8(ctx: _Ctx, i: int, node, q: str) -> None:
    """GatherBlockQuantized on packed ``uint8`` data (onnxruntime-genai's layout):
    ``bits`` codes per element packed along the last axis (low bits first), which
    must be the quantize axis; zero points packed the same way per row, default
    ``2^(bits-1)`` when absent."""
    mg = ctx.mg
    what = f"GatherBlockQuantized '{node.name}'"
    bits = int_attr(node, "bits", 4)
    if bits not in (2, 4, 8):
        raise TensorReadError(f"{what}: {bits}-bit codes are not read yet (2, 4 and 8 are)")
    sh = mg.shape(q)
    if not sh:
        raise TensorReadError(f"{what}: a 0-d table cannot be gathered")
    nd = len(sh)
    axis = _norm_axis(int_attr(node, "quantize_axis", 1), nd, what)
    if axis != nd - 1:
        raise TensorReadError(f"{what}: packed uint8 data must be quantized along its last axis, not {axis}")
    block = int_attr(node, "block_size", 128)
    if block <= 0:
        raise TensorReadError(f"{what}: block_size {block} is not positive")
    D = sh[-1] * (8 // bits)
    shape = sh[:-1] + (D,)
    nb = -(-D // block)
    s_name = node.input[2]
    if mg.shape(s_name) != sh[:-1] + (nb,):
        raise TensorReadError(f"{what}: scales of shape {mg.shape(s_name)}, expected {sh[:-1] + (nb,)} "
                              f"({D} columns in blocks of {block})")
    z_name = node.input[3] if len(node.input) > 3 and node.input[3] else None
    if z_name and mg.dtype(z_name) != TensorProto.UINT8:
        raise TensorReadError(f"{what}: zero points of type {dtype_name(mg.dtype(z_name))} with uint8 data")

    def reader():
        codes = _unpack_bits(np.asarray(mg.array(q)), bits)                      # [..., D]
        s = np.asarray(mg.array(s_name))
        if z_name:
            zb = np.asarray(mg.array(z_name)).reshape(sh[:-1] + (-1,))
            z = _unpack_bits(zb, bits)[..., :nb].astype(np.int64)
        else:
            z = np.full(s.shape, 1 << (bits - 1), np.int64)  # the kernel's implicit mid code
        return Decoded(codes, s, z, nd - 1, block, (0,) if nd > 1 else ())

    dn = f"uint{bits}"
    qt = QuantTensor(
        name=q, role="gather_table", quant_op="GatherBlockQuantized", storage=ctx.storage(q), consumers=[],
        consumer_ops=[], dtype=dn, shape=shape, granularity="blockwise", axis=nd - 1, block_size=block,
        n_scales=tensor_numel(mg.constants[s_name]), reader=reader, name_candidates=strip_quant_suffix(q),
        layout="identity",
        notes=[f"uint8 data packing {8 // bits} codes per byte along the last axis"]
              + ([] if z_name else [f"no zero points: implicit {1 << (bits - 1)}"]),
        qrange=(0, (1 << bits) - 1))
    qt.node_refs = _refs(ctx, i, 0)
    ctx.add(qt, mg.node_name(i), node.op_type)


# --------------------------------------------------------------------- MatMulNBits
def _unpack_bits(b: np.ndarray, bits: int) -> np.ndarray:
    """Split each byte of ``b`` (last axis) into ``8 // bits`` codes, low bits first."""
    per, mask = 8 // bits, (1 << bits) - 1
    parts = [(b >> (bits * k)) & mask for k in range(per)]
    return np.stack(parts, axis=-1).reshape(*b.shape[:-1], b.shape[-1] * per)


def _handle_nbits(ctx: _Ctx, i: int, node) -> None:
    """com.microsoft MatMulNBits: ``B[N, n_blocks, blob]`` packed codes, transposed."""
    mg = ctx.mg
    q = ctx.const(node, 1)
    if not q:
        return
    K, N = int_attr(node, "K", required=True, lo=1), int_attr(node, "N", required=True, lo=1)
    bits, bs = int_attr(node, "bits", 4), int_attr(node, "block_size", required=True, lo=1)
    what = f"MatMulNBits '{node.name}'"
    if bits not in (2, 4, 8):
        raise TensorReadError(f"{what}: {bits}-bit codes are not read yet (2, 4 and 8 are)")
    if len(node.input) > 4 and node.input[4]:
        raise TensorReadError(f"{what}: g_idx (act-order) is not read yet")
    nb = -(-K // bs)
    if tensor_numel(mg.constants[q]) != N * nb * (bs * bits // 8):
        raise TensorReadError(f"{what}: packed weight holds {tensor_numel(mg.constants[q])} bytes, "
                              f"K={K}, N={N}, block {bs} need {N * nb * bs * bits // 8}")
    s_name = node.input[2]
    z_name = node.input[3] if len(node.input) > 3 and node.input[3] else None
    if z_name and mg.dtype(z_name) != TensorProto.UINT8:
        raise TensorReadError(f"{what}: float zero points (HQQ) are not read yet")

    def reader():
        packed = np.asarray(mg.array(q)).reshape(N, nb, -1)
        codes = _unpack_bits(packed, bits).reshape(N, nb * bs)[:, :K]      # [N, K]
        s = np.asarray(mg.array(s_name)).reshape(N, nb)  # keeps float16: the output's type
        if z_name:
            zb = np.asarray(mg.array(z_name)).reshape(N, -1)
            z = _unpack_bits(zb, bits)[:, :nb].astype(np.int64)
        else:
            z = np.full((N, nb), 1 << (bits - 1), np.int64)  # symmetric: implicit mid code
        return Decoded(codes.T, s.T, z.T, 0, bs, (1,))

    dn = f"uint{bits}"
    qt = QuantTensor(
        name=q, role="weight", quant_op="MatMulNBits", storage=ctx.storage(q), consumers=[],
        consumer_ops=[], dtype=dn, shape=(K, N), granularity="blockwise", axis=0, block_size=bs,
        n_scales=N * nb, reader=reader, name_candidates=strip_quant_suffix(q), layout="matmulnbits",
        notes=["stored [N, blocks, bytes]; reported as [K, N]"]
              + ([] if z_name else [f"symmetric: implicit zero point {1 << (bits - 1)}"]),
        qrange=(0, (1 << bits) - 1))
    qt.node_refs = _refs(ctx, i, 1)
    ctx.add(qt, mg.node_name(i), node.op_type)


# ------------------------------------------------------------------------ fallback
def _fallback(ctx: _Ctx, problems: list, skip: set) -> None:
    """Integer constants named ``X_quantized`` with an ``X_scale`` sibling that no
    handler claimed (e.g. a table read by an op QuantLens does not know).  Tensors in
    ``skip`` were already reported by their node; other failures go to ``problems``."""
    mg = ctx.mg
    for name, t in mg.constants.items():
        if (name in ctx.found or name in skip or not name.endswith("_quantized")
                or t.data_type not in INTEGER_TYPES):
            continue
        base = name[: -len("_quantized")]
        if not mg.is_const(base + "_scale"):
            continue
        z = base + "_zero_point" if mg.is_const(base + "_zero_point") else None
        cons = mg.consumers.get(name, [])
        op = mg.nodes[cons[0][0]].op_type if cons else ""
        role = "bias" if t.data_type == TensorProto.INT32 else role_of(op, cons[0][1]) if cons else "other"
        try:
            qt = _make_linear(ctx, f"tensor '{name}'", name, base + "_scale", z, None, 0, role, "by_name")
        except QuantLensError as e:  # one bad tensor must not hide the others
            problems.append(str(e))
            continue
        qt.notes.append("found by its name only (no known operator reads its parameters)")
        if not cons:
            ctx.add(qt, "", "")
        for ni, slot in cons:
            qt.node_refs = _refs(ctx, ni, slot)
            ctx.add(qt, mg.node_name(ni), mg.nodes[ni].op_type)


_HANDLERS = {
    "DequantizeLinear": _handle_dq,
    "MatMulInteger": _handle_integer_op,
    "ConvInteger": _handle_integer_op,
    "DynamicQuantizeLSTM": _handle_lstm,
    "Gather": _handle_gather,
    "GatherBlockQuantized": _handle_gather_block,
    "MatMulNBits": _handle_nbits,
    **{op: _handle_triples for op in _TRIPLES},
}


def find_quantized(mg: ModelGraph) -> tuple[list[QuantTensor], list[str]]:
    """Every quantized tensor of ``mg``, each once, in graph order.

    Parameters
    ----------
    mg : ModelGraph
        The indexed variant.

    Returns
    -------
    tensors : list of QuantTensor
        One per stored quantized tensor; a tensor shared by several nodes lists
        all of them as consumers.
    problems : list of str
        One line per node whose parameters could not be read (the rest of the
        model is still analysed).
    """
    ctx = _Ctx(mg)
    problems, failed = [], set()
    with np.errstate(all="ignore"):  # NaN/Inf/zero parameters are reported later, not warned about
        for i, node in enumerate(mg.nodes):
            h = _HANDLERS.get(node.op_type)
            if h is None:
                continue
            try:
                if not node.output or not node.output[0] or len(node.input) < 2:
                    raise TensorReadError("malformed node: it lacks an output or a parameter input")
                h(ctx, i, node)
            except QuantLensError as e:
                problems.append(f"{mg.node_name(i)} ({node.op_type}): {e}")
                failed.update(node.input)
            except (IndexError, KeyError) as e:  # a graph too malformed for the layout rules
                problems.append(f"{mg.node_name(i)} ({node.op_type}): malformed node ({type(e).__name__}: {e})")
                failed.update(node.input)
        _fallback(ctx, problems, failed)
    return list(ctx.found.values()), problems
