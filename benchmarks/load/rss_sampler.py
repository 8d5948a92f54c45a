"""Peak memory of a gunicorn master's workers (and of the analysis jobs they start), read
from ``/proc/<pid>/status`` (``VmHWM``: the peak resident set of each process) every
0.25 s until the master exits.  Workers recycled by ``--max-requests`` are sampled while
they live, so their peaks are kept.

    python rss_sampler.py MASTER_PID OUT.json
"""

from __future__ import annotations

import json
import os
import sys
import time


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def sample(master: int, out: str, interval: float = 0.25) -> None:
    workers: dict[int, int] = {}
    jobs: dict[int, int] = {}

    def dump():
        with open(out + ".tmp", "w") as f:
            json.dump({"master": master, "workers_kib": workers, "jobs_kib": jobs,
                       "master_kib": _hwm_kib(master)}, f)
        os.replace(out + ".tmp", out)

    last = 0.0
    while os.path.exists(f"/proc/{master}"):
        for w in _children(master):
            h = _hwm_kib(w)
            if h:
                workers[w] = max(workers.get(w, 0), h)
            for j in _children(w):
                hj = _hwm_kib(j)
                if hj:
                    jobs[j] = max(jobs.get(j, 0), hj)
        if time.time() - last > 2:
            dump()
            last = time.time()
        time.sleep(interval)
    dump()


if __name__ == "__main__":
    sample(int(sys.argv[1]), sys.argv[2])
