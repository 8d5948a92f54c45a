"""Callbacks called as plain functions on the tiny models (no browser, no server)."""

import json
from contextvars import copy_context

import pytest
from dash import Dash, Patch, no_update
from dash._callback_context import context_value
from dash._utils import AttributeDict

from dashapp import ids
from dashapp.callbacks import overview, register_all
from dashapp.models import scan_models
from dashapp.results import Results
from dashapp.state import points_keys


class _Manager:
    """Stands in for the background manager: the job function is called directly here."""


@pytest.fixture
def cat(tiny_dir):
    return scan_models(tiny_dir)


@pytest.fixture
def by(cat):
    return {e.name: e.id for e in cat.entries}


@pytest.fixture
def cbs(cat):
    """Every callback of the page, registered on a throwaway app for the tiny catalogue."""
    from dash import DiskcacheManager
    import diskcache
    import tempfile
    results = Results(cat)
    app = Dash(__name__)
    manager = DiskcacheManager(diskcache.Cache(tempfile.mkdtemp()))
    return register_all(app, results, manager)


def in_context(fn, *args, triggered=(), **kwargs):
    """Run a callback with ``ctx.triggered`` set as Dash sets it."""
    def run():
        context_value.set(AttributeDict(triggered_inputs=[{"prop_id": p, "value": v} for p, v in triggered],
                                        inputs_list=[], states_list=[], outputs_list=[]))
        return fn(*args, **kwargs)
    return copy_context().run(run)


@pytest.fixture
def store(cbs, by):
    """The analysis store after the job ran for fp32 vs good, coarse, partial."""
    progress = []
    data, status = cbs["run_analysis"](progress.append, by["fp32.onnx"],
                                       [by["good.onnx"], by["coarse.onnx"], by["partial.onnx"]])
    assert data["error"] is None and "3 variant(s)" in status
    assert progress and progress[-1][0] == 1.0 and progress[-1][1].endswith("5/5")
    return data


FILTERS = {"ops": [], "roles": [], "variants": [], "search": "", "sqnr_below": None}


def test_restore_defaults_and_from_url(cbs, cat, by):
    out = cbs["restore_view_from_url"]("")
    assert out[0] == by["fp32.onnx"]
    assert out[1] == [by[n] for n in ("coarse.onnx", "good.onnx", "other.onnx", "partial.onnx")]
    assert out[2] == ids.TAB_OVERVIEW and out[8] == {"layer": None} and out[12] is None
    q = f"?ref={by['fp32.onnx']}&v={by['good.onnx']}&layer=fc2.weight&tab=layers&role=weight&sqnr=30"
    out = cbs["restore_view_from_url"](q)
    assert out[:9] == (by["fp32.onnx"], [by["good.onnx"]], "layers", [], ["weight"], [], "", 30.0,
                       {"layer": "fc2.weight"})
    assert out[9:12] == ([], ["weight"], [])     # the link's filter values are offered as options
    assert out[12] is None                       # no problem with the link


def test_restore_reports_unknown_ids(cbs, by):
    out = cbs["restore_view_from_url"](f"?ref=000000000000&v={by['good.onnx']},111111111111")
    assert out[0] is None and out[1] == [by["good.onnx"]]
    text = str(out[12])
    assert "reference model this server does not have" in text and "1 variant(s)" in text


def test_write_url_round_trips_with_restore(cbs, by):
    sel = {"layer": "fc1.bias", "layers": []}
    f = dict(FILTERS, ops=["Gemm"], search="fc")
    q = cbs["write_view_to_url"](by["fp32.onnx"], [by["good.onnx"]], "distributions", f, sel, "")
    out = cbs["restore_view_from_url"](q)
    assert out[:3] == (by["fp32.onnx"], [by["good.onnx"]], "distributions")
    assert out[3] == ["Gemm"] and out[6] == "fc" and out[8] == {"layer": "fc1.bias"}
    assert cbs["write_view_to_url"](None, [], "overview", f, sel, "") is no_update
    assert cbs["write_view_to_url"](by["fp32.onnx"], [by["good.onnx"]], "distributions", f, sel, q) is no_update


