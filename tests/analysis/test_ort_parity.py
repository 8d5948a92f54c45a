"""Every dequantized tensor of the sample variants equals what onnxruntime's own
kernels compute from the same stored bytes (DequantizeLinear, MatMulNBits)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from analysis import dequantize, find_quantized, load_model
from analysis.model import node_attr


def _run(nodes, inits, out_name, opset=21, ms=False):
    g = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
                          initializer=inits)
    ops = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    m = helper.make_model(g, opset_imports=ops, ir_version=10)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no constant folding
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {})[0]


def _copy(mg, name, new=None):
    t = onnx.TensorProto()
    t.CopyFrom(mg.constants[name])
    t.name = new or name
    return t


def _ort_dequant(mg, qt):
    """onnxruntime's dequantization of ``qt``, built from the variant's stored tensors."""
    node_by_name = {mg.node_name(i): n for i, n in enumerate(mg.nodes)}
    node = node_by_name[qt.consumers[0]]
    if qt.quant_op == "MatMulNBits":
        K, N = node_attr(node, "K"), node_attr(node, "N")
        eye = onnx.numpy_helper.from_array(np.eye(K, dtype=np.float32), "A")
        ins = ["A"] + [x for x in node.input[1:4]]
        n = helper.make_node("MatMulNBits", ins, ["y"], domain="com.microsoft",
                             K=K, N=N, bits=node_attr(node, "bits"), block_size=node_attr(node, "block_size"))
        return _run([n], [eye] + [_copy(mg, x) for x in node.input[1:4] if x], "y", ms=True)
    if qt.quant_op.startswith("DequantizeLinear"):
        dq = next(n for n in mg.nodes if n.op_type == "DequantizeLinear" and n.input[0] == qt.name)
        n = onnx.NodeProto()
        n.CopyFrom(dq)
        n.ClearField("output")
        n.output.append("y")
        return _run([n], [_copy(mg, x) for x in dq.input if x], "y")
    if qt.role == "bias":  # QLinearConv / QGemm int32 bias: scale = x_scale * w_scale
        xs, ws = node.input[1], node.input[4]
        mul = helper.make_node("Mul", [xs, ws], ["bs"])
        dq = helper.make_node("DequantizeLinear", [qt.name, "bs"], ["y"],
                              **({"axis": 0} if qt.n_scales > 1 else {}))
        return _run([mul, dq], [_copy(mg, qt.name), _copy(mg, xs), _copy(mg, ws)], "y")
    # operator-form and dynamic weights: the op's (q, s, z) triple in DequantizeLinear terms
    if node.op_type.startswith("Q"):  # (x, x_scale, x_zero_point) triples
        slot = list(node.input).index(qt.name)
        s, z = node.input[slot + 1], node.input[slot + 2]
    else:  # MatMulInteger / ConvInteger: scale named <W>_scale
        s, z = qt.name.replace("_quantized", "_scale"), node.input[3]
    shape = mg.shape(s)
    axis = {} if not shape or shape == (1,) else {"axis": 0 if node.op_type in ("QLinearConv", "ConvInteger") else 1}
    dq = helper.make_node("DequantizeLinear", [qt.name, s, z], ["y"], **axis)
    return _run([dq], [_copy(mg, qt.name), _copy(mg, s), _copy(mg, z)], "y")


def _variants(sample_models):
    return sample_models[1]


@pytest.mark.parametrize("idx", range(4))
def test_dequantized_equals_onnxruntime(sample_models, idx):
    path = sample_models[1][idx]
    mg = load_model(path)
    qts, problems = find_quantized(mg)
    assert problems == []
    assert qts, f"no quantized tensor found in {path.name}"
    for qt in qts:
        ours = dequantize(qt.read())
        ref = _ort_dequant(mg, qt)
        if qt.layout == "transposed":
            ref = ref.T
        assert ref.dtype == np.float32
        np.testing.assert_array_equal(ours, ref.reshape(ours.shape), err_msg=f"{path.name}: {qt.name}")


def test_every_sample_weight_is_read(sample_models):
    """Each sample variant's quantized tensor count is what its quantizer wrote."""
    expected = {  # from data/README.md: what ONNX Runtime quantized in each variant
        "cnn_int8_qdq_perchannel": 10, "cnn_uint8_qop_pertensor": 10,
        "cnn_dynamic_uint8": 5, "cnn_matmulnbits_4bit": 2,
    }
    for path in sample_models[1]:
        qts, _ = find_quantized(load_model(path))
        assert len(qts) == expected[path.stem], path.stem
