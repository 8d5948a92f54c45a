"""SQNR against onnxruntime's ``qdq_loss_debug``: equal where that helper is right
(signed weights, zero point 0), and right where it wraps ``q - z`` in uint8."""

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import qdq_loss_debug

from analysis import analyze


def _independent_sqnr(w, q, s, z):
    dq = (q.astype(np.int64) - np.int64(z)).astype(np.float32) * np.float32(s)
    w64, e = w.astype(np.float64), w.astype(np.float64) - dq.astype(np.float64)
    return 10 * math.log10(float((w64 ** 2).sum()) / float((e ** 2).sum()))


def test_matches_ort_helper_on_signed_weights(sample_models):
    fp32, variants = sample_models
    qdq = variants[0]  # int8 QDQ per-channel: weights signed with zero point 0
    ort = qdq_loss_debug.compute_weight_error(qdq_loss_debug.create_weight_matching(str(fp32), str(qdq)))
    layers = analyze(fp32, [qdq], cache=False).layers.set_index("fp32_name")
    signed = layers[(layers.zero_point_min == 0) & (layers.zero_point_max == 0)]
    assert len(signed) >= 8
    for name, row in signed.iterrows():
        assert abs(row.sqnr_db - ort[name]) < 0.01, name


def test_right_where_ort_helper_wraps(sample_models):
    """The sample's uint8 Add constants have zero points ~115: the helper reports about
    -9 dB; the truth (computed here from the stored integers) is about +48 dB."""
    fp32, variants = sample_models
    qdq = variants[0]
    ort = qdq_loss_debug.compute_weight_error(qdq_loss_debug.create_weight_matching(str(fp32), str(qdq)))
    layers = analyze(fp32, [qdq], cache=False).layers.set_index("fp32_name")
    vm, fm = onnx.load(str(qdq)), onnx.load(str(fp32))
    ini = {t.name: numpy_helper.to_array(t) for t in vm.graph.initializer}
    ref = {t.name: numpy_helper.to_array(t) for t in fm.graph.initializer}
    wrapped = [n for n in layers.index if layers.loc[n, "quant_dtype"] == "uint8"]
    assert wrapped, "sample has no uint8 tensor with a zero point"
    for name in wrapped:
        truth = _independent_sqnr(ref[name], ini[name + "_quantized"], ini[name + "_quantized_scale"]
                                  if name + "_quantized_scale" in ini else ini[name + "_scale"],
                                  ini[name + "_quantized_zero_point"] if name + "_quantized_zero_point" in ini
                                  else ini[name + "_zero_point"])
        assert truth > 30
        assert ort[name] < 0, "the helper should wrap around here"
        assert abs(layers.loc[name, "sqnr_db"] - truth) < 1e-9


def test_uint8_weight_with_zero_point_128(tmp_path):
    """A hand-built uint8 weight (zero point 128): the helper's uint8 subtraction wraps."""
    w = np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    s = np.float32(2.0 / 255)
    q = np.clip(np.rint(w / s) + 128, 0, 255).astype(np.uint8)
    fp = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")], "g",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                           [numpy_helper.from_array(w, "W")])
    qg = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["W_quantized", "W_scale", "W_zero_point"],
                          ["W_DequantizeLinear_Output"], name="W_DequantizeLinear"),
         helper.make_node("MatMul", ["x", "W_DequantizeLinear_Output"], ["y"], name="mm")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(q, "W_quantized"), helper.make_tensor("W_scale", TensorProto.FLOAT, [], [float(s)]),
         helper.make_tensor("W_zero_point", TensorProto.UINT8, [], [128])])
    for g, name in ((fp, "fp32.onnx"), (qg, "q.onnx")):
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / name)
    ort = qdq_loss_debug.compute_weight_error(
        qdq_loss_debug.create_weight_matching(str(tmp_path / "fp32.onnx"), str(tmp_path / "q.onnx")))
    ours = analyze(tmp_path / "fp32.onnx", [tmp_path / "q.onnx"], cache=False).layers
    truth = _independent_sqnr(w, q, s, 128)
    assert truth > 40
    assert ort["W"] < 0
    assert abs(float(ours.loc[ours.fp32_name == "W", "sqnr_db"].iloc[0]) - truth) < 1e-9
