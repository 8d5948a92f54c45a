"""Helpers of the upload, id and hosting tests: model bytes built here, data URLs, and
callback requests posted through the Flask test client exactly as the browser posts them
(rebuilt from ``/_dash-dependencies`` by ``benchmarks/load/dash_protocol.py``)."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from benchmarks.load import dash_protocol as dp
from tiny_models import _graph, make_weights, qdq_model
from protobuf_bytes import field as _field  # noqa: F401 (re-exported for test_uploads)
from protobuf_bytes import nested_if_bytes  # noqa: F401

UPLOAD_REF = "upload-ref-upload.contents"
UPLOAD_VARIANT = "upload-variant-upload.contents"


# ---------------------------------------------------------------- model bytes
def fp32_bytes() -> bytes:
    return _graph(make_weights()).SerializeToString()


def variant_bytes() -> bytes:
    w = make_weights()
    return qdq_model(w, {n: (float(np.abs(a).max() / 127), None) for n, a in w.items()}).SerializeToString()


def external_data_bytes() -> bytes:
    """A model whose one initializer says its data lives in ``w.bin`` next to it."""
    t = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    t.ClearField("raw_data")
    t.data_location = TP.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "64")):
        e = t.external_data.add()
        e.key, e.value = k, v
    g = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")], "ext",
                          [helper.make_tensor_value_info("X", TP.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("Y", TP.FLOAT, [1, 4])], [t])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def no_nodes_bytes() -> bytes:
    g = helper.make_graph([], "empty", [], [])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def png_bytes() -> bytes:
    import struct
    import zlib
    raw = b"\x00\x00\x00\x00"
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def pdf_bytes() -> bytes:
    return (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


def zip_bytes() -> bytes:
    """What a PyTorch ``.pt`` is: a zip with a pickle inside (never unpickled here)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("archive/version", b"3\n")
    return buf.getvalue()


def json_bytes() -> bytes:
    return json.dumps({"irVersion": "8", "graph": {"node": [{"opType": "MatMul"}]}}).encode()


def data_url(data: bytes, mime: str = "application/octet-stream") -> str:
    """What ``dcc.Upload`` sends for a file: a base64 data URL."""
    return f"data:{mime};base64," + base64.b64encode(data).decode()


# ---------------------------------------------------------------- requests
class Page:
    """One page load through a Flask test client: its ``endId`` and the callback map."""

    def __init__(self, app, client=None):
        self.app = app
        self.client = client or app.server.test_client()
        html = self.client.get("/").get_data(as_text=True)
        self.end_id = dp.end_id(html)
        self.deps = self.client.get("/_dash-dependencies").get_json()

    def post(self, output: str, values: dict, changed=None):
        """POST the callback writing ``output`` with ``values``; returns the response."""
        body = dp.callback_body(dp.find_callback(self.deps, output), values, changed)
        return self.client.post(f"/_dash-update-component?endId={self.end_id}", json=body)

    def upload(self, data_or_contents, filename="model.onnx", slot="variant", session=None, ref=None,
               variants=None):
        """POST an upload to one of the two zones (``data_or_contents``: bytes, or the raw
        ``contents`` value to send)."""
        contents = data_url(data_or_contents) if isinstance(data_or_contents, bytes) else data_or_contents
        key = UPLOAD_REF if slot == "ref" else UPLOAD_VARIANT
        values = {key: contents, key.replace(".contents", ".filename"): filename,
                  "upload-store.data": session, "ref-model-dropdown.value": ref,
                  "variant-models-dropdown.value": variants}
        return self.post("upload-alert-div.children", values, changed=[key])


def texts(component) -> list[str]:
    """Every string in a component's JSON (the text the page shows), depth first."""
    out = []
    if isinstance(component, str):
        out.append(component)
    elif isinstance(component, list):
        for c in component:
            out += texts(c)
    elif isinstance(component, dict):
        props = component.get("props", component)
        for k in ("children",):
            if k in props:
                out += texts(props[k])
    return out


def response_props(resp) -> dict:
    """``{component id: {prop: value}}`` of a callback response."""
    return resp.get_json()["response"]


def alert_of(resp) -> tuple[str, str]:
    """(alert id, shown text) of an upload response."""
    alert = response_props(resp)["upload-alert-div"]["children"]
    return alert["props"]["id"], " ".join(texts(alert))


def run_background(page: Page, output: str, values: dict, timeout: float = 60.0):
    """POST a background callback and poll it as the renderer does; returns the last
    response (the one carrying ``response``, or a non-200)."""
    import time
    body = dp.callback_body(dp.find_callback(page.deps, output), values)
    base = f"/_dash-update-component?endId={page.end_id}"
    r = page.client.post(base, json=body)
    if r.status_code != 200:
        return r
    first = r.get_json()
    if "response" in first:
        return r
    from urllib.parse import quote
    url = f"{base}&cacheKey={quote(first['cacheKey'])}&job={quote(first['job'])}"
    end = time.time() + timeout
    while time.time() < end:
        time.sleep(0.2)
        r = page.client.post(url, json=dp.poll_body(body))
        if r.status_code != 200 or "response" in (r.get_json() or {}):
            return r
    raise AssertionError(f"background callback for {output} did not finish in {timeout} s")
