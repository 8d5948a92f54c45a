"""Dynamic-quantization layouts: MatMulInteger / ConvInteger (no scale input), the
Gemm(transB=1) rewrite over ``<B>_Transposed``, DynamicQuantizeLSTM and quantized
Gather tables."""

import numpy as np
import pytest
from onnx import TensorProto as TP

from builders import (
    MS, analyze_rows, arr, assert_row, listed, make_model, node, read, ref_dq, row_of, save,
)

F32 = np.float32


def _dynamic_int_op(op, name, wq_name, wz_name, ws_name, out, swap=False):
    """ORT's dynamic pattern: DynamicQuantizeLinear(X) -> op -> Cast -> Mul(., Mul(x_scale, w_scale))."""
    scales = ["X_scale", ws_name] if not swap else [ws_name, "X_scale"]
    final = [f"{name}_cast_out", f"{name}_scales"] if not swap else [f"{name}_scales", f"{name}_cast_out"]
    return [
        node("DynamicQuantizeLinear", ["X"], ["X_quantized", "X_scale", "X_zero_point"], "X_QuantizeLinear"),
        node(op, ["X_quantized", wq_name, "X_zero_point", wz_name], [f"{name}_int"], name),
        node("Cast", [f"{name}_int"], [f"{name}_cast_out"], f"{name}_cast", to=TP.FLOAT),
        node("Mul", scales, [f"{name}_scales"], f"{name}_scales_mul"),
        node("Mul", final, [out], f"{name}_output_scale_mul"),
    ]


def _matmul_weight(seed=30):
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 256, (4, 3)).astype(np.uint8)
    q[0] = [0, 255, 254]
    s = np.array([0.01, 0.3, 0.002], F32)
    z = np.array([100, 255, 0], np.uint8)  # per-column asymmetric (QUInt8 per_channel)
    want = ref_dq(q, z.reshape(1, 3), s.reshape(1, 3))
    W = (want.astype(np.float64) + rng.uniform(-0.4, 0.4, q.shape) * s).astype(F32)
    return q, s, z, want, W


def test_matmulinteger_scale_by_name(tmp_path):
    q, s, z, want, W = _matmul_weight()
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model(_dynamic_int_op("MatMulInteger", "mm_quant", "W_quantized", "W_zero_point", "W_scale", "Y"),
                   [arr("W_quantized", q), arr("W_scale", s), listed("W_zero_point", TP.UINT8, [3], z)])
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    assert (qt.quant_op, qt.granularity, qt.axis, qt.n_scales) == ("MatMulInteger", "per_channel", 1, 3)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z,
               quant_op="MatMulInteger", match_method="name", granularity="per_channel", axis=1)


@pytest.mark.parametrize("swap", [False, True])
def test_matmulinteger_scale_through_cast_mul_chain(tmp_path, swap):
    """The weight scale has a non-ORT name: only the Cast -> Mul(x_scale * w_scale)
    chain after the MatMulInteger leads to it (operand order either way)."""
    q, s, z, want, W = _matmul_weight(31)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model(_dynamic_int_op("MatMulInteger", "mm_quant", "W_quantized", "wzp_7", "sc_91", "Y", swap=swap),
                   [arr("W_quantized", q), arr("sc_91", s), arr("wzp_7", z)])
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(d.scale).reshape(-1), s)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z, granularity="per_channel")


def test_matmulinteger_per_tensor_int8(tmp_path):
    q = np.array([[-128, 127], [0, 5], [-6, 7]], np.int8)
    s = F32(0.04)
    want = ref_dq(q, 0, s)
    W = (want + F32(0.013)).astype(F32)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model(_dynamic_int_op("MatMulInteger", "mm_quant", "W_quantized", "W_zero_point", "W_scale", "Y"),
                   [arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", np.int8(0))])
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    assert qt.granularity == "per_tensor"
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=0, granularity="per_tensor")


def test_convinteger_per_tensor(tmp_path):
    q = np.array([[[[0, 255], [7, 128]]], [[[1, 2], [253, 129]]]], np.uint8)  # [2, 1, 2, 2]
    s, z = F32(0.015), 129
    want = ref_dq(q, z, s)
    W = (want + F32(0.005)).astype(F32)
    B = np.array([0.25, -0.5], F32)
    fp = save(make_model([node("Conv", ["X", "W", "B"], ["Y"], "conv")], [arr("W", W), arr("B", B)]), tmp_path / "f.onnx")
    nodes = _dynamic_int_op("ConvInteger", "conv_quant", "W_quantized", "W_zero_point", "W_scale", "Yc")
    nodes += [node("Reshape", ["B", "B_shape"], ["B_reshaped"], "B_reshape"),
              node("Add", ["Yc", "B_reshaped"], ["Y"], "conv_bias_add")]
    v = make_model(nodes, [arr("W_quantized", q), arr("W_scale", s), listed("W_zero_point", TP.UINT8, [], [z]),
                           arr("B", B), arr("B_shape", np.array([1, 2, 1, 1], np.int64))])
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    assert (qt.quant_op, qt.granularity, qt.n_scales) == ("ConvInteger", "per_tensor", 1)
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=want, q=q, scale=s, zero_point=z, quant_op="ConvInteger", match_method="name")
    b = row_of(a, "B")
    assert b["status"] == "left_in_float" and b["role"] == "bias" and "left in float" in b["reason"]


