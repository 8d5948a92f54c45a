"""Matching quantized tensors to their FP32 originals (name, node, value), the rows
of weights a variant left in float, and the role column."""

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import numpy_helper

from builders import (
    MS, analyze_rows, arr, assert_row, dq, int4_tensor, listed, make_model, node, ort_dequant, quant_tensors, read,
    metrics64, ref_dq, row_of, save,
)

F32 = np.float32


def _weight(seed, shape=(4, 3), s=F32(0.05)):
    rng = np.random.default_rng(seed)
    q = rng.integers(-127, 128, shape).astype(np.int8)
    want = ref_dq(q, 0, s)
    W = (want.astype(np.float64) + rng.uniform(-0.4, 0.4, shape) * s).astype(F32)
    return q, s, want, W


def test_match_by_name(tmp_path):
    q, s, want, W = _weight(60)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model([dq("W_quantized", "W_scale", "W_zero_point", "W_DequantizeLinear_Output", "W_DequantizeLinear"),
                    node("MatMul", ["X", "W_DequantizeLinear_Output"], ["Y"], "some_other_node_name")],
                   [arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", np.int8(0))])
    vp = save(v, tmp_path / "v.onnx")
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=0, match_method="name",
               status="quantized", quant_tensor="W_quantized")


def test_match_by_node(tmp_path):
    """The quantized tensor has an arbitrary name; the consuming node kept its name."""
    q, s, want, W = _weight(61)
    Wo = (W * F32(3)).astype(F32)  # another weight of the same shape, which the value rule would not pick
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm"), node("MatMul", ["X2", "Wo"], ["Y2"], "mm_o")],
                         [arr("W", W), arr("Wo", Wo)]), tmp_path / "f.onnx")
    v = make_model([dq("t_91", "t_91_s", "t_91_z", "x_out", "dq7"), node("MatMul", ["X", "x_out"], ["Y"], "mm"),
                    node("MatMul", ["X2", "Wo"], ["Y2"], "mm_o")],
                   [arr("t_91", q), arr("t_91_s", s), arr("t_91_z", np.int8(0)), arr("Wo", Wo)])
    vp = save(v, tmp_path / "v.onnx")
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=want, q=q, scale=s, zero_point=0, match_method="node", quant_tensor="t_91")
    assert row_of(a, "Wo")["status"] == "left_in_float"


@pytest.mark.parametrize("op", ["QLinearConv", "MatMulNBits"])
def test_match_by_node_with_quantizer_suffix(tmp_path, op):
    """QOperator / contrib nodes add a suffix (``_quant``, ``_Q4``); the node rule strips it
    and reads the FP32 node's slot that corresponds to the quantized op's weight input."""
    if op == "QLinearConv":
        q = np.array([[[[1, -2], [3, -4]]], [[[5, 6], [-7, 8]]]], np.int8)  # [2, 1, 2, 2]
        s = F32(0.25)
        want = ref_dq(q, 0, s)
        W = (want + F32(0.01)).astype(F32)
        fp = save(make_model([node("Conv", ["X", "W"], ["Y"], "conv")], [arr("W", W)]), tmp_path / "f.onnx")
        v = make_model([node("QLinearConv", ["Xq", "xs", "xz", "wq_renamed", "ws_renamed", "wz_renamed", "ys", "yz"],
                             ["Yq"], "conv_quant")],
                       [arr("xs", F32(1)), arr("xz", np.uint8(0)), arr("wq_renamed", q), arr("ws_renamed", s),
                        arr("wz_renamed", np.int8(0)), arr("ys", F32(1)), arr("yz", np.uint8(0))],
                       inputs={"Xq": (TP.UINT8, None)}, outputs={"Yq": (TP.UINT8, None)})
        qname, zp = "wq_renamed", 0
    else:
        K, N = 16, 2
        q = (np.arange(K * N).reshape(K, N) % 16).astype(np.uint8)
        s = np.array([[0.5], [0.25]], F32)  # [N, 1 block]
        want = ref_dq(q, 8, s.T)
        W = (want + F32(0.01)).astype(F32)
        packed = np.zeros((N, 1, 8), np.uint8)
        for n in range(N):
            for k in range(K):
                packed[n, 0, k // 2] |= int(q[k, n]) << (4 * (k % 2))
        fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
        v = make_model([node("MatMulNBits", ["X", "packed_w", "sc"], ["Y"], "mm_Q4", domain=MS, K=K, N=N, bits=4,
                             block_size=16)], [arr("packed_w", packed), arr("sc", s)], ms=1)
        qname, zp = "packed_w", np.full(2, 8)
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, qname)
    np.testing.assert_array_equal(got, want)
    if op == "MatMulNBits":
        np.testing.assert_array_equal(ort_dequant(vp, qname), want)  # onnxruntime agrees
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=zp, match_method="node",
               quant_tensor=qname)


