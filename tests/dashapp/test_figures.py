"""analysis.figures: assert on the figure specs (data / layout dicts) against values computed
with NumPy on the tiny models' weights."""

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.io.json import to_json_plotly

from analysis import figures, views
from dashapp.state import points_keys

from tiny_models import dequantize, quantize

arr = figures.decode_array


def _bars_for(fig, model_prefix):
    return [t for t in fig["data"] if t["type"] == "bar" and t["name"].startswith(model_prefix)]


def _keys(trace):
    """Layer keys of a trace's points, as the selection hub reads them from a click."""
    return points_keys({"points": [{"customdata": cd} for cd in trace["customdata"]]})


def _page_keys(fig):
    """Row labels of the range chart: row ``y`` of the page is ``ticktext[y]``."""
    return fig["layout"]["yaxis"]["ticktext"]


def test_range_chart_bar_spans_exactly_the_fp32_min_max(tiny, tiny_weights):
    fig = figures.layer_range_chart(tiny.layers, variants=["good", "partial"])
    (fp32,) = _bars_for(fig, "FP32")
    assert fp32["orientation"] == "h"
    keys = [k for k in points_keys({"points": [{"customdata": c} for c in fp32["customdata"]]})]
    assert keys == views.layer_keys(tiny.layers)
    y, base, width = arr(fp32["y"]), arr(fp32["base"]), arr(fp32["x"])
    assert list(y) == list(range(len(keys)))           # row i of the page, top to bottom
    for name, w in tiny_weights.items():
        i = keys.index(name)
        assert base[i] == float(w.min())
        assert base[i] + width[i] == pytest.approx(float(w.max()), abs=1e-12)
    # the spec is plain JSON and plotly's own object model accepts it
    json.loads(to_json_plotly(fig))
    assert go.Figure(fig).data[0].orientation == "h"


def test_range_chart_variant_bars_and_float_layers(tiny, tiny_weights):
    fig = figures.layer_range_chart(tiny.layers, variants=["good", "partial"])
    (good,) = _bars_for(fig, "good (quantized)")
    w = tiny_weights["fc3.weight"]
    s = np.float32(np.abs(w).max() / 127)
    dq = dequantize(quantize(w, s), s)
    i = _keys(good).index("fc3.weight")
    base, width = arr(good["base"]), arr(good["x"])
    assert base[i] == pytest.approx(float(dq.min()), abs=1e-7)
    assert base[i] + width[i] == pytest.approx(float(dq.max()), abs=1e-7)
    # one trace per status: the status is the trace name, shown in the hover
    names = [t["name"] for t in fig["data"]]
    assert "partial (quantized)" in names
    no_params = [t for t in fig["data"] if t["name"].startswith("partial (") and t["name"] != "partial (quantized)"]
    L = tiny.layers
    expected = L[(L.variant == "partial") & (L.status != "quantized")]
    assert {t["name"] for t in no_params} == {f"partial ({s.replace('_', ' ')})" for s in expected.status}
    assert set(sum((_keys(t) for t in no_params), [])) == {"fc1.bias", "fc2.weight", "fc3.weight", "fc3.bias"}
    assert all(t["marker"]["pattern"]["shape"] == "/" for t in no_params)
    # one column per model, sharing the x range; rows shared too
    lay = fig["layout"]
    assert lay["xaxis2"]["matches"] == "x" and lay["xaxis3"]["matches"] == "x"
    assert lay["yaxis2"]["matches"] == "y" and "ticktext" not in lay["yaxis2"]    # names only once
    assert [a["text"] for a in lay["annotations"]][:3] == ["FP32", "good", "partial"]
    d1, d2 = lay["xaxis"]["domain"], lay["xaxis2"]["domain"]
    assert d1[0] == 0 and lay["xaxis3"]["domain"][1] == pytest.approx(1) and d1[1] < d2[0]
    # no string travels twice per bar: one customdata key per point
    assert all(isinstance(c, str) for t in fig["data"] for c in t["customdata"])


