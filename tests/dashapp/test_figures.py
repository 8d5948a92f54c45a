"""analysis.figures: assert on fig.data / fig.layout against values computed with NumPy."""

import numpy as np
import pandas as pd
import pytest

from analysis import figures, views

from tiny_models import dequantize, quantize


def _bars_for(fig, model_prefix):
    return [t for t in fig.data if t.type == "bar" and t.name.startswith(model_prefix)]


def test_range_chart_bar_spans_exactly_the_fp32_min_max(tiny, tiny_weights):
    fig = figures.layer_range_chart(tiny.layers, variants=["good", "partial"])
    (fp32,) = _bars_for(fig, "FP32")
    assert fp32.orientation == "h"
    keys = list(fp32.y)
    assert keys == views.layer_keys(tiny.layers)
    for name, w in tiny_weights.items():
        i = keys.index(name)
        assert fp32.base[i] == float(w.min())
        assert fp32.base[i] + fp32.x[i] == pytest.approx(float(w.max()), abs=1e-12)
        assert fp32.customdata[i][0] == name          # the layer key travels with every bar


def test_range_chart_variant_bars_and_float_layers(tiny, tiny_weights):
    fig = figures.layer_range_chart(tiny.layers, variants=["good", "partial"])
    (good,) = _bars_for(fig, "good")
    w = tiny_weights["fc3.weight"]
    s = np.float32(np.abs(w).max() / 127)
    dq = dequantize(quantize(w, s), s)
    i = list(good.y).index("fc3.weight")
    assert good.base[i] == pytest.approx(float(dq.min()), abs=1e-7)
    assert good.base[i] + good.x[i] == pytest.approx(float(dq.max()), abs=1e-7)
    names = [t.name for t in fig.data]
    assert "partial (quantized)" in names and "partial (no parameters)" in names
    (flt,) = [t for t in fig.data if t.name == "partial (no parameters)"]
    assert set(flt.y) == {"fc1.bias", "fc2.weight", "fc3.weight", "fc3.bias"}
    assert flt.marker.pattern.shape == "/"
    # one column per model, sharing the x range
    assert fig.layout.xaxis2.matches == "x" and fig.layout.xaxis3.matches == "x"
    assert [a.text for a in fig.layout.annotations][:3] == ["FP32", "good", "partial"]


def test_range_chart_colours_by_magnitude_with_viridis(tiny, tiny_weights):
    fig = figures.layer_range_chart(tiny.layers, variants=["good"])
    (fp32,) = _bars_for(fig, "FP32")
    assert fp32.marker.colorscale[0][1].lower() == "#440154"      # Viridis starts dark purple
    keys = list(fp32.y)
    i = keys.index("fc2.weight")
    w = tiny_weights["fc2.weight"]
    assert fp32.marker.color[i] == pytest.approx(np.log10(np.abs(w).max()))


def test_range_chart_height_grows_with_layers_and_marks_selection(tiny):
    one = figures.layer_range_chart(views.filter_layers(tiny.layers, search="fc1"), variants=["good"])
    all_ = figures.layer_range_chart(tiny.layers, variants=["good"])
    assert all_.layout.height >= one.layout.height
    sel = figures.layer_range_chart(tiny.layers, variants=["good"], selected="fc2.weight",
                                    highlighted=["fc1.weight"])
    (band,) = sel.layout.shapes
    assert (band.y0, band.y1) == (1.5, 2.5)          # fc2.weight is the third row
    (fp32,) = _bars_for(sel, "FP32")
    assert list(fp32.selectedpoints) == [0]


def test_range_chart_escapes_model_strings(tiny):
    L = tiny.layers.assign(fp32_name=tiny.layers["fp32_name"].replace("fc2.weight", "<b>x</b>"))
    fig = figures.layer_range_chart(L, variants=["good"])
    assert "&lt;b&gt;x&lt;/b&gt;" in fig.layout.yaxis.ticktext
    (fp32,) = _bars_for(fig, "FP32")
    i = list(fp32.y).index("<b>x</b>")
    assert fp32.customdata[i][0] == "<b>x</b>" and fp32.customdata[i][1] == "&lt;b&gt;x&lt;/b&gt;"


def test_sqnr_chart_one_trace_per_variant_with_threshold(tiny):
    fig = figures.sqnr_chart(tiny.layers, variants=["good", "coarse"], threshold=20)
    assert [t.name for t in fig.data] == ["good", "coarse"]
    coarse = fig.data[1]
    i = list(coarse.x).index("fc2.weight")
    expected = tiny.layers.query("variant == 'coarse' and fp32_name == 'fc2.weight'")["sqnr_db"].item()
    assert coarse.y[i] == pytest.approx(expected)
    assert coarse.customdata[i][0] == "fc2.weight"
    assert any(s.y0 == 20 for s in fig.layout.shapes)


