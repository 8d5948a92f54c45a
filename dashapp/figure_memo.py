"""Per-process memo of built figures (many users look at the same model).

Entries hang off the analysis object itself (a weak reference: analyses are not hashable): when :class:`dashapp.results.Results`
drops an analysis, its figures go with it.  Each analysis keeps at most ``per_analysis``
figures, least recently used first out.  Values are figure specs, treated as read-only
by every caller (:func:`analysis.figures.with_selection` copies what it changes).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict


class FigureMemo:
    """``get(analysis, key, build)``: ``build()`` once per (analysis, key) while it stays cached."""

    def __init__(self, per_analysis: int = 24):
        self._max = per_analysis
        self._lock = threading.Lock()
        self._by: dict[int, tuple[weakref.ref, OrderedDict]] = {}   # id(analysis) -> (ref, entries)

    def _entries(self, a, create: bool):
        got = self._by.get(id(a))
        if got is not None and got[0]() is a:
            return got[1]
        if not create:
            return None
        key = id(a)

        def gone(ref, key=key):
            with self._lock:
                if self._by.get(key, (None,))[0] is ref:
                    del self._by[key]
        d = OrderedDict()
        self._by[key] = (weakref.ref(a, gone), d)
        return d

    def get(self, a, key, build):
        with self._lock:
            d = self._entries(a, create=False)
            if d is not None and key in d:
                d.move_to_end(key)
                return d[key]
        value = build()
        with self._lock:
            d = self._entries(a, create=True)
            d[key] = value
            while len(d) > self._max:
                d.popitem(last=False)
        return value

    def clear(self):
        with self._lock:
            self._by = {}


def filters_key(filters) -> str:
    """A hashable, order-stable form of the filter dict."""
    return json.dumps(filters or {}, sort_keys=True, default=str)
