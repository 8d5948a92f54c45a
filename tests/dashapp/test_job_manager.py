"""Collecting a job started by another worker does not wait for it (Dash's manager waited
1 s per such poll for the other worker's zombie, holding the jobs store's lock); a job is
never forked while another thread is inside SQLite (the jobs store holds the fork lock)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import diskcache
from dash import DiskcacheManager

import pytest

from dashapp import job_manager
from dashapp.job_manager import JobManager, LockedCache

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
        assert _time_terminate(JobManager(LockedCache(str(tmp_path / "a"))), job) < 0.3
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
    m = JobManager(LockedCache(str(tmp_path / "c")))
    p = Process(target=time.sleep, args=(30,))
    p.start()
    t = time.perf_counter()
    m.terminate_job(p.pid)
    assert time.perf_counter() - t < 1.5
    import psutil
    assert not psutil.pid_exists(p.pid)               # killed and reaped (no zombie left)


def _inside_sqlite(m, op, inside, release):
    """``op`` on the jobs store, run in this thread and paused *inside* SQLite (in the
    trace callback of its first statement) until ``release``."""
    if op == "transact":                              # a caller's own transaction
        with m.handle.transact():
            inside.set()
            release.wait(5)
        return

    def pause(statement):
        if not inside.is_set():
            inside.set()
            release.wait(5)

    m.handle._con.set_trace_callback(pause)           # this thread's connection
    try:
        {"poll": lambda: m.result_ready("k"),         # a manager method (Dash's poll)
         "get": lambda: m.handle.get("k"),            # the handle used directly, as Dash
         "set": lambda: m.handle.set("k", 1),         # and the job do
         }[op]()
    finally:
        m.handle._con.set_trace_callback(None)


@pytest.mark.parametrize("op", ["poll", "get", "set", "transact"])
def test_a_job_is_forked_only_when_no_thread_is_inside_the_jobs_store(tmp_path, monkeypatch, op):
    """SQLite's process-wide mutexes: a fork while a poll was inside the store left the
    job's copy of one locked, and the job hung at its first progress report.  The fork
    now waits for any thread inside the store, however it got there."""
    m = JobManager(LockedCache(str(tmp_path / "d")))
    forks, inside, release = [], threading.Event(), threading.Event()
    monkeypatch.setattr(DiskcacheManager, "call_job_fn", lambda *a: forks.append("fork") or 123)
    user = threading.Thread(target=_inside_sqlite, args=(m, op, inside, release))
    user.start()
    try:
        assert inside.wait(5)
        fork = threading.Thread(target=m.call_job_fn, args=("k", None, (), None))
        fork.start()
        fork.join(0.3)
        assert forks == []                            # it waits while the thread is inside
    finally:
        release.set()
        user.join(5)
    fork.join(5)
    assert forks == ["fork"]


def _transaction(cache):
    with cache.transact():
        pass


_PUBLIC_OPS = {
    "get": lambda c: c.get("k"),
    "__getitem__": lambda c: c["k"],
    "__contains__": lambda c: "k" in c,
    "set": lambda c: c.set("k2", 2),
    "add": lambda c: c.add("k3", 3),
    "delete": lambda c: c.delete("k"),
    "pop": lambda c: c.pop("k"),
    "incr": lambda c: c.incr("n"),
    "touch": lambda c: c.touch("k", expire=60),
    "transact": _transaction,
    "iterkeys": lambda c: next(c.iterkeys()),
    "__len__": lambda c: len(c),
    "expire": lambda c: c.expire(),
    "cull": lambda c: c.cull(),
    "clear": lambda c: c.clear(),
    "close": lambda c: c.close(),
}


@pytest.mark.parametrize("op", sorted(_PUBLIC_OPS))
def test_every_use_of_the_store_waits_for_the_lock(tmp_path, op):
    """Whatever reaches SQLite through the handle holds the lock: with another thread
    holding it, the call waits (its thread's connection is already open)."""
    cache = LockedCache(str(tmp_path / "e"))
    cache.set("k", 1)
    ready, go, done = threading.Event(), threading.Event(), threading.Event()

    def user():
        cache.get("warm-up")                          # opens this thread's connection
        ready.set()
        go.wait(5)
        _PUBLIC_OPS[op](cache)
        done.set()

    t = threading.Thread(target=user, daemon=True)
    t.start()
    assert ready.wait(5)
    with job_manager._STORE_LOCK:
        go.set()
        assert not done.wait(0.2)                     # blocked on the lock
    assert done.wait(5)
    t.join(5)


def test_a_thread_s_connection_is_closed_under_the_lock_when_the_thread_ends(tmp_path):
    """A thread per request (Werkzeug) closes its SQLite connection as it ends: in SQLite
    too, so under the lock."""
    cache = LockedCache(str(tmp_path / "f"))
    used, end = threading.Event(), threading.Event()

    def request():
        cache.get("k")
        used.set()
        end.wait(5)

    t = threading.Thread(target=request)
    t.start()
    assert used.wait(5)
    with job_manager._STORE_LOCK:
        end.set()
        t.join(0.3)
        assert t.is_alive()                           # its connection waits to be closed
    t.join(5)
    assert not t.is_alive()


def test_a_plain_diskcache_cache_is_refused(tmp_path):
    with pytest.raises(TypeError, match="LockedCache"):
        JobManager(diskcache.Cache(str(tmp_path / "g")))
    assert isinstance(JobManager().handle, LockedCache)


def _job(set_progress, x):
    """The user's callback, in the job: the lock is not held around it."""
    set_progress(("half", x))
    lock = job_manager._STORE_LOCK
    free = not lock._is_owned() and lock.acquire(blocking=False)
    if free:
        lock.release()
    return {"x": x, "lock free": free}


def test_a_real_job_reports_through_the_locked_store(tmp_path):
    """A forked job writes its progress and result through its copy of the handle."""
    m = JobManager(LockedCache(str(tmp_path / "h")))
    job_fn = m.make_job_fn(_job, progress=True)
    pid = m.call_job_fn("key", job_fn, [7], {})
    deadline = time.monotonic() + 20
    while not m.result_ready("key"):
        assert time.monotonic() < deadline, "the job never reported its result"
        time.sleep(0.05)
    assert m.get_progress("key") == ("half", 7)
    assert m.get_result("key", pid) == {"x": 7, "lock free": True}


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
