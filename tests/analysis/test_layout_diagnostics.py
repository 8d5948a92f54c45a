"""Grid diagnostics on constructed cases: zero point outside the code type, zero and
negative scales, integer levels used, share of weights outside the grid (clipped)."""

import math

import numpy as np
import pytest
from onnx import TensorProto as TP

from builders import (
    analyze_rows, arr, assert_row, fp32_single, listed, ort_dequant, qdq_single, read, ref_dq, row_of,
)

F32 = np.float32


def _pair(tmp_path, W, q_init, s_init, z_init, **kw):
    fp = fp32_single(tmp_path / "f.onnx", "MatMul", {"W": W}, ["X", "W"], "mm")
    vp = qdq_single(tmp_path / "v.onnx", "MatMul", ["X", "W"], 1, q_init, s_init, z_init, "mm", **kw)
    return fp, vp


@pytest.mark.parametrize("ztype, z, qdtype", [(TP.INT32, 300, np.uint8), (TP.INT16, -200, np.int8),
                                              (TP.INT32, -1, np.uint8)],
                         ids=["uint8-zp300-int32", "int8-zp-200-int16", "uint8-zp-1-int32"])
def test_zero_point_outside_type_range(tmp_path, ztype, z, qdtype):
    """A zero point stored in a wider type than the codes, with a value the code type
    cannot hold (another producer's mistake): dequantized as stored, and flagged."""
    q = np.array([[0, 10, 20], [100, 5, 7]], qdtype)
    s = F32(0.1)
    want = ref_dq(q, z, s)
    W = (want + F32(0.01)).astype(F32)
    fp, vp = _pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), listed("W_zero_point", ztype, [], [z]))
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    assert any("zero point type" in n for n in qt.notes)
    r = row_of(analyze_rows(fp, vp), "W")
    assert_row(r, w=W, dq=want, q=q, scale=s, zero_point=z, zp_out_of_range=True)
    assert "zero point outside" in r["diagnostics"]


def test_zero_point_in_range_not_flagged(tmp_path):
    q = np.array([[0, 255]], np.uint8)
    fp, vp = _pair(tmp_path, np.array([[-1.0, 1.0]], F32), arr("W_quantized", q), arr("W_scale", F32(2 / 255)),
                   arr("W_zero_point", np.uint8(255)))
    r = row_of(analyze_rows(fp, vp), "W")
    assert not bool(r["zp_out_of_range"]) and r["zero_point"] == 255


def test_zero_and_negative_scales_flagged(tmp_path):
    q = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.int8)
    s = np.array([0.5, 0.0, -0.25, 0.0], F32)
    want = ref_dq(q, 0, s.reshape(1, 4))
    assert (want[:, 1] == 0).all() and (want[:, 2] < 0).all()
    W = (want + F32(0.01)).astype(F32)
    fp, vp = _pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", np.zeros(4, np.int8)),
                   dq_attrs={"axis": 1})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    r = row_of(analyze_rows(fp, vp), "W")
    assert_row(r, w=W, dq=want, q=q, scale=s, zero_point=np.zeros(4), scale_zero=2, scale_negative=1,
               scale_nonfinite=0)
    assert "2 zero scale(s)" in r["diagnostics"] and "1 negative scale(s)" in r["diagnostics"]


def test_nonfinite_scale_counted(tmp_path):
    q = np.array([[1, 2], [3, 4]], np.int8)
    s = np.array([0.5, np.inf], F32)
    fp, vp = _pair(tmp_path, np.ones((2, 2), F32), arr("W_quantized", q), arr("W_scale", s),
                   arr("W_zero_point", np.zeros(2, np.int8)), dq_attrs={"axis": 1})
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, ref_dq(q, 0, s.reshape(1, 2)))
    r = row_of(analyze_rows(fp, vp), "W")
    assert r["scale_nonfinite"] == 1 and "NaN/Inf scale" in r["diagnostics"]


def test_levels_used_exact(tmp_path):
    """uint8 codes using exactly 7 distinct levels among 24 values."""
    levels = np.array([0, 3, 17, 128, 129, 200, 255], np.uint8)
    q = levels[np.arange(24) % 7].reshape(4, 6)
    s, z = F32(0.01), 128
    want = ref_dq(q, z, s)
    W = (want + F32(0.001)).astype(F32)
    fp, vp = _pair(tmp_path, W, arr("W_quantized", q), arr("W_scale", s), arr("W_zero_point", np.uint8(z)))
    r = row_of(analyze_rows(fp, vp), "W")
    assert_row(r, w=W, dq=want, q=q, scale=s, zero_point=z, levels_used=7, levels_available=256)
    # codes at the type's limits: 0 and 255 (4 + 3 of the 24 values)
    assert r["at_limits_frac"] == pytest.approx(((q == 0).sum() + (q == 255).sum()) / 24)


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
def test_clipped_frac_exact(tmp_path, granularity):
    """Weights whose error exceeds half a step are outside the grid (clipped)."""
    if granularity == "per_tensor":
        s = np.full((1, 4), 0.1, F32)
    else:
        s = np.array([[0.1, 0.2, 0.05, 0.1]], F32)
    lim_hi = 127 * s[0].astype(np.float64)
    lim_lo = -128 * s[0].astype(np.float64)
    W = np.array([
        [0.013, -0.004, 0.0, 0.03],
        [lim_hi[0] + 7.3, lim_hi[1] + 0.03 * 0.2, lim_lo[2] - 2.2, lim_hi[3] + 0.08],   # clipped, in, clipped, clipped
        [lim_hi[0] + 0.03, lim_lo[1] - 0.04, 1.0, -0.2],                  # in, in, in, in
    ]).astype(F32)
    q = np.clip(np.rint(W.astype(np.float64) / s), -128, 127).astype(np.int8)
    want = ref_dq(q, 0, s)
    err = np.abs(W.astype(np.float64) - want.astype(np.float64))
    clipped = err > s.astype(np.float64) / 2
    assert clipped.sum() == 3 and not clipped[0].any() and not clipped[2].any()
    # the in-grid errors stay far from the half-step border
    assert (err[~clipped] < 0.45 * np.broadcast_to(s, W.shape)[~clipped]).all()
    if granularity == "per_tensor":
        s_init, z_init, attrs, sc = arr("W_scale", F32(0.1)), arr("W_zero_point", np.int8(0)), {}, F32(0.1)
    else:
        s_init, z_init, attrs, sc = arr("W_scale", s[0]), arr("W_zero_point", np.zeros(4, np.int8)), {"axis": 1}, s[0]
    fp, vp = _pair(tmp_path, W, arr("W_quantized", q), s_init, z_init, dq_attrs=attrs)
    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)  # onnxruntime agrees
    r = row_of(analyze_rows(fp, vp), "W")
    assert_row(r, w=W, dq=want, q=q, scale=sc, zero_point=np.zeros(np.size(sc)), granularity=granularity)
    assert r["clipped_frac"] == pytest.approx(3 / 12)
    assert "clipping: 25.00%" in r["diagnostics"]
    assert r["max_abs_err"] == pytest.approx(err.max(), rel=1e-9)
    assert math.isclose(float(r["max_abs_err"]), 7.3, rel_tol=1e-5)
