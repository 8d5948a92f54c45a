"""Where and how tensors are stored: Constant nodes, external data, a weight shared
by two nodes, 0-d and empty tensors, NaN/Inf in the FP32 weights."""

import math

import numpy as np
import pytest
from onnx import TensorProto as TP

from builders import (
    analyze_rows, arr, assert_row, dq, fp32_single, int4_tensor, listed, make_model, metrics64, node,
    ort_dequant, qdq_single, quant_tensors, read, ref_dq, row_of, save,
)

F32 = np.float32


def test_constant_nodes_in_fp32_and_variant(tmp_path):
    q = np.array([[3, -4, 100], [-128, 127, 0]], np.int8)
    s = np.array([0.01, 0.02, 0.03], F32)
    want = ref_dq(q, 0, s.reshape(1, 3))
    W = (want + F32(0.002)).astype(F32)
    fp = fp32_single(tmp_path / "f.onnx", "MatMul", {"W": W}, ["X", "W"], "mm", constants_as_nodes=True)
    vp = qdq_single(tmp_path / "v.onnx", "MatMul", ["X", "W"], 1, arr("W_quantized", q), arr("W_scale", s),
                    listed("W_zero_point", TP.INT8, [3], [0, 0, 0]), "mm", dq_attrs={"axis": 1},
                    constants_as_nodes=True)
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert qt.storage == "constant_node"
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=np.zeros(3),
               storage="constant_node", status="quantized", match_method="name", granularity="per_channel")