def test_range_chart_colours_by_magnitude_with_viridis(tiny, tiny_weights):
    fig = figures.layer_range_chart(tiny.layers, variants=["good"])
    (fp32,) = _bars_for(fig, "FP32")
    assert fp32["marker"]["colorscale"][0][1].lower() == "#440154"      # Viridis starts dark purple
    assert fp32["marker"]["colorscale"][-1][1].lower() == "#fde725"     # and ends yellow
    i = _keys(fp32).index("fc2.weight")
    w = tiny_weights["fc2.weight"]
    assert arr(fp32["marker"]["color"])[i] == pytest.approx(np.log10(np.abs(w).max()), rel=1e-6)
    # the scale spans every bar's log10 max|w|
    mags = [np.log10(np.abs(a).max()) for a in tiny_weights.values()]
    assert fp32["marker"]["cmin"] <= min(mags) + 1e-6 and fp32["marker"]["cmax"] >= max(mags) - 1e-6


def test_range_chart_height_grows_with_layers_and_marks_selection(tiny):
    one = figures.layer_range_chart(views.filter_layers(tiny.layers, search="fc1"), variants=["good"])
    all_ = figures.layer_range_chart(tiny.layers, variants=["good"])
    assert all_["layout"]["height"] >= one["layout"]["height"]
    sel = figures.layer_range_chart(tiny.layers, variants=["good"], selected="fc2.weight",
                                    highlighted=["fc1.weight"])
    (band,) = sel["layout"]["shapes"]
    assert (band["y0"], band["y1"]) == (1.5, 2.5)          # fc2.weight is the third row
    (fp32,) = _bars_for(sel, "FP32")
    assert list(fp32["selectedpoints"]) == [0]
    assert "selectedpoints" not in all_["data"][0] and all_["layout"]["shapes"] == []


def test_range_chart_pages(tiny):
    keys = views.layer_keys(tiny.layers)          # 5 layers, 2 a page: 3 pages
    p1 = figures.layer_range_chart(tiny.layers, variants=["good"], page=1, page_size=2)
    assert _page_keys(p1) == keys[2:4]
    (fp32,) = _bars_for(p1, "FP32")
    assert _keys(fp32) == keys[2:4] and list(arr(fp32["y"])) == [0, 1]
    assert p1["layout"]["meta"]["label"] == "layers 3-4 of 5"
    assert p1["layout"]["height"] == max(260, 110 + figures.ROW_PX * 2)
    last = figures.layer_range_chart(tiny.layers, variants=["good"], page=99, page_size=2)
    assert _page_keys(last) == keys[4:] and last["layout"]["meta"]["page"] == 2      # clamped
    # page None: the page of the selected layer, with its band
    follow = figures.layer_range_chart(tiny.layers, variants=["good"], page=None, page_size=2, selected=keys[3])
    assert follow["layout"]["meta"]["page"] == 1
    (band,) = follow["layout"]["shapes"]
    assert (band["y0"], band["y1"]) == (0.5, 1.5)
    # a layer of another page gets no band on this one
    assert figures.layer_range_chart(tiny.layers, variants=["good"], page=0, page_size=2,
                                     selected=keys[3])["layout"]["shapes"] == []
    # colours compare across pages: every page has the scale of the whole model
    p0 = figures.layer_range_chart(tiny.layers, variants=["good"], page=0, page_size=2)
    m0, m1 = _bars_for(p0, "FP32")[0]["marker"], fp32["marker"]
    assert (m0["cmin"], m0["cmax"]) == (m1["cmin"], m1["cmax"])
    assert figures.range_page(2000, 1, 150)["label"] == "layers 151-300 of 2,000"
    assert figures.range_page(0, 3, 150)["pages"] == 1


