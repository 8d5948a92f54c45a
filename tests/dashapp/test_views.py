"""analysis.views on the tiny hand-built models; expected values computed here with NumPy."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis import views

from tiny_models import dequantize, quantize, sqnr


def test_filters_by_role_op_variant_search_and_sqnr(tiny):
    L = tiny.layers
    assert set(views.filter_layers(L, roles=["bias"])["fp32_name"].dropna()) == {"fc1.bias", "fc3.bias"}
    gemm = views.filter_layers(L, ops=["Gemm"])
    assert set(gemm["fp32_name"].dropna()) == {"fc3.weight", "fc3.bias"}
    assert set(views.filter_layers(L, variants=["coarse"])["variant"]) == {"coarse"}
    assert set(views.filter_layers(L, search="FC2")["fp32_name"]) == {"fc2.weight"}
    low = views.filter_layers(L, sqnr_below=20)
    assert list(zip(low["variant"], low["fp32_name"])) == [("coarse", "fc2.weight")]
    only = views.filter_layers(L, only=["fc1.bias"])
    assert set(only["fp32_name"]) == {"fc1.bias"}


def test_layer_keys_follow_graph_order(tiny):
    assert views.layer_keys(tiny.layers) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc3.weight", "fc3.bias"]


def test_range_rows_use_fp32_and_dequantized_extremes(tiny, tiny_weights):
    rr = views.range_rows(tiny.layers, ["good", "partial"])
    w = tiny_weights["fc2.weight"]
    ref = rr[(rr["model"] == views.FP32_LABEL) & (rr["fp32_name"] == "fc2.weight")].iloc[0]
    assert (ref["lo"], ref["hi"]) == (float(w.min()), float(w.max()))
    s = np.float32(np.abs(w).max() / 127)
    dq = dequantize(quantize(w, s), s)
    good = rr[(rr["model"] == "good") & (rr["fp32_name"] == "fc2.weight")].iloc[0]
    assert good["lo"] == pytest.approx(float(dq.min()), abs=1e-7)
    assert good["hi"] == pytest.approx(float(dq.max()), abs=1e-7)
    assert bool(good["quantized"])
    part = rr[(rr["model"] == "partial") & (rr["fp32_name"] == "fc2.weight")].iloc[0]
    assert not part["quantized"] and part["status"] == "left_in_float"
    assert (part["lo"], part["hi"]) == (float(w.min()), float(w.max()))


def test_sqnr_rows_match_numpy(tiny, tiny_weights):
    sr = views.sqnr_rows(tiny.layers, ["coarse"])
    w = tiny_weights["fc2.weight"]
    s = np.float32(np.abs(w).max() / 2)
    expected = sqnr(w, dequantize(quantize(w, s), s))
    got = sr.loc[sr["fp32_name"] == "fc2.weight", "sqnr_db"].item()
    assert got == pytest.approx(expected, abs=1e-3)


def test_summary_coverage_and_worst(tiny):
    rows = {r["variant"]: r for r in views.summary(tiny.layers, ["good", "coarse", "partial"])}
    assert rows["good"]["coverage"] == 1.0
    assert rows["partial"]["quantized"] == 1 and rows["partial"]["tensors"] == 5
    assert rows["coarse"]["worst_layer"] == "fc2.weight"
    # partial keeps 4 tensors in float: bytes = int8 codes of fc1.weight + fp32 of the rest
    n = {k: int(np.prod(v)) for k, v in {"fc1.weight": (8, 16), "fc1.bias": (16,), "fc2.weight": (16, 4),
                                          "fc3.weight": (4, 4), "fc3.bias": (4,)}.items()}
    assert rows["partial"]["fp32_bytes"] == 4 * sum(n.values())
    assert rows["partial"]["variant_bytes"] == n["fc1.weight"] + 4 * (sum(n.values()) - n["fc1.weight"])
    ref = views.reference_summary(tiny.layers)
    assert ref == {"tensors": 5, "weights": 3, "nodes": 4, "fp32_bytes": 4 * sum(n.values())}


def test_match_report_flags_an_unrelated_model(tiny):
    m = views.match_report(tiny.layers, tiny.variants)
    assert not m["good"]["suspicious"] and m["good"]["fraction"] == 1.0
    assert not m["partial"]["suspicious"]           # floats found by name count as matched
    assert m["other"]["suspicious"] and m["other"]["matched"] == 0
    assert m["other"]["unmatched_quant"] == 5


def test_nodes_to_exclude_lists_exactly_the_low_sqnr_weights(tiny):
    assert views.nodes_to_exclude(tiny.layers, 20) == ["fc2"]
    assert views.nodes_to_exclude(tiny.layers, 45) == ["fc1", "fc2"]   # good fc1.weight is 44.0 dB
    assert views.nodes_to_exclude(tiny.layers, 5) == []
    # biases never count, whatever their SQNR
    assert "fc1_add" not in views.nodes_to_exclude(tiny.layers, 1000)


def test_next_steps_put_the_worst_first_with_suggestions(tiny):
    ns = views.next_steps(tiny.layers, n=3)
    assert ns.iloc[0]["fp32_name"] == "fc2.weight" and ns.iloc[0]["variant"] == "coarse"
    assert any("nodes_to_exclude" in s for s in ns.iloc[0]["suggestions"])
    assert any("per-channel" in s for s in ns.iloc[0]["suggestions"])


def test_callouts_give_the_reason(tiny):
    c = views.callouts(tiny.layers, "fc2.weight")
    by = {x["variant"]: x for x in c}
    assert by["partial"]["status"] == "left_in_float" and "left in float" in by["partial"]["reason"]
    assert by["other"]["status"] == "not_matched" and "not matched" in by["other"]["reason"]
    assert "good" not in by
    assert views.callouts(tiny.layers, "fc1.bias")[0]["status"] == "op_not_quantized"


def test_grid_limits_per_tensor_and_per_channel(tiny, tiny_weights):
    lim = views.grid_limits(tiny.layers, tiny.channels, "fc1.weight", ["good", "coarse"]).set_index("variant")
    w = tiny_weights["fc1.weight"]
    s = float(np.float32(np.abs(w).max() / 127))
    assert lim.loc["good", "lo"] == pytest.approx(-128 * s) and lim.loc["good", "hi"] == pytest.approx(127 * s)
    assert lim.loc["good", "basis"] == "per-tensor grid"
    sc = (np.abs(w).max(axis=0) / 127).astype(np.float32)
    assert lim.loc["coarse", "lo"] == pytest.approx(-128 * float(sc.max()), rel=1e-6)
    assert lim.loc["coarse", "hi"] == pytest.approx(127 * float(sc.max()), rel=1e-6)
    assert lim.loc["coarse", "basis"] == "widest channel grid"


def test_progress_fraction_spans_all_variants():
    labels = ["a", "b"]
    assert views.progress_fraction(labels, "a", 0, 10) == 0
    assert views.progress_fraction(labels, "a", 10, 10) == 0.5
    assert views.progress_fraction(labels, "b", 5, 10) == 0.75
    assert views.progress_fraction(labels, "b", 10, 10) == 1.0


def test_filter_options(tiny):
    o = views.filter_options(tiny.layers)
    assert o["ops"] == ["Add", "Gemm", "MatMul"]
    assert o["roles"] == ["weight", "bias"]


@pytest.mark.parametrize("fn", [
    lambda L, a: views.filter_layers(L, ops=["MatMul"], search="fc", sqnr_below=50),
    lambda L, a: views.range_rows(L, a.variants),
    lambda L, a: views.sqnr_rows(L, a.variants),
    lambda L, a: views.summary(L, a.variants),
    lambda L, a: views.match_report(L, a.variants),
    lambda L, a: views.next_steps(L),
    lambda L, a: views.nodes_to_exclude(L, 30),
    lambda L, a: views.callouts(L, "fc2.weight"),
    lambda L, a: views.grid_limits(L, a.channels, "fc1.weight", a.variants),
])
def test_views_never_mutate_their_input(tiny, fn):
    before = tiny.layers.copy(deep=True)
    ch_before = tiny.channels.copy(deep=True)
    fn(tiny.layers, tiny)
    pd.testing.assert_frame_equal(tiny.layers, before)
    pd.testing.assert_frame_equal(tiny.channels, ch_before)


def test_empty_inputs_do_not_raise(tiny):
    empty = tiny.layers.iloc[0:0]
    assert views.layer_keys(empty) == []
    assert views.range_rows(empty, ["good"]).empty
    assert views.sqnr_rows(empty, ["good"]).empty
    assert views.nodes_to_exclude(empty, 30) == []
    assert views.next_steps(empty).empty
    assert math.isnan(views.summary(empty, ["good"])[0]["median_sqnr_db"])