def test_match_by_value(tmp_path):
    """Tensor and node renamed: the value rule picks, among FP32 constants of the same
    size, the one closest to the dequantized tensor."""
    qa, s, want_a, Wa = _weight(62)
    qb, _, want_b, Wb = _weight(63)
    fp = save(make_model([node("MatMul", ["X", "Wa"], ["Ya"], "mm_a"), node("MatMul", ["X", "Wb"], ["Yb"], "mm_b")],
                         [arr("Wa", Wa), arr("Wb", Wb)]), tmp_path / "f.onnx")
    # in the variant the nodes come in the other order and have unrelated names
    v = make_model([dq("p", "p_s", None, "p_o", "d1"), node("MatMul", ["X", "p_o"], ["Yb"], "n1"),
                    dq("r", "r_s", None, "r_o", "d2"), node("MatMul", ["X", "r_o"], ["Ya"], "n2")],
                   [arr("p", qb), arr("p_s", s), arr("r", qa), arr("r_s", s)])
    vp = save(v, tmp_path / "v.onnx")
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "Wa"), w=Wa, dq=want_a, q=qa, scale=s, zero_point=0, match_method="value", quant_tensor="r",
               status="quantized")
    assert_row(row_of(a, "Wb"), w=Wb, dq=want_b, q=qb, scale=s, zero_point=0, match_method="value", quant_tensor="p")


def test_value_rule_rejects_a_distant_tensor(tmp_path):
    """A quantized tensor far from every FP32 candidate is reported unmatched, and the
    FP32 weight it could not claim is 'not_matched'."""
    q, s, want, W = _weight(64)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model([dq("p", "p_s", None, "p_o", "d1"), node("MatMul", ["X", "p_o"], ["Y"], "n1")],
                   [arr("p", -q), arr("p_s", s)])  # negated: nothing like W
    vp = save(v, tmp_path / "v.onnx")
    a = analyze_rows(fp, vp)
    assert row_of(a, "W")["status"] == "not_matched"
    un = a.layers[a.layers.status == "unmatched_quant"]
    assert list(un["quant_tensor"]) == ["p"]
    assert un["match_method"].iloc[0] == "unmatched"


def test_match_by_value_transposed_2d(tmp_path):
    """Another producer stored the Gemm(transB=1) weight transposed ([K, N]) under
    unrelated tensor and node names: the value rule tries the transposed layout too
    and reports the tensor in the FP32 layout."""
    N, K = 3, 5
    rng = np.random.default_rng(67)
    bt_q = rng.integers(-127, 128, (K, N)).astype(np.int8)
    s = np.array([0.01, 0.02, 0.03], F32)
    want = ref_dq(bt_q, 0, s.reshape(1, N)).T  # FP32 layout [N, K]
    Bw = (want.astype(np.float64) + rng.uniform(-0.4, 0.4, (N, K)) * s.reshape(N, 1)).astype(F32)
    fp = save(make_model([node("Gemm", ["X", "B"], ["Y"], "gemm", transB=1)], [arr("B", Bw)]), tmp_path / "f.onnx")
    v = make_model([dq("qq", "qs", None, "qo", "d0", axis=1), node("MatMul", ["X", "qo"], ["Y"], "n0")],
                   [arr("qq", bt_q), arr("qs", s)])
    vp = save(v, tmp_path / "v.onnx")
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "B"), w=Bw, dq=want, q=bt_q, scale=s, zero_point=np.zeros(N), match_method="value",
               quant_tensor="qq", fp32_shape=f"{N}x{K}", axis=0, granularity="per_channel")


