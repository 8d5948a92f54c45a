"""QDQ layouts (standard domain, com.microsoft domain, Q->DQ pairs): every one read exactly.

Each test builds an FP32 model and a quantized variant by hand with known codes,
scales and zero points, and checks QuantLens' decoding and metrics against values
computed here from the DequantizeLinear definition ``y = (x - x_zero_point) * x_scale``.
"""

import math

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto as TP

from builders import (
    analyze_rows, arr, assert_row, dq, e4m3fn_value, float8_tensor, fp32_single, int4_tensor, listed,
    make_model, metrics64, node, ort_dequant, pack_nibbles, qdq_single, read, ref_dq, row_of, save,
)

F32 = np.float32


def pd_isna(x):
    return bool(pd.isna(x))


def _mm_pair(tmp_path, W, q_init, s_init, z_init, opset=13, **kw):
    """FP32 ``MatMul 'mm'(X, W)`` and its QDQ variant; returns both paths."""
    fp = fp32_single(tmp_path / "fp32.onnx", "MatMul", {"W": W}, ["X", "W"], "mm", opset=opset)
    vp = qdq_single(tmp_path / "variant.onnx", "MatMul", ["X", "W"], 1, q_init, s_init, z_init, "mm",
                    opset=opset, **kw)
    return fp, vp


def _noise(shape, s, seed):
    """Known offsets inside half a step, so the codes stay the nearest ones."""
    return np.random.default_rng(seed).uniform(-0.45, 0.45, shape) * np.float64(s)


# ------------------------------------------------------------------ per tensor
def test_per_tensor_int8(tmp_path):
    q = np.array([[31, -52, 7], [127, -128, 0], [45, 55, -5], [96, -33, 12]], np.int8)
    s = F32(0.0125)
    W = (q.astype(np.float64) * np.float64(s) + _noise(q.shape, s, 1)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", np.int8(0)))
    want = ref_dq(q, 0, s)

    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)

    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert got.dtype == np.float32
    assert (qt.granularity, qt.axis, qt.block_size, qt.n_scales) == ("per_tensor", None, None, 1)
    assert (qt.dtype, qt.shape, qt.role, qt.quant_op) == ("int8", (4, 3), "weight", "DequantizeLinear")
    assert qt.consumers == ["mm"] and qt.consumer_ops == ["MatMul"]
    np.testing.assert_array_equal(d.q, q)

    a = analyze_rows(fp, vp)
    r = row_of(a, "W")
    assert_row(r, w=W, dq=want, q=q, scale=s, zero_point=0, status="quantized", match_method="name",
               granularity="per_tensor", quant_dtype="int8", n_scales=1, role="weight",
               levels_available=256, zp_out_of_range=False, scale_zero=0, fp32_nonfinite=0)
    assert pd_isna(r["axis"]) and pd_isna(r["block_size"])
    assert r["levels_used"] == len(np.unique(q))


def test_per_tensor_uint8_nonzero_zero_point_no_wraparound(tmp_path):
    """z = 200 with codes near 0 and 255: ``q - z`` in uint8 would wrap around."""
    z = 200
    q = np.array([[0, 1, 2, 3], [254, 255, 253, 200], [199, 201, 100, 10]], np.uint8)
    s = F32(0.02)
    W = ((q.astype(np.float64) - z) * np.float64(s) + _noise(q.shape, s, 2)).astype(F32)
    # the zero point in int32_data, as ORT writes it
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s),
                      listed("W_zero_point", TP.UINT8, [], [z]))
    want = ref_dq(q, z, s)
    assert want[0, 0] == F32(-200) * s and want[1, 1] == F32(55) * s  # hand check of the formula
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert int(d.zero_point) == 200

    r = row_of(analyze_rows(fp, vp), "W")
    w64, dq64 = W.astype(np.float64), want.astype(np.float64)
    sqnr = 10 * math.log10(np.sum(w64 ** 2) / np.sum((w64 - dq64) ** 2))
    assert sqnr > 30  # a wrapped-around subtraction gives a negative SQNR
    assert r["sqnr_db"] == pytest.approx(sqnr, rel=1e-9)
    assert_row(r, w=W, dq=want, q=q, scale=s, zero_point=z, granularity="per_tensor",
               quant_dtype="uint8", zp_out_of_range=False, q_min=0.0, q_max=255.0)


