"""One thread that reads items in order ahead of the workers, within a byte budget.

A cold analysis is bound by the disk.  When every worker thread faults in its own
tensor, the disk sees two interleaved streams and the cores wait on it in turn; when
one thread reads the FP32 weights in file order (and takes their min / max, which
needs no more than the read) and the workers only measure what it has read, the
disk sees one sequential stream and the cores compute meanwhile.  The budget bounds
what is read but not yet taken by a worker (memory-mapped pages count in the
process's resident set); what the workers are measuring is bounded by their number.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable, Sequence

__all__ = ["ReadAhead"]


class ReadAhead:
    """Run ``read(item)`` for ``items`` in order in one thread, ``budget`` bytes ahead of the workers.

    Parameters
    ----------
    items : sequence
        What to read, in the order the workers will ask for it.
    read : callable
        ``read(item)``; its result (or exception) is handed to :meth:`get`.
    size : callable
        ``size(item)``: bytes its result holds.
    budget : int
        Bytes of results read but not yet taken by :meth:`get`.  One item is always
        read when nothing is waiting, however large.

    Notes
    -----
    Workers call ``get(i)`` once for each ``i``, every ``i`` eventually, or
    :meth:`close` is called: the reader waits for nothing else.  Use it as a context
    manager so that the thread ends even when a worker fails.

    Examples
    --------
    >>> out = []
    >>> with ReadAhead([1, 2, 3], lambda x: x * 10, lambda x: 8, budget=16) as ra:
    ...     for i in range(3):
    ...         out.append(ra.get(i))
    >>> out
    [10, 20, 30]
    """

    def __init__(self, items: Sequence, read: Callable, size: Callable[[object], int], budget: int):
        self._items, self._read, self._size, self._budget = list(items), read, size, int(budget)
        self._futures = [Future() for _ in self._items]
        self._sizes = [0] * len(self._items)
        self._used = 0
        self._closed = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="quantlens-readahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i, item in enumerate(self._items):
            n = max(0, int(self._size(item)))
            with self._cv:
                while not self._closed and self._used and self._used + n > self._budget:
                    self._cv.wait()
                if self._closed:
                    break
                self._used += n
                self._sizes[i] = n
            try:
                self._futures[i].set_result(self._read(item))
            except BaseException as e:  # noqa: BLE001 - handed to the worker that asks for it
                self._futures[i].set_exception(e)
        for f in self._futures:  # closed early: nobody may wait for ever
            if not f.done():
                f.cancel()

    def get(self, i: int):
        """Take the result of item ``i``: waits for the reader, raises what ``read`` raised,
        and frees its bytes for the reader (the caller holds the result from now on)."""
        fut = self._futures[i]
        try:
            return fut.result()
        finally:
            with self._cv:
                self._used -= self._sizes[i]
                self._sizes[i] = 0
                self._futures[i] = _TAKEN
                self._cv.notify_all()

    def close(self) -> None:
        """Stop reading and wait for the reader thread."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join()

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_TAKEN: Future = Future()
_TAKEN.set_exception(RuntimeError("read-ahead item already taken"))
