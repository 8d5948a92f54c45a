"""dashapp.results under concurrency: one slow load never stalls callbacks that want
another result, one result is loaded once, and a job forked mid-load is not stuck."""

from __future__ import annotations

import os
import threading
import time

import pytest

import analysis
from dashapp import results as results_mod
from dashapp.models import scan_models
from dashapp.results import Results


def _ids(tiny_dir):
    cat = scan_models(tiny_dir)
    return cat, {e.name: e.id for e in cat.entries}


class _BlockingAnalyze:
    """``analysis.analyze`` that parks the call for ``variant`` (in this process) until
    ``release`` is set; every call is counted."""

    def __init__(self, variant: str):
        self.variant, self.parent = variant, os.getpid()
        self.inside, self.release = threading.Event(), threading.Event()
        self.calls: list[str] = []
        self.real = analysis.analyze

    def __call__(self, fp32, variants, **kw):
        self.calls.append(os.path.basename(variants[0]))
        if os.getpid() == self.parent and any(os.path.basename(v) == self.variant for v in variants):
            self.inside.set()
            assert self.release.wait(10)
        return self.real(fp32, variants, **kw)


def test_a_slow_load_does_not_stall_callbacks_wanting_another_result(tiny_dir, monkeypatch):
    cat, by = _ids(tiny_dir)
    r = Results(cat)
    ready = r.get(by["fp32.onnx"], [by["good.onnx"]])        # already in memory
    slow = _BlockingAnalyze("coarse.onnx")
    monkeypatch.setattr(analysis, "analyze", slow)
    loader = threading.Thread(target=r.get, args=(by["fp32.onnx"], [by["coarse.onnx"]]))
    loader.start()
    try:
        assert slow.inside.wait(10)                          # a load is in progress ...
        got = []
        other = threading.Thread(target=lambda: got.append(r.get(by["fp32.onnx"], [by["good.onnx"]])))
        other.start()
        other.join(2)
        assert got == [ready]                                # ... and another result is served meanwhile
    finally:
        slow.release.set()
        loader.join(10)
    assert not loader.is_alive()


def test_one_result_wanted_by_many_callbacks_is_loaded_once(tiny_dir, monkeypatch):
    cat, by = _ids(tiny_dir)
    r = Results(cat)
    slow = _BlockingAnalyze("good.onnx")
    monkeypatch.setattr(analysis, "analyze", slow)
    got = []
    threads = [threading.Thread(target=lambda: got.append(r.get(by["fp32.onnx"], [by["good.onnx"]])))
               for _ in range(4)]
    for t in threads:
        t.start()
    assert slow.inside.wait(10)
    time.sleep(0.2)                                          # the other three are waiting for it
    slow.release.set()
    for t in threads:
        t.join(10)
    assert slow.calls == ["good.onnx"]
    assert len(got) == 4 and all(a is got[0] for a in got)
    assert r._loading == {}                                  # no lock left behind


def test_a_failed_load_is_not_remembered_and_can_be_retried(tiny_dir, monkeypatch):
    cat, by = _ids(tiny_dir)
    r = Results(cat)
    real, calls = analysis.analyze, []

    def fails_once(*a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk went away")
        return real(*a, **kw)

    monkeypatch.setattr(analysis, "analyze", fails_once)
    with pytest.raises(OSError, match="went away"):
        r.get(by["fp32.onnx"], [by["good.onnx"]])
    assert r.get(by["fp32.onnx"], [by["good.onnx"]]).variants == ["good"]
    assert len(calls) == 2 and r._loading == {}


def test_a_waiter_not_yet_in_line_when_a_load_fails_still_shares_the_lock(tiny_dir, monkeypatch):
    """The schedule that made two loads run at once: B has the load lock of a result but
    not yet its turn when A's load fails and A leaves; C comes next.  B and C must still
    share one lock: B loads again (A's failure is not remembered), C waits for B and gets
    B's result, and the two loads never overlap."""
    cat, by = _ids(tiny_dir)
    r = Results(cat)
    real, calls, active, most = analysis.analyze, [], [0], [0]
    a_inside, a_fail, b_inside, b_go = (threading.Event() for _ in range(4))
    guard = threading.Lock()

    def analyze(*a, **kw):
        with guard:
            calls.append(threading.current_thread().name)
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            if threading.current_thread().name == "A":
                a_inside.set()
                assert a_fail.wait(10)
                raise OSError("disk went away")
            if threading.current_thread().name == "B":
                b_inside.set()
                assert b_go.wait(10)
            return real(*a, **kw)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(analysis, "analyze", analyze)
    b_has_lock, a_left = threading.Event(), threading.Event()
    enter, leave = r._enter, r._leave

    def paused_enter(key):
        got = enter(key)
        if threading.current_thread().name == "B":
            b_has_lock.set()
            assert a_left.wait(10)  # B takes its turn only after A has gone
        return got

    def noted_leave(key, loading):
        leave(key, loading)
        if threading.current_thread().name == "A":
            a_left.set()

    monkeypatch.setattr(r, "_enter", paused_enter)
    monkeypatch.setattr(r, "_leave", noted_leave)
    got, errors = {}, {}

    def call(name):
        try:
            got[name] = r.get(by["fp32.onnx"], [by["good.onnx"]])
        except OSError as e:
            errors[name] = e

    ta = threading.Thread(target=call, args=("A",), name="A")
    tb = threading.Thread(target=call, args=("B",), name="B")
    tc = threading.Thread(target=call, args=("C",), name="C")
    ta.start()
    assert a_inside.wait(10)
    tb.start()
    assert b_has_lock.wait(10)
    a_fail.set()
    ta.join(10)
    assert b_inside.wait(10)       # B loads again: the failure was not remembered
    tc.start()
    time.sleep(0.2)                # C is in line behind B (with two locks it would load now)
    b_go.set()
    for t in (tb, tc):
        t.join(10)
    assert "A" in errors and set(got) == {"B", "C"}
    assert calls == ["A", "B"] and most[0] == 1
    assert got["C"] is got["B"]
    assert r._loading == {}


def test_a_job_forked_while_another_thread_loads_still_runs(tiny_dir, monkeypatch):
    """A background job is a fork of the threaded server: the loading thread's locks must
    not be inherited taken (the job would wait for them for ever)."""
    cat, by = _ids(tiny_dir)
    r = Results(cat)
    slow = _BlockingAnalyze("coarse.onnx")
    monkeypatch.setattr(analysis, "analyze", slow)
    loader = threading.Thread(target=r.get, args=(by["fp32.onnx"], [by["coarse.onnx"]]))
    loader.start()
    try:
        assert slow.inside.wait(10)                          # the parent holds its load locks
        pid = os.fork()
        if pid == 0:                                         # the job: loads both results
            code = 1
            try:
                a = r.run(by["fp32.onnx"], [by["coarse.onnx"]])
                b = r.run(by["fp32.onnx"], [by["good.onnx"]])
                code = 0 if (a.variants, b.variants) == (["coarse"], ["good"]) else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise AssertionError("the forked job hung on a lock taken by a thread of its parent")
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        slow.release.set()
        loader.join(10)


def test_forked_children_get_fresh_locks_for_every_results_object(tiny_dir):
    cat, _ = _ids(tiny_dir)
    objs = [Results(cat), Results(cat)]
    for o in objs:
        o._lock.acquire()                                    # as if another thread held them
    try:
        pid = os.fork()
        if pid == 0:
            ok = all(o._lock.acquire(timeout=1) for o in objs) and all(o in results_mod._INSTANCES for o in objs)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        for o in objs:
            o._lock.release()