def test_range_chart_escapes_model_strings(tiny):
    L = tiny.layers.assign(fp32_name=tiny.layers["fp32_name"].replace("fc2.weight", "<b>x&y</b>"))
    fig = figures.layer_range_chart(L, variants=["good"])
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in fig["layout"]["yaxis"]["ticktext"]
    (fp32,) = _bars_for(fig, "FP32")
    assert "&lt;b&gt;x&amp;y&lt;/b&gt;" in fp32["customdata"]          # the hover shows the text, inert
    assert "<b>x&y</b>" in _keys(fp32)                                  # and the click names the raw key
    assert not any("<b>" in c for t in fig["data"] for c in t["customdata"] + t["hovertext"])


def test_sqnr_chart_one_trace_per_variant_with_threshold(tiny):
    fig = figures.sqnr_chart(tiny.layers, variants=["good", "coarse"], threshold=20)
    assert [t["name"] for t in fig["data"]] == ["good", "coarse"]
    coarse = fig["data"][1]
    keys = [k for k in views.layer_keys(tiny.layers)]
    i = _keys(coarse).index("fc2.weight")
    assert arr(coarse["x"])[i] == keys.index("fc2.weight")           # x = position in graph order
    expected = tiny.layers.query("variant == 'coarse' and fp32_name == 'fc2.weight'")["sqnr_db"].item()
    assert arr(coarse["y"])[i] == pytest.approx(expected, rel=1e-6)
    assert any(s["y0"] == 20 for s in fig["layout"]["shapes"])
    assert fig["layout"]["xaxis"]["ticktext"][keys.index("fc2.weight")] == "fc2.weight"


def test_sqnr_chart_draws_exact_tensors_at_the_top():
    L = pd.DataFrame({"variant": ["v", "v"], "fp32_name": ["a", "b"], "layer": ["na", "nb"], "order": [0, 1],
                      "role": ["weight", "weight"], "status": ["quantized", "quantized"],
                      "sqnr_db": [40.0, np.inf], "consumer_ops": ["MatMul", "MatMul"]})
    fig = figures.sqnr_chart(L, variants=["v"])
    finite, exact = fig["data"]
    assert _keys(finite) == ["a"] and _keys(exact) == ["b"]
    assert arr(exact["y"])[0] == 45.0 and exact["marker"]["symbol"] == "triangle-up"
    assert "exact" in exact["hovertemplate"] and exact["legendgroup"] == finite["legendgroup"] == "v"
    assert exact["showlegend"] is False


def test_sqnr_chart_at_many_layers_has_no_tick_names_and_a_range_slider():
    n = 300
    L = pd.DataFrame({"variant": "v", "fp32_name": [f"w{i}" for i in range(n)], "layer": "x", "order": range(n),
                      "role": "weight", "status": "quantized", "sqnr_db": np.linspace(10, 50, n),
                      "consumer_ops": "MatMul"})
    fig = figures.sqnr_chart(L, variants=["v"], selected="w150")
    xa = fig["layout"]["xaxis"]
    assert "ticktext" not in xa and xa["rangeslider"]["visible"] and fig["data"][0]["mode"] == "markers"
    (line,) = fig["layout"]["shapes"]
    assert line["x0"] == line["x1"] == 150
    assert len(to_json_plotly(fig)) < 30 * n          # ~ one key string and two numbers a point


def test_selection_update_moves_only_the_selection(tiny):
    base = figures.sqnr_chart(tiny.layers, variants=["good", "coarse"], threshold=20)
    keys = views.layer_keys(tiny.layers)
    upd = figures.selection_update(base, "fc3.weight", ["fc1.weight", "fc3.bias"])
    threshold, line = upd["shapes"]
    assert threshold == base["layout"]["shapes"][0] and line["x0"] == keys.index("fc3.weight")
    for tr, sp in zip(base["data"], upd["selectedpoints"]):
        assert sorted(_keys(tr)[i] for i in sp) == sorted({"fc1.weight", "fc3.bias"} & set(_keys(tr)))
    again = figures.with_selection(figures.with_selection(base, "fc3.weight", None), None, None)
    assert again == base and "selectedpoints" not in again["data"][0]       # a copy; base untouched
    assert len(base["layout"]["shapes"]) == 1