def test_left_in_float_and_op_not_quantized(tmp_path):
    q, s, want, W1 = _weight(65)
    W2 = np.full((3, 2), 0.5, F32)
    c = np.array([1.5, 2.5], F32)
    fp = save(make_model([node("MatMul", ["X", "W1"], ["Y1"], "mm1"), node("MatMul", ["Y1", "W2"], ["Y2"], "mm2"),
                          node("Div", ["Y2", "c"], ["Y"], "div")], [arr("W1", W1), arr("W2", W2), arr("c", c)]),
              tmp_path / "f.onnx")
    v = make_model([dq("W1_quantized", "W1_scale", None, "W1_dq", "W1_DequantizeLinear"),
                    node("MatMul", ["X", "W1_dq"], ["Y1"], "mm1"), node("MatMul", ["Y1", "W2"], ["Y2"], "mm2"),
                    node("Div", ["Y2", "c"], ["Y"], "div")],
                   [arr("W1_quantized", q), arr("W1_scale", s), arr("W2", W2), arr("c", c)])
    vp = save(v, tmp_path / "v.onnx")
    a = analyze_rows(fp, vp)
    assert row_of(a, "W1")["status"] == "quantized"
    r2 = row_of(a, "W2")
    assert r2["status"] == "left_in_float" and r2["reason"] and "MatMul" in r2["reason"]
    assert r2["match_method"] == "none" and r2["role"] == "weight"
    assert float(r2["fp32_min"]) == 0.5 and float(r2["fp32_max"]) == 0.5
    rc = row_of(a, "c")
    assert rc["status"] == "op_not_quantized" and "Div" in rc["reason"]


def test_weight_missing_from_variant_is_not_matched(tmp_path):
    q, s, want, W = _weight(66)
    W2 = np.ones((3, 3), F32)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y1"], "mm"), node("MatMul", ["Y1", "W2"], ["Y"], "mm2")],
                         [arr("W", W), arr("W2", W2)]), tmp_path / "f.onnx")
    v = make_model([dq("W_quantized", "W_scale", None, "W_dq", "W_DequantizeLinear"),
                    node("MatMul", ["X", "W_dq"], ["Y"], "mm")], [arr("W_quantized", q), arr("W_scale", s)])
    vp = save(v, tmp_path / "v.onnx")
    a = analyze_rows(fp, vp)
    r = row_of(a, "W2")
    assert r["status"] == "not_matched" and r["reason"]


def test_roles(tmp_path):
    """weight (Conv input 1), bias (Conv input 2, int32; and a constant added after a
    MatMul), gather_table (Gather input 0), elementwise (a Mul constant)."""
    Wq = np.array([[[[1, -1]]], [[[2, -2]]]], np.int8)  # [2, 1, 1, 2]
    Bq = np.array([100, -100], np.int32)
    Eq = np.array([[0, 255], [10, 20], [30, 40]], np.uint8)
    Mq = np.array([200, 100], np.uint8)
    Aq = np.array([5, -5], np.int8)
    ws, bs, es, ms_, as_ = F32(0.5), np.array([0.001], F32), F32(0.01), F32(0.02), F32(0.1)
    want = {"W": ref_dq(Wq, 0, ws), "B": ref_dq(Bq, 0, bs), "E": ref_dq(Eq, 128, es), "m": ref_dq(Mq, 128, ms_),
            "A": ref_dq(Aq, 0, as_)}
    fw = {k: (v + F32(0.001)).astype(F32) for k, v in want.items()}
    K2 = np.ones((2, 2), F32)
    fp_nodes = [node("Conv", ["X", "W", "B"], ["c"], "conv"), node("Mul", ["c", "m"], ["y1"], "mul"),
                node("Gather", ["E", "ids"], ["y2"], "gather"), node("MatMul", ["y2", "K2"], ["y3"], "mm"),
                node("Add", ["y3", "A"], ["y4"], "add")]
    fp = save(make_model(fp_nodes, [arr(k, v) for k, v in fw.items()] + [arr("K2", K2)],
                         inputs={"ids": (TP.INT64, None)}), tmp_path / "f.onnx")
    v_nodes = [dq("W_quantized", "W_scale", None, "W_dq", "W_DequantizeLinear"),
               dq("B_quantized", "B_quantized_scale", "B_quantized_zero_point", "B", "B_DequantizeLinear"),
               dq("m_quantized", "m_scale", "m_zero_point", "m_dq", "m_DequantizeLinear"),
               dq("E_quantized", "E_scale", "E_zero_point", "E_dq", "E_DequantizeLinear"),
               dq("A_quantized", "A_scale", None, "A_dq", "A_DequantizeLinear"),
               node("Conv", ["X", "W_dq", "B"], ["c"], "conv"), node("Mul", ["c", "m_dq"], ["y1"], "mul"),
               node("Gather", ["E_dq", "ids"], ["y2"], "gather"), node("MatMul", ["y2", "K2"], ["y3"], "mm"),
               node("Add", ["y3", "A_dq"], ["y4"], "add")]
    v = make_model(v_nodes, [arr("W_quantized", Wq), arr("W_scale", ws), arr("B_quantized", Bq),
                             arr("B_quantized_scale", bs), listed("B_quantized_zero_point", TP.INT32, [1], [0]),
                             arr("m_quantized", Mq), arr("m_scale", ms_), arr("m_zero_point", np.uint8(128)),
                             arr("E_quantized", Eq), arr("E_scale", es), arr("E_zero_point", np.uint8(128)),
                             arr("A_quantized", Aq), arr("A_scale", as_), arr("K2", K2)],
                   inputs={"ids": (TP.INT64, None)})
    vp = save(v, tmp_path / "v.onnx")
    roles = {"W": "weight", "B": "bias", "E": "gather_table", "m": "elementwise", "A": "bias"}
    qts = quant_tensors(vp)
    a = analyze_rows(fp, vp)
    for k, role in roles.items():
        assert qts[f"{k}_quantized"].role == role, k
        np.testing.assert_array_equal(read(vp, f"{k}_quantized")[2], want[k])
        np.testing.assert_array_equal(ort_dequant(vp, f"{k}_quantized"), want[k])
        r = row_of(a, k)
        assert r["role"] == role and r["status"] == "quantized" and r["match_method"] == "name", k
    assert row_of(a, "K2")["status"] == "left_in_float"


