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


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def sample(master: int, out: str, interval: float = 0.25) -> None:
    workers: dict[int, int] = {}
    jobs: dict[int, int] = {}
    cpu: dict[int, float] = {}            # last CPU seconds seen per worker / job
    master_hwm = [0]
    started = time.time()

    def dump():
        with open(out + ".tmp", "w") as f:
            json.dump({"master": master, "workers_kib": workers, "jobs_kib": jobs, "master_kib": master_hwm[0],
                       "worker_cpu_s": sum(v for k, v in cpu.items() if k in workers),
                       "job_cpu_s": sum(v for k, v in cpu.items() if k in jobs),
                       "sampled_s": time.time() - started}, f)
        os.replace(out + ".tmp", out)

    def sample(pid, peaks):
        """Peak RSS (VmHWM) into ``peaks``, CPU seconds into ``cpu``."""
        h = _hwm_kib(pid)
        if h:
            peaks[pid] = max(peaks.get(pid, 0), h)
        c = _cpu_seconds(pid)
        if c is not None:
            cpu[pid] = c

    last = 0.0
    while os.path.exists(f"/proc/{master}"):
        master_hwm[0] = max(master_hwm[0], _hwm_kib(master) or 0)
        for w in _children(master):
            sample(w, workers)
            for j in _children(w):
                sample(j, jobs)
        if time.time() - last > 2:
            dump()
            last = time.time()
        time.sleep(interval)
    dump()


if __name__ == "__main__":
    sample(int(sys.argv[1]), sys.argv[2])
