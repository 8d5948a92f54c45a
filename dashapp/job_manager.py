"""Dash's ``DiskcacheManager`` made fit for several gunicorn workers.

An analysis job is a child process of the worker that started it, but its polls are
answered by whichever worker gets them.  When a poll collects the result, Dash kills the
job and waits up to 1 s for it to go away, inside a diskcache transaction (the jobs
store's write lock).  A finished job stays a zombie until its own parent reaps it, so a
poll answered by the *other* worker always waited the full second with the lock held,
and every other job request in both workers queued behind it (seen in the load test).

Here a worker waits only for its own children, and reaps its finished ones.
"""

from __future__ import annotations

import os

from dash import DiskcacheManager

__all__ = ["JobManager"]


class JobManager(DiskcacheManager):
    """``DiskcacheManager`` whose :meth:`terminate_job` never waits for another
    process's child."""

    def terminate_job(self, job):
        import psutil

        if job is None:
            return
        job = int(job)
        with self.handle.transact():
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
        return super().call_job_fn(key, job_fn, args, context)

    @staticmethod
    def _reap() -> None:
        """Collect this worker's finished jobs (no zombies left for the other worker)."""
        from multiprocess import active_children
        active_children()
