"""Dash's ``DiskcacheManager`` made fit for several gunicorn workers.

An analysis job is a child process of the worker that started it, but its polls are
answered by whichever worker gets them.  When a poll collects the result, Dash kills the
job and waits up to 1 s for it to go away, inside a diskcache transaction (the jobs
store's write lock).  A finished job stays a zombie until its own parent reaps it, so a
poll answered by the *other* worker always waited the full second with the lock held,
and every other job request in both workers queued behind it (seen in the load test).

Here a worker waits only for its own children, and reaps its finished ones.

A job is forked from a server with threads, and SQLite keeps process-wide mutexes: a job
forked while another thread was inside SQLite (a poll reading the jobs store) inherited
one of them locked and hung for ever at its first progress report, in ``sqlite3.connect``
(seen in CI: the page polled an analysis of 320 tiny layers for 90 s).  So every use of
the jobs store in this process, and every fork, holds one lock (:data:`_STORE_LOCK`).
"""

from __future__ import annotations

import functools
import os
import threading

from dash import DiskcacheManager

__all__ = ["JobManager"]

#: Held around each use of the jobs store and each fork of a job (see the module docstring).
_STORE_LOCK = threading.RLock()


def _new_lock_in_child() -> None:
    global _STORE_LOCK
    _STORE_LOCK = threading.RLock()  # the forking thread held it: the child starts afresh


os.register_at_fork(after_in_child=_new_lock_in_child)


def _serialised(name: str):
    """``DiskcacheManager.<name>`` run under :data:`_STORE_LOCK`."""
    base = getattr(DiskcacheManager, name)

    @functools.wraps(base)
    def method(self, *args, **kwargs):
        with _STORE_LOCK:
            return base(self, *args, **kwargs)
    return method


class JobManager(DiskcacheManager):
    """``DiskcacheManager`` whose :meth:`terminate_job` never waits for another
    process's child."""

    terminate_unhealthy_job = _serialised("terminate_unhealthy_job")
    job_running = _serialised("job_running")
    clear_cache_entry = _serialised("clear_cache_entry")
    get_or_create_signing_secret = _serialised("get_or_create_signing_secret")
    get_progress = _serialised("get_progress")
    result_ready = _serialised("result_ready")
    get_result = _serialised("get_result")
    get_updated_props = _serialised("get_updated_props")

    def terminate_job(self, job):
        import psutil

        if job is None:
            return
        job = int(job)
        with _STORE_LOCK, self.handle.transact():
            if psutil.pid_exists(job):
                try:
                    process = psutil.Process(job)
                    mine = process.ppid() == os.getpid()
                    for proc in process.children(recursive=True):
                        try:
                            proc.kill()
                        except psutil.NoSuchProcess:
                            pass
                    process.kill()
                    if mine:
                        process.wait(1)
                except (psutil.NoSuchProcess, psutil.TimeoutExpired):
                    pass
        self._reap()

    def call_job_fn(self, key, job_fn, args, context):
        self._reap()
        with _STORE_LOCK:  # no other thread of this process is inside SQLite while it forks
            return super().call_job_fn(key, job_fn, args, context)

    @staticmethod
    def _reap() -> None:
        """Collect this worker's finished jobs (no zombies left for the other worker)."""
        from multiprocess import active_children
        active_children()