def test_histograms_of_fp32_and_variants_share_identical_edges(tiny):
    fig = figures.value_histogram_chart(tiny.histograms, "fc1.weight", variants=["good", "coarse"])
    ref = [t for t in fig["data"] if t["name"] == "FP32"][0]
    good = [t for t in fig["data"] if t["name"] == "good (dequantized)"][0]
    left_ref = np.asarray(ref["customdata"])[:, 0].astype(float)
    right_ref = np.asarray(ref["customdata"])[:, 1].astype(float)
    left_g = np.asarray(good["customdata"])[:, 0].astype(float)
    right_g = np.asarray(good["customdata"])[:, 1].astype(float)
    # every bin the variant shares with FP32 has exactly the same edges
    common = np.intersect1d(left_ref, left_g)
    assert common.size >= 32
    for x in common:
        assert right_ref[left_ref == x][0] == right_g[left_g == x][0]
    # and the bars are drawn at centre with width = right - left
    assert np.allclose(arr(ref["x"]), (left_ref + right_ref) / 2)
    assert np.allclose(arr(ref["width"]), right_ref - left_ref)
    assert np.allclose(np.diff(left_ref), right_ref[0] - left_ref[0])
    # counts add up to the number of weights
    assert arr(ref["y"]).sum() == 8 * 16 and arr(good["y"]).sum() == 8 * 16
    # one panel per variant, stacked, sharing x
    lay = fig["layout"]
    assert good["xaxis"] == "x" and lay["xaxis2"]["matches"] == "x"
    assert lay["yaxis"]["domain"][0] > lay["yaxis2"]["domain"][1]
    assert [a["text"] for a in lay["annotations"]] == ["good", "coarse"]


def test_histogram_draws_clip_limits_and_log_axis(tiny):
    lim = views.grid_limits(tiny.layers, tiny.channels, "fc2.weight", ["good", "coarse"])
    fig = figures.value_histogram_chart(tiny.histograms, "fc2.weight", variants=["good", "coarse"], limits=lim,
                                        log=True)
    good = lim[lim["variant"] == "good"]
    xs = sorted(s["x0"] for s in fig["layout"]["shapes"])
    # good's grid ends at the weights' extremes: drawn; coarse's is 64x wider: left to the table
    assert xs == pytest.approx(sorted([good["lo"].item(), good["hi"].item()]))
    assert {s["xref"] for s in fig["layout"]["shapes"]} == {"x"}            # in good's panel
    assert fig["layout"]["yaxis"]["type"] == "log" and fig["layout"]["yaxis2"]["type"] == "log"
    lin = figures.set_log_axes(fig, False)
    assert lin["layout"]["yaxis2"]["type"] == "linear" and fig["layout"]["yaxis2"]["type"] == "log"


def test_code_histogram_counts_the_codes(tiny, tiny_weights):
    fig = figures.code_histogram_chart(tiny.histograms, "fc2.weight", variants=["coarse"])
    (t,) = fig["data"]
    w = tiny_weights["fc2.weight"]
    q = quantize(w, np.float32(np.abs(w).max() / 2))
    counts = dict(zip(np.asarray(t["customdata"])[:, 0].astype(int), arr(t["y"])))
    for code in np.unique(q):
        assert counts[int(code)] == int((q == code).sum())


def test_channel_chart_only_for_per_channel_tensors(tiny, tiny_weights):
    fig = figures.channel_chart(tiny.channels, "fc1.weight", variants=["good", "coarse"])
    (fp32,) = [t for t in fig["data"] if t["name"] == "FP32 range"]
    w = tiny_weights["fc1.weight"]
    assert np.allclose(arr(fp32["base"]), w.min(axis=0)) and np.allclose(arr(fp32["base"]) + arr(fp32["y"]),
                                                                         w.max(axis=0))
    scale = [t for t in fig["data"] if t["name"] == "coarse scale"][0]
    assert np.allclose(arr(scale["y"]), (np.abs(w).max(axis=0) / 127).astype(np.float32))
    assert scale["yaxis"] == "y2" and fig["layout"]["xaxis"]["matches"] == "x2"
    empty = figures.channel_chart(tiny.channels, "fc2.weight", variants=["good"])
    assert len(empty["data"]) == 0 and "No per-channel" in empty["layout"]["annotations"][0]["text"]