@pytest.mark.parametrize("tname, N, K", [("B_Transposed", 3, 5), ("B_Transposed_1", 3, 5), ("B_Transposed", 4, 4)])
def test_gemm_transb_rewritten_transposed(tmp_path, tname, N, K):
    """Gemm(transB=1) -> MatMul over ``<B>_Transposed`` (stored Bᵀ [K, N], per-column):
    reported as the FP32 [N, K] with the per-row axis 0."""
    rng = np.random.default_rng(32)
    bt_q = rng.integers(0, 256, (K, N)).astype(np.uint8)  # stored layout [K, N]
    s = rng.uniform(0.001, 0.1, N).astype(F32)
    z = rng.integers(0, 256, N).astype(np.uint8)
    stored_dq = ref_dq(bt_q, z.reshape(1, N), s.reshape(1, N))  # [K, N]
    want = stored_dq.T  # FP32 layout [N, K]
    Bw = (want.astype(np.float64) + rng.uniform(-0.4, 0.4, (N, K)) * s.reshape(N, 1)).astype(F32)
    C = np.linspace(-1, 1, N).astype(F32)
    fp = save(make_model([node("Gemm", ["X", "B", "C"], ["Y"], "gemm", transB=1)], [arr("B", Bw), arr("C", C)]),
              tmp_path / "f.onnx")
    nodes = _dynamic_int_op("MatMulInteger", "gemm_MatMul_quant", f"{tname}_quantized", f"{tname}_zero_point",
                            f"{tname}_scale", "mm_out")
    nodes.append(node("Add", ["mm_out", "C"], ["Y"], "gemm_Add"))
    v = make_model(nodes, [arr(f"{tname}_quantized", bt_q), arr(f"{tname}_scale", s), arr(f"{tname}_zero_point", z),
                           arr("C", C)])
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, f"{tname}_quantized")
    assert qt.shape == (N, K)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(d.q, bt_q.T)
    assert (qt.granularity, qt.axis, qt.n_scales) == ("per_channel", 0, N)
    a = analyze_rows(fp, vp)
    r = row_of(a, "B")
    assert_row(r, w=Bw, dq=want, q=bt_q, scale=s, zero_point=z, granularity="per_channel", axis=0,
               fp32_shape=f"{N}x{K}", status="quantized")
    ch = a.channels[a.channels.fp32_name == "B"].sort_values("channel")
    np.testing.assert_array_equal(ch["scale_min"].to_numpy(), s.astype(np.float64))  # row n <-> scale n
    assert row_of(a, "C")["status"] == "left_in_float"


def _lstm_models(tmp_path, per_channel):
    D, H, I = 2, 2, 3
    rng = np.random.default_rng(33 + per_channel)
    wq = rng.integers(-127, 128, (D, I, 4 * H)).astype(np.int8)  # stored [D, in, 4H]
    rq = rng.integers(-127, 128, (D, H, 4 * H)).astype(np.int8)
    if per_channel:
        ws = rng.uniform(0.001, 0.05, (D, 4 * H)).astype(F32)
        rs = rng.uniform(0.001, 0.05, (D, 4 * H)).astype(F32)
        w_want = ref_dq(wq.transpose(0, 2, 1), 0, ws.reshape(D, 4 * H, 1))
        r_want = ref_dq(rq.transpose(0, 2, 1), 0, rs.reshape(D, 4 * H, 1))
    else:
        ws = np.array([0.01, 0.02], F32)
        rs = np.array([0.03, 0.005], F32)
        w_want = ref_dq(wq.transpose(0, 2, 1), 0, ws.reshape(D, 1, 1))
        r_want = ref_dq(rq.transpose(0, 2, 1), 0, rs.reshape(D, 1, 1))
    # by hand for one element: W[d=1, gate row g=5, input i=2] is stored at [1, 2, 5]
    sc = ws[1, 5] if per_channel else ws[1]
    assert w_want[1, 5, 2] == F32(int(wq[1, 2, 5])) * sc
    W = (w_want + F32(0.001)).astype(F32)  # ONNX LSTM layout [D, 4H, in]
    R = (r_want - F32(0.001)).astype(F32)
    B = np.zeros((D, 8 * H), F32)
    fp = save(make_model([node("LSTM", ["X", "W", "R", "B"], ["Y"], "lstm", hidden_size=H, direction="bidirectional")],
                         [arr("W", W), arr("R", R), arr("B", B)]), tmp_path / "f.onnx")
    zshape = ws.shape
    v = make_model([node("DynamicQuantizeLSTM", ["X", "W_quantized", "R_quantized", "B", "", "", "", "", "W_scale",
                                                 "W_zero_point", "R_scale", "R_zero_point"], ["Y"], "lstm_quant",
                         domain=MS, hidden_size=H, direction="bidirectional")],
                   [arr("W_quantized", wq), arr("R_quantized", rq), arr("B", B), arr("W_scale", ws),
                    arr("W_zero_point", np.zeros(zshape, np.int8)), arr("R_scale", rs),
                    arr("R_zero_point", np.zeros(zshape, np.int8))], ms=1)
    return fp, save(v, tmp_path / "v.onnx"), (wq, ws, w_want, W), (rq, rs, r_want, R)


