"""Analysis results for a (reference id, variant ids) choice.

Ids are checked against the catalogue (unknown ids give a :class:`SelectionError` with a
message for the user).  :func:`analysis.analyze` caches its tables on disk; on top of it
a small bounded LRU keeps the last few loaded results in memory.  Those are read-only:
callbacks only slice them through :mod:`analysis.views`.

Loading is locked per result, never process-wide: one slow load (a large model read from
the disk cache, or waiting for another process that is computing it) used to hold one lock
that every callback of every user took first, so all of them stalled behind it.  A
background job is forked from this threaded process: its copy of the locks is renewed, as a
lock held by another thread at the fork would never be released in the child.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from typing import Callable, Sequence

import analysis

from .models import Catalogue, ModelEntry

__all__ = ["SelectionError", "Results", "MAX_VARIANTS"]

#: Most variants analysed side by side.
MAX_VARIANTS = 8


class SelectionError(ValueError):
    """The model choice cannot be analysed; the message says why (shown to the user)."""


class Results:
    """Validated, memoized access to :func:`analysis.analyze` for one catalogue."""

    def __init__(self, catalogue: Catalogue, max_entries: int = 4):
        self.catalogue = catalogue
        self._max = max_entries
        self._lru: OrderedDict = OrderedDict()
        self._lock = threading.Lock()      # guards _lru and _loading, held only briefly
        self._loading: dict = {}           # key -> _Loading: concurrent callbacks load one result once
        _INSTANCES.add(self)

    def _after_fork_in_child(self) -> None:
        """Fresh locks in a forked job: the parent's threads that held them are not here."""
        self._lock = threading.Lock()
        self._loading = {}

    def resolve(self, ref_id, variant_ids) -> tuple[ModelEntry, list[ModelEntry]]:
        """Entries for the ids, or :class:`SelectionError`."""
        if not ref_id:
            raise SelectionError("Choose an FP32 reference model.")
        ref = self.catalogue.get(ref_id)
        if ref is None:
            raise SelectionError("Unknown reference model id: the link may come from another server "
                                 "or the model was removed. Pick a model from the list.")
        if isinstance(variant_ids, str):
            variant_ids = [variant_ids]
        elif variant_ids is not None and not isinstance(variant_ids, (list, tuple)):
            raise SelectionError("Unknown variant model id: pick the variants from the list.")
        ids = [v for v in (variant_ids or []) if v != ref_id]
        if not ids:
            raise SelectionError("Choose at least one quantized variant to compare with the reference.")
        if len(ids) > MAX_VARIANTS:
            raise SelectionError(f"Choose at most {MAX_VARIANTS} variants at a time.")
        out, seen = [], set()
        for v in ids:
            e = self.catalogue.get(v)
            if e is None:
                raise SelectionError("Unknown variant model id: pick the variants from the list.")
            if e.error:
                raise SelectionError(f"{e.name}: {e.error}.")
            if e.id not in seen:
                seen.add(e.id)
                out.append(e)
        if ref.error:
            raise SelectionError(f"{ref.name}: {ref.error}.")
        return ref, out

    def run(self, ref_id, variant_ids,
            progress: Callable[[int, int, str], None] | None = None) -> analysis.Analysis:
        """Analyse (or load from the disk cache) and remember the result."""
        ref, variants = self.resolve(ref_id, variant_ids)
        key = self._key(ref, variants)
        hit = self._cached(key)
        if hit is not None:
            return hit
        loading = self._enter(key)
        try:
            with loading.lock:  # only callbacks wanting this very result wait here
                hit = self._cached(key)  # loaded by the thread we waited for
                if hit is not None:
                    return hit
                result = analysis.analyze(ref.path, [v.path for v in variants],
                                          labels=[v.label for v in variants], progress=progress)
                with self._lock:
                    self._lru[key] = result
                    self._lru.move_to_end(key)
                    while len(self._lru) > self._max:
                        self._lru.popitem(last=False)
                return result
        finally:
            self._leave(key, loading)

    def _enter(self, key) -> "_Loading":
        """The load lock of ``key``, counted as wanted until :meth:`_leave`."""
        with self._lock:
            loading = self._loading.get(key)
            if loading is None:
                loading = self._loading[key] = _Loading()
            loading.wanted += 1
            return loading

    def _leave(self, key, loading: "_Loading") -> None:
        """Uncount a caller of :meth:`_enter`; the last one out drops the lock (a later miss
        makes a new one).  Counted, not ``locked()``: a caller that has the lock but not
        yet its turn must still share it with every later caller, or two loads run."""
        with self._lock:
            loading.wanted -= 1
            if loading.wanted == 0 and self._loading.get(key) is loading:
                del self._loading[key]

    def _cached(self, key):
        with self._lock:
            hit = self._lru.get(key)
            if hit is not None:
                self._lru.move_to_end(key)
            return hit

    def get(self, ref_id, variant_ids) -> analysis.Analysis:
        """Same as :meth:`run` without progress (the views' entry point)."""
        return self.run(ref_id, variant_ids)

    @staticmethod
    def _key(ref: ModelEntry, variants: Sequence[ModelEntry]) -> tuple:
        def sig(e: ModelEntry):
            st = os.stat(e.path)
            return (e.id, st.st_size, st.st_mtime_ns)
        return (sig(ref), tuple(sig(v) for v in variants))


class _Loading:
    """One result's load lock and how many callers want it (see :meth:`Results._leave`)."""

    __slots__ = ("lock", "wanted")

    def __init__(self):
        self.lock, self.wanted = threading.Lock(), 0


_INSTANCES: "weakref.WeakSet[Results]" = weakref.WeakSet()


def _renew_locks_in_child() -> None:
    for r in list(_INSTANCES):
        r._after_fork_in_child()


os.register_at_fork(after_in_child=_renew_locks_in_child)
