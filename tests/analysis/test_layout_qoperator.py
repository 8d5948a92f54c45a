"""QOperator layouts (static): QLinearConv, QLinearMatMul, com.microsoft QGemm.

The weight's (q, s, z) are operator inputs; the int32 bias has no stored scale:
it is implicitly ``x_scale * w_scale`` (computed in float32), zero point 0.
"""

import numpy as np
from onnx import TensorProto as TP

from builders import (
    MS, analyze_rows, arr, assert_row, listed, make_model, node, read, ref_dq, row_of, save,
)

F32 = np.float32


def test_qlinearconv_per_channel_with_int32_bias(tmp_path):
    rng = np.random.default_rng(20)
    M = 4
    wq = rng.integers(-127, 128, (M, 2, 3, 3)).astype(np.int8)
    ws = np.array([0.01, 0.002, 0.3, 0.07], F32)
    xs = F32(0.0470588)
    bq = np.array([1000, -250000, 3, 2 ** 24 + 3], np.int32)
    w_want = ref_dq(wq, 0, ws.reshape(M, 1, 1, 1))
    b_scale = xs * ws  # float32 product, as the runtime computes it
    assert b_scale.dtype == np.float32
    b_want = ref_dq(bq, 0, b_scale)
    W = (w_want.astype(np.float64) + rng.uniform(-0.4, 0.4, wq.shape) * ws.reshape(M, 1, 1, 1)).astype(F32)
    B = (b_want.astype(np.float64) + rng.uniform(-0.4, 0.4, M) * b_scale).astype(F32)
    fp = save(make_model([node("Conv", ["X", "W", "B"], ["Y"], "conv", pads=[1, 1, 1, 1])],
                         [arr("W", W), arr("B", B)]), tmp_path / "fp32.onnx")
    v = make_model(
        [node("QLinearConv", ["X_q", "X_scale", "X_zero_point", "W_quantized", "W_scale", "W_zero_point",
                              "Y_scale", "Y_zero_point", "B_quantized"], ["Y_q"], "conv_quant", pads=[1, 1, 1, 1])],
        [arr("X_scale", xs), listed("X_zero_point", TP.UINT8, [], [128]), arr("W_quantized", wq),
         arr("W_scale", ws), listed("W_zero_point", TP.INT8, [M], [0] * M), arr("Y_scale", F32(0.1)),
         listed("Y_zero_point", TP.UINT8, [], [128]), arr("B_quantized", bq)],
        inputs={"X_q": (TP.UINT8, None)}, outputs={"Y_q": (TP.UINT8, None)})
    vp = save(v, tmp_path / "v.onnx")

    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, w_want)
    assert (qt.quant_op, qt.role, qt.granularity, qt.axis, qt.n_scales) == ("QLinearConv", "weight", "per_channel", 0, M)
    bt, bd, bgot = read(vp, "B_quantized")
    np.testing.assert_array_equal(bgot, b_want)
    assert (bt.role, bt.dtype, bt.granularity, bt.axis, bt.n_scales) == ("bias", "int32", "per_channel", 0, M)

    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=w_want, q=wq, scale=ws, zero_point=np.zeros(M), quant_op="QLinearConv",
               match_method="name", granularity="per_channel", axis=0, role="weight")
    assert_row(row_of(a, "B"), w=B, dq=b_want, q=bq, scale=b_scale, zero_point=np.zeros(M), quant_op="QLinearConv",
               role="bias", quant_dtype="int32", granularity="per_channel", axis=0)


