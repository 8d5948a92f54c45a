"""Reading tensor payloads: prefetching a memory-mapped tensor."""

import numpy as np

from builders import arr, make_model, node, save

from analysis.model import load_model
from analysis.tensors import prefetch


def test_prefetch_acts_on_mapped_tensors_only_and_keeps_values(tmp_path):
    w = np.arange(64 * 1024, dtype=np.float32).reshape(256, 256) / 7
    m = make_model([node("MatMul", ["x", "W"], ["y"], "mm")], [arr("W", w)])
    mg = load_model(save(m, tmp_path / "m.onnx", external=True, location="m.data"))
    mapped = mg.array("W")
    assert not mapped.flags.writeable  # memory-mapped, read-only
    assert prefetch(mapped) is True
    assert prefetch(mapped.reshape(-1)[10:20]) is True  # a view still reaches the mapping
    np.testing.assert_array_equal(mapped, w)

    inline = load_model(save(m, tmp_path / "inline.onnx")).array("W")
    assert prefetch(np.array(inline)) is False
    assert prefetch(w) is False