def test_channel_chart_keeps_the_band_above_its_top_panel_for_the_legend(tiny):
    """The legend row sits just above the top panel: no panel title may be drawn there
    (a title there was hidden behind the legend entries)."""
    fig = figures.channel_chart(tiny.channels, "fc1.weight", variants=["good", "coarse"])
    lay = fig["layout"]
    top = lay["yaxis"]["domain"][1]
    assert lay["legend"]["y"] >= top and lay["legend"]["yanchor"] == "bottom"
    assert not [a["text"] for a in lay.get("annotations", []) if a["y"] >= top]
    assert lay["yaxis"]["title"]["text"] == "range"
    assert [a["text"] for a in lay["annotations"]] == ["scale per channel"]


def test_builders_never_mutate_inputs(tiny):
    before = [tiny.layers.copy(deep=True), tiny.histograms.copy(deep=True), tiny.channels.copy(deep=True)]
    figures.layer_range_chart(tiny.layers, variants=tiny.variants, selected="fc1.weight")
    figures.layer_range_chart(tiny.layers, variants=tiny.variants, selected="fc1.weight", page=1, page_size=2)
    figures.sqnr_chart(tiny.layers, variants=tiny.variants, threshold=30)
    figures.value_histogram_chart(tiny.histograms, "fc1.weight", variants=tiny.variants)
    figures.code_histogram_chart(tiny.histograms, "fc1.weight", variants=tiny.variants)
    figures.channel_chart(tiny.channels, "fc1.weight", variants=tiny.variants)
    for a, b in zip([tiny.layers, tiny.histograms, tiny.channels], before):
        pd.testing.assert_frame_equal(a, b)


def test_empty_states(tiny):
    none = tiny.layers.iloc[0:0]
    text = lambda f: f["layout"]["annotations"][0]["text"]  # noqa: E731
    assert "No layers" in text(figures.layer_range_chart(none, variants=["good"]))
    assert "No quantized" in text(figures.sqnr_chart(none, variants=["good"]))
    assert "No histogram" in text(figures.value_histogram_chart(tiny.histograms, "nope", variants=["good"]))
    assert figures.shorten("a" * 50, 11) == "aaaaa\u2026aaaaa"


def test_charts_draw_the_rows_views_define(tiny):
    """The builders group rows themselves (fast at 2,000 layers): the same bars and points as
    views.range_rows / views.sqnr_rows, on every variant including the unrelated one."""
    variants = list(tiny.variants)
    fig = figures.layer_range_chart(tiny.layers, variants=variants)
    rr = views.range_rows(tiny.layers, variants)
    got = {}
    for t in fig["data"]:
        model = t["name"].rsplit(" (", 1)[0]
        for k, lo, w in zip(_keys(t), arr(t["base"]), arr(t["x"])):
            got[(model, k)] = (lo, lo + w)
    want = {(r.model, r.fp32_name): (r.lo, r.hi) for r in rr.itertuples()}
    assert got.keys() == want.keys()
    for k, (lo, hi) in want.items():
        assert got[k][0] == lo and got[k][1] == pytest.approx(hi, abs=1e-12)
    sq = figures.sqnr_chart(tiny.layers, variants=variants)
    sr = views.sqnr_rows(tiny.layers, variants)
    pts = {(t["name"], k): y for t in sq["data"] for k, y in zip(_keys(t), arr(t["y"]))}
    assert pts.keys() == {(r.variant, r.fp32_name) for r in sr.itertuples()}
    for r in sr.itertuples():
        assert pts[(r.variant, r.fp32_name)] == pytest.approx(r.sqnr_db, rel=1e-6)