def test_qlinearconv_per_tensor_uint8(tmp_path):
    wq = np.array([[[[0, 255], [128, 3]]], [[[10, 20], [250, 129]]]], np.uint8)  # [2, 1, 2, 2]
    ws, wz, xs = F32(0.02), 131, F32(0.5)
    bq = np.array([-7, 9], np.int32)
    w_want = ref_dq(wq, wz, ws)
    b_want = ref_dq(bq, 0, xs * ws)
    W = (w_want + F32(0.004)).astype(F32)
    B = (b_want + F32(0.001)).astype(F32)
    fp = save(make_model([node("Conv", ["X", "W", "B"], ["Y"], "c1")], [arr("W", W), arr("B", B)]), tmp_path / "f.onnx")
    v = make_model([node("QLinearConv", ["X_q", "xs", "xz", "W_quantized", "W_scale", "W_zero_point", "ys", "yz",
                                         "B_quantized"], ["Y_q"], "c1_quant")],
                   [arr("xs", xs), arr("xz", np.uint8(128)), arr("W_quantized", wq), arr("W_scale", ws),
                    arr("W_zero_point", np.uint8(wz)), arr("ys", F32(1)), arr("yz", np.uint8(0)), arr("B_quantized", bq)],
                   inputs={"X_q": (TP.UINT8, None)}, outputs={"Y_q": (TP.UINT8, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, w_want)
    assert qt.granularity == "per_tensor"
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=w_want, q=wq, scale=ws, zero_point=wz, granularity="per_tensor")
    assert_row(row_of(a, "B"), w=B, dq=b_want, q=bq, scale=xs * ws, zero_point=0, role="bias",
               granularity="per_tensor")


def test_qlinearmatmul_per_column(tmp_path):
    bq = np.array([[0, 255, 17], [128, 1, 254], [90, 91, 92], [3, 200, 100]], np.uint8)  # [K=4, N=3]
    bs = np.array([0.01, 0.2, 0.003], F32)
    bz = np.array([128, 0, 255], np.uint8)
    want = ref_dq(bq, bz.reshape(1, 3), bs.reshape(1, 3))
    W = (want.astype(np.float64) + np.random.default_rng(21).uniform(-0.4, 0.4, bq.shape) * bs).astype(F32)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model([node("QLinearMatMul", ["X_q", "X_scale", "X_zp", "W_quantized", "W_scale", "W_zero_point",
                                           "Y_scale", "Y_zp"], ["Y_q"], "mm_quant")],
                   [arr("X_scale", F32(0.1)), arr("X_zp", np.uint8(128)), arr("W_quantized", bq), arr("W_scale", bs),
                    listed("W_zero_point", TP.UINT8, [3], bz), arr("Y_scale", F32(0.1)), arr("Y_zp", np.uint8(128))],
                   inputs={"X_q": (TP.UINT8, None)}, outputs={"Y_q": (TP.UINT8, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    assert (qt.quant_op, qt.granularity, qt.axis, qt.n_scales) == ("QLinearMatMul", "per_channel", 1, 3)
    assert qt.consumers == ["mm_quant"]
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=bq, scale=bs, zero_point=bz,
               granularity="per_channel", axis=1, quant_op="QLinearMatMul")


def test_qgemm_transb_with_int32_bias(tmp_path):
    """QGemm(transB=1): B stored [N, K] like the FP32 Gemm weight, per-row (axis 0);
    the int32 bias C at input 6 has the implicit scale a_scale * b_scale."""
    N, K = 3, 5
    rng = np.random.default_rng(22)
    bq = rng.integers(-127, 128, (N, K)).astype(np.int8)
    bs = np.array([0.05, 0.006, 0.7], F32)
    a_s = F32(0.0235)
    cq = np.array([40000, -3, 123456789], np.int32)
    w_want = ref_dq(bq, 0, bs.reshape(N, 1))
    c_want = ref_dq(cq, 0, a_s * bs)
    W = (w_want.astype(np.float64) + rng.uniform(-0.4, 0.4, bq.shape) * bs.reshape(N, 1)).astype(F32)
    C = (c_want * F32(0.99999)).astype(F32)
    fp = save(make_model([node("Gemm", ["X", "W", "C"], ["Y"], "gemm", transB=1)], [arr("W", W), arr("C", C)]),
              tmp_path / "f.onnx")
    v = make_model([node("QGemm", ["X_q", "X_scale", "X_zp", "W_quantized", "W_scale", "W_zero_point", "C_quantized",
                                   "Y_scale", "Y_zp"], ["Y_q"], "gemm_quant", domain=MS, transB=1)],
                   [arr("X_scale", a_s), arr("X_zp", np.uint8(128)), arr("W_quantized", bq), arr("W_scale", bs),
                    arr("W_zero_point", np.zeros(N, np.int8)), arr("C_quantized", cq), arr("Y_scale", F32(0.1)),
                    arr("Y_zp", np.uint8(128))],
                   ms=1, inputs={"X_q": (TP.UINT8, None)}, outputs={"Y_q": (TP.UINT8, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, w_want)
    assert (qt.quant_op, qt.shape, qt.granularity, qt.axis) == ("QGemm", (N, K), "per_channel", 0)
    ct, cd, cgot = read(vp, "C_quantized")
    np.testing.assert_array_equal(cgot, c_want)
    assert (ct.role, ct.granularity, ct.axis) == ("bias", "per_channel", 0)
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=w_want, q=bq, scale=bs, zero_point=np.zeros(N), quant_op="QGemm",
               granularity="per_channel", axis=0, role="weight")
    assert_row(row_of(a, "C"), w=C, dq=c_want, q=cq, scale=a_s * bs, zero_point=np.zeros(N), role="bias",
               quant_op="QGemm", quant_dtype="int32")


def test_qgemm_no_trans_per_column(tmp_path):
    """QGemm without transB: B [K, N], per-column scales on axis 1."""
    bq = np.array([[1, 2], [3, 4], [-5, -6]], np.int8)
    bs = np.array([0.5, 0.25], F32)
    want = ref_dq(bq, 0, bs.reshape(1, 2))
    W = (want + F32(0.01)).astype(F32)
    fp = save(make_model([node("Gemm", ["X", "W"], ["Y"], "g")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model([node("QGemm", ["X_q", "xs", "xz", "W_quantized", "W_scale", "W_zero_point", "", "ys", "yz"],
                         ["Y_q"], "g_quant", domain=MS)],
                   [arr("xs", F32(1)), arr("xz", np.uint8(0)), arr("W_quantized", bq), arr("W_scale", bs),
                    arr("W_zero_point", np.zeros(2, np.int8)), arr("ys", F32(1)), arr("yz", np.uint8(0))],
                   ms=1, inputs={"X_q": (TP.UINT8, None)}, outputs={"Y_q": (TP.UINT8, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    assert (qt.granularity, qt.axis) == ("per_channel", 1)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=bq, scale=bs, zero_point=np.zeros(2), axis=1)


def test_qlinearmul_constant_is_elementwise(tmp_path):
    """A constant input of com.microsoft QLinearMul (activation type, per tensor)."""
    cq = np.array([[0, 255, 128], [7, 200, 90]], np.uint8)
    cs, cz = F32(0.004), 128
    want = ref_dq(cq, cz, cs)
    C = (want + F32(0.0005)).astype(F32)
    fp = save(make_model([node("Mul", ["X", "C"], ["Y"], "mul")], [arr("C", C)]), tmp_path / "f.onnx")
    v = make_model([node("QLinearMul", ["Xq", "xs", "xz", "C_quantized", "C_scale", "C_zero_point", "ys", "yz"],
                         ["Yq"], "mul_quant", domain=MS)],
                   [arr("xs", F32(0.1)), arr("xz", np.uint8(128)), arr("C_quantized", cq), arr("C_scale", cs),
                    listed("C_zero_point", TP.UINT8, [], [cz]), arr("ys", F32(0.1)), arr("yz", np.uint8(128))],
                   ms=1, inputs={"Xq": (TP.UINT8, None)}, outputs={"Yq": (TP.UINT8, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "C_quantized")
    np.testing.assert_array_equal(got, want)
    assert (qt.role, qt.quant_op, qt.granularity) == ("elementwise", "QLinearMul", "per_tensor")
    assert_row(row_of(analyze_rows(fp, vp), "C"), w=C, dq=want, q=cq, scale=cs, zero_point=cz, role="elementwise")


def test_qattention_weight_per_column(tmp_path):
    """com.microsoft QAttention: weight at input 1, scale at 4, zero point at 7 (per column)."""
    hidden = 2
    q = np.array([[0, 255, 3, 4, 5, 6], [128, 127, 9, 10, 200, 12]], np.uint8)  # [hidden, 3*hidden]
    s = np.linspace(0.01, 0.06, 6).astype(F32)
    z = np.array([128, 127, 0, 255, 10, 20], np.uint8)
    want = ref_dq(q, z.reshape(1, 6), s.reshape(1, 6))
    W = (want + F32(0.001)).astype(F32)
    B = np.zeros(6, F32)
    fp = save(make_model([node("Attention", ["X", "W", "B"], ["Y"], "attn", domain=MS, num_heads=1)],
                         [arr("W", W), arr("B", B)], ms=1), tmp_path / "f.onnx")
    v = make_model([node("QAttention", ["Xq", "W_quantized", "B", "X_scale", "W_scale", "", "X_zp", "W_zero_point"],
                         ["Y"], "attn_quant", domain=MS, num_heads=1)],
                   [arr("W_quantized", q), arr("B", B), arr("X_scale", F32(0.1)), arr("W_scale", s),
                    arr("X_zp", np.uint8(128)), arr("W_zero_point", z)], ms=1, inputs={"Xq": (TP.UINT8, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    assert (qt.quant_op, qt.role, qt.granularity, qt.axis) == ("QAttention", "weight", "per_channel", 1)
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=want, q=q, scale=s, zero_point=z, quant_op="QAttention", axis=1)
    assert row_of(a, "B")["status"] == "left_in_float"


def test_name_fallback_for_unknown_consumer(tmp_path):
    """``X_quantized`` with ``X_scale`` / ``X_zero_point`` siblings read by an operator
    QuantLens does not know: found by name, per tensor."""
    q = np.array([[0, 255], [1, 254]], np.uint8)
    s, z = F32(0.5), 100
    want = ref_dq(q, z, s)
    T = (want + F32(0.1)).astype(F32)
    fp = save(make_model([node("MyOp", ["X", "T"], ["Y"], "custom", domain="my.domain")], [arr("T", T)]),
              tmp_path / "f.onnx")
    v = make_model([node("MyQOp", ["X", "T_quantized"], ["Y"], "custom", domain="my.domain")],
                   [arr("T_quantized", q), arr("T_scale", s), arr("T_zero_point", np.uint8(z))])
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "T_quantized")
    np.testing.assert_array_equal(got, want)
    assert (qt.quant_op, qt.consumers) == ("by_name", ["custom"])
    assert_row(row_of(analyze_rows(fp, vp), "T"), w=T, dq=want, q=q, scale=s, zero_point=z, quant_op="by_name",
               match_method="name")
