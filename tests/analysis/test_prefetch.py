"""Read-ahead of external data (analysis.tensors.prefetch, the pair's prefetcher)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

from analysis import analyze
from analysis.model import load_model
from analysis.pair import _Prefetcher

from builders import arr, make_model, node, save

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")


def _model(tmp_path, external: bool):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((64, 48)).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    m = make_model([node("MatMul", ["x", "W"], ["h"], "mm"), node("Add", ["h", "B"], ["y"], "add")],
                   [arr("W", w), arr("B", b)])
    p = save(m, tmp_path / "m.onnx", external=external, threshold=0, location="m.data")
    return load_model(p), w, b


def test_prefetch_asks_for_exactly_the_tensor_bytes(tmp_path):
    g, w, b = _model(tmp_path, external=True)
    assert g.prefetch("W") == w.size * 4 and g.prefetch("B") == b.size * 4
    assert g.prefetch("not-a-tensor") == 0


def test_prefetch_is_a_no_op_for_inline_tensors(tmp_path):
    g, _, _ = _model(tmp_path, external=False)
    assert g.prefetch("W") == 0


def test_prefetch_never_opens_a_file_outside_the_model_folder(tmp_path):
    (tmp_path / "inner").mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    g, _, _ = _model(tmp_path / "inner", external=True)
    t = g.constants["W"]
    for e in t.external_data:
        if e.key == "location":
            e.value = "../secret.bin"
    opened = []

    def hook(event, args):
        if event == "open" and args and str(args[0]).endswith("secret.bin"):
            opened.append(args[0])

    import sys
    sys.addaudithook(hook)
    assert g.prefetch("W") == 0  # refused by the same checks as a read, silently (a hint)
    assert opened == []


def test_prefetcher_reads_ahead_of_the_workers_and_stops(tmp_path):
    g, w, b = _model(tmp_path, external=True)
    asked = []

    class Spy:
        base_dir, constants = g.base_dir, g.constants

        def prefetch(self, name):
            asked.append(name)
            return g.prefetch(name)

    spy = Spy()
    ahead = _Prefetcher([[(spy, "W")], [(spy, "B")]])
    ahead.started(0)
    ahead._thread.join(5)
    ahead.stop()
    assert asked == ["W", "B"]


def test_analysis_with_external_data_unchanged_by_read_ahead(tmp_path):
    """Same tables whether the data is inline or external (read ahead)."""
    rng = np.random.default_rng(5)
    w = (rng.standard_normal((32, 16)) * 0.1).astype(np.float32)
    s = np.float32(np.abs(w).max() / 127)
    q = np.clip(np.round(w / s), -127, 127).astype(np.int8)
    fp = make_model([node("MatMul", ["x", "W"], ["y"], "mm")], [arr("W", w)])
    v = make_model([node("DequantizeLinear", ["Wq", "Ws", "Wz"], ["W_dq"], "dq"),
                    node("MatMul", ["x", "W_dq"], ["y"], "mm")],
                   [arr("Wq", q), arr("Ws", np.array(s, np.float32)), arr("Wz", np.array(0, np.int8))])
    out = {}
    for ext in (False, True):
        d = tmp_path / str(ext)
        d.mkdir()
        fpp = save(fp, d / "fp.onnx", external=ext, threshold=0, location="fp.data")
        vp = save(v, d / "v.onnx", external=ext, threshold=0, location="v.data")
        out[ext] = analyze(fpp, [vp], cache=False).layers
    dq = (q.astype(np.int64) * np.float64(s))
    mse = float(np.mean((w.astype(np.float64) - dq) ** 2))
    for ext in (False, True):
        row = out[ext][out[ext]["fp32_name"] == "W"].iloc[0]
        assert row["mse"] == pytest.approx(mse, rel=1e-9)
