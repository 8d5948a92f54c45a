"""Every tab at a laptop (1366x768) and a wide (1920x1080) window: no horizontal page
overflow, the main pieces visible; screenshots go to ``$QUANTLENS_SHOTS_DIR`` (default: the
test's temporary folder) for a person to look at."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from browser_helpers import go_to_tab, open_page, settle, wait_for
from test_ql_flows import ids_by_name, legend_names

TABS = ["Overview", "Layers", "Distributions"]


@pytest.mark.parametrize("width, height", [(1366, 768), (1920, 1080)])
def test_ql010_tabs_fit_laptop_and_wide_windows(dash_duo, sample_app, tmp_path, width, height):
    out = Path(os.environ.get("QUANTLENS_SHOTS_DIR") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    ids = ids_by_name(sample_app)
    dash_duo.driver.set_window_size(width, height)
    open_page(dash_duo, sample_app, f"?layer=fc1.weight&ref={ids['cnn_fp32']}")
    driver = dash_duo.driver
    for tab in TABS:
        go_to_tab(dash_duo, tab)
        if tab == "Distributions":
            wait_for(lambda: len(legend_names(dash_duo, "value-hist-graph")) >= 2, message="histograms")
        if tab == "Layers":
            wait_for(lambda: dash_duo.find_elements("#layer-table td[data-dash-column='variant']"), message="table")
        time.sleep(1.0)  # let plotly finish resizing to the shown tab
        driver.execute_script("window.scrollTo({top: 0, behavior: 'instant'})")
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{tab} at {width}x{height} scrolls sideways by {overflow}px"
        # plotly graphs drawn at the width of their card (not the 700px default of a hidden div)
        for g in driver.find_elements_by_css_selector(".tab-pane.active .js-plotly-plot"):
            card = driver.execute_script("return arguments[0].closest('.card-body').clientWidth", g)
            assert abs(g.size["width"] - (card - 16)) < 40, f"{tab}: a graph is {g.size['width']}px in {card}px"
        name = tab.lower()
        driver.save_screenshot(str(out / f"{width}x{height}-{name}.png"))
        driver.execute_script("window.scrollTo({top: document.body.scrollHeight / 2, behavior: 'instant'})")
        time.sleep(0.3)
        driver.save_screenshot(str(out / f"{width}x{height}-{name}-middle.png"))
        driver.execute_script("window.scrollTo({top: document.body.scrollHeight, behavior: 'instant'})")
        time.sleep(0.3)
        driver.save_screenshot(str(out / f"{width}x{height}-{name}-bottom.png"))
    settle(dash_duo)
    assert dash_duo.get_logs() == []