# ------------------------------------------------------------------ per channel
def test_per_channel_axis0_conv(tmp_path):
    """Conv weight [M=3, C=2, 2, 2], one scale and zero point per output channel."""
    rng = np.random.default_rng(3)
    q = rng.integers(-128, 128, (3, 2, 2, 2)).astype(np.int8)
    s = np.array([0.01, 0.5, 0.003], F32)
    z = np.array([0, 3, -5], np.int8)
    W = ((q.astype(np.float64) - z.reshape(3, 1, 1, 1)) * s.reshape(3, 1, 1, 1).astype(np.float64)
         + _noise(q.shape, 1, 4) * s.reshape(3, 1, 1, 1)).astype(F32)
    fp = fp32_single(tmp_path / "fp32.onnx", "Conv", {"W": W}, ["X", "W"], "conv")
    vp = qdq_single(tmp_path / "v.onnx", "Conv", ["X", "W"], 1, arr("W_quantized", q), arr("W_scale", s),
                    listed("W_zero_point", TP.INT8, [3], z), "conv", dq_attrs={"axis": 0})
    want = ref_dq(q, z.reshape(3, 1, 1, 1), s.reshape(3, 1, 1, 1))
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.block_size, qt.n_scales) == ("per_channel", 0, None, 3)
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=want, q=q, scale=s, zero_point=z, granularity="per_channel",
               axis=0, n_scales=3, per_channel=True)
    # per-channel table: one row per output channel, its own error
    ch = a.channels[a.channels.fp32_name == "W"].sort_values("channel")
    assert list(ch["channel"]) == [0, 1, 2]
    for c in range(3):
        e = W[c].astype(np.float64) - want[c].astype(np.float64)
        assert ch["mse"].iloc[c] == pytest.approx(np.mean(e ** 2), rel=1e-9)
        assert ch["scale_min"].iloc[c] == float(s[c]) and ch["zero_point_max"].iloc[c] == z[c]


@pytest.mark.parametrize("axis_attr, axis", [(1, 1), (-1, 1), (-2, 0), (0, 0)])
def test_per_channel_matmul_axes(tmp_path, axis_attr, axis):
    """Axis 1 (columns), axis 0 (rows) and negative axes, normalised in the report."""
    q = np.array([[0, 255, 128, 7], [1, 254, 129, 100], [2, 250, 140, 200]], np.uint8)  # [3, 4]
    n = q.shape[axis]
    s = np.array([0.1, 0.02, 0.004, 1.5][:n], F32)
    z = np.array([128, 0, 255, 77][:n], np.uint8)
    view = [1, 1]
    view[axis] = n
    W = (ref_dq(q, z.reshape(view), s.reshape(view)).astype(np.float64)
         + _noise(q.shape, 1, 5) * s.reshape(view)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", z),
                      dq_attrs={"axis": axis_attr})
    want = ref_dq(q, z.reshape(view), s.reshape(view))
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.n_scales) == ("per_channel", axis, n)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z,
               granularity="per_channel", axis=axis, n_scales=n)


def test_per_channel_default_axis_is_1(tmp_path):
    """A 1-D scale without an ``axis`` attribute: ONNX's default axis 1 applies."""
    q = np.array([[-3, 4, 5], [100, -100, 0], [7, 8, -9], [1, 2, 3]], np.int8)  # [4, 3]
    s = np.array([0.5, 0.25, 0.125], F32)
    W = (ref_dq(q, 0, s.reshape(1, 3)) + F32(0.01)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", np.zeros(3, np.int8)))
    want = ref_dq(q, 0, s.reshape(1, 3))
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.n_scales) == ("per_channel", 1, 3)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=np.zeros(3),
               granularity="per_channel", axis=1)


