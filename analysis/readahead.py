"""One thread that reads items in order ahead of the workers, within a byte budget.

A cold analysis is bound by the disk.  When every worker thread faults in its own
tensor, the disk sees two interleaved streams and the cores wait on it in turn; when
one thread reads the FP32 weights in file order (and takes their min / max, which
needs no more than the read) and the workers only measure what it has read, the
disk sees one sequential stream and the cores compute meanwhile.  The budget keeps
what is read but not yet measured small: memory-mapped pages count in the
process's resident set.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable, Sequence

__all__ = ["ReadAhead"]


class ReadAhead:
    """Run ``read(item)`` for ``items`` in order in one thread, ``budget`` bytes ahead.

    Parameters
    ----------
    items : sequence
        What to read, in the order the workers will ask for it.
    read : callable
        ``read(item)``; its result (or exception) is handed to :meth:`get`.
    size : callable
        ``size(item)``: bytes the result holds until :meth:`release`.
    budget : int
        Bytes of results read but not yet released.  One item is always read when
        nothing is outstanding, however large.

    Notes
    -----
    Workers call ``get(i)`` then ``release(i)`` for each ``i`` they take, in any order
    of threads but with every ``i`` taken eventually, or :meth:`close` is called; the
    reader never waits on a worker otherwise.  Use it as a context manager so that the
    thread ends even when a worker fails.

    Examples
    --------
    >>> out = []
    >>> with ReadAhead([1, 2, 3], lambda x: x * 10, lambda x: 8, budget=16) as ra:
    ...     for i in range(3):
    ...         out.append(ra.get(i))
    ...         ra.release(i)
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
        """The result of item ``i`` (waits for the reader; raises what ``read`` raised)."""
        return self._futures[i].result()

    def release(self, i: int) -> None:
        """Item ``i`` is measured: its bytes leave the budget and its result is dropped."""
        with self._cv:
            self._used -= self._sizes[i]
            self._sizes[i] = 0
            self._futures[i] = _DONE
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


_DONE: Future = Future()
_DONE.cancel()