# ------------------------------------------------------------------ node rule, per operator
def _node_rule_case(op):
    """(fp32 model, variant model, {quantized name: (fp32 name, expected dq)}) with every
    quantized tensor under a name no ORT rule can undo; only node names tell."""
    rng = np.random.default_rng(70)
    if op == "QLinearMatMul":
        q = rng.integers(-127, 128, (4, 3)).astype(np.int8)
        s = np.array([0.1, 0.2, 0.3], F32)
        want = ref_dq(q, 0, s.reshape(1, 3))
        fp = make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", want + F32(0.01))])
        v = make_model([node("QLinearMatMul", ["Xq", "a", "b", "k1", "k2", "k3", "c", "d"], ["Yq"], "mm_quant")],
                       [arr("a", F32(1)), arr("b", np.uint8(0)), arr("k1", q), arr("k2", s), arr("k3", np.zeros(3, np.int8)),
                        arr("c", F32(1)), arr("d", np.uint8(0))], inputs={"Xq": (TP.UINT8, None)},
                       outputs={"Yq": (TP.UINT8, None)})
        return fp, v, {"k1": ("W", want)}
    if op == "QGemm":
        q = rng.integers(-127, 128, (3, 5)).astype(np.int8)
        s = np.array([0.1, 0.2, 0.3], F32)
        cq = np.array([10, -20, 30], np.int32)
        want, c_want = ref_dq(q, 0, s.reshape(3, 1)), ref_dq(cq, 0, F32(0.5) * s)
        fp = make_model([node("Gemm", ["X", "W", "C"], ["Y"], "g", transB=1)],
                        [arr("W", want + F32(0.01)), arr("C", c_want + F32(0.01))])
        v = make_model([node("QGemm", ["Xq", "a", "b", "k1", "k2", "k3", "k4", "c", "d"], ["Yq"], "g_quant", domain=MS,
                             transB=1)],
                       [arr("a", F32(0.5)), arr("b", np.uint8(0)), arr("k1", q), arr("k2", s),
                        arr("k3", np.zeros(3, np.int8)), arr("k4", cq), arr("c", F32(1)), arr("d", np.uint8(0))],
                       ms=1, inputs={"Xq": (TP.UINT8, None)}, outputs={"Yq": (TP.UINT8, None)})
        return fp, v, {"k1": ("W", want), "k4": ("C", c_want)}
    if op == "GemmRewrite":
        N, K = 3, 5
        bt = rng.integers(0, 256, (K, N)).astype(np.uint8)
        s = np.array([0.01, 0.02, 0.03], F32)
        z = np.array([128, 0, 255], np.uint8)
        want = ref_dq(bt, z.reshape(1, N), s.reshape(1, N)).T
        fp = make_model([node("Gemm", ["X", "B"], ["Y"], "gemm", transB=1)], [arr("B", want + F32(0.001))])
        v = make_model([node("DynamicQuantizeLinear", ["X"], ["xq", "xs", "xz"], "dql"),
                        node("MatMulInteger", ["xq", "k1", "xz", "k3"], ["i"], "gemm_MatMul_quant"),
                        node("Cast", ["i"], ["f"], "cast", to=TP.FLOAT), node("Mul", ["xs", "k2"], ["ss"], "m1"),
                        node("Mul", ["f", "ss"], ["Y"], "m2")], [arr("k1", bt), arr("k2", s), arr("k3", z)])
        return fp, v, {"k1": ("B", want)}
    if op == "DynamicQuantizeLSTM":
        wq = rng.integers(-127, 128, (1, 3, 8)).astype(np.int8)
        rq = rng.integers(-127, 128, (1, 2, 8)).astype(np.int8)
        w_want = ref_dq(wq.transpose(0, 2, 1), 0, F32(0.01))
        r_want = ref_dq(rq.transpose(0, 2, 1), 0, F32(0.02))
        fp = make_model([node("LSTM", ["X", "W", "R"], ["Y"], "lstm", hidden_size=2)],
                        [arr("W", w_want + F32(0.001)), arr("R", r_want + F32(0.001))])
        v = make_model([node("DynamicQuantizeLSTM", ["X", "k1", "k2", "", "", "", "", "", "s1", "z1", "s2", "z2"], ["Y"],
                             "lstm_quant", domain=MS, hidden_size=2)],
                       [arr("k1", wq), arr("k2", rq), arr("s1", np.array([0.01], F32)), arr("z1", np.zeros(1, np.int8)),
                        arr("s2", np.array([0.02], F32)), arr("z2", np.zeros(1, np.int8))], ms=1)
        return fp, v, {"k1": ("W", w_want), "k2": ("R", r_want)}
    if op == "MatMulNBitsQDQ":
        q = rng.integers(0, 16, (16, 2))
        s = np.array([[0.1, 0.2]], F32)
        want = ref_dq(q, 8, s)
        fp = make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", want + F32(0.001))])
        v = make_model([dq("k1", "k2", None, "o", "mm_DQ_Q4", axis=0, block_size=16),
                        node("MatMul", ["X", "o"], ["Y"], "mm_matmul_Q4")],
                       [int4_tensor("k1", q - 8, signed=True), arr("k2", s)], opset=21)
        return fp, v, {"k1": ("W", want)}
    raise AssertionError(op)


