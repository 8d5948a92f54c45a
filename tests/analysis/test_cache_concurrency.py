"""Cache robustness across processes: two workers asking for the same pair compute
it once and both get it; a writer killed half-way leaves no entry that is served."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

import analysis.cache as cache
from analysis import analyze

ROOT = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    import analysis.api as api
    real = api.analyze_pair
    def counted(*a, **k):
        with open({log!r}, "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        time.sleep(1.0)          # widen the race window
        return real(*a, **k)
    api.analyze_pair = counted
    a = api.analyze({fp32!r}, [{var!r}])
    print(json.dumps({{"rows": len(a.layers), "sqnr": float(a.layers.sqnr_db.sum())}}))
""")


def test_two_workers_compute_once(sample_models, tmp_path):
    fp32, variants = sample_models
    log = tmp_path / "computed.log"
    code = WORKER.format(root=str(ROOT), log=str(log), fp32=str(fp32), var=str(variants[0]))
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True)
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    assert len(log.read_text().split()) == 1, "the pair was computed more than once"


KILLED = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    import analysis.cache as cache
    real_replace = os.replace
    def die(src, dst):           # the entry writer dies after its temporary file, before the rename
        if "entries" in str(dst):
            os._exit(9)
        real_replace(src, dst)
    cache.os.replace = die
    import analysis
    analysis.analyze({fp32!r}, [{var!r}])
""")


def test_writer_killed_half_way(sample_models):
    fp32, variants = sample_models
    code = KILLED.format(root=str(ROOT), fp32=str(fp32), var=str(variants[0]))
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ))
    assert r.returncode == 9
    entries = cache.cache_dir() / "entries"
    assert list(entries.glob(".tmp-*")), "the writer should have died mid-write"
    assert not list(entries.glob("*.npz"))
    good = analyze(fp32, [variants[0]])
    pd.testing.assert_frame_equal(good.layers, analyze(fp32, [variants[0]], cache=False).layers)
