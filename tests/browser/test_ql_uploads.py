"""Uploads in a real browser (dash_duo): a good model typed into the drop zone's file input is
analysed as a variant; garbage gets its specific message and breaks nothing; the upload's
link opens it in another browser session, whose bare page never lists it; a server model
whose external data leaves its folder gets a clear message."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
from onnx import TensorProto as TP

from browser_helpers import query_of, settle, wait_for, write_chain_models


def model_folder(tmp_path):
    """A model folder holding only an FP32 chain model; its int8 variant stays outside
    (it is what the tests upload)."""
    gen = write_chain_models(tmp_path / "gen", n_layers=6, width=16)
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(gen / "chain_fp32.onnx", models / "chain_fp32.onnx")
    return models, gen / "chain_int8.onnx"


def start(dash_duo, models):
    from dashapp.app import create_app
    dash_duo.start_server(create_app(models))
    dash_duo.wait_for_contains_text("#analysis-alert-div", "at least one", timeout=30)


def upload(dash_duo, zone: str, path):
    dash_duo.find_element(f"#{zone} input[type=file]").send_keys(str(path))


def summary_titles(dash_duo) -> list[str]:
    return [e.text for e in dash_duo.find_elements("#summary-cards-div .card .text-uppercase")]


def picker_options(dash_duo, selector) -> list[str]:
    """Texts of a dropdown's options (opens it, reads them, closes it)."""
    from selenium.webdriver.common.keys import Keys
    dash_duo.find_element(selector).click()
    menu = dash_duo.wait_for_element(".dash-dropdown-options", timeout=10)
    texts = [" ".join(o.text.split()) for o in menu.find_elements_by_css_selector(".dash-dropdown-option")]
    dash_duo.find_element("body").send_keys(Keys.ESCAPE)
    return texts


def no_console_errors(dash_duo):
    settle(dash_duo)
    assert dash_duo.get_logs() == []


def test_ql020_uploaded_variant_is_analysed(dash_duo, tmp_path):
    models, variant = model_folder(tmp_path)
    start(dash_duo, models)
    upload(dash_duo, "upload-variant-upload", variant)
    dash_duo.wait_for_contains_text("#upload-ok-alert", "Uploaded chain_int8.onnx", timeout=20)
    dash_duo.wait_for_element("#layer-range-chart .bars path", timeout=40)
    wait_for(lambda: len(summary_titles(dash_duo)) == 2, timeout=30, message="reference + variant cards")
    title = summary_titles(dash_duo)[1]
    assert title.startswith("CHAIN_INT8 (UPLOAD ") and title.endswith(")")
    assert "1 variant(s) against chain_fp32.onnx" in dash_duo.find_element("#job-status-text").text
    # the upload is chosen in the picker, by its file name, and the link carries its id
    assert "chain_int8.onnx" in dash_duo.find_element("#variant-models-dropdown").text
    v = wait_for(lambda: query_of(dash_duo).get("v"), message="variant id in the URL")
    assert v.startswith("u-") and len(v) == 24
    assert dash_duo.find_elements("#upload-error-alert") == []
    no_console_errors(dash_duo)


def test_ql021_garbage_upload_shows_the_message(dash_duo, tmp_path):
    models, variant = model_folder(tmp_path)
    fake = tmp_path / "holiday.png.onnx"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64)))
    start(dash_duo, models)
    upload(dash_duo, "upload-variant-upload", fake)
    dash_duo.wait_for_contains_text("#upload-error-alert", "'holiday.png.onnx' is not an ONNX model", timeout=20)
    assert "protobuf decode failed" in dash_duo.find_element("#upload-error-alert").text
    # nothing else broke: the pickers and the page still work, a good upload still goes through
    assert "at least one" in dash_duo.find_element("#analysis-alert-div").text
    upload(dash_duo, "upload-variant-upload", variant)
    dash_duo.wait_for_contains_text("#upload-ok-alert", "chain_int8.onnx", timeout=20)
    dash_duo.wait_for_element("#layer-range-chart .bars path", timeout=40)
    # an HTML file name is shown as text
    evil = tmp_path / "<img src=x onerror=alert(1)>.onnx"
    evil.write_bytes(b"")
    upload(dash_duo, "upload-ref-upload", evil)
    dash_duo.wait_for_contains_text("#upload-error-alert", "<img src=x onerror=alert(1)>.onnx", timeout=20)
    assert "empty" in dash_duo.find_element("#upload-error-alert").text
    assert dash_duo.find_elements("#upload-alert-div img") == []
    no_console_errors(dash_duo)


def test_ql022_upload_link_works_elsewhere_and_is_never_listed(dash_duo, tmp_path):
    models, variant = model_folder(tmp_path)
    start(dash_duo, models)
    upload(dash_duo, "upload-variant-upload", variant)
    dash_duo.wait_for_element("#layer-range-chart .bars path", timeout=40)
    uid = wait_for(lambda: query_of(dash_duo).get("v"), message="variant id in the URL")
    link = dash_duo.driver.current_url
    first = dash_duo.driver.current_window_handle
    # another browsing context (its own sessionStorage), bare page: the upload is not offered
    dash_duo.driver.switch_to.new_window("window")
    dash_duo.driver.get(dash_duo.server_url + "/")
    dash_duo.wait_for_contains_text("#analysis-alert-div", "at least one", timeout=30)
    assert picker_options(dash_duo, "#variant-models-dropdown") == ["chain_fp32.onnx (float)"]
    assert uid not in dash_duo.driver.page_source and "chain_int8" not in dash_duo.driver.page_source
    # ... but its link opens it
    dash_duo.driver.get(link)
    dash_duo.wait_for_element("#layer-range-chart .bars path", timeout=40)
    wait_for(lambda: len(summary_titles(dash_duo)) == 2, timeout=30, message="the uploaded variant's card")
    assert summary_titles(dash_duo)[1].startswith("CHAIN_INT8 (UPLOAD ")
    assert "chain_int8.onnx (upload)" in picker_options(dash_duo, "#variant-models-dropdown")
    dash_duo.driver.close()
    dash_duo.driver.switch_to.window(first)
    no_console_errors(dash_duo)


def test_ql023_server_model_with_escaping_external_data_shows_a_message(dash_duo, tmp_path):
    models, variant = model_folder(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_bytes(np.arange(256, dtype=np.float32).tobytes())
    m = onnx.load(str(variant))
    t = next(t for t in m.graph.initializer if t.name == "w0_quantized")
    t.ClearField("raw_data")
    t.data_location = TP.EXTERNAL
    for k, v in (("location", "../outside/secret.bin"), ("offset", "0"), ("length", "256")):
        e = t.external_data.add()
        e.key, e.value = k, v
    onnx.save(m, models / "leaky_int8.onnx")
    from dashapp.app import create_app
    from dashapp.models import scan_models
    leaky = next(e.id for e in scan_models(models).entries if e.name == "leaky_int8.onnx")
    dash_duo.start_server(create_app(models))
    dash_duo.driver.get(dash_duo.server_url + f"/?v={leaky}")
    dash_duo.wait_for_contains_text("#analysis-error-alert", "leaky_int8.onnx", timeout=40)
    text = dash_duo.find_element("#analysis-error-alert").text
    assert "Cannot analyse" in text and "refused" in text
    assert str(outside) not in text
    no_console_errors(dash_duo)