@pytest.mark.parametrize("op", ["QLinearMatMul", "QGemm", "GemmRewrite", "DynamicQuantizeLSTM", "MatMulNBitsQDQ"])
def test_node_rule_per_operator(tmp_path, op):
    fpm, vm, expect = _node_rule_case(op)
    fp, vp = save(fpm, tmp_path / "f.onnx"), save(vm, tmp_path / "v.onnx")
    a = analyze_rows(fp, vp)
    fw = {t.name: numpy_helper.to_array(t) for t in fpm.graph.initializer}
    for qname, (fname, want) in expect.items():
        qt, d, got = read(vp, qname)
        # without the FP32 model the Gemm rewrite's Bᵀ can only be read in its stored layout
        np.testing.assert_array_equal(got.T if op == "GemmRewrite" else got, want)
        r = row_of(a, fname)
        assert (r["quant_tensor"], r["match_method"], r["status"]) == (qname, "node", "quantized"), (op, qname)
        assert r["fp32_shape"] == "x".join(map(str, want.shape))
        if op == "GemmRewrite":  # per column of Bᵀ = per row of the FP32 B
            assert (r["granularity"], r["axis"]) == ("per_channel", 0)
        ref = metrics64(fw[fname], want)
        for k in ("mse", "max_abs_err", "sqnr_db", "cosine", "dq_min", "dq_max"):
            assert r[k] == pytest.approx(ref[k], rel=1e-9), (op, k)
    assert (a.layers.status == "quantized").sum() == len(expect)


