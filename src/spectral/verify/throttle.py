"""How fast a content scan may read the live database (the environment's source_read_rate):
one budget of bytes per second shared by all the scan's sessions. A session asks before each
TID range and sleeps, between ranges, until the bytes already read fit the rate; it holds no
lock it would not hold anyway (its snapshot and the ACCESS SHARE locks of the scan)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

BLOCK_BYTES = 8192      # PostgreSQL's default block size: what a heap block costs to read
MB = 1_000_000


class ReadRate:
    """At most `bytes_per_second` over the scan: a range may start once the ranges started
    before it would have taken their time at that rate. `clock` and `sleep` are the monotonic
    clock and the wait (a stop event's wait in a scan: a stopped scan does not sleep on)."""

    def __init__(self, bytes_per_second: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        if bytes_per_second <= 0:
            raise ValueError("a read rate is positive (0 means unlimited: no ReadRate)")
        self.rate, self.clock, self.sleep = bytes_per_second, clock, sleep
        self.lock = threading.Lock()
        self.started: float | None = None
        self.granted = 0     # bytes of the ranges allowed to start so far

    def take(self, nbytes: int) -> float:
        """Wait until `nbytes` more may be read; returns how long it waited."""
        with self.lock:
            now = self.clock()
            if self.started is None:
                self.started = now
            due = self.started + self.granted / self.rate
            self.granted += max(nbytes, 0)
        wait = due - now
        if wait > 0:
            self.sleep(wait)
            return wait
        return 0.0


def read_rate(mb_per_second: float | None, stop: threading.Event | None = None
              ) -> ReadRate | None:
    """The budget for a rate in MB/s (None or 0: unlimited)."""
    if not mb_per_second:
        return None
    wait: Callable[[float], object] = stop.wait if stop is not None else time.sleep
    return ReadRate(mb_per_second * MB, sleep=wait)


def range_bytes(blocks: int, lo: int | None, hi: int | None) -> int:
    """What reading one TID range of a table of `blocks` heap blocks costs (the TOAST it
    reads is not counted: an estimate from the heap only)."""
    end = hi if hi is not None else max(blocks, (lo or 0) + 1)
    return max(end - (lo or 0), 1) * BLOCK_BYTES