def test_job_reports_unknown_ids_without_raising(cbs, by):
    data, status = cbs["run_analysis"](lambda p: None, "0000deadbeef", [by["good.onnx"]])
    assert "Unknown reference" in data["error"] and status == ""
    data, _ = cbs["run_analysis"](lambda p: None, by["fp32.onnx"], ["../../etc/passwd"])
    assert "Unknown variant" in data["error"]
    badges, alert = cbs["update_model_status"](data)
    assert badges is None and "Unknown variant" in str(alert.children)


def test_model_status_warns_about_an_unrelated_variant(cbs, by):
    data, _ = cbs["run_analysis"](lambda p: None, by["fp32.onnx"], [by["good.onnx"], by["other.onnx"]])
    badges, _alert = cbs["update_model_status"](data)
    text = [str(b) for b in badges]
    assert "5/5 matched" in text[0]
    assert "not a quantization" in text[1]


def test_views_for_a_bad_store_show_empty_states(cbs):
    bad = {"ref": "nope", "variants": [], "error": "x"}
    fig, style, page, label, pager, *_ = cbs["update_range_chart"](bad, FILTERS, None)
    assert "Choose" in fig["layout"]["annotations"][0]["text"] and pager == {"display": "none"}
    data, count, page, styles, tips, info = in_context(cbs["update_layer_table"], bad, FILTERS, None, 0, [], "", 15)
    assert data == [] and count == 1


def test_range_and_sqnr_charts_follow_filters_and_selection(cbs, store):
    f = dict(FILTERS, roles=["weight"], variants=["coarse"])
    fig, style, page, label, pager, prev_off, next_off = cbs["update_range_chart"](
        store, f, {"layer": "fc2.weight", "layers": []})
    assert [t["name"] for t in fig["data"]] == ["FP32 (FP32)", "coarse (quantized)"]
    assert points_keys({"points": [{"customdata": k} for k in fig["data"][0]["customdata"]]}) == [
        "fc1.weight", "fc2.weight", "fc3.weight"]
    assert style["height"] == f"{fig['layout']['height']}px" and len(fig["layout"]["shapes"]) == 1
    assert (page, label, pager, prev_off, next_off) == (0, "", {"display": "none"}, True, True)   # one page
    sq = cbs["update_sqnr_chart"](store, dict(FILTERS, sqnr_below=20), None)
    assert [t["name"] for t in sq["data"]] == ["coarse"] and sq["data"][0]["customdata"] == ["fc2.weight"]


def _keys_of(fig):
    return points_keys({"points": [{"customdata": k} for k in fig["data"][0]["customdata"]]})


def test_range_chart_pages_and_follows_the_selection(cbs, store, monkeypatch):
    monkeypatch.setenv("QUANTLENS_RANGE_PAGE", "40")
    assert overview.range_page_size() == 40
    monkeypatch.setenv("QUANTLENS_RANGE_PAGE", "x")
    assert overview.range_page_size() == 150
    monkeypatch.setattr(overview, "range_page_size", lambda: 2)     # 5 layers, 2 a page
    L = cbs["update_range_chart"]
    keys = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"]
    keys = [k for k in keys if k != "fc2.bias"]
    fig, _, page, label, pager, prev_off, next_off = in_context(
        L, store, FILTERS, None, None, None, 0, triggered=[(f"{ids.ANALYSIS_STORE}.data", store)])
    assert _keys_of(fig) == keys[:2] and page == 0 and label == "layers 1-2 of 5"
    assert pager == {"display": "flex"} and prev_off is True and next_off is False
    # next, next: the last page (one layer); next is then disabled
    out = in_context(L, store, FILTERS, None, None, 1, 0, triggered=[(f"{ids.RANGE_NEXT}.n_clicks", 1)])
    assert _keys_of(out[0]) == keys[2:4] and out[2] == 1 and out[3] == "layers 3-4 of 5"
    out = in_context(L, store, FILTERS, None, None, 2, 1, triggered=[(f"{ids.RANGE_NEXT}.n_clicks", 2)])
    assert _keys_of(out[0]) == keys[4:] and out[2] == 2 and out[5] is False and out[6] is True
    out = in_context(L, store, FILTERS, None, 1, 2, 2, triggered=[(f"{ids.RANGE_PREV}.n_clicks", 1)])
    assert out[2] == 1
    # selecting a layer of another page (e.g. in the SQNR chart) jumps to its page, band on it
    sel = {"layer": "fc3.bias", "layers": []}
    out = in_context(L, store, FILTERS, sel, None, None, 0, triggered=[(f"{ids.SELECTION_STORE}.data", sel)])
    assert out[2] == 2 and _keys_of(out[0]) == ["fc3.bias"]
    (band,) = out[0]["layout"]["shapes"]
    assert (band["y0"], band["y1"]) == (-0.5, 0.5)
    # a filter change shows the selected layer's page of the new rows
    f = dict(FILTERS, roles=["bias"])
    out = in_context(L, store, f, sel, None, None, 2, triggered=[(f"{ids.FILTER_STORE}.data", f)])
    assert _keys_of(out[0]) == ["fc1.bias", "fc3.bias"] and out[2] == 0 and out[4] == {"display": "none"}
    assert len(out[0]["layout"]["shapes"]) == 1


