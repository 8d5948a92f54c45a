"""Helpers for the browser tests (page, plot and model helpers).

Kept out of ``conftest.py`` under a unique module name: with several ``conftest``
modules in the tree, ``from conftest import ...`` resolves to whichever was imported
first, which broke a test only when the whole suite ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


DATA = Path(__file__).resolve().parents[2] / "data"


def wait_for(predicate, timeout=15, interval=0.1, message="condition"):
    """Poll ``predicate`` until it returns a truthy value."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - stale elements while the page re-renders
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message} (last: {last!r})")


# ---------------------------------------------------------------- page helpers
def open_page(dash_duo, app, query: str = ""):
    """Start ``app`` and open it (with ``query``); wait until the analysis is shown."""
    dash_duo.start_server(app)
    if query:
        dash_duo.driver.get(dash_duo.server_url + "/" + query)
    wait_ready(dash_duo)


def wait_ready(dash_duo, timeout=90):
    """Wait for the range chart to have bars (the job finished and the views rendered)."""
    dash_duo.wait_for_element("#layer-range-chart .bars path", timeout=timeout)


def query_of(dash_duo) -> dict:
    from urllib.parse import parse_qs, urlparse
    return {k: v[-1] for k, v in parse_qs(urlparse(dash_duo.driver.current_url).query).items()}


def table_column(dash_duo, column: str) -> list[str]:
    """Texts of one column of the visible table page."""
    return [e.text for e in dash_duo.find_elements(f"#layer-table td[data-dash-column='{column}']")]


def selected_layer(dash_duo) -> str:
    return dash_duo.find_element("#selected-layer-text").text


def go_to_tab(dash_duo, label: str):
    for a in dash_duo.find_elements("#view-tabs .nav-link"):
        if a.text.strip() == label:
            dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", a)
            a.click()
            return
    raise AssertionError(f"no tab {label}")


def plotly_points(dash_duo, graph_id: str, trace: int) -> list:
    """Layer key of every point of one trace of a graph, from the live figure (``customdata``
    is the key escaped for plotly: unescaped here as the selection hub does)."""
    from dashapp.state import unescape_key
    cds = dash_duo.driver.execute_script(
        "const gd = document.querySelector(`#${arguments[0]} .js-plotly-plot`);"
        "return Array.from(gd.data[arguments[1]].customdata);", graph_id, trace)
    return [unescape_key(c[0] if isinstance(c, list) else c) for c in cds]


def click(dash_duo, selector_or_element):
    """Scroll an element to the middle of the window, then click it (a real click); retried
    while a loading overlay still covers it."""
    from selenium.common.exceptions import ElementClickInterceptedException
    el = (dash_duo.find_element(selector_or_element) if isinstance(selector_or_element, str)
          else selector_or_element)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", el)

    def attempt():
        try:
            el.click()
            return True
        except ElementClickInterceptedException:
            return False
    wait_for(attempt, timeout=10, interval=0.3, message="a clickable element")
    return el


def drag_box(dash_duo, graph_id: str, x0: float, y0: float, x1: float, y1: float, steps: int = 10):
    """A real mouse drag over a graph's plot area, between fractions of its width/height."""
    from selenium.webdriver.common.action_chains import ActionChains
    plot = dash_duo.find_element(f"#{graph_id} .nsewdrag")
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", plot)
    time.sleep(0.3)
    w, h = plot.size["width"], plot.size["height"]
    chain = ActionChains(dash_duo.driver).move_to_element_with_offset(plot, int(w * x0), int(h * y0)).click_and_hold()
    for k in range(1, steps + 1):
        t = k / steps
        chain = chain.move_to_element_with_offset(plot, int(w * (x0 + (x1 - x0) * t)),
                                                  int(h * (y0 + (y1 - y0) * t))).pause(0.05)
    chain.release().perform()


def write_chain_models(folder: Path, n_layers: int = 150, width: int = 256, seed: int = 0):
    """A float chain of ``n_layers`` MatMuls (``w{i}`` [width, width]) and its int8 QDQ
    per-tensor quantization, written to ``folder`` as chain_fp32.onnx / chain_int8.onnx:
    big enough that analysing it takes a few seconds (progress and cancel are visible)."""
    import numpy as np
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper, numpy_helper
    rng = np.random.default_rng(seed)
    ws = [(rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32) for _ in range(n_layers)]

    def model(quantized: bool):
        nodes, inits, prev = [], [], "X"
        for i, w in enumerate(ws):
            name = f"w{i}"
            if quantized:
                s = np.float32(np.abs(w).max() / 127)
                q = np.clip(np.round(w / s), -128, 127).astype(np.int8)
                inits += [numpy_helper.from_array(q, f"{name}_quantized"),
                          numpy_helper.from_array(np.asarray(s), f"{name}_scale"),
                          numpy_helper.from_array(np.zeros((), np.int8), f"{name}_zero_point")]
                nodes.append(helper.make_node("DequantizeLinear", [f"{name}_quantized", f"{name}_scale",
                                                                  f"{name}_zero_point"], [f"{name}_dq"],
                                              name=f"{name}_DequantizeLinear"))
                src = f"{name}_dq"
            else:
                inits.append(numpy_helper.from_array(w, name))
                src = name
            nodes.append(helper.make_node("MatMul", [prev, src], [f"h{i}"], name=f"mm{i}"))
            prev = f"h{i}"
        g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("X", TP.FLOAT, [1, width])],
                              [helper.make_tensor_value_info(prev, TP.FLOAT, [1, width])], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m

    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model(False), folder / "chain_fp32.onnx")
    onnx.save(model(True), folder / "chain_int8.onnx")
    return folder


def settle(dash_duo, quiet: float = 0.6, timeout: float = 20):
    """Wait until no component has been loading for ``quiet`` seconds, so a test does not
    stop the server in the middle of a callback."""
    js = "return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length"
    end = time.time() + timeout
    calm_since = None
    while time.time() < end:
        if dash_duo.driver.execute_script(js) == 0:
            calm_since = calm_since or time.time()
            if time.time() - calm_since >= quiet:
                return
        else:
            calm_since = None
        time.sleep(0.1)