def test_one_element_scale_with_axis_is_per_channel(tmp_path):
    """ConvTranspose weight [C=3, M=1, 2, 2], scale [1] with axis=1: one channel."""
    q = np.arange(-6, 6, dtype=np.int8).reshape(3, 1, 2, 2)
    s = np.array([0.2], F32)
    W = (ref_dq(q, 0, s) + F32(0.05)).astype(F32)
    fp = fp32_single(tmp_path / "fp32.onnx", "ConvTranspose", {"W": W}, ["X", "W"], "deconv")
    vp = qdq_single(tmp_path / "v.onnx", "ConvTranspose", ["X", "W"], 1, arr("W_quantized", q),
                    arr("W_scale", s), arr("W_zero_point", np.zeros(1, np.int8)), "deconv", dq_attrs={"axis": 1})
    want = ref_dq(q, 0, s.reshape(1, 1, 1, 1))
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.n_scales) == ("per_channel", 1, 1)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=0,
               granularity="per_channel", axis=1, n_scales=1)


def test_one_element_scale_without_axis_is_per_tensor(tmp_path):
    q = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    s = np.array([0.3], F32)
    z = np.array([2], np.uint8)
    W = (ref_dq(q, 2, s) + F32(0.07)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", z))
    want = ref_dq(q, 2, s)
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.n_scales) == ("per_tensor", None, 1)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z,
               granularity="per_tensor", per_channel=False)


# ------------------------------------------------------------------ block-wise
def test_blockwise_partial_last_block_axis0(tmp_path):
    """[10, 4] with block_size 4 on axis 0: 3 blocks, the last one holds 2 rows."""
    rng = np.random.default_rng(6)
    q = rng.integers(-128, 128, (10, 4)).astype(np.int8)
    s = np.array([[0.1, 0.2, 0.3, 0.4], [0.01, 0.02, 0.03, 0.04], [1.0, 2.0, 3.0, 4.0]], F32)  # [3, 4]
    z = np.array([[0, 1, 2, 3], [-1, -2, -3, -4], [10, 20, 30, 40]], np.int8)
    s_full = np.concatenate([np.repeat(s[:2], 4, axis=0), s[2:3].repeat(2, axis=0)])  # rows 8, 9: block 2
    z_full = np.concatenate([np.repeat(z[:2], 4, axis=0), z[2:3].repeat(2, axis=0)])
    assert s_full.shape == (10, 4)
    want = ref_dq(q, z_full, s_full)
    W = (want.astype(np.float64) + _noise(q.shape, 1, 7) * s_full).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", z),
                      opset=21, dq_attrs={"axis": 0, "block_size": 4})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.block_size, qt.n_scales) == ("blockwise", 0, 4, 12)
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=want, q=q, scale=s, zero_point=z, granularity="blockwise",
               axis=0, block_size=4, n_scales=12)
    ch = a.channels[a.channels.fp32_name == "W"].sort_values("channel")
    assert len(ch) == 4  # one row per column (all blocks of that output channel)
    for c in range(4):
        e = W[:, c].astype(np.float64) - want[:, c].astype(np.float64)
        assert ch["mse"].iloc[c] == pytest.approx(np.mean(e ** 2), rel=1e-9)


def test_blockwise_axis1_uint8(tmp_path):
    """[3, 10] with block_size 4 on axis 1 (scales [3, 3])."""
    q = (np.arange(30).reshape(3, 10) * 8 + 5).astype(np.uint8)
    s = np.array([[0.5, 0.25, 0.125], [1, 2, 4], [0.1, 0.2, 0.3]], F32)
    z = np.array([[128, 0, 255], [1, 2, 3], [100, 150, 200]], np.uint8)
    cols = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    want = ref_dq(q, z[:, cols], s[:, cols])
    W = (want + F32(0.01)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", z),
                      opset=21, dq_attrs={"axis": 1, "block_size": 4})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.block_size, qt.n_scales) == ("blockwise", 1, 4, 9)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z,
               granularity="blockwise", axis=1, block_size=4)


# ------------------------------------------------------------------ 16-bit
def test_int16_per_tensor(tmp_path):
    q = np.array([[-32768, 32767, 0], [12345, -23456, 1]], np.int16)
    s = F32(3.0e-5)
    W = (ref_dq(q, 0, s).astype(np.float64) + _noise(q.shape, s, 8)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", np.int16(0)), opset=21)
    want = ref_dq(q, 0, s)
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert qt.dtype == "int16" and qt.granularity == "per_tensor"
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=0,
               quant_dtype="int16", levels_available=65536, q_min=-32768.0, q_max=32767.0)


