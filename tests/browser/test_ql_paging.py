"""Range chart paging on a model with more layers than a page (ql030), and the selection
Patch moving the band on the page (ql031)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from selenium.webdriver.common.action_chains import ActionChains

from browser_helpers import click, open_page, plotly_points, selected_layer, settle, wait_for, write_chain_models

N = 320     # 3 pages of 150


def _label(dash_duo) -> str:
    return dash_duo.find_element("#range-page-label").text


def _band_row(dash_duo):
    """Row (y) of the selection band of the live range chart, or None."""
    return dash_duo.driver.execute_script(
        "const gd = document.querySelector('#layer-range-chart .js-plotly-plot');"
        "const s = (gd.layout.shapes || []).filter(s => s.name === 'selection');"
        "return s.length ? (s[0].y0 + s[0].y1) / 2 : null;")


def _band_in_view(dash_duo) -> bool:
    """Whether the drawn selection band lies inside the visible part of the range chart's box
    (screen geometry of the SVG shape against the box, nothing computed by our code)."""
    return dash_duo.driver.execute_script(
        "const box = document.getElementById('range-scroll-box').getBoundingClientRect();"
        "const el = document.querySelector('#layer-range-chart .layer-below .shapelayer path');"
        "if (!el) return false;"
        "const r = el.getBoundingClientRect();"
        "return r.height > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;")


def _click_sqnr_point(dash_duo, key: str):
    keys = plotly_points(dash_duo, "layer-sqnr-chart", 0)
    pts = dash_duo.find_elements("#layer-sqnr-chart .cartesianlayer .subplot.xy .scatterlayer .trace")[0] \
        .find_elements_by_css_selector(".points path")
    el = pts[keys.index(key)]
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", el)
    time.sleep(0.3)
    ActionChains(dash_duo.driver).move_to_element(el).pause(0.3).click().perform()


def test_ql030_range_chart_pages_and_follows_the_selection(dash_duo, tmp_path):
    from dashapp.app import create_app
    app = create_app(write_chain_models(tmp_path / "models", n_layers=N, width=16))
    open_page(dash_duo, app)
    wait_for(lambda: _label(dash_duo) == f"layers 1-150 of {N}", message="pager label")
    assert plotly_points(dash_duo, "layer-range-chart", 0) == [f"w{i}" for i in range(150)]
    assert dash_duo.find_element("#range-prev-button").get_attribute("disabled") is not None
    click(dash_duo, "#range-next-button")
    wait_for(lambda: _label(dash_duo) == f"layers 151-300 of {N}", message="second page")
    wait_for(lambda: plotly_points(dash_duo, "layer-range-chart", 0)[0] == "w150", message="second page rows")
    click(dash_duo, "#range-next-button")
    wait_for(lambda: _label(dash_duo) == f"layers 301-{N} of {N}", message="last page")
    assert dash_duo.find_element("#range-next-button").get_attribute("disabled") is not None
    # the SQNR chart shows every layer; clicking one there jumps the range chart to its page
    assert len(plotly_points(dash_duo, "layer-sqnr-chart", 0)) == N
    _click_sqnr_point(dash_duo, "w42")
    wait_for(lambda: selected_layer(dash_duo) == "w42", message="selection from the SQNR chart")
    wait_for(lambda: _label(dash_duo) == f"layers 1-150 of {N}", message="page of the selection")
    wait_for(lambda: _band_row(dash_duo) == 42, message="band on w42")
    # row 42 is ~800 px down its page, below the fold of the 640 px box: the box scrolls to it
    wait_for(lambda: _band_in_view(dash_duo), message="selected row scrolled into view")
    shots = Path(os.environ.get("QUANTLENS_SHOTS_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    dash_duo.driver.save_screenshot(str(shots / "paging-overview.png"))
    settle(dash_duo)
    assert dash_duo.get_logs() == []


def test_ql031_selection_on_the_same_page_moves_the_band_in_place(dash_duo, sample_app):
    open_page(dash_duo, sample_app)
    assert dash_duo.find_element("#range-pager-div").value_of_css_property("display") == "none"   # one page
    keys = plotly_points(dash_duo, "layer-range-chart", 0)
    click(dash_duo, "#next-steps-div button")          # "show" on the worst layer
    want = wait_for(lambda: selected_layer(dash_duo) if selected_layer(dash_duo) in keys else None,
                    message="selection")
    wait_for(lambda: _band_row(dash_duo) == keys.index(want), message="band on the selected row")
    settle(dash_duo)
    assert dash_duo.get_logs() == []
