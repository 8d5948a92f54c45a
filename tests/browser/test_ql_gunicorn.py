"""The production set-up in a real browser: gunicorn with two workers and --preload (as the
Procfile runs it), background analysis jobs answered by whichever worker gets the poll."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from browser_helpers import DATA, query_of, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ql011_serves_under_gunicorn_with_two_workers(dash_br, tmp_path):
    port = _free_port()
    env = dict(os.environ, QUANTLENS_CACHE_DIR=str(tmp_path / "cache"), QUANTLENS_MODEL_DIR=str(DATA))
    env.pop("QUANTLENS_DEBUG", None)
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "dashapp.app:server", "--bind", f"127.0.0.1:{port}",
                             "--workers", "2", "--preload", "--timeout", "25", "--no-control-socket"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def up():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_for(up, timeout=30, message="gunicorn listening")
        dash_br.server_url = f"http://127.0.0.1:{port}"
        dash_br.wait_for_element("#layer-range-chart .bars path", timeout=40)
        wait_for(lambda: "ref" in query_of(dash_br), message="URL state")
        dash_br.wait_for_contains_text("#job-status-text", "4 variant(s)", timeout=10)
        assert dash_br.driver.execute_script(
            "return JSON.parse(document.getElementById('_dash-config').textContent).ui") is False
        assert dash_br.get_logs() == []
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()