def test_uint16_per_channel_zero_point_in_int32_data(tmp_path):
    q = np.array([[0, 65535, 32768], [1, 65534, 40000]], np.uint16)
    s = np.array([1e-4, 2e-5, 0.5], F32)
    z = np.array([32768, 65535, 0], np.uint16)
    want = ref_dq(q, z.reshape(1, 3), s.reshape(1, 3))
    W = (want.astype(np.float64) + _noise(q.shape, 1, 9) * s).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s),
                      listed("W_zero_point", TP.UINT16, [3], z), opset=21, dq_attrs={"axis": 1})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert qt.dtype == "uint16" and (qt.granularity, qt.axis) == ("per_channel", 1)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z,
               quant_dtype="uint16", zp_out_of_range=False)


# ------------------------------------------------------------------ 4-bit
def test_pack_nibbles_builder():
    """The test's own packer: element 2i low nibble, two's complement for int4."""
    assert pack_nibbles([1, 2, 3]) == bytes([0x21, 0x03])
    assert pack_nibbles([-1, -8, 7]) == bytes([0x8F, 0x07])
    t = int4_tensor("t", np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]]), signed=False)
    assert t.raw_data == bytes([0x21, 0x43, 0x65, 0x87, 0x09]) and list(t.dims) == [3, 3]


def test_int4_per_channel_odd_count(tmp_path):
    """INT4 [3, 5] (15 codes, 8 bytes) and INT4 zero points [3], both packed by hand."""
    q = np.array([[-8, -7, 0, 6, 7], [1, -1, 2, -2, 3], [7, 7, -8, -8, 0]], np.int8)
    s = np.array([0.5, 0.03, 0.25], F32)
    z = np.array([0, -1, 2], np.int8)
    qi = int4_tensor("W_quantized", q, signed=True)
    assert len(qi.raw_data) == 8 and qi.raw_data[0] == 0x98 and qi.raw_data[7] == 0x00
    want = ref_dq(q, z.reshape(3, 1), s.reshape(3, 1))
    W = (want.astype(np.float64) + _noise(q.shape, 1, 10) * s.reshape(3, 1)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, qi, arr("W_scale", s), int4_tensor("W_zero_point", z, signed=True),
                      opset=21, dq_attrs={"axis": 0})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    np.testing.assert_array_equal(d.q, q)
    assert (qt.dtype, qt.granularity, qt.axis, qt.n_scales) == ("int4", "per_channel", 0, 3)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z,
               quant_dtype="int4", levels_available=16, levels_used=len(np.unique(q)))


def test_uint4_per_tensor_odd_count_zero_point_in_int32_data(tmp_path):
    q = np.array([[0, 15, 9, 8, 1], [14, 2, 13, 3, 12], [4, 11, 5, 10, 6]], np.uint8)
    s = F32(0.0625)
    z = 9
    want = ref_dq(q, z, s)
    W = (want.astype(np.float64) + _noise(q.shape, s, 11)).astype(F32)
    zt = listed("W_zero_point", TP.UINT4, [], [z])
    fp, vp = _mm_pair(tmp_path, W, int4_tensor("W_quantized", q, signed=False), arr("W_scale", s), zt, opset=21)
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.dtype, qt.granularity) == ("uint4", "per_tensor")
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z,
               quant_dtype="uint4", levels_used=15, levels_available=16, q_min=0.0, q_max=15.0)


def test_int4_blockwise_partial_block(tmp_path):
    """INT4 [5, 3] blocks of 2 on axis 0: scales [3, 3], the last block has one row."""
    q = np.array([[1, -2, 3], [-4, 5, -6], [7, -8, 0], [2, 2, 2], [-3, -3, 6]], np.int8)
    s = np.array([[0.5, 1, 2], [0.25, 0.125, 4], [3, 5, 7]], F32)
    rows = [0, 0, 1, 1, 2]
    want = ref_dq(q, 0, s[rows])
    W = (want + F32(0.01)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, int4_tensor("W_quantized", q, signed=True), arr("W_scale", s), None,
                      opset=21, dq_attrs={"axis": 0, "block_size": 2})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.block_size, qt.n_scales) == ("blockwise", 0, 2, 9)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=np.zeros(9),
               granularity="blockwise", block_size=2)


