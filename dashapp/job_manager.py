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
(seen in CI: the page polled an analysis of 320 tiny layers for 90 s).  So each fork, and
everything this process does in SQLite, holds one lock (:data:`_STORE_LOCK`).  The store
takes it itself (:class:`LockedCache`, where diskcache reaches its connection), not the
manager's methods: Dash's manager and the job use the ``diskcache.Cache`` handle directly,
in more places than a list of methods would keep up with.
"""

from __future__ import annotations

import contextlib
import os
import threading

import diskcache
from dash import DiskcacheManager

__all__ = ["JobManager", "LockedCache"]

#: Held by every use of SQLite through a :class:`LockedCache` and by each fork of a job.
_STORE_LOCK = threading.RLock()


def _new_lock_in_child() -> None:
    global _STORE_LOCK
    _STORE_LOCK = threading.RLock()  # the forking thread held it: the child starts afresh


os.register_at_fork(after_in_child=_new_lock_in_child)


class _Closer:
    """Closes a thread's connection under the lock when that thread's locals go (the
    thread ended, or the cache was dropped): it holds the last reference to it."""

    __slots__ = ("con", "pid")

    def __init__(self, con):
        self.con, self.pid = con, os.getpid()

    def __del__(self):
        if os.getpid() == self.pid:  # a fork's copy is left to diskcache, as before
            with _STORE_LOCK:
                self.con.close()


class LockedCache(diskcache.Cache):
    """``diskcache.Cache`` that holds :data:`_STORE_LOCK` whenever it is inside SQLite.

    diskcache (5.6) reaches SQLite only through its per-thread connection: ``_con`` (opens
    it, sets its pragmas), ``_sql`` (its ``execute``: every statement, ``_sql_retry``
    too), ``_transact`` (``BEGIN IMMEDIATE`` ... ``COMMIT``: ``transact`` and every write)
    and ``close``.  Taking the lock there covers every public method, present and future.
    A statement is run to its last row under the lock (fetching steps SQLite too), and a
    transaction holds it from ``BEGIN`` to ``COMMIT``: a thread never waits inside SQLite,
    lock in hand, for a write lock held by a thread of this process waiting for it.  A
    thread's connection is also closed under the lock when the thread ends.
    """

    @property
    def _con(self):
        with _STORE_LOCK:
            con = super()._con
            closer = getattr(self._local, "closer", None)
            if closer is None or closer.con is not con:
                self._local.closer = _Closer(con)
            return con

    @property
    def _sql(self):
        execute = self._con.execute

        def locked_execute(*args, **kwargs):
            with _STORE_LOCK:
                cursor = execute(*args, **kwargs)
                try:
                    return _Rows(cursor.fetchall())
                finally:
                    cursor.close()
        return locked_execute

    @contextlib.contextmanager
    def _transact(self, retry=False, filename=None):
        with _STORE_LOCK, super()._transact(retry=retry, filename=filename) as txn:
            yield txn

    def close(self):
        with _STORE_LOCK:
            super().close()
            with contextlib.suppress(AttributeError):
                delattr(self._local, "closer")


class _Rows(list):
    """A finished statement's rows, read as diskcache reads a cursor: it only ever
    calls ``fetchall()`` on what ``_sql`` returns."""

    def fetchall(self):
        return list(self)


class JobManager(DiskcacheManager):
    """``DiskcacheManager`` whose :meth:`terminate_job` never waits for another
    process's child, and whose forks wait for every thread to leave SQLite.

    ``cache`` must be a :class:`LockedCache` (default: a new one in a temporary folder):
    a plain ``diskcache.Cache`` raises ``TypeError`` rather than being silently reopened,
    since its other users (anything already holding it) would still bypass the lock.
    """

    def __init__(self, cache=None, cache_by=None, expire=None):
        if cache is None:
            cache = LockedCache()
        elif not isinstance(cache, LockedCache):
            raise TypeError(f"JobManager needs a dashapp.job_manager.LockedCache, not "
                            f"{type(cache).__module__}.{type(cache).__qualname__}: a job "
                            "forked while another thread is inside SQLite can hang")
        super().__init__(cache, cache_by=cache_by, expire=expire)

    def terminate_job(self, job):
        import psutil

        if job is None:
            return
        job = int(job)
        with self.handle.transact():  # as Dash: one killer at a time (holds _STORE_LOCK too)
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
