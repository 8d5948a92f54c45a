"""Weight-only block layouts: com.microsoft MatMulNBits (packed, transposed), its QDQ
flavour (``<B>_DQ_Q4``), and GatherBlockQuantized.

The packed bytes are produced here from the layout description: row ``n`` of B is
column ``n`` of the weight; element ``j`` of a block sits in byte ``j*bits//8``, in
the low bits for the first element of the byte.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as TP

from builders import (
    analyze_rows, arr, assert_row, dq, int4_tensor, make_model, MS, node, ort_dequant, read, ref_dq, row_of,
    save,
)

F32 = np.float32


def pack_blocks(q_kn, bits, bs, pad_code):
    """Codes ``q[K, N]`` -> MatMulNBits ``B[N, n_blocks, bs*bits//8]`` (uint8)."""
    K, N = q_kn.shape
    nb = -(-K // bs)
    per = 8 // bits
    B = np.zeros((N, nb, bs * bits // 8), np.uint8)
    for n in range(N):
        for b in range(nb):
            for j in range(bs):
                k = b * bs + j
                code = int(q_kn[k, n]) if k < K else pad_code
                B[n, b, j * bits // 8] |= code << (bits * (j % per))
    return B


def pack_zero_points(z_nb, bits, pad_code):
    """Zero points ``z[N, n_blocks]`` -> ``[N, ceil(n_blocks*bits/8)]``, each column padded."""
    N, nb = z_nb.shape
    per = 8 // bits
    Z = np.zeros((N, -(-nb * bits // 8)), np.uint8)
    for n in range(N):
        for b in range(-(-nb // per) * per):
            code = int(z_nb[n, b]) if b < nb else pad_code
            Z[n, b // per] |= code << (bits * (b % per))
    return Z


def test_pack_blocks_builder():
    """The packer itself, on a case small enough to check by hand: K=20, N=1, block 16."""
    q = np.arange(20).reshape(20, 1) % 16
    B = pack_blocks(q, 4, 16, pad_code=0)
    assert B.shape == (1, 2, 8)
    assert list(B[0, 0]) == [0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE]
    assert list(B[0, 1]) == [0x10, 0x32, 0, 0, 0, 0, 0, 0]  # rows 16..19 = codes 0..3, then padding
    assert list(pack_zero_points(np.array([[1, 2, 3]]), 4, 0xA)[0]) == [0x21, 0xA3]


def _nbits_case(tmp_path, K, N, bits, bs, sym, seed, flat_scales=False):
    rng = np.random.default_rng(seed)
    nb = -(-K // bs)
    levels = 1 << bits
    q = rng.integers(0, levels, (K, N))
    q[0, 0], q[-1, 0] = 0, levels - 1
    if sym:
        s = -rng.uniform(0.01, 0.1, (N, nb)).astype(F32)  # ORT's symmetric path: negative scales
        z = np.full((N, nb), levels // 2)
    else:
        s = rng.uniform(0.01, 0.1, (N, nb)).astype(F32)
        z = rng.integers(0, levels, (N, nb))
    blk = np.arange(K) // bs
    want = ref_dq(q, z[:, blk].T, s[:, blk].T)  # [K, N]
    # element by hand: W[k=K-1, n=N-1] uses block nb-1 of column N-1
    assert want[K - 1, N - 1] == F32(int(q[K - 1, N - 1]) - int(z[N - 1, nb - 1])) * s[N - 1, nb - 1]
    W = (want.astype(np.float64) + rng.uniform(-0.4, 0.4, (K, N)) * np.abs(s[:, blk].T)).astype(F32)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    inits = [arr(f"W_Q{bits}", pack_blocks(q, bits, bs, pad_code=levels - 1)),
             arr("W_scales", s.reshape(-1) if flat_scales else s)]
    ins = ["X", f"W_Q{bits}", "W_scales"]
    if not sym:
        inits.append(arr("W_zero_points", pack_zero_points(z, bits, pad_code=levels - 1) if bits < 8 else z.astype(np.uint8)))
        ins.append("W_zero_points")
    v = make_model([node("MatMulNBits", ins, ["Y"], f"mm_Q{bits}", domain=MS, K=K, N=N, bits=bits, block_size=bs)],
                   inits, ms=1)
    vp = save(v, tmp_path / "v.onnx")
    return fp, vp, q, s, z, want, W


@pytest.mark.parametrize("K, N, bits, bs, sym, flat", [
    (48, 3, 4, 16, False, False),   # 3 blocks: odd, zero points padded to 2 bytes per column
    (48, 3, 4, 16, False, True),    # scales stored flat [N * n_blocks]
    (64, 2, 4, 16, True, False),    # symmetric: implicit zero point 8, negative scales
    (32, 3, 8, 16, False, False),   # 8 bits: one code per byte, zero points unpacked
    (32, 2, 8, 16, True, False),    # 8 bits symmetric: implicit 128
    (40, 3, 4, 16, False, False),   # K not a multiple of the block size: padded last block
    (37, 2, 4, 32, True, False),    # 2 blocks, last with 5 real rows
    (40, 3, 2, 16, False, False),   # 2 bits: four codes per byte
])
def test_matmulnbits(tmp_path, K, N, bits, bs, sym, flat):
    fp, vp, q, s, z, want, W = _nbits_case(tmp_path, K, N, bits, bs, sym, seed=K * 10 + bits + sym, flat_scales=flat)
    nb = -(-K // bs)
    qt, d, got = read(vp, f"W_Q{bits}")
    assert qt.shape == (K, N) and got.shape == (K, N)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, f"W_Q{bits}"), want)  # onnxruntime agrees
    np.testing.assert_array_equal(np.asarray(d.q, np.int64), q)
    assert (qt.quant_op, qt.granularity, qt.axis, qt.block_size, qt.n_scales) == ("MatMulNBits", "blockwise", 0, bs, N * nb)
    assert qt.dtype == f"uint{bits}"
    r = row_of(analyze_rows(fp, vp), "W")
    assert_row(r, w=W, dq=want, q=q, scale=s, zero_point=z, match_method="name", granularity="blockwise",
               axis=0, block_size=bs, n_scales=N * nb, levels_available=1 << bits, fp32_shape=f"{K}x{N}",
               scale_negative=N * nb if sym else 0)
    assert "negative scale" not in (r["diagnostics"] or "")  # expected for MatMulNBits


def test_matmulnbits_qdq_flavour(tmp_path):
    """``W_DQ_Q4`` UINT4 [K, N], scales / zero points [n_blocks, N], DQ(axis=0, block_size)."""
    K, N, bs = 40, 3, 16
    nb = 3
    rng = np.random.default_rng(40)
    q = rng.integers(0, 16, (K, N))
    s = rng.uniform(0.01, 0.1, (nb, N)).astype(F32)
    z = rng.integers(0, 16, (nb, N))
    blk = np.arange(K) // bs
    want = ref_dq(q, z[blk], s[blk])
    W = (want + F32(0.003)).astype(F32)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model([dq("W_DQ_Q4", "W_DQ_scales", "W_DQ_zero_points", "W_DQ_Q4_output", "mm_DQ_Q4", axis=0, block_size=bs),
                    node("MatMul", ["X", "W_DQ_Q4_output"], ["Y"], "mm_matmul_Q4")],
                   [int4_tensor("W_DQ_Q4", q, signed=False), arr("W_DQ_scales", s),
                    int4_tensor("W_DQ_zero_points", z, signed=False)], opset=21)
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_DQ_Q4")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_DQ_Q4"), want)  # onnxruntime agrees
    assert (qt.dtype, qt.granularity, qt.axis, qt.block_size, qt.n_scales) == ("uint4", "blockwise", 0, bs, nb * N)
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q, scale=s, zero_point=z, match_method="name",
               granularity="blockwise", block_size=bs)


def test_matmulnbits_qdq_channel_wise_transposed(tmp_path):
    """channel_wised_quantize: INT4 stored [N, K], DQ(axis=1, block_size=K), Transpose -> MatMul."""
    K, N = 6, 3
    q_nk = np.array([[-8, 7, 1, 2, 3, 4], [0, -1, -2, -3, 5, 6], [7, 7, 7, -8, -8, 0]], np.int8)
    s = np.array([[0.5], [0.25], [-0.125]], F32)  # [N, 1]
    want = ref_dq(q_nk, 0, s).T  # FP32 layout [K, N]
    W = (want + F32(0.01)).astype(F32)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W)]), tmp_path / "f.onnx")
    v = make_model([dq("W_DQ_Q4", "W_DQ_scales", None, "W_DQ_Q4_output", "mm_DQ_Q4", axis=1, block_size=K),
                    node("Transpose", ["W_DQ_Q4_output"], ["W_T"], "mm_transpose", perm=[1, 0]),
                    node("MatMul", ["X", "W_T"], ["Y"], "mm_matmul_Q4")],
                   [int4_tensor("W_DQ_Q4", q_nk, signed=True), arr("W_DQ_scales", s)], opset=21)
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "W_DQ_Q4")
    assert qt.shape == (K, N)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_DQ_Q4"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.block_size) == ("blockwise", 0, K)
    assert qt.consumers == ["mm_matmul_Q4"]
    assert_row(row_of(analyze_rows(fp, vp), "W"), w=W, dq=want, q=q_nk, scale=s, zero_point=np.zeros(N),
               fp32_shape=f"{K}x{N}", axis=0)


@pytest.mark.parametrize("signed", [True, False])
def test_gather_block_quantized(tmp_path, signed):
    """GatherBlockQuantized: 4-bit table [V, D], blocks along quantize_axis=1."""
    V, D, bs = 4, 40, 16
    nb = 3
    rng = np.random.default_rng(41 + signed)
    q = rng.integers(-8, 8, (V, D)) if signed else rng.integers(0, 16, (V, D))
    s = rng.uniform(0.01, 0.2, (V, nb)).astype(F32)
    z = None if signed else rng.integers(0, 16, (V, nb))
    cols = np.arange(D) // bs
    want = ref_dq(q, 0 if z is None else z[:, cols], s[:, cols])
    E = (want + F32(0.004)).astype(F32)
    fp = save(make_model([node("Gather", ["E", "ids"], ["Y"], "gather")], [arr("E", E)], inputs={"ids": (TP.INT64, None)}),
              tmp_path / "f.onnx")
    ins = ["E_Q4", "ids", "E_scales"] + ([] if z is None else ["E_zero_points"])
    inits = [int4_tensor("E_Q4", q, signed), arr("E_scales", s)]
    if z is not None:
        inits.append(int4_tensor("E_zero_points", z, signed=False))
    v = make_model([node("GatherBlockQuantized", ins, ["Y"], "gather_Q4", domain=MS, gather_axis=0, quantize_axis=1,
                         block_size=bs)], inits, ms=1, inputs={"ids": (TP.INT64, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "E_Q4")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "E_Q4"), want)  # onnxruntime agrees
    assert (qt.role, qt.quant_op, qt.granularity, qt.axis, qt.block_size, qt.n_scales) == (
        "gather_table", "GatherBlockQuantized", "blockwise", 1, bs, V * nb)
    assert_row(row_of(analyze_rows(fp, vp), "E"), w=E, dq=want, q=q, scale=s,
               zero_point=np.zeros(V * nb) if z is None else z, role="gather_table",
               quant_dtype="int4" if signed else "uint4", granularity="blockwise", axis=1, block_size=bs)


def test_matmulnbits_against_3d_fp32_weight(tmp_path):
    """B may be N-D with leading 1s in the FP32 model: compared element-wise."""
    K, N, bs = 32, 2, 16
    rng = np.random.default_rng(42)
    q = rng.integers(0, 16, (K, N))
    s = rng.uniform(0.01, 0.1, (N, 2)).astype(F32)
    want = ref_dq(q, 8, s[:, np.arange(K) // bs].T)
    W3 = (want + F32(0.002)).astype(F32).reshape(1, K, N)
    fp = save(make_model([node("MatMul", ["X", "W"], ["Y"], "mm")], [arr("W", W3)]), tmp_path / "f.onnx")
    v = make_model([node("MatMulNBits", ["X", "W_Q4", "W_scales"], ["Y"], "mm_Q4", domain=MS, K=K, N=N, bits=4,
                         block_size=bs)], [arr("W_Q4", pack_blocks(q, 4, bs, 0)), arr("W_scales", s)], ms=1)
    vp = save(v, tmp_path / "v.onnx")
    np.testing.assert_array_equal(read(vp, "W_Q4")[2], want)
    r = row_of(analyze_rows(fp, vp), "W")
    assert_row(r, w=W3, dq=want, q=q, scale=s, zero_point=np.full(N * 2, 8), fp32_shape=f"1x{K}x{N}",
               match_method="name", status="quantized")
    assert "compared element-wise" in r["notes"]


def test_gather_block_quantized_quantize_axis0(tmp_path):
    """Blocks along the gathered axis (quantize_axis=0): scales [ceil(V / bs), D]."""
    V, D, bs = 40, 4, 16
    rng = np.random.default_rng(43)
    q = rng.integers(-8, 8, (V, D))
    s = rng.uniform(0.01, 0.2, (3, D)).astype(F32)
    want = ref_dq(q, 0, s[np.arange(V) // bs])
    E = (want + F32(0.004)).astype(F32)
    fp = save(make_model([node("Gather", ["E", "ids"], ["Y"], "gather")], [arr("E", E)], inputs={"ids": (TP.INT64, None)}),
              tmp_path / "f.onnx")
    v = make_model([node("GatherBlockQuantized", ["E_Q4", "ids", "E_scales"], ["Y"], "gather_Q4", domain=MS,
                         gather_axis=0, quantize_axis=0, block_size=bs)],
                   [int4_tensor("E_Q4", q, True), arr("E_scales", s)], ms=1, inputs={"ids": (TP.INT64, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "E_Q4")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "E_Q4"), want)  # onnxruntime agrees
    assert (qt.granularity, qt.axis, qt.block_size, qt.n_scales) == ("blockwise", 0, bs, 3 * D)
    assert_row(row_of(analyze_rows(fp, vp), "E"), w=E, dq=want, q=q, scale=s, zero_point=np.zeros(3 * D), axis=0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(K=st.integers(1, 80), N=st.integers(1, 4), bits=st.sampled_from([2, 4, 8]), bs=st.sampled_from([16, 32, 64]),
       sym=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_matmulnbits_property(tmp_path_factory, K, N, bits, bs, sym, seed):
    """Random K (padded last block), N, bits, block size, symmetric or not: QuantLens,
    the reference formula and onnxruntime's MatMulNBits agree exactly."""
    d = tmp_path_factory.mktemp("nbits")
    fp, vp, q, s, z, want, W = _nbits_case(d, K, N, bits, bs, sym, seed)
    qt, dec, got = read(vp, f"W_Q{bits}")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, f"W_Q{bits}"), want)
    assert (qt.shape, qt.block_size, qt.n_scales) == ((K, N), bs, N * -(-K // bs))


@pytest.mark.parametrize("bits, has_zp", [(4, True), (4, False), (8, True), (8, False), (2, False)])
def test_gather_block_quantized_packed_uint8(tmp_path, bits, has_zp):
    """GatherBlockQuantized on packed uint8 data (onnxruntime-genai's embeddings):
    ``8/bits`` codes per byte along the last axis, low bits first; zero points packed
    per row; without zero points the implicit one is 2^(bits-1)."""
    V, D, bs = 3, 48, 16
    nb = 3  # odd: the packed zero points of each row are padded
    rng = np.random.default_rng(44 + bits + has_zp)
    levels = 1 << bits
    q = rng.integers(0, levels, (V, D))
    s = rng.uniform(0.01, 0.2, (V, nb)).astype(F32)
    z = rng.integers(0, levels, (V, nb)) if has_zp else np.full((V, nb), levels // 2)
    want = ref_dq(q, z[:, np.arange(D) // bs], s[:, np.arange(D) // bs])
    E = (want + F32(0.004)).astype(F32)

    def pack_rows(codes, pad):
        per = 8 // bits
        n = -(-codes.shape[1] // per) * per
        c = np.full((codes.shape[0], n), pad)
        c[:, :codes.shape[1]] = codes
        out = np.zeros((codes.shape[0], n // per), np.uint8)
        for j in range(n):
            out[:, j // per] |= (c[:, j] << (bits * (j % per))).astype(np.uint8)
        return out

    packed = pack_rows(q, 0)
    assert packed.shape == (V, D * bits // 8)
    fp = save(make_model([node("Gather", ["E", "ids"], ["Y"], "gather")], [arr("E", E)], inputs={"ids": (TP.INT64, None)}),
              tmp_path / "f.onnx")
    ins = ["E_Q4", "ids", "E_scales"] + (["E_zero_points"] if has_zp else [])
    inits = [arr("E_Q4", packed), arr("E_scales", s)] + ([arr("E_zero_points", pack_rows(z, levels - 1))] if has_zp else [])
    v = make_model([node("GatherBlockQuantized", ins, ["Y"], "gather_Q4", domain=MS, gather_axis=0, quantize_axis=1,
                         block_size=bs, bits=bits)], inits, ms=1, inputs={"ids": (TP.INT64, None)})
    vp = save(v, tmp_path / "v.onnx")
    qt, d, got = read(vp, "E_Q4")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "E_Q4"), want)  # onnxruntime agrees
    assert (qt.shape, qt.dtype, qt.granularity, qt.axis, qt.block_size, qt.n_scales) == (
        (V, D), f"uint{bits}", "blockwise", 1, bs, V * nb)
    assert_row(row_of(analyze_rows(fp, vp), "E"), w=E, dq=want, q=q, scale=s, zero_point=z, role="gather_table",
               match_method="name", quant_dtype=f"uint{bits}", levels_available=levels, fp32_shape=f"{V}x{D}")
