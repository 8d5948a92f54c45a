"""Real-browser tests (dash_duo, headless Chromium) of every user flow on the sample models.

Clicks and box selections are real mouse actions (selenium ActionChains on the plotly
bar / drag layer), not synthetic plotly events.  Each test ends with no browser-console
errors.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pandas as pd
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

import analysis
from browser_helpers import (DATA, click, drag_box, go_to_tab, open_page, plotly_points, query_of, selected_layer,
                      settle, table_column, wait_for, wait_ready)

VARIANTS = ["cnn_dynamic_uint8", "cnn_int8_qdq_perchannel", "cnn_matmulnbits_4bit", "cnn_uint8_qop_pertensor"]


def ids_by_name(app) -> dict:
    """Catalogue ids by file stem, from the page's own dropdown options."""
    from dashapp.models import scan_models
    return {Path(e.name).stem: e.id for e in scan_models(DATA).entries}


def click_range_bar(dash_duo, key: str, trace: int = 0):
    """A real mouse click on the bar of layer ``key`` in trace ``trace`` of the range chart."""
    keys = plotly_points(dash_duo, "layer-range-chart", trace)
    bars = dash_duo.find_elements("#layer-range-chart .trace.bars")[trace].find_elements_by_css_selector(
        ".point path")
    el = bars[keys.index(key)]
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", el)
    time.sleep(0.3)
    ActionChains(dash_duo.driver).move_to_element(el).pause(0.3).click().perform()


def summary_titles(dash_duo) -> list[str]:
    return [e.text for e in dash_duo.find_elements("#summary-cards-div .card .text-uppercase")]


def legend_names(dash_duo, graph_id: str) -> list[str]:
    return dash_duo.driver.execute_script(
        "const gd = document.querySelector(`#${arguments[0]} .js-plotly-plot`);"
        "return gd.data.map(t => t.name);", graph_id)


def no_console_errors(dash_duo):
    settle(dash_duo)
    assert dash_duo.get_logs() == []


def test_ql001_page_opens_on_the_sample_models(dash_duo, sample_app):
    open_page(dash_duo, sample_app)
    ids = ids_by_name(sample_app)
    wait_for(lambda: query_of(dash_duo).get("ref") == ids["cnn_fp32"], message="URL with the reference")
    assert query_of(dash_duo)["v"].split(",") == [ids[v] for v in VARIANTS]
    wait_for(lambda: len(summary_titles(dash_duo)) == 5, message="5 summary cards")
    assert summary_titles(dash_duo) == ["FP32 REFERENCE"] + [v.upper() for v in VARIANTS]
    badges = dash_duo.find_elements("#model-badges-div .model-badge")
    assert [b.text for b in badges] == [f"{v}10/10 matched" for v in VARIANTS]
    assert plotly_points(dash_duo, "layer-range-chart", 0)[:3] == ["conv1.weight", "conv1.bias", "conv2.weight"]
    assert legend_names(dash_duo, "layer-sqnr-chart") == VARIANTS
    dash_duo.wait_for_contains_text("#next-steps-div", "fc1.weight", timeout=10)
    assert "4 variant(s) against cnn_fp32.onnx" in dash_duo.find_element("#job-status-text").text
    # "show" on the worst layer of "What to do next" selects it
    click(dash_duo, "#next-steps-div button")
    wait_for(lambda: selected_layer(dash_duo) == "fc1.weight", message="selection from 'show'")
    no_console_errors(dash_duo)