def test_shared_weight_reported_once(tmp_path):
    """One W_quantized, one DQ, two MatMuls: one tensor with both consumers."""
    q = np.array([[1, 2], [3, 4]], np.uint8)
    s, z = F32(0.5), 2
    want = ref_dq(q, z, s)
    W = (want + F32(0.1)).astype(F32)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y1"], "mm1"), node("MatMul", ["X2", "W"], ["Y2"], "mm2")],
                         [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model([dq("W_quantized", "W_scale", "W_zero_point", "W_DequantizeLinear_Output", "W_DequantizeLinear"),
                    node("MatMul", ["X", "W_DequantizeLinear_Output"], ["Y1"], "mm1"),
                    node("MatMul", ["X2", "W_DequantizeLinear_Output"], ["Y2"], "mm2")],
                   [arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", np.uint8(z))])
    vp = save(v, tmp_path / "v.onnx")
    qts = quant_tensors(vp)
    assert list(qts) == ["W_quantized"]
    qt = qts["W_quantized"]
    assert qt.consumers == ["mm1", "mm2"] and qt.consumer_ops == ["MatMul", "MatMul"]
    a = analyze_rows(fp, vp)
    assert len(a.layers) == 1
    r = row_of(a, "W")
    assert_row(r, w=W, dq=want, q=q, scale=s, zero_point=z, consumers="mm1;mm2", status="quantized")


def test_scalar_quantized_constant(tmp_path):
    """A 0-d constant of an element-wise Mul, quantized per tensor (uint8)."""
    q, s, z = np.uint8(250), F32(0.01), 128
    want = ref_dq(q, z, s)
    assert want.shape == () and want == F32(122) * s
    c = F32(1.2234)
    fp = save(make_model([node("Mul", ["X", "c"], ["Y"], "mul")], [arr("c", c)]), tmp_path / "f.onnx")
    vp = qdq_single(tmp_path / "v.onnx", "Mul", ["X", "c"], 1, arr("c_quantized", q), arr("c_scale", s),
                    listed("c_zero_point", TP.UINT8, [], [z]), "mul")
    qt, d, got = read(vp, "c_quantized")
    assert got.shape == () and qt.shape == ()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "c_quantized"), want)  # onnxruntime agrees
    assert (qt.role, qt.granularity, qt.n_scales) == ("elementwise", "per_tensor", 1)
    r = row_of(analyze_rows(fp, vp), "c")
    assert_row(r, w=c, dq=want, q=q, scale=s, zero_point=z, role="elementwise", levels_used=1,
               fp32_shape="scalar", n_elements=1)
    assert r["cosine"] == pytest.approx(1.0)


def test_empty_tensor(tmp_path):
    q = np.zeros((0, 4), np.int8)
    W = np.zeros((0, 4), F32)
    fp, vp = (fp32_single(tmp_path / "f.onnx", "MatMul", {"W": W}, ["X", "W"], "mm"),
              qdq_single(tmp_path / "v.onnx", "MatMul", ["X", "W"], 1, arr("W_quantized", q), arr("W_scale", F32(0.1)),
                         arr("W_zero_point", np.int8(0)), "mm"))
    qt, d, got = read(vp, "W_quantized")
    assert got.shape == (0, 4) and got.dtype == np.float32 and qt.shape == (0, 4)
    r = row_of(analyze_rows(fp, vp), "W")
    assert r["status"] == "quantized" and r["n_elements"] == 0 and r["fp32_nonfinite"] == 0
    for k in ("mse", "max_abs_err", "sqnr_db", "cosine", "q_min", "q_max", "fp32_min", "dq_max", "clipped_frac"):
        assert math.isnan(float(r[k])), k
    assert r["levels_used"] == 0 and r["scale"] == pytest.approx(0.1)


def test_empty_per_channel_tensor(tmp_path):
    q = np.zeros((0, 4), np.uint8)
    s = np.array([0.1, 0.2, 0.3, 0.4], F32)
    fp = fp32_single(tmp_path / "f.onnx", "MatMul", {"W": np.zeros((0, 4), F32)}, ["X", "W"], "mm")
    vp = qdq_single(tmp_path / "v.onnx", "MatMul", ["X", "W"], 1, arr("W_quantized", q), arr("W_scale", s),
                    arr("W_zero_point", np.full(4, 128, np.uint8)), "mm", dq_attrs={"axis": 1})
    qt, d, got = read(vp, "W_quantized")
    assert got.shape == (0, 4) and (qt.granularity, qt.axis, qt.n_scales) == ("per_channel", 1, 4)
    r = row_of(analyze_rows(fp, vp), "W")
    assert r["status"] == "quantized" and math.isnan(float(r["mse"]))


def test_nan_inf_in_fp32_weights(tmp_path):
    """NaN/Inf are counted and left out of every metric."""
    q = np.array([[10, -20, 30, 127], [0, 5, -128, 7]], np.int8)
    s = F32(0.1)
    want = ref_dq(q, 0, s)
    W = (want + F32(0.02)).astype(F32)
    W[0, 3], W[1, 2], W[1, 0] = np.nan, np.inf, -np.inf
    fp = fp32_single(tmp_path / "f.onnx", "MatMul", {"W": W}, ["X", "W"], "mm")
    vp = qdq_single(tmp_path / "v.onnx", "MatMul", ["X", "W"], 1, arr("W_quantized", q), arr("W_scale", s),
                    arr("W_zero_point", np.int8(0)), "mm")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    a = analyze_rows(fp, vp)
    r = row_of(a, "W")
    finite = np.isfinite(W)
    ref = metrics64(W, want)
    assert ref["mse"] == pytest.approx(0.02 ** 2, rel=1e-4)  # the reference really dropped them
    dq_f = want[finite].astype(np.float64)
    assert_row(r, w=W, dq=want, q=q, scale=s, zero_point=0, fp32_nonfinite=3)
    assert float(r["dq_min"]) == dq_f.min() and float(r["dq_max"]) == dq_f.max()
    assert "3 NaN/Inf" in r["diagnostics"]


def test_nan_in_per_channel_fp32_weights(tmp_path):
    q = np.array([[1, 2], [3, 4], [5, 6]], np.int8)
    s = np.array([0.5, 0.25], F32)
    want = ref_dq(q, 0, s.reshape(1, 2))
    W = (want + F32(0.01)).astype(F32)
    W[:, 1] = np.nan  # a whole channel
    fp = fp32_single(tmp_path / "f.onnx", "MatMul", {"W": W}, ["X", "W"], "mm")
    vp = qdq_single(tmp_path / "v.onnx", "MatMul", ["X", "W"], 1, arr("W_quantized", q), arr("W_scale", s),
                    arr("W_zero_point", np.zeros(2, np.int8)), "mm", dq_attrs={"axis": 1})
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=want, q=q, scale=s, zero_point=np.zeros(2), fp32_nonfinite=3)
    ch = a.channels[a.channels.fp32_name == "W"].sort_values("channel")
    assert ch["n"].tolist() == [3, 0]
    assert ch["mse"].iloc[0] == pytest.approx(float(np.mean((W[:, 0].astype(np.float64) - want[:, 0]) ** 2)), rel=1e-9)
    assert math.isnan(ch["mse"].iloc[1]) and math.isnan(ch["fp32_min"].iloc[1])


