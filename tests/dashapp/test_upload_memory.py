"""An upload near the size cap, posted to a real gunicorn worker: answered in time, and the
worker's peak memory (VmHWM) grows by at most 6x the file (the request body, its JSON
string, the decoded bytes and the parsed model are alive together; measured 5.2x).
Worker budget: 150 MB idle + 6 x QUANTLENS_MAX_UPLOAD_MB."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from benchmarks.load import dash_protocol as dp

ROOT = Path(__file__).resolve().parents[2]
FILE_MB = 40


def _status(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


def test_upload_near_the_cap_keeps_worker_memory_in_budget(tmp_path):
    side = int((FILE_MB * 2**20 / 4) ** 0.5)
    w = np.random.default_rng(0).standard_normal((side, side)).astype(np.float32)
    g = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm")], "big",
                          [helper.make_tensor_value_info("X", TP.FLOAT, [1, side])],
                          [helper.make_tensor_value_info("Y", TP.FLOAT, [1, side])], [numpy_helper.from_array(w, "W")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    data = m.SerializeToString()
    del m, g, w
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, QUANTLENS_MODEL_DIR=str(ROOT / "data"), QUANTLENS_CACHE_DIR=str(tmp_path / "cache"),
               QUANTLENS_UPLOAD_DIR=str(tmp_path / "up"), QUANTLENS_MAX_UPLOAD_MB=str(FILE_MB + 2))
    env.pop("QUANTLENS_DEBUG", None)
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "dashapp.app:server", "--bind", f"127.0.0.1:{port}",
                             "--workers", "1", "--timeout", "25", "--preload", "--no-control-socket"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                html = urllib.request.urlopen(base + "/", timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.2)
        worker = int(open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()[0])
        deps = json.loads(urllib.request.urlopen(base + "/_dash-dependencies").read())
        before = _status(worker, "VmHWM")
        body = dp.callback_body(dp.find_callback(deps, "upload-alert-div.children"), {
            "upload-variant-upload.contents": "data:application/octet-stream;base64," + base64.b64encode(data).decode(),
            "upload-variant-upload.filename": "big.onnx"}, changed=["upload-variant-upload.contents"])
        raw = json.dumps(body).encode()
        del body
        t = time.time()
        req = urllib.request.Request(f"{base}/_dash-update-component?endId={dp.end_id(html)}", data=raw,
                                     headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(req, timeout=60).read())
        secs = time.time() - t
        peak = _status(worker, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
    assert answer["response"]["upload-alert-div"]["children"]["props"]["id"] == "upload-ok-alert"
    assert secs < 15, secs                                   # well under gunicorn's 25 s timeout
    grown = peak - before
    assert grown <= 6.0 * len(data), (grown / 2**20, len(data) / 2**20)
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()