def test_ql002_choosing_variants_updates_every_view(dash_duo, sample_app):
    open_page(dash_duo, sample_app)
    ids = ids_by_name(sample_app)
    dash_duo.find_element("#variant-models-dropdown .dash-dropdown-clear").click()
    dash_duo.wait_for_contains_text("#analysis-alert-div", "at least one", timeout=15)
    dash_duo.select_dcc_dropdown("#variant-models-dropdown", value="cnn_matmulnbits_4bit.onnx")
    dash_duo.find_element("body").send_keys(Keys.ESCAPE)
    wait_for(lambda: summary_titles(dash_duo) == ["FP32 REFERENCE", "CNN_MATMULNBITS_4BIT"], timeout=30,
             message="cards for one variant")
    wait_for(lambda: query_of(dash_duo).get("v") == ids["cnn_matmulnbits_4bit"], message="URL variants")
    wait_for(lambda: legend_names(dash_duo, "layer-sqnr-chart") == ["cnn_matmulnbits_4bit"], message="SQNR chart")
    # one range-chart trace per status of the variant's tensors (what the analysis says)
    L = analysis.analyze(DATA / "cnn_fp32.onnx", [DATA / "cnn_matmulnbits_4bit.onnx"], cache=False).layers
    statuses = {s.replace("_", " ") for s in L["status"]}
    assert statuses == {"quantized", "left in float", "op not quantized"}
    assert set(legend_names(dash_duo, "layer-range-chart")) == {"FP32 (FP32)"} | {
        f"cnn_matmulnbits_4bit ({s})" for s in statuses}
    go_to_tab(dash_duo, "Layers")
    dash_duo.wait_for_contains_text("#table-info-div", "10 rows", timeout=10)
    assert set(table_column(dash_duo, "variant")) == {"cnn_matmulnbits_4bit"}
    # the histograms follow too
    dash_duo.driver.get(dash_duo.driver.current_url + "&layer=fc1.weight&tab=distributions")
    wait_ready(dash_duo)
    dash_duo.wait_for_contains_text("#dist-title-div", "fc1.weight", timeout=15)
    wait_for(lambda: legend_names(dash_duo, "value-hist-graph") == ["cnn_matmulnbits_4bit (dequantized)", "FP32"],
             message="histogram of the one variant")
    no_console_errors(dash_duo)


def test_ql003_clicking_a_bar_moves_table_and_histograms(dash_duo, sample_app):
    open_page(dash_duo, sample_app)
    click_range_bar(dash_duo, "fc2.weight")
    wait_for(lambda: selected_layer(dash_duo) == "fc2.weight", message="selection from the click")
    wait_for(lambda: query_of(dash_duo).get("layer") == "fc2.weight", message="layer in the URL")
    go_to_tab(dash_duo, "Layers")
    # the table went to the page holding fc2.weight and highlights its rows
    wait_for(lambda: "fc2.weight" in table_column(dash_duo, "fp32_name"), message="table page")
    go_to_tab(dash_duo, "Distributions")
    dash_duo.wait_for_contains_text("#dist-title-div", "fc2.weight", timeout=10)
    # the 4-bit variant left the fc2 Gemm in float: three dequantized histograms, and a callout
    wait_for(lambda: [n for n in legend_names(dash_duo, "value-hist-graph") if n.endswith("(dequantized)")] == [
        "cnn_dynamic_uint8 (dequantized)", "cnn_int8_qdq_perchannel (dequantized)",
        "cnn_uint8_qop_pertensor (dequantized)"], message="histograms of the 3 quantized variants")
    assert "cnn_matmulnbits_4bit" in dash_duo.find_element("#layer-callout-alert").text
    # a click in the table moves the selection too
    go_to_tab(dash_duo, "Layers")
    cells = dash_duo.find_elements("#layer-table td[data-dash-column='fp32_name']")
    target = next(c for c in cells if c.text == "fc2.bias" or c.text == "fc3.weight")
    want = target.text
    click(dash_duo, target)
    wait_for(lambda: selected_layer(dash_duo) == want, message="selection from the table")
    go_to_tab(dash_duo, "Distributions")
    dash_duo.wait_for_contains_text("#dist-title-div", want, timeout=10)
    no_console_errors(dash_duo)