@pytest.mark.parametrize("signed", [True, False])
def test_com_microsoft_4bit_dq_on_opset13(tmp_path, signed):
    """4-bit QDQ on opset < 21: Q/DQ in the com.microsoft domain, same semantics."""
    if signed:
        q = np.array([[-8, 7, 0], [1, -1, 5], [3, -3, -6]], np.int8)
        z = np.array([0, 1, -2], np.int8)
    else:
        q = np.array([[0, 15, 8], [1, 14, 9], [3, 12, 7]], np.uint8)
        z = np.array([8, 0, 15], np.uint8)
    s = np.array([0.5, 0.1, 0.02], F32)
    want = ref_dq(q, z.reshape(1, 3), s.reshape(1, 3))
    W = (want + F32(0.003)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, int4_tensor("W_quantized", q, signed), arr("W_scale", s),
                      int4_tensor("W_zero_point", z, signed), opset=13, ms=1, dq_domain="com.microsoft",
                      dq_attrs={"axis": 1})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert qt.quant_op == "DequantizeLinear (com.microsoft)"
    assert (qt.dtype, qt.granularity, qt.axis) == ("int4" if signed else "uint4", "per_channel", 1)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z,
               quant_op="DequantizeLinear (com.microsoft)")


def test_com_microsoft_uint8_dq(tmp_path):
    q = np.array([[0, 255], [17, 200]], np.uint8)
    s, z = F32(0.01), 130
    want = ref_dq(q, z, s)
    W = (want + F32(0.002)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), listed("W_zero_point", TP.UINT8, [], [z]),
                      ms=1, dq_domain="com.microsoft")
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z)


# ------------------------------------------------------------------ float8
def test_float8e4m3fn(tmp_path):
    codes = np.array([[0x38, 0xB8, 0x40, 0x30], [0x00, 0x7E, 0x01, 0xC4]], np.uint8)
    vals = np.array([[e4m3fn_value(int(b)) for b in row] for row in codes], np.float64)
    np.testing.assert_array_equal(vals, [[1, -1, 2, 0.5], [0, 448, 2.0 ** -9, -3]])
    s = F32(0.125)
    want = vals.astype(F32) * s  # the float8 zero point is 0
    W = (want + F32(0.01)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, float8_tensor("W_quantized", codes, [2, 4]), arr("W_scale", s),
                      listed("W_zero_point", TP.FLOAT8E4M3FN, [], [0.0]), opset=19)
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.dtype, qt.granularity) == ("float8e4m3fn", "per_tensor")
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "W"), w=W, dq=want, q=vals, scale=s, zero_point=0, quant_dtype="float8e4m3fn",
               zp_out_of_range=False, levels_used=8)


# ------------------------------------------------------------------ int32 bias
def _conv_bias_models(tmp_path, B, bq, bs, axis):
    """FP32 ``Conv(X, W, B)``; variant with the bias as ORT writes it: B_quantized ->
    DequantizeLinear whose output keeps the float name ``B``."""
    Wf = np.full((3, 2, 1, 1), 0.5, F32)
    fp = save(make_model([node("Conv", ["X", "W", "B"], ["Y"], "conv")], [arr("W", Wf), arr("B", B)]),
              tmp_path / "fp32.onnx")
    attrs = {} if axis is None else {"axis": axis}
    v = make_model([dq("B_quantized", "B_quantized_scale", "B_quantized_zero_point", "B", "B_DequantizeLinear", **attrs),
                    node("Conv", ["X", "W", "B"], ["Y"], "conv")],
                   [arr("W", Wf), arr("B_quantized", bq), arr("B_quantized_scale", bs),
                    listed("B_quantized_zero_point", TP.INT32, [bs.size] if bs.ndim else [], np.zeros(bs.size, np.int64))])
    return fp, save(v, tmp_path / "v.onnx")