# ------------------------------------------------------------------ external data
def _mixed_models(inline_dir, ext_dir, threshold):
    """FP32 (two weights) and a variant with int8 per-channel, int4 block-wise and a
    MatMulNBits weight, written inline and with external data."""
    rng = np.random.default_rng(50)
    W1 = rng.normal(size=(8, 6)).astype(F32)
    W2 = rng.normal(size=(9, 3)).astype(F32)  # 27 int4 codes: odd
    W3 = rng.normal(size=(32, 2)).astype(F32)
    fp = make_model([node("MatMul", ["X", "W1"], ["Y1"], "mm1"), node("MatMul", ["Y1", "W2x"], ["Y2"], "mm2"),
                     node("MatMul", ["X3", "W3"], ["Y3"], "mm3"), node("Identity", ["W2"], ["W2x"], "id")],
                    [arr("W1", W1), arr("W2", W2), arr("W3", W3)])
    s1 = (np.abs(W1).max(0) / 127).astype(F32)
    q1 = np.clip(np.rint(W1 / s1), -127, 127).astype(np.int8)
    s2 = np.stack([np.abs(W2[i * 4:(i + 1) * 4]).max(0) / 7 for i in range(3)]).astype(F32)
    rows = np.arange(9) // 4
    q2 = np.clip(np.rint(W2 / s2[rows]), -8, 7).astype(np.int8)
    s3 = (np.abs(W3).reshape(2, 16, 2).max(1).T / 8).astype(F32)  # [N=2, blocks=2]
    q3 = np.clip(np.rint(W3 / s3.T[np.arange(32) // 16]) + 8, 0, 15).astype(np.uint8)
    packed = np.zeros((2, 2, 8), np.uint8)
    for n in range(2):
        for k in range(32):
            b, j = divmod(k, 16)
            packed[n, b, j // 2] |= int(q3[k, n]) << (4 * (j % 2))
    v = make_model([dq("W1_quantized", "W1_scale", "W1_zero_point", "W1_dq", "W1_DequantizeLinear", axis=1),
                    node("MatMul", ["X", "W1_dq"], ["Y1"], "mm1"),
                    dq("W2_quantized", "W2_scale", None, "W2_dq", "W2_DequantizeLinear", axis=0, block_size=4),
                    node("MatMul", ["Y1", "W2x"], ["Y2"], "mm2"), node("Identity", ["W2_dq"], ["W2x"], "id"),
                    node("MatMulNBits", ["X3", "W3_Q4", "W3_scales"], ["Y3"], "mm3_Q4", domain="com.microsoft",
                         K=32, N=2, bits=4, block_size=16)],
                   [arr("W1_quantized", q1), arr("W1_scale", s1), arr("W1_zero_point", np.zeros(6, np.int8)),
                    int4_tensor("W2_quantized", q2, signed=True), arr("W2_scale", s2), arr("W3_Q4", packed),
                    arr("W3_scales", s3)], opset=21, ms=1)
    want = {"W1": ref_dq(q1, 0, s1.reshape(1, 6)), "W2": ref_dq(q2, 0, s2[rows]),
            "W3": ref_dq(q3, 8, s3.T[np.arange(32) // 16])}
    paths = {}
    for d, ext in ((inline_dir, False), (ext_dir, True)):
        paths[ext] = (save(fp, d / "fp32.onnx", external=ext, threshold=threshold, location="fp32.data"),
                      save(v, d / "variant.onnx", external=ext, threshold=threshold, location="x.data"))
    return paths, want, {"W1": W1, "W2": W2, "W3": W3}


@pytest.mark.parametrize("threshold", [0, 16, 64])
def test_external_data_same_numbers_as_inline(tmp_path, threshold):
    paths, want, ws = _mixed_models(tmp_path / "inline", tmp_path / "ext", threshold)
    (fi, vi), (fe, ve) = paths[False], paths[True]
    assert (tmp_path / "ext" / "x.data").stat().st_size > 0 and (tmp_path / "ext" / "fp32.data").stat().st_size > 0
    ext_names = {n for n, qt in quant_tensors(ve).items() if qt.storage == "external"}
    assert "W1_quantized" in ext_names and "W3_Q4" in ext_names  # large tensors really are external
    for name, qn in (("W1", "W1_quantized"), ("W2", "W2_quantized"), ("W3", "W3_Q4")):
        _, _, got_i = read(vi, qn)
        _, _, got_e = read(ve, qn)
        np.testing.assert_array_equal(got_i, want[name])
        np.testing.assert_array_equal(got_e, want[name])
        np.testing.assert_array_equal(ort_dequant(ve, qn), want[name])  # onnxruntime agrees
    li, le = analyze_rows(fi, vi).layers, analyze_rows(fe, ve).layers
    cols = ["fp32_name", "quant_tensor", "status", "granularity", "axis", "block_size", "n_scales", "scale_min",
            "scale_max", "zero_point_min", "zero_point_max", "q_min", "q_max", "mse", "max_abs_err", "sqnr_db",
            "cosine", "clipped_frac", "levels_used", "fp32_min", "fp32_max", "dq_min", "dq_max"]
    assert li[cols].equals(le[cols])
    for name in ("W1", "W2", "W3"):
        r = row_of(analyze_rows(fe, ve), name)
        ref = metrics64(ws[name], want[name])
        assert r["mse"] == pytest.approx(ref["mse"], rel=1e-9)
        assert r["sqnr_db"] == pytest.approx(ref["sqnr_db"], rel=1e-9)
    assert set(le.loc[le.fp32_name == "W1", "storage"]) == {"external"}


@pytest.mark.parametrize("named", [True, False])
def test_shared_bias_duplicated_by_the_quantizer(tmp_path, named):
    """A bias shared by two Convs is duplicated (``B`` and ``B1``, ORT's naming), each
    with its own int32 scale: two quantized tensors, both compared with the FP32 ``B``."""
    Wf = np.full((2, 1, 1, 1), 0.5, F32)
    B = np.array([0.3, -0.7], F32)
    b1q, b2q = np.array([300, -700], np.int32), np.array([150, -350], np.int32)
    s1, s2 = np.array([0.001], F32), np.array([0.002], F32)
    n1, n2 = ("conv1", "conv2") if named else ("", "")
    fp = save(make_model([node("Conv", ["X", "W", "B"], ["Y1"], n1), node("Conv", ["Y1", "W", "B"], ["Y2"], n2)],
                         [arr("W", Wf), arr("B", B)]), tmp_path / "f.onnx")
    v = make_model([dq("B_quantized", "B_quantized_scale", None, "B", "B_DequantizeLinear"),
                    dq("B1_quantized", "B1_quantized_scale", None, "B1", "B1_DequantizeLinear"),
                    node("Conv", ["X", "W", "B"], ["Y1"], n1), node("Conv", ["Y1", "W", "B1"], ["Y2"], n2)],
                   [arr("W", Wf), arr("B_quantized", b1q), arr("B_quantized_scale", s1), arr("B1_quantized", b2q),
                    arr("B1_quantized_scale", s2)])
    vp = save(v, tmp_path / "v.onnx")
    a = analyze_rows(fp, vp)
    rows = a.layers[a.layers.fp32_name == "B"].sort_values("quant_tensor")
    assert list(rows["quant_tensor"]) == ["B1_quantized", "B_quantized"]
    assert list(rows["status"]) == ["quantized", "quantized"]
    for (_, r), q, s in zip(rows.iterrows(), (b2q, b1q), (s2, s1)):
        assert_row(r, w=B, dq=ref_dq(q, 0, s), q=q, scale=s, zero_point=0, role="bias")


def test_external_data_in_a_subfolder(tmp_path):
    """External data may live in a subfolder of the model's folder."""
    q = np.arange(-32, 32, dtype=np.int8).reshape(8, 8)
    s = np.linspace(0.01, 0.08, 8).astype(F32)
    want = ref_dq(q, 0, s.reshape(1, 8))
    W = (want + F32(0.001)).astype(F32)
    (tmp_path / "weights").mkdir()
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx",
              external=True, location="weights/f.bin")
    vp = save(make_model([dq("W_quantized", "W_scale", None, "W_dq", "W_DequantizeLinear", axis=1),
                          node("MatMul", ["X", "W_dq"], ["Y"], "mm")], [arr("W_quantized", q), arr("W_scale", s)]),
              tmp_path / "v.onnx", external=True, location="weights/v.bin")
    assert (tmp_path / "weights" / "v.bin").stat().st_size == 64 + 32
    qt, d, got = read(vp, "W_quantized")
    assert qt.storage == "external"
    np.testing.assert_array_equal(got, want)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=np.zeros(8), storage="external")


@pytest.mark.parametrize("offset", [0, 3, 4099, 65536 + 7, 2 * 65536])
def test_external_tensor_at_any_offset_reads_exactly(tmp_path, offset):
    """External bytes are mapped from the page boundary below the offset: a tensor at any
    byte offset (inside or across the mapping granularity) reads back exactly, as a plain
    read-only ndarray (not an np.memmap, whose Python hooks run on every view)."""
    from analysis.tensors import tensor_to_array

    vals = np.arange(-7, 5000, dtype=F32) * F32(0.25)
    raw = vals.tobytes()
    (tmp_path / "w.bin").write_bytes(b"\xa5" * offset + raw + b"\x5a" * 11)
    t = TP(name="w", data_type=TP.FLOAT, dims=[vals.size], data_location=TP.EXTERNAL)
    for k, v in (("location", "w.bin"), ("offset", str(offset)), ("length", str(len(raw)))):
        t.external_data.add(key=k, value=v)
    got = tensor_to_array(t, tmp_path)
    np.testing.assert_array_equal(got, vals)
    assert type(got) is np.ndarray and not got.flags.writeable
