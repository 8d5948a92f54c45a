"""Property test over DequantizeLinear layouts: random code type, shape, granularity,
axis, block size and storage (raw_data or typed fields).  QuantLens' decoding must
equal the reference formula computed here and onnxruntime's own DequantizeLinear."""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as TP

from builders import arr, dq, int4_tensor, listed, make_model, ort_dequant, read, ref_dq, save

F32 = np.float32
TYPES = {  # onnx type: (numpy storage, lo, hi)
    TP.INT8: (np.int8, -128, 127), TP.UINT8: (np.uint8, 0, 255), TP.INT16: (np.int16, -32768, 32767),
    TP.UINT16: (np.uint16, 0, 65535), TP.INT4: (np.int8, -8, 7), TP.UINT4: (np.uint8, 0, 15),
}


@st.composite
def layouts(draw):
    qtype = draw(st.sampled_from(sorted(TYPES)))
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    gran = draw(st.sampled_from(["per_tensor", "per_channel", "blockwise"]))
    axis = draw(st.integers(-rank, rank - 1))
    block = draw(st.integers(1, 4))
    typed_zp = draw(st.booleans())
    has_zp = draw(st.booleans())
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return qtype, shape, gran, axis, block, typed_zp, has_zp, seed


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=layouts())
def test_dequantize_linear_layouts(tmp_path_factory, case):
    qtype, shape, gran, axis, block, typed_zp, has_zp, seed = case
    rng = np.random.default_rng(seed)
    npt, lo, hi = TYPES[qtype]
    q = rng.integers(lo, hi + 1, shape).astype(npt)
    a = axis % len(shape)
    if gran == "per_tensor":
        pshape, attrs = (), {}
    elif gran == "per_channel":
        pshape, attrs = (shape[a],), {"axis": axis}
    else:
        pshape = tuple(-(-d // block) if i == a else d for i, d in enumerate(shape))
        attrs = {"axis": axis, "block_size": block}
        # onnxruntime reads any one-element 1-D scale as per tensor and then refuses a block_size
        assume(pshape != (1,))
    s = rng.uniform(-0.5, 2.0, pshape).astype(F32)
    z = rng.integers(lo, hi + 1, pshape).astype(npt)
    # reference expansion, written from the operator definition
    if gran == "per_tensor":
        s_full, z_full = s, z
    elif gran == "per_channel":
        view = [1] * len(shape)
        view[a] = shape[a]
        s_full, z_full = s.reshape(view), z.reshape(view)
    else:
        idx = np.arange(shape[a]) // block
        s_full, z_full = np.take(s, idx, axis=a), np.take(z, idx, axis=a)
    want = ref_dq(q, z_full if has_zp else 0, s_full)

    four = qtype in (TP.INT4, TP.UINT4)
    q_init = int4_tensor("W_quantized", q, signed=qtype == TP.INT4) if four else arr("W_quantized", q)
    z_init = None
    if has_zp:
        if typed_zp:
            z_init = listed("W_zero_point", qtype, list(pshape), z)
        elif four:
            z_init = int4_tensor("W_zero_point", z, signed=qtype == TP.INT4, dims=list(pshape))
        else:
            z_init = arr("W_zero_point", z)
    m = make_model([dq("W_quantized", "W_scale", "W_zero_point" if has_zp else None, "Y", "dq", **attrs)],
                   [q_init, arr("W_scale", s)] + ([z_init] if z_init is not None else []), opset=21)
    vp = save(m, tmp_path_factory.mktemp("prop") / "v.onnx")

    qt, d, got = read(vp, "W_quantized")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ort_dequant(vp, "W_quantized"), want)
    n_scales = int(np.prod(pshape)) if pshape else 1
    assert qt.granularity == gran and qt.n_scales == n_scales
    if gran != "per_tensor":
        assert qt.axis == a
    if gran == "blockwise":
        assert qt.block_size == block