def _ops(patch):
    return {tuple(o["location"]): o["params"]["value"] for o in patch.to_plotly_json()["operations"]}


def test_selection_alone_sends_a_patch(cbs, store):
    L, S = cbs["update_range_chart"], cbs["update_sqnr_chart"]
    full, *_ = in_context(L, store, FILTERS, None, None, None, 0, triggered=[(f"{ids.ANALYSIS_STORE}.data", store)])
    sel = {"layer": "fc2.weight", "layers": ["fc1.weight"]}
    out = in_context(L, store, FILTERS, sel, None, None, 0, triggered=[(f"{ids.SELECTION_STORE}.data", sel)])
    assert isinstance(out[0], Patch) and all(o is no_update for o in out[1:])
    ops = _ops(out[0])
    (band,) = ops[("layout", "shapes")]
    keys = _keys_of(full)
    assert (band["y0"], band["y1"]) == (keys.index("fc2.weight") - 0.5, keys.index("fc2.weight") + 0.5)
    # every trace gets its selected points: the box-selected fc1.weight, by index in that trace
    for i, tr in enumerate(full["data"]):
        tk = points_keys({"points": [{"customdata": k} for k in tr["customdata"]]})
        assert ops[("data", i, "selectedpoints")] == ([tk.index("fc1.weight")] if "fc1.weight" in tk else [])
    # the full figure with the same selection has the same band and points
    again, *_ = in_context(L, store, FILTERS, sel, None, None, 0, triggered=[(f"{ids.ANALYSIS_STORE}.data", store)])
    assert again["layout"]["shapes"] == [band]
    # clearing: no band, no selected points
    ops = _ops(in_context(L, store, FILTERS, {"layer": None, "layers": []}, None, None, 0,
                          triggered=[(f"{ids.SELECTION_STORE}.data", {})])[0])
    assert ops[("layout", "shapes")] == [] and ops[("data", 0, "selectedpoints")] is None
    # selection and filters at once: a whole figure, filtered
    f = dict(FILTERS, roles=["bias"])
    out = in_context(L, store, f, sel, None, None, 0,
                     triggered=[(f"{ids.SELECTION_STORE}.data", sel), (f"{ids.FILTER_STORE}.data", f)])
    assert isinstance(out[0], dict) and set(_keys_of(out[0])) == {"fc1.bias", "fc3.bias"}
    assert out[0]["layout"]["shapes"] == []
    # the SQNR chart: the threshold line stays, the selection line moves
    f = dict(FILTERS, sqnr_below=60)
    base = in_context(S, store, f, None, triggered=[(f"{ids.FILTER_STORE}.data", f)])
    p = in_context(S, store, f, sel, triggered=[(f"{ids.SELECTION_STORE}.data", sel)])
    shapes = _ops(p)[("layout", "shapes")]
    assert isinstance(p, Patch) and shapes[0] == base["layout"]["shapes"][0] and len(shapes) == 2
    assert shapes[1]["x0"] == base["layout"]["xaxis"]["tickvals"][
        base["layout"]["xaxis"]["ticktext"].index("fc2.weight")]