def test_int32_bias_per_tensor_one_element_scale(tmp_path):
    bq = np.array([123456, -98765, 2 ** 24 + 1], np.int32)  # 2**24+1 is not a float32
    bs = np.array([1.2e-5], F32)  # [1], no axis: ORT's bias layout
    want = ref_dq(bq, 0, bs)
    assert want[2] == F32(2 ** 24) * bs[0]  # the int -> float32 conversion rounds first
    B = (want + F32(1e-6)).astype(F32)
    fp, vp = _conv_bias_models(tmp_path, B, bq, bs, None)
    qt, d, got = read(vp, "B_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "B_quantized"), want)  # onnxruntime agrees
    assert (qt.role, qt.dtype, qt.granularity, qt.n_scales) == ("bias", "int32", "per_tensor", 1)
    a = analyze_rows(fp, vp)
    assert_row(row_of(a, "B"), w=B, dq=want, q=bq, scale=bs, zero_point=0, role="bias",
               quant_dtype="int32", match_method="name", granularity="per_tensor")
    assert row_of(a, "W")["status"] == "left_in_float"


def test_int32_bias_per_channel(tmp_path):
    bq = np.array([-2 ** 31, 2 ** 31 - 1, 7], np.int32)
    bs = np.array([1e-9, 2e-9, 0.5], F32)
    want = ref_dq(bq, 0, bs)
    B = (want * F32(1.0001)).astype(F32)
    fp, vp = _conv_bias_models(tmp_path, B, bq, bs, 0)
    qt, d, got = read(vp, "B_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "B_quantized"), want)  # onnxruntime agrees
    assert (qt.role, qt.granularity, qt.axis, qt.n_scales) == ("bias", "per_channel", 0, 3)
    assert_row(row_of(analyze_rows(fp, vp), "B"), w=B, dq=want, q=bq, scale=bs, zero_point=np.zeros(3),
               role="bias", granularity="per_channel", axis=0, q_min=float(-2 ** 31), q_max=float(2 ** 31 - 1))


# ------------------------------------------------------------------ Q -> DQ pair
@pytest.mark.parametrize("ztype, z", [(TP.INT8, 0), (TP.UINT8, 3)])
def test_q_dq_pair_on_float_weight(tmp_path, ztype, z):
    """AddQDQPairToWeight: codes = saturate(round_half_even(w / s) + z), recomputed."""
    s = F32(0.25)  # a power of two: w / s is exact, ties are real ties
    W = np.array([[0.125, 0.375, 0.625, -0.125], [-0.375, 100.0, -100.0, 0.3]], F32)
    #                w/s:  0.5    1.5    2.5    -0.5      -1.5   400    -400   1.2
    r = np.array([[0, 2, 2, 0], [-2, 400, -400, 1]])  # half to even
    lo, hi = (-128, 127) if ztype == TP.INT8 else (0, 255)
    q = np.clip(r + z, lo, hi)
    if z == 3:  # round first, then add z: round(0.5) + 3 = 3, not round(3.5) = 4
        assert q[0, 0] == 3 and q[0, 3] == 3 and q[1, 2] == 0
    want = ref_dq(q, z, s)
    fp = fp32_single(tmp_path / "fp32.onnx", "MatMul", {"W": W}, ["X", "W"], "mm")
    v = make_model([node("QuantizeLinear", ["W", "W_scale", "W_zero_point"], ["W_QuantizeLinear_Output"], "W_QuantizeLinear"),
                    dq("W_QuantizeLinear_Output", "W_scale", "W_zero_point", "W_DequantizeLinear_Output", "W_DequantizeLinear"),
                    node("MatMul", ["X", "W_DequantizeLinear_Output"], ["Y"], "mm")],
                   [arr("W", W), arr("W_scale", s), listed("W_zero_point", ztype, [], [z])])
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W")
    np.testing.assert_array_equal(np.asarray(d.q, np.int64), q)
    np.testing.assert_array_equal(got, want)
    assert qt.storage == "computed" and qt.dtype == ("int8" if ztype == TP.INT8 else "uint8")
    r_ = row_of(analyze_rows(fp, vp), "W")
    assert_row(r_, w=W, dq=want, q=q, scale=s, zero_point=z, status="quantized", storage="computed")
    assert r_["clipped_frac"] == pytest.approx(2 / 8)  # +-100 saturate


def test_q_dq_pair_per_channel(tmp_path):
    """Q->DQ pair with per-channel parameters (axis 0) on a float weight."""
    s = np.array([0.5, 0.125], F32)
    z = np.array([-3, 4], np.int8)
    W = np.array([[0.25, 1.0, -70.0], [0.0625, -0.1875, 0.3]], F32)
    #   w/s: row 0: 0.5 -> 0, 2, -140 ; row 1: 0.5 -> 0, -1.5 -> -2, 2.4 -> 2
    q = np.clip(np.array([[0, 2, -140], [0, -2, 2]]) + z.reshape(2, 1), -128, 127)
    assert q[0, 2] == -128
    want = ref_dq(q, z.reshape(2, 1), s.reshape(2, 1))
    fp = fp32_single(tmp_path / "fp32.onnx", "MatMul", {"W": W}, ["X", "W"], "mm")
    v = make_model([node("QuantizeLinear", ["W", "W_scale", "W_zero_point"], ["W_q"], "W_QuantizeLinear", axis=0),
                    dq("W_q", "W_scale", "W_zero_point", "W_dq", "W_DequantizeLinear", axis=0),
                    node("MatMul", ["X", "W_dq"], ["Y"], "mm")],
                   [arr("W", W), arr("W_scale", s), arr("W_zero_point", z)])
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W")
    np.testing.assert_array_equal(np.asarray(d.q, np.int64), q)
    np.testing.assert_array_equal(got, want)
    assert (qt.granularity, qt.axis) == ("per_channel", 0)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z, axis=0)


def test_q_dq_pair_float8(tmp_path):
    """Q->DQ pair to FLOAT8E4M3FN: round to the nearest float8 (ties to even),
    saturate to +-448 (QuantizeLinear's default saturate=1)."""
    s = F32(0.5)
    W = np.array([[1.0, 0.5, 1000.0, -1000.0], [0.0, 0.3, 3.3, -0.04]], F32)
    #  w/s:          2     1     2000    -2000        0    0.6   6.6   -0.08
    #  nearest e4m3: 2     1     448(sat) -448        0    0.625 6.5   -0.078125
    vals = np.array([[2, 1, 448, -448], [0, 0.625, 6.5, -0.078125]])
    for v_ in (0.625, 6.5, 0.078125):  # really float8 values (1.25*2^-1, 1.625*2^2, 1.25*2^-4)
        assert v_ in {e4m3fn_value(b) for b in range(256)}
    want = vals.astype(F32) * s
    fp = fp32_single(tmp_path / "fp32.onnx", "MatMul", {"W": W}, ["X", "W"], "mm", opset=19)
    v = make_model([node("QuantizeLinear", ["W", "W_scale", "W_zero_point"], ["W_q"], "W_QuantizeLinear"),
                    dq("W_q", "W_scale", "W_zero_point", "W_dq", "W_DequantizeLinear"),
                    node("MatMul", ["X", "W_dq"], ["Y"], "mm")],
                   [arr("W", W), arr("W_scale", s), listed("W_zero_point", TP.FLOAT8E4M3FN, [], [0.0])], opset=19)
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W")
    assert qt.dtype == "float8e4m3fn"
    np.testing.assert_array_equal(np.asarray(d.q, np.float64), vals)
    np.testing.assert_array_equal(got, want)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=vals, scale=s, zero_point=0,
               quant_dtype="float8e4m3fn", storage="computed")