def test_node_rule_for_unnamed_nodes_by_output(tmp_path):
    """Unnamed nodes: positional names shift when quantization adds nodes, so the node
    rule also knows a node by its first output (QOperator suffix ``_quantized`` removed)."""
    q = np.array([[[[1, -2], [3, -4]]], [[[5, 6], [-7, 8]]]], np.int8)
    s = F32(0.25)
    want = ref_dq(q, 0, s)
    W = (want + F32(0.01)).astype(F32)
    W2 = (want * F32(2)).astype(F32)  # same shape, further away: the value rule alone would still pick W
    fp = save(make_model([node("Relu", ["X"], ["X1"], ""), node("Conv", ["X1", "W2"], ["Z"], ""),
                          node("Conv", ["Z", "W"], ["Y"], "")], [arr("W", W), arr("W2", W2)]), tmp_path / "f.onnx")
    v = make_model([node("QuantizeLinear", ["X", "xs", "xz"], ["Xq"], ""), node("Relu", ["Xq"], ["X1"], ""),
                    node("Conv", ["X1", "W2"], ["Z"], ""),
                    node("QuantizeLinear", ["Z", "xs", "xz"], ["Zq"], ""),
                    node("QLinearConv", ["Zq", "xs", "xz", "wq", "ws", "wz", "ys", "yz"], ["Y_quantized"], "")],
                   [arr("xs", F32(1)), arr("xz", np.uint8(0)), arr("W2", W2), arr("wq", q), arr("ws", s),
                    arr("wz", np.int8(0)), arr("ys", F32(1)), arr("yz", np.uint8(0))],
                   outputs={"Y_quantized": (TP.UINT8, None)})
    vp = save(v, tmp_path / "v.onnx")
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=want, q=q, scale=s, zero_point=0, match_method="node", quant_tensor="wq")
    assert row_of(a, "W2")["status"] == "left_in_float"


def test_match_by_value_with_nan_in_fp32(tmp_path):
    """The value rule compares over the finite FP32 values: one NaN does not hide the original."""
    q, s, want, W = _weight(71)
    W = W.copy()
    W[0, 0] = np.nan
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model([dq("p", "p_s", None, "p_o", "d1"), node("MatMul", ["X", "p_o"], ["Y"], "n1")],
                   [arr("p", q), arr("p_s", s)])
    vp = save(v, tmp_path / "v.onnx")
    r = row_of(analyze_rows(fp, vp), "W")
    assert_row(r, w=W, dq=want, q=q, scale=s, zero_point=0, match_method="value", fp32_nonfinite=1)


def test_role_norm_scale_and_norm_bias(tmp_path):
    """A LayerNormalization gamma quantized per tensor (activation type) and its int32 beta."""
    gq, bq = np.array([200, 100, 255, 0], np.uint8), np.array([1000, -2000, 30, 0], np.int32)
    gs, bs = F32(0.01), np.array([0.0001], F32)
    want_g, want_b = ref_dq(gq, 128, gs), ref_dq(bq, 0, bs)
    G, Bt = (want_g + F32(0.001)).astype(F32), (want_b + F32(0.00001)).astype(F32)
    fp = save(make_model([node("LayerNormalization", ["X", "G", "Bt"], ["Y"], "ln")], [arr("G", G), arr("Bt", Bt)],
                         opset=17), tmp_path / "f.onnx")
    v = make_model([dq("G_quantized", "G_scale", "G_zero_point", "G_dq", "G_DequantizeLinear"),
                    dq("Bt_quantized", "Bt_quantized_scale", None, "Bt", "Bt_DequantizeLinear"),
                    node("LayerNormalization", ["X", "G_dq", "Bt"], ["Y"], "ln")],
                   [arr("G_quantized", gq), arr("G_scale", gs), arr("G_zero_point", np.uint8(128)),
                    arr("Bt_quantized", bq), arr("Bt_quantized_scale", bs)], opset=17)
    vp = save(v, tmp_path / "v.onnx")
    qts = quant_tensors(vp)
    assert qts["G_quantized"].role == "norm_scale" and qts["Bt_quantized"].role == "bias"
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "G"), w=G, dq=want_g, q=gq, scale=gs, zero_point=128, role="norm_scale")
    assert_row(row_of(a, "Bt"), w=Bt, dq=want_b, q=bq, scale=bs, zero_point=0, role="bias")
