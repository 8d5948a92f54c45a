"""Collecting a job started by another worker does not wait for it (Dash's manager waited
1 s per such poll for the other worker's zombie, holding the jobs store's lock)."""

from __future__ import annotations

import subprocess
import sys
import time

import diskcache
from dash import DiskcacheManager

from dashapp.job_manager import JobManager

# a "worker" that starts a short job with multiprocess (as Dash does) and never reaps it
_WORKER = """
import sys, time
from multiprocess import Process
p = Process(target=time.sleep, args=(0.05,))
p.start()
print(p.pid, flush=True)
time.sleep(30)
"""


def _other_workers_zombie():
    w = subprocess.Popen([sys.executable, "-c", _WORKER], stdout=subprocess.PIPE, text=True)
    job = int(w.stdout.readline())
    time.sleep(0.5)                                   # the job is done: a zombie of that worker
    return w, job


def _time_terminate(manager, job) -> float:
    t = time.perf_counter()
    manager.terminate_job(job)
    return time.perf_counter() - t


def test_terminating_another_workers_finished_job_does_not_wait(tmp_path):
    w, job = _other_workers_zombie()
    try:
        assert _time_terminate(JobManager(diskcache.Cache(str(tmp_path / "a"))), job) < 0.3
    finally:
        w.kill()
        w.wait()


def test_dash_manager_waited_a_second_there(tmp_path):
    """Control: the upstream manager waits the full second for the same zombie."""
    w, job = _other_workers_zombie()
    try:
        assert _time_terminate(DiskcacheManager(diskcache.Cache(str(tmp_path / "b"))), job) >= 0.9
    finally:
        w.kill()
        w.wait()


def test_own_jobs_are_still_killed_and_reaped(tmp_path):
    from multiprocess import Process
    m = JobManager(diskcache.Cache(str(tmp_path / "c")))
    p = Process(target=time.sleep, args=(30,))
    p.start()
    t = time.perf_counter()
    m.terminate_job(p.pid)
    assert time.perf_counter() - t < 1.5
    import psutil
    assert not psutil.pid_exists(p.pid)               # killed and reaped (no zombie left)


def test_a_job_is_forked_only_when_no_thread_is_inside_the_jobs_store(tmp_path, monkeypatch):
    """SQLite's process-wide mutexes: a fork while a poll was inside the store left the
    job's copy of one locked, and the job hung at its first progress report.  The fork
    now waits for the poll, and the poll for the fork."""
    import threading

    m = JobManager(diskcache.Cache(str(tmp_path / "d")))
    events, inside = [], threading.Event()
    real_get = m.handle.get

    def slow_get(*args, **kwargs):                    # a poll, caught inside the store
        events.append("poll in")
        inside.set()
        time.sleep(0.3)
        events.append("poll out")
        return real_get(*args, **kwargs)

    monkeypatch.setattr(m.handle, "get", slow_get)
    monkeypatch.setattr(DiskcacheManager, "call_job_fn", lambda *a: events.append("fork") or 123)
    poll = threading.Thread(target=m.result_ready, args=("some-key",))
    poll.start()
    assert inside.wait(5)
    assert m.call_job_fn("k", None, (), None) == 123
    poll.join()
    assert events == ["poll in", "poll out", "fork"]


def test_the_store_lock_is_fresh_in_a_forked_child():
    """The forking thread holds the lock: the child must not start with it taken."""
    import os

    from dashapp import job_manager

    with job_manager._STORE_LOCK:
        pid = os.fork()
        if pid == 0:  # the child: the lock must be free here
            os._exit(0 if job_manager._STORE_LOCK.acquire(timeout=1) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