def test_summary_and_next_steps(cbs, store):
    cards, steps = cbs["update_summary"](store, FILTERS)
    assert len(cards.children) == 4            # reference + 3 variants
    assert "fc2.weight" in str(steps)


def test_selection_hub_sources(cbs):
    hub = cbs["update_selection"]
    cur = {"layer": None, "layers": []}
    click = {"points": [{"customdata": ["fc2.weight", "", ""]}]}
    args = [None] * 8 + [[], cur]

    def call(prop, value, at=None):
        a = list(args)
        for i, v in (at or {}).items():
            a[i] = v
        return in_context(hub, *a, triggered=[(prop, value)])

    assert call(f"{ids.RANGE_CHART}.clickData", click) == {"layer": "fc2.weight", "layers": []}
    box = {"points": [{"customdata": ["fc1.weight"]}, {"customdata": ["fc3.bias"]}]}
    assert call(f"{ids.SQNR_CHART}.selectedData", box)["layers"] == ["fc1.weight", "fc3.bias"]
    rows = [{"fp32_name": "a"}, {"fp32_name": "fc3.weight"}]
    assert call(f"{ids.LAYER_TABLE}.active_cell", {"row": 1, "column": 2}, at={4: {"row": 1, "column": 2}, 8: rows}
                )["layer"] == "fc3.weight"
    step = json.dumps({"index": "fc1.bias", "type": "next-step-button"}, separators=(",", ":"))
    assert call(f"{step}.n_clicks", 1)["layer"] == "fc1.bias"
    assert call(f"{step}.n_clicks", None) is no_update
    assert call(f"{ids.RESTORED_LAYER_STORE}.data", {"layer": "fc3.bias"}, at={7: {"layer": "fc3.bias"}}
                )["layer"] == "fc3.bias"
    a = list(args)
    a[9] = {"layer": "x", "layers": ["y"]}
    assert in_context(hub, *a, triggered=[(f"{ids.CLEAR_SELECTION}.n_clicks", 1)]) == {"layer": None, "layers": []}


def test_table_filters_pages_and_follows_the_selection(cbs, store):
    sel = {"layer": "fc3.bias", "layers": []}
    data, count, page, styles, tips, info = in_context(
        cbs["update_layer_table"], store, FILTERS, sel, 0, [], "", 4,
        triggered=[(f"{ids.SELECTION_STORE}.data", sel)])
    assert count == 4 and page == 3 and any(r["fp32_name"] == "fc3.bias" for r in data)   # 15 rows, 4 a page
    # new data (e.g. a link opened with a layer) also shows the selected layer's page
    again = in_context(cbs["update_layer_table"], store, FILTERS, sel, 0, [], "", 4,
                       triggered=[(f"{ids.ANALYSIS_STORE}.data", store)])
    assert again[2] == 3
    # paging by hand keeps the page asked for
    paged = in_context(cbs["update_layer_table"], store, FILTERS, sel, 1, [], "", 4,
                       triggered=[(f"{ids.LAYER_TABLE}.page_current", 1)])
    assert paged[2] == 1
    # graph order: a layer's weight before its bias, variants in name order
    first = in_context(cbs["update_layer_table"], store, FILTERS, None, 0, [], "", 6,
                       triggered=[(f"{ids.LAYER_TABLE}.page_current", 0)])[0]
    assert [(r["fp32_name"], r["variant"]) for r in first] == [
        ("fc1.weight", "coarse"), ("fc1.weight", "good"), ("fc1.weight", "partial"),
        ("fc1.bias", "coarse"), ("fc1.bias", "good"), ("fc1.bias", "partial")]
    assert any("reason" in t for t in tips)
    box = {"layer": None, "layers": ["fc2.weight"]}
    data, count, page, styles, tips, info = in_context(
        cbs["update_layer_table"], store, FILTERS, box, 0, [], "{sqnr_db} < 20", 15,
        triggered=[(f"{ids.LAYER_TABLE}.filter_query", "")])
    assert [(r["variant"], r["fp32_name"]) for r in data] == [("coarse", "fc2.weight")]
    assert "box-selected" in str(info)