def test_int4_weight_in_int32_data(tmp_path):
    """INT4 codes written with helper.make_tensor(list): packed pairs in int32_data."""
    q = np.array([[-8, 7, 3], [2, -1, 0], [5, -5, 6]], np.int8)  # 9 codes: odd
    t = listed("W_quantized", TP.INT4, [3, 3], q)
    assert len(t.int32_data) == 5
    s = F32(0.2)
    want = ref_dq(q, 0, s)
    W = (want + F32(0.01)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, t, arr("W_scale", s), None, opset=21)
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=0, quant_dtype="int4")


# ------------------------------------------------------------------ FP16 models
def _fp16_models(tmp_path):
    q = np.array([[-128, 127, 3, 100], [77, -77, 1, -1], [50, 60, -70, 0]], np.int8)
    s = np.float16(0.0123)
    W16 = (q.astype(np.float32) * F32(s) + F32(0.002)).astype(np.float16)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W16)], opset=19), tmp_path / "f.onnx")
    vp = save(make_model([dq("W_quantized", "W_scale", "W_zero_point", "W_dq", "W_DequantizeLinear"),
                          node("MatMul", ["X", "W_dq"], ["Y"], "mm")],
                         [arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", np.int8(0))], opset=19),
              tmp_path / "v.onnx")
    return fp, vp, q, s, W16


def test_fp16_model_float16_scale_is_read(tmp_path):
    """FP16 reference and a FLOAT16 scale: read, matched and measured against the FP16 weights."""
    fp, vp, q, s, W16 = _fp16_models(tmp_path)
    qt, d, got = read(vp, "W_quantized")
    assert np.asarray(d.scale, np.float64) == np.float64(s)
    f32_product = ref_dq(q, 0, np.float32(s))
    runtime = f32_product.astype(np.float16).astype(np.float32)  # DequantizeLinear returns float16
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), runtime)
    # within half a float16 step of the runtime's values either way
    np.testing.assert_allclose(got, runtime, rtol=2 ** -11, atol=0)
    r = row_of(analyze_rows(fp, vp), "W")
    assert r["status"] == "quantized" and r["fp32_dtype"] == "float16" and r["match_method"] == "name"
    # the float32 product (today) or the runtime's float16 values (see the xfail below)
    refs = [metrics64(W16.astype(np.float32), x)["sqnr_db"] for x in (f32_product, runtime)]
    assert any(r["sqnr_db"] == pytest.approx(x, rel=1e-9) for x in refs), (r["sqnr_db"], refs)
    assert float(r["scale"]) == float(s)