def test_sqnr_chart_draws_exact_tensors_at_the_top():
    L = pd.DataFrame({"variant": ["v", "v"], "fp32_name": ["a", "b"], "layer": ["na", "nb"], "order": [0, 1],
                      "role": ["weight", "weight"], "status": ["quantized", "quantized"],
                      "sqnr_db": [40.0, np.inf], "consumer_ops": ["MatMul", "MatMul"]})
    fig = figures.sqnr_chart(L, variants=["v"])
    (t,) = fig.data
    assert t.y[1] == 45.0 and t.marker.symbol[1] == "triangle-up" and "exact" in t.customdata[1][3]


def test_histograms_of_fp32_and_variants_share_identical_edges(tiny):
    fig = figures.value_histogram_chart(tiny.histograms, "fc1.weight", variants=["good", "coarse"])
    fp32 = [t for t in fig.data if t.name == "FP32"]
    good = [t for t in fig.data if t.name == "good (dequantized)"][0]
    ref = fp32[0]
    left_ref = np.asarray(ref.customdata)[:, 0].astype(float)
    right_ref = np.asarray(ref.customdata)[:, 1].astype(float)
    left_g = np.asarray(good.customdata)[:, 0].astype(float)
    right_g = np.asarray(good.customdata)[:, 1].astype(float)
    # every bin the variant shares with FP32 has exactly the same edges
    common = np.intersect1d(left_ref, left_g)
    assert common.size >= 32
    for x in common:
        assert right_ref[left_ref == x][0] == right_g[left_g == x][0]
    # and the bars are drawn at centre with width = right - left
    assert np.allclose(ref.x, (left_ref + right_ref) / 2) and np.allclose(ref.width, right_ref - left_ref)
    assert np.allclose(np.diff(left_ref), right_ref[0] - left_ref[0])
    # counts add up to the number of weights
    assert sum(ref.y) == 8 * 16 and sum(good.y) == 8 * 16


def test_histogram_draws_clip_limits_and_log_axis(tiny):
    lim = views.grid_limits(tiny.layers, tiny.channels, "fc2.weight", ["good", "coarse"])
    fig = figures.value_histogram_chart(tiny.histograms, "fc2.weight", variants=["good", "coarse"], limits=lim,
                                        log=True)
    good = lim[lim["variant"] == "good"]
    xs = sorted(s.x0 for s in fig.layout.shapes)
    # good's grid ends at the weights' extremes: drawn; coarse's is 64x wider: left to the table
    assert xs == pytest.approx(sorted([good["lo"].item(), good["hi"].item()]))
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"


def test_code_histogram_counts_the_codes(tiny, tiny_weights):
    fig = figures.code_histogram_chart(tiny.histograms, "fc2.weight", variants=["coarse"])
    (t,) = fig.data
    w = tiny_weights["fc2.weight"]
    q = quantize(w, np.float32(np.abs(w).max() / 2))
    counts = dict(zip(np.asarray(t.customdata)[:, 0].astype(int), t.y))
    for code in np.unique(q):
        assert counts[int(code)] == int((q == code).sum())


def test_channel_chart_only_for_per_channel_tensors(tiny, tiny_weights):
    fig = figures.channel_chart(tiny.channels, "fc1.weight", variants=["good", "coarse"])
    (fp32,) = [t for t in fig.data if t.name == "FP32 range"]
    w = tiny_weights["fc1.weight"]
    assert np.allclose(fp32.base, w.min(axis=0)) and np.allclose(np.asarray(fp32.base) + fp32.y, w.max(axis=0))
    scale = [t for t in fig.data if t.name == "coarse scale"][0]
    assert np.allclose(scale.y, (np.abs(w).max(axis=0) / 127).astype(np.float32))
    empty = figures.channel_chart(tiny.channels, "fc2.weight", variants=["good"])
    assert len(empty.data) == 0 and "No per-channel" in empty.layout.annotations[0].text


def test_builders_never_mutate_inputs(tiny):
    before = [tiny.layers.copy(deep=True), tiny.histograms.copy(deep=True), tiny.channels.copy(deep=True)]
    figures.layer_range_chart(tiny.layers, variants=tiny.variants, selected="fc1.weight")
    figures.sqnr_chart(tiny.layers, variants=tiny.variants, threshold=30)
    figures.value_histogram_chart(tiny.histograms, "fc1.weight", variants=tiny.variants)
    figures.code_histogram_chart(tiny.histograms, "fc1.weight", variants=tiny.variants)
    figures.channel_chart(tiny.channels, "fc1.weight", variants=tiny.variants)
    for a, b in zip([tiny.layers, tiny.histograms, tiny.channels], before):
        pd.testing.assert_frame_equal(a, b)


def test_empty_states(tiny):
    none = tiny.layers.iloc[0:0]
    assert "No layers" in figures.layer_range_chart(none, variants=["good"]).layout.annotations[0].text
    assert "No quantized" in figures.sqnr_chart(none, variants=["good"]).layout.annotations[0].text
    assert "No histogram" in figures.value_histogram_chart(tiny.histograms, "nope", variants=["good"]).layout.annotations[0].text
    assert figures.shorten("a" * 50, 11) == "aaaaa\u2026aaaaa"
