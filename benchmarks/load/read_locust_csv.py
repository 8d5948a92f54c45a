"""Read a load run's results and gate it.

    python read_locust_csv.py OUT_DIR [--p95-ms 300] [--rss-budget-mb 700]

Reads ``OUT_DIR/results.json`` (locust's ``--json-file``, written at exit, so exact), falls
back to ``results_stats.csv`` (rewritten every second while running, so it can lag by
about a second of traffic), and ``OUT_DIR/rss.json`` (``rss_sampler.py``).  Prints
requests, failures and p50/p95/p99 per request name, the callbacks' combined percentiles
(every ``POST /_dash-update-component``: ``cb:`` and ``job:`` names), the failures, and the
peak resident memory of each gunicorn worker and analysis job.

Exit status 1 when any request or check failed, the callbacks' p95 is over ``--p95-ms``,
or a worker's peak RSS is over ``--rss-budget-mb``.  Writes ``OUT_DIR/summary.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path


def _percentile(hist: dict, q: float) -> float:
    """Percentile of locust's response-time histogram (``{rounded ms: count}``)."""
    items = sorted((float(k), int(v)) for k, v in hist.items())
    total = sum(n for _, n in items)
    if not total:
        return 0.0
    rank = q * total
    run = 0
    for ms, n in items:
        run += n
        if run >= rank:
            return ms
    return items[-1][0]


def read_json(path: Path) -> list[dict]:
    rows = []
    for s in json.loads(path.read_text()):
        hist = s.get("response_times") or {}
        rows.append({"type": s["method"], "name": s["name"], "n": s["num_requests"], "fail": s["num_failures"],
                     "hist": hist, "p50": _percentile(hist, 0.50), "p95": _percentile(hist, 0.95),
                     "p99": _percentile(hist, 0.99), "max": s.get("max_response_time", 0)})
    return rows


def read_csv(path: Path) -> list[dict]:
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["Name"] == "Aggregated":
                continue
            rows.append({"type": r["Type"], "name": r["Name"], "n": int(r["Request Count"]),
                         "fail": int(r["Failure Count"]), "hist": None, "p50": float(r["50%"] or 0),
                         "p95": float(r["95%"] or 0), "p99": float(r["99%"] or 0),
                         "max": float(r["100%"] or 0)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--p95-ms", type=float, default=300.0)
    ap.add_argument("--rss-budget-mb", type=float, default=700.0)
    a = ap.parse_args(argv)
    out: Path = a.out
    rows = read_json(out / "results.json") if (out / "results.json").exists() else read_csv(
        out / "results_stats.csv")
    bad = []
    print(f"{'type':<6} {'name':<30} {'requests':>8} {'fails':>6} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>7}  (ms)")
    for r in sorted(rows, key=lambda r: (r["type"] == "CHECK", r["name"])):
        print(f"{r['type']:<6} {r['name']:<30} {r['n']:>8} {r['fail']:>6} {r['p50']:>6.0f} {r['p95']:>6.0f} "
              f"{r['p99']:>6.0f} {r['max']:>7.0f}")
    http = [r for r in rows if r["type"] != "CHECK"]
    calls = [r for r in http if r["type"] == "POST"]
    merged: dict = {}
    for r in calls:
        for k, v in (r["hist"] or {}).items():
            merged[k] = merged.get(k, 0) + v
    summary = {
        "requests": sum(r["n"] for r in http), "failures": sum(r["fail"] for r in rows),
        "callbacks": sum(r["n"] for r in calls),
        "callback_p50_ms": _percentile(merged, 0.5) if merged else None,
        "callback_p95_ms": _percentile(merged, 0.95) if merged else max((r["p95"] for r in calls), default=0),
        "callback_p99_ms": _percentile(merged, 0.99) if merged else None,
        "checks": sum(r["n"] for r in rows if r["type"] == "CHECK"),
        "per_name": {r["name"]: {k: r[k] for k in ("type", "n", "fail", "p50", "p95", "p99", "max")} for r in rows},
    }
    print(f"\nall requests: {summary['requests']}, failures (requests + checks): {summary['failures']}")
    print(f"callbacks (POST /_dash-update-component): {summary['callbacks']}, p50 {summary['callback_p50_ms']} ms, "
          f"p95 {summary['callback_p95_ms']} ms, p99 {summary['callback_p99_ms']} ms "
          f"(limit p95 <= {a.p95_ms:g} ms)")
    if summary["failures"]:
        bad.append(f"{summary['failures']} failures")
    if (summary["callback_p95_ms"] or 0) > a.p95_ms:
        bad.append(f"callback p95 {summary['callback_p95_ms']} ms > {a.p95_ms:g} ms")
    fails = out / "results_failures.csv"
    if fails.exists():
        with open(fails, newline="") as f:
            for r in csv.DictReader(f):
                print("FAILURE:", r["Method"], r["Name"], r["Error"][:300], "x", r["Occurrences"])
    rss = out / "rss.json"
    if rss.exists():
        m = json.loads(rss.read_text())
        workers = {int(k): v / 1024 for k, v in m["workers_kib"].items()}
        jobs = [v / 1024 for v in m["jobs_kib"].values()]
        peak = max(workers.values(), default=0.0)
        summary.update(worker_peak_rss_mb=round(peak, 1), workers_seen=len(workers),
                       job_processes=len(jobs), job_peak_rss_mb=round(max(jobs, default=0.0), 1),
                       master_peak_rss_mb=round((m.get("master_kib") or 0) / 1024, 1),
                       rss_budget_mb=a.rss_budget_mb)
        print(f"gunicorn workers seen: {len(workers)} (recycled ones included); peak RSS (VmHWM) per worker: "
              + ", ".join(f"{v:.0f}" for v in sorted(workers.values(), reverse=True)[:8])
              + f" MB; max {peak:.0f} MB (budget {a.rss_budget_mb:g} MB)")
        print(f"analysis job processes: {len(jobs)}, peak RSS {max(jobs, default=0):.0f} MB; "
              f"master {summary['master_peak_rss_mb']:.0f} MB")
        if "worker_cpu_s" in m:
            n = max(summary["callbacks"], 1)
            summary.update(worker_cpu_s=round(m["worker_cpu_s"], 1), job_cpu_s=round(m["job_cpu_s"], 1),
                           worker_cpu_ms_per_callback=round(1000 * m["worker_cpu_s"] / n, 1),
                           worker_cores_busy=round(m["worker_cpu_s"] / max(m["sampled_s"], 1e-9), 2))
            print(f"CPU: workers {m['worker_cpu_s']:.1f} s ({summary['worker_cpu_ms_per_callback']} ms per callback, "
                  f"{summary['worker_cores_busy']} cores busy on average over {m['sampled_s']:.0f} s), "
                  f"analysis jobs {m['job_cpu_s']:.1f} s")
        if peak > a.rss_budget_mb:
            bad.append(f"worker peak RSS {peak:.0f} MB > {a.rss_budget_mb:g} MB")
    else:
        bad.append("no rss.json")
    lc = out / "locust_cpu.json"
    if lc.exists():
        c = json.loads(lc.read_text())
        summary.update(locust_cpu_s=round(c["cpu_s"], 1), locust_wall_s=round(c["wall_s"], 1))
        print(f"locust (the client, same machine): {c['cpu_s']:.1f} CPU-s over {c['wall_s']:.0f} s")
    summary["verdict"] = "FAIL: " + "; ".join(bad) if bad else "PASS"
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(summary["verdict"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