def test_callout_says_why_a_layer_has_no_parameters(cbs, store):
    alert = cbs["update_layer_callout"](store, {"layer": "fc2.weight", "layers": []}, FILTERS)
    text = str(alert)
    assert "partial" in text and "left in float" in text
    assert cbs["update_layer_callout"](store, {"layer": "fc1.weight", "layers": []}, FILTERS) is None


def test_distributions_for_the_selected_layer(cbs, store):
    title, value, limits, code, chan, *styles = cbs["update_distributions"](store, FILTERS, {"layer": "fc1.weight"},
                                                                           True)
    assert styles[0] == {"height": f"{value['layout']['height']}px"}
    assert "fc1.weight" in str(title)
    assert {t["name"] for t in value["data"]} >= {"FP32", "good (dequantized)", "coarse (dequantized)"}
    assert value["layout"]["yaxis"]["type"] == "log"
    assert "widest channel grid" in str(limits)
    assert any(t["name"] == "coarse scale" for t in chan["data"])
    empty = cbs["update_distributions"](store, FILTERS, None, False)
    assert "Click a layer" in str(empty[0])
    # the log switch alone: a Patch of the count axes of both histograms, nothing else resent
    sel = {"layer": "fc1.weight"}
    out = in_context(cbs["update_distributions"], store, FILTERS, sel, False,
                     triggered=[(f"{ids.LOG_SWITCH}.value", False)])
    assert [i for i, o in enumerate(out) if o is not no_update] == [1, 3]
    n_axes = len([k for k in value["layout"] if k.startswith("yaxis")])
    assert _ops(out[1]) == {("layout", f"yaxis{i or ''}", "type"): "linear" for i in [0] + list(range(2, n_axes + 1))}
    # and a full rebuild with the switch off has linear axes
    full = in_context(cbs["update_distributions"], store, FILTERS, sel, False,
                      triggered=[(f"{ids.SELECTION_STORE}.data", sel)])
    assert full[1]["layout"]["yaxis"]["type"] == "linear" and full[3]["layout"]["yaxis"]["type"] == "linear"


def test_exports(cbs, store):
    out = in_context(cbs["download_table"], 1, None, store, dict(FILTERS, variants=["coarse"]), None,
                     "{sqnr_db} < 45", [], triggered=[(f"{ids.EXPORT_CSV}.n_clicks", 1)])
    assert out["filename"] == "quantlens-layers.csv"
    lines = out["content"].strip().splitlines()
    assert lines[0].startswith("variant,fp32_name,layer") and len(lines) == 1 + 1   # only coarse fc2.weight
    out = in_context(cbs["download_table"], None, 1, store, FILTERS, None, "", [],
                     triggered=[(f"{ids.EXPORT_JSON}.n_clicks", 1)])
    assert out["filename"].endswith(".json") and len(json.loads(out["content"])) == 15
    ex = cbs["download_nodes_to_exclude"](1, 20, store, FILTERS)
    assert json.loads(ex["content"]) == ["fc2"] and "20dB" in ex["filename"]
    assert cbs["download_nodes_to_exclude"](1, None, store, FILTERS) is no_update


def test_filter_options_and_reset(cbs, store):
    ops, roles, variants = cbs["update_filter_options"](store)
    assert ops == ["Add", "Gemm", "MatMul"] and roles == ["weight", "bias"]
    assert variants == ["good", "coarse", "partial"]
    assert cbs["reset_filters"](1) == ([], [], [], "", None)
    assert cbs["update_filter_store"](["Conv"], None, None, "x", "12") == dict(FILTERS, ops=["Conv"], search="x",
                                                                             sqnr_below=12.0)
