"""The dashboard benchmark still drives the real app end to end (a small model set):
it broke silently once, when a clientside callback joined the app."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Server callbacks a user's selections and filters must have reached.
EXPECTED = {"update_selection", "update_range_chart", "update_sqnr_chart", "update_distributions",
            "update_layer_table", "update_summary", "update_filter_store"}


def test_dashboard_benchmark_runs_on_a_small_model_set(tmp_path):
    out = tmp_path / "dash.json"
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks.dashboard", "--layers", "24", "--interactions", "40",
         "--repeat", "1", "--no-reopen", "--no-profile", "--models", str(tmp_path / "models"),
         "--cache-dir", str(tmp_path / "cache"), "--results", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-3000:]  # 1 = a target missed
    res = json.loads(out.read_text())["dashboard"]
    fired = {name for name, stats in res["callbacks"].items() if stats}
    assert EXPECTED <= fired, sorted(fired)
    assert sum(res["interactions_done"]) >= 40
    assert res["initial_page"]["bytes"] > 0