def test_fp16_scale_dequantized_like_the_runtime(tmp_path):
    fp, vp, q, s, W16 = _fp16_models(tmp_path)
    qt, d, got = read(vp, "W_quantized")
    runtime = ort_dequant(vp, "W_quantized")
    r = row_of(analyze_rows(fp, vp), "W")
    assert r["sqnr_db"] == pytest.approx(metrics64(W16.astype(np.float32), runtime)["sqnr_db"], rel=1e-9)
    np.testing.assert_array_equal(got, runtime)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_one_element_scale_with_axis_on_longer_dim_is_per_tensor(tmp_path, axis):
    """A [1] scale with an axis whose dimension is not 1: onnxruntime applies it to
    the whole tensor (per tensor), so QuantLens must read it the same way."""
    q = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]], np.int8)
    s = np.array([0.5], F32)
    z = np.array([2], np.int8)
    want = ref_dq(q, 2, s)
    W = (want + F32(0.1)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", z),
                      dq_attrs={"axis": axis})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.n_scales) == ("per_tensor", None, 1)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z, granularity="per_tensor")


@pytest.mark.parametrize("stype", [TP.FLOAT, TP.FLOAT16])
def test_scales_and_zero_points_in_typed_fields(tmp_path, stype):
    """ORT writes scales with helper.make_tensor(list): ``float_data`` for FLOAT,
    float16 bit patterns in ``int32_data`` for FLOAT16; INT4 zero points packed in
    ``int32_data``."""
    q = np.array([[-8, 7, 1], [2, -3, 4], [5, -6, 0]], np.int8)
    s = np.array([0.5, 0.0625, 0.3], F32)
    z = np.array([1, -2, 3], np.int8)
    st = listed("W_scale", stype, [3], s)
    zt = listed("W_zero_point", TP.INT4, [3], z)
    assert not st.HasField("raw_data") and len(zt.int32_data) == 2
    s_eff = s.astype(np.float16).astype(F32) if stype == TP.FLOAT16 else s
    want = ref_dq(q, z.reshape(3, 1), s_eff.reshape(3, 1))
    if stype == TP.FLOAT16:  # DequantizeLinear returns the scale's type
        want = want.astype(np.float16).astype(F32)
    W = (want + F32(0.01)).astype(F32)
    fp, vp = _mm_pair(tmp_path, W, int4_tensor("W_quantized", q, signed=True), st, zt, opset=21, dq_attrs={"axis": 0})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s_eff, zero_point=z, axis=0)