def test_ql004_box_selection_filters_the_table(dash_duo, sample_app):
    open_page(dash_duo, sample_app)
    # drag a box over the left third of the SQNR chart (conv1.weight .. conv2.bias)
    drag_box(dash_duo, "layer-sqnr-chart", 0.01, 0.01, 0.36, 0.97)
    badge = wait_for(lambda: dash_duo.find_element("#box-selection-badge").text, message="box selection badge")
    n = int(badge.split()[0])
    assert n == 4     # conv1.weight, conv1.bias, conv2.weight, conv2.bias
    go_to_tab(dash_duo, "Layers")
    wait_for(lambda: "box-selected" in dash_duo.find_element("#table-info-div").text, message="table limited")
    names = set(table_column(dash_duo, "fp32_name"))
    assert names == {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"}
    assert dash_duo.find_element("#table-info-div").text.startswith("16 rows")
    click(dash_duo, "#clear-selection-button")
    wait_for(lambda: "box-selected" not in dash_duo.find_element("#table-info-div").text, message="cleared")
    no_console_errors(dash_duo)


def test_ql005_a_copied_url_reopens_the_same_view(dash_duo, sample_app):
    open_page(dash_duo, sample_app)
    ids = ids_by_name(sample_app)
    query = (f"?ref={ids['cnn_fp32']}&v={ids['cnn_uint8_qop_pertensor']},{ids['cnn_int8_qdq_perchannel']}"
             "&layer=fc1.weight&tab=distributions&role=weight&q=fc&sqnr=45")
    dash_duo.driver.get("about:blank")
    dash_duo.driver.get(dash_duo.server_url + "/" + query)
    wait_ready(dash_duo)
    dash_duo.wait_for_contains_text("#dist-title-div", "fc1.weight", timeout=15)
    active = dash_duo.find_element("#view-tabs .nav-link.active").text
    assert active == "Distributions"
    assert selected_layer(dash_duo) == "fc1.weight"
    assert dash_duo.find_element("#search-filter-input").get_attribute("value") == "fc"
    assert dash_duo.find_element("#sqnr-filter-input").get_attribute("value") == "45"
    assert "weight" in dash_duo.find_element("#role-filter-dropdown").text
    wait_for(lambda: legend_names(dash_duo, "layer-sqnr-chart") == ["cnn_uint8_qop_pertensor",
                                                                    "cnn_int8_qdq_perchannel"], message="variants")
    go_to_tab(dash_duo, "Layers")
    # role=weight, name contains fc, SQNR < 45: qop fc1/fc2/fc3 weights (37.8/42.2/42.5) + qdq fc1 (41.5) + fc2 (44.5)
    L = analysis.analyze(DATA / "cnn_fp32.onnx", [DATA / "cnn_uint8_qop_pertensor.onnx",
                                                  DATA / "cnn_int8_qdq_perchannel.onnx"]).layers
    expected = L[(L.role == "weight") & L.fp32_name.str.contains("fc") & (L.sqnr_db < 45)]
    dash_duo.wait_for_contains_text("#table-info-div", f"{len(expected)} rows", timeout=10)
    # the page writes back exactly the link it was opened with
    wait_for(lambda: query_of(dash_duo) == {"ref": ids["cnn_fp32"], "v": f"{ids['cnn_uint8_qop_pertensor']},"
                                            f"{ids['cnn_int8_qdq_perchannel']}", "layer": "fc1.weight",
                                            "tab": "layers", "role": "weight", "q": "fc", "sqnr": "45"},
             message="URL kept")
    no_console_errors(dash_duo)


def test_ql006_layer_without_parameters_shows_its_callout(dash_duo, sample_app):
    ids = ids_by_name(sample_app)
    open_page(dash_duo, sample_app, f"?ref={ids['cnn_fp32']}&v={ids['cnn_matmulnbits_4bit']}&tab=layers")
    assert not dash_duo.find_elements("#layer-callout-alert")
    # select conv1.weight by clicking its row in the table
    cell = wait_for(lambda: next(c for c in dash_duo.find_elements("#layer-table td[data-dash-column='fp32_name']")
                                 if c.text == "conv1.weight"), message="conv1.weight row")
    click(dash_duo, cell)
    alert = dash_duo.wait_for_element("#layer-callout-alert", timeout=10)
    assert "conv1.weight" in alert.text and "cnn_matmulnbits_4bit" in alert.text
    assert "left in float" in alert.text
    status = [c.text for c in dash_duo.find_elements("#layer-table td[data-dash-column='status']")]
    assert "left_in_float" in status
    no_console_errors(dash_duo)


def test_ql007_exports_download_correct_files(dash_duo, sample_app):
    ids = ids_by_name(sample_app)
    open_page(dash_duo, sample_app, f"?ref={ids['cnn_fp32']}&v={ids['cnn_matmulnbits_4bit']},"
                                    f"{ids['cnn_dynamic_uint8']}&role=weight")
    dl = Path(dash_duo.download_path)
    L = analysis.analyze(DATA / "cnn_fp32.onnx", [DATA / "cnn_matmulnbits_4bit.onnx",
                                                  DATA / "cnn_dynamic_uint8.onnx"]).layers
    weights = L[L.role == "weight"]

    click(dash_duo, "#export-csv-button")
    f = wait_for(lambda: (dl / "quantlens-layers.csv").is_file() and dl / "quantlens-layers.csv",
                 message="CSV download")
    rows = list(csv.DictReader(f.open()))
    assert len(rows) == len(weights) == 10
    assert {(r["variant"], r["fp32_name"]) for r in rows} == set(zip(weights.variant, weights.fp32_name))
    got = {(r["variant"], r["fp32_name"]): r["sqnr_db"] for r in rows}
    for r in weights[weights.status == "quantized"].itertuples():
        assert abs(float(got[(r.variant, r.fp32_name)]) - r.sqnr_db) < 1e-9

    click(dash_duo, "#export-json-button")
    j = wait_for(lambda: (dl / "quantlens-layers.json").is_file() and dl / "quantlens-layers.json",
                 message="JSON download")
    data = wait_for(lambda: json.loads(j.read_text()), message="complete JSON")
    assert [(d["variant"], d["fp32_name"]) for d in data] == [(r["variant"], r["fp32_name"]) for r in rows]

    thr = dash_duo.find_element("#exclude-threshold-input")
    thr.clear()
    thr.send_keys("25", Keys.TAB)
    time.sleep(0.5)
    click(dash_duo, "#export-exclude-button")
    x = wait_for(lambda: (dl / "nodes_to_exclude_below_25dB.json").is_file()
                 and dl / "nodes_to_exclude_below_25dB.json", message="nodes_to_exclude download")
    q = weights[(weights.status == "quantized") & (weights.sqnr_db < 25)]
    expected = sorted({n for c in q.consumers for n in c.split(";")})
    assert expected == ["fc1", "fc3"]      # the 4-bit MatMulNBits weights, 21.8 and 22.3 dB
    assert wait_for(lambda: json.loads(x.read_text()), message="complete JSON") == expected
    no_console_errors(dash_duo)


def test_ql008_unknown_model_id_gives_a_message(dash_duo, sample_app):
    dash_duo.start_server(sample_app)
    dash_duo.driver.get(dash_duo.server_url + "/?ref=000000000000&v=111111111111&layer=%3Cb%3Ex")
    dash_duo.wait_for_contains_text("#url-alert-div", "reference model this server does not have", timeout=20)
    assert "1 variant(s) named in the link are not on this server" in dash_duo.find_element("#url-alert-div").text
    dash_duo.wait_for_contains_text("#analysis-alert-div", "Choose an FP32 reference model", timeout=10)
    dash_duo.wait_for_contains_text("#summary-cards-div", "Choose an FP32 reference", timeout=10)
    assert selected_layer(dash_duo) == "<b>x"        # shown as text, not markup
    no_console_errors(dash_duo)


def test_ql009_model_names_are_text_only(dash_duo, tmp_path):
    from dashapp.app import create_app
    (tmp_path / "ref_fp32.onnx").write_bytes((DATA / "cnn_fp32.onnx").read_bytes())
    evil = "<img src=x onerror=alert(1)>"
    (tmp_path / f"{evil}.onnx").write_bytes((DATA / "cnn_int8_qdq_perchannel.onnx").read_bytes())
    open_page(dash_duo, create_app(tmp_path))
    wait_for(lambda: any(evil in t for t in summary_titles(dash_duo) + [
        b.text for b in dash_duo.find_elements("#model-badges-div .model-badge")]), message="name as text")
    assert not dash_duo.find_elements("#summary-cards-div img")
    try:
        dash_duo.driver.switch_to.alert
        raise AssertionError("a model name ran script")
    except NoAlertPresentException:
        pass
    no_console_errors(dash_duo)


def test_ql012_filters_apply_to_every_view(dash_duo, sample_app):
    open_page(dash_duo, sample_app)
    box = dash_duo.find_element("#sqnr-filter-input")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", box)
    box.send_keys("30", Keys.ENTER)
    wait_for(lambda: query_of(dash_duo).get("sqnr") == "30", message="filter in the URL")
    # only the 4-bit weights are below 30 dB
    wait_for(lambda: legend_names(dash_duo, "layer-sqnr-chart") == ["cnn_matmulnbits_4bit"], message="SQNR chart")
    wait_for(lambda: plotly_points(dash_duo, "layer-range-chart", 0) == ["fc1.weight", "fc3.weight"],
             message="range chart rows")
    wait_for(lambda: summary_titles(dash_duo) == ["FP32 REFERENCE", "CNN_MATMULNBITS_4BIT"], message="cards")
    go_to_tab(dash_duo, "Layers")
    dash_duo.wait_for_contains_text("#table-info-div", "2 rows", timeout=10)
    # the table's own filter row narrows further (parsed on the server)
    click(dash_duo, "#reset-filters-button")
    dash_duo.wait_for_contains_text("#table-info-div", "40 rows", timeout=10)
    cell = dash_duo.find_element("#layer-table th.dash-filter[data-dash-column='sqnr_db']")
    click(dash_duo, cell)
    ActionChains(dash_duo.driver).send_keys("< 40", Keys.ENTER).perform()
    L = analysis.analyze(DATA / "cnn_fp32.onnx", [DATA / f"{v}.onnx" for v in VARIANTS]).layers
    n = int((L.sqnr_db < 40).sum())
    dash_duo.wait_for_contains_text("#table-info-div", f"{n} rows", timeout=10)
    assert set(table_column(dash_duo, "fp32_name")) <= set(L.loc[L.sqnr_db < 40, "fp32_name"])
    no_console_errors(dash_duo)


def _job_processes():
    """Live processes forked from this one (background jobs; the browser is another program)."""
    import psutil
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.exe() == psutil.Process().exe() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def test_ql013_first_analysis_shows_progress_and_can_be_cancelled(dash_duo, tmp_path, monkeypatch):
    """The job runs in a process forked from this one, so a slowed-down ``analyze`` (each
    tensor's progress report delayed) is what it runs: the bar is on screen long enough."""
    import re
    import dashapp.results
    from dashapp.app import create_app
    from browser_helpers import write_chain_models

    real = dashapp.results.analysis.analyze

    def slow(*args, progress=None, **kw):
        def tick(done, total, label):
            time.sleep(0.08)
            progress(done, total, label)
        return real(*args, progress=tick if progress else None, **kw)

    monkeypatch.setattr(dashapp.results.analysis, "analyze", slow)
    app = create_app(write_chain_models(tmp_path / "models", n_layers=150))
    dash_duo.start_server(app)
    bar = dash_duo.wait_for_element("#job-progress-bar", timeout=20)
    label = wait_for(lambda: re.fullmatch(r"chain_int8: (\d+)/150", bar.text), timeout=20, message="progress label")
    assert 0 < int(label.group(1)) < 150
    assert dash_duo.find_element("#job-progress-box").is_displayed()
    assert _job_processes(), "the analysis should run in a separate process"
    click(dash_duo, "#job-cancel-button")
    wait_for(lambda: not dash_duo.find_element("#job-progress-box").is_displayed(), message="job box hidden")
    dash_duo.wait_for_contains_text("#job-status-text", "cancelled", timeout=10)
    wait_for(lambda: not _job_processes(), message="the job process killed")
    assert not dash_duo.find_elements("#layer-range-chart .bars path")
    # run again at full speed: the result arrives
    monkeypatch.undo()
    dash_duo.find_element("#variant-models-dropdown .dash-dropdown-clear").click()
    dash_duo.select_dcc_dropdown("#variant-models-dropdown", value="chain_int8.onnx")
    dash_duo.find_element("body").send_keys(Keys.ESCAPE)
    wait_ready(dash_duo)
    dash_duo.wait_for_contains_text("#job-status-text", "1 variant(s) against chain_fp32.onnx", timeout=20)
    assert len(plotly_points(dash_duo, "layer-range-chart", 0)) == 150
    no_console_errors(dash_duo)
