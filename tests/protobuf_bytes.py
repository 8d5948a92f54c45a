"""Raw protobuf bytes for ONNX messages that ``onnx.helper`` cannot build (shared by the
analysis and upload tests)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

__all__ = ["varint", "field", "nested_if_bytes"]


def varint(n: int) -> bytes:
    """``n`` as a protobuf base-128 varint."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (appending one merges it into the message)."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def nested_if_bytes(depth: int = 40) -> bytes:
    """A model whose main graph holds an ``If`` whose then-branch holds an ``If``... ``depth``
    levels.  Written as raw bytes: the upb backend cannot even build the message in memory
    beyond its nesting limit, so ``onnx.helper`` cannot make the deep case."""
    vi = helper.make_tensor_value_info
    leaf = helper.make_graph([helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
        np.array(1.0, np.float32), "cv"))], "leaf", [], [vi("c", TP.FLOAT, [])])
    g = leaf.SerializeToString()
    for i in range(depth):
        then = onnx.AttributeProto(name="then_branch", type=onnx.AttributeProto.GRAPH).SerializeToString()
        node = (helper.make_node("If", ["cond"], [f"o{i}"], name=f"if{i}").SerializeToString()
                + field(5, then + field(6, g))
                + field(5, helper.make_attribute("else_branch", leaf).SerializeToString()))
        g = (helper.make_graph([], f"g{i}", [vi("cond", TP.BOOL, [])], [vi(f"o{i}", TP.FLOAT, [])])
             .SerializeToString() + field(1, node))
    m = helper.make_model(helper.make_graph([], "x", [], []), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    m.ClearField("graph")
    return m.SerializeToString() + field(7, g)