@pytest.mark.parametrize("per_channel", [False, True])
def test_dynamic_quantize_lstm(tmp_path, per_channel):
    fp, vp, (wq, ws, w_want, W), (rq, rs, r_want, R) = _lstm_models(tmp_path, per_channel)
    a = analyze_rows(fp, vp)
    for name, q, s, want, ref, shape in (("W", wq, ws, w_want, W, (2, 8, 3)), ("R", rq, rs, r_want, R, (2, 8, 2))):
        qt, d, got = read(vp, f"{name}_quantized")
        assert qt.shape == shape
        np.testing.assert_array_equal(got, want)
        assert (qt.quant_op, qt.granularity, qt.axis, qt.n_scales) == (
            "DynamicQuantizeLSTM", "per_channel", 1 if per_channel else 0, s.size)
        assert_row(row_of(a, name), w=ref, dq=want, q=q, scale=s, zero_point=np.zeros(s.size),
                   fp32_shape="x".join(map(str, shape)), quant_dtype="int8", n_scales=s.size)
    assert row_of(a, "B")["status"] == "left_in_float"


@pytest.mark.parametrize("by_name", [True, False])
def test_quantized_gather_table(tmp_path, by_name):
    """Gather on ``E_quantized`` (uint8, per tensor); parameters by name (ORT), or
    found on the DequantizeLinear after the Gather (other names)."""
    q = np.array([[0, 255, 128], [1, 2, 3], [250, 251, 252], [60, 70, 80], [129, 127, 126]], np.uint8)
    s, z = F32(0.0078), 128
    want = ref_dq(q, z, s)
    E = (want + F32(0.002)).astype(F32)
    fp = save(make_model([node("Gather", ["E", "ids"], ["Y"], "gather")], [arr("E", E)],
                         inputs={"ids": (TP.INT64, None)}), tmp_path / "f.onnx")
    sn, zn = ("E_scale", "E_zero_point") if by_name else ("p0", "p1")
    v = make_model([node("Gather", ["E_quantized", "ids"], ["Yq"], "gather"),
                    node("DequantizeLinear", ["Yq", sn, zn], ["Y"], "Yq_DequantizeLinear")],
                   [arr("E_quantized", q), arr(sn, s), listed(zn, TP.UINT8, [], [z])], inputs={"ids": (TP.INT64, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "E_quantized")
    np.testing.assert_array_equal(got, want)
    assert (qt.role, qt.quant_op, qt.granularity) == ("gather_table", "Gather", "per_tensor")
    assert_row(row_of(analyze_rows(fp, vp), "E"), w=E, dq=want, q=q, scale=s, zero_point=z, role="gather_table",
               quant_dtype="uint8")


@pytest.mark.parametrize("op", ["DynamicQuantizeMatMul", "MatMulIntegerToFloat"])
def test_fused_dynamic_matmul_forms(tmp_path, op):
    """Forms onnxruntime's optimizer writes after dynamic quantization: the weight
    scale is an input again (per column)."""
    q, s, z, want, W = _matmul_weight(34)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    if op == "DynamicQuantizeMatMul":  # (A, B, b_scale, b_zero_point, bias)
        n = node(op, ["X", "W_quantized", "W_scale", "W_zero_point"], ["Y"], "mm_quant", domain=MS)
        extra = []
    else:  # (A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias)
        n = node(op, ["Xq", "W_quantized", "a_s", "W_scale", "a_z", "W_zero_point"], ["Y"], "mm_quant", domain=MS)
        extra = [arr("a_s", F32(0.1)), arr("a_z", np.uint8(128))]
    v = make_model([n], [arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", z)] + extra, ms=1,
                   inputs={"Xq": (TP.UINT8, None)} if op != "DynamicQuantizeMatMul" else None)
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    assert (qt.quant_op, qt.granularity, qt.axis) == (op, "per_channel", 1)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z, quant_op=op)
