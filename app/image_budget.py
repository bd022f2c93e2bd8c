"""A process-wide budget of decoded pixels in flight.

Requests run in threads, and an upload of a few kilobytes can declare tens
of megapixels (a one-colour lossless WebP of 6320x6320 is 1.7 KB and 160 MB
once decoded). Without a bound, concurrent requests each decode at once and
the process grows with the number of requests (an attacker's report: 8
requests of 4 such references took the server from 142 MB to 8.7 GB). So
every decode first takes its pixels from one :class:`PixelBudget`
(``BUDGET``), read from the image's header before any pixel is decoded, and
gives them back when the decoded result is handed over. Decodes that do not
fit wait their turn, first come first served; a wait longer than
``WAIT_SECONDS`` is refused (the caller answers 503).

The unit is a "budget pixel": 4 bytes of decoded image in memory (Pillow
keeps RGB and RGBA pixels in 4 bytes). ``app.imaging`` charges each decode
its peak, measured per format (see ``app.imaging.PEAK_COPIES``).

Bounding what is decoded at once is not enough on its own: glibc keeps
freed memory in the arena of the thread that freed it (Pillow allocates an
image in 16 MB blocks, under glibc's dynamic mmap threshold once one such
block was freed), so decodes in many request threads leave each arena at
its own high-water mark: measured, one 40 MP WebP decode leaves 305 MB
behind, and 8 requests x 4 references kept 2.8 GB after they ended. So a
large decode ends with :func:`give_back_freed_memory` (``malloc_trim``).
"""
from __future__ import annotations

import ctypes
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

#: Budget pixels (4 bytes each) that may be decoded at once in the process:
#: 160 M = 640 MB. Sized so that the server (about 140 MB at rest) stays
#: under 1.5 GB with the budget full and the decoded, reduced results of 8
#: turn requests (4 references of 2048x2048, 16 MB each) held on top:
#: 140 + 640 + 8 x 4 x 16 = 1292 MB. One 40-megapixel photo (the default
#: ``max_upload_pixels``) as a PNG or JPEG charges 80 M, so two decode at
#: once; as a WebP it charges all 160 M and decodes alone.
TOTAL_PIXELS = 160_000_000

#: Seconds a decode waits for room in the budget before the request is
#: refused with 503. A full budget drains in about half a second per
#: 40-megapixel image (measured: a 6320x6320 lossless WebP decodes in
#: 0.55 s, a PNG of the same size in 0.47 s, on one core), so 30 s covers
#: a queue of dozens of worst-case decodes; longer than that, the client
#: is better told to try again than kept waiting.
WAIT_SECONDS = 30.0


#: Budget pixels from which a decode ends with :func:`give_back_freed_memory`:
#: 4 M (16 MB). Smaller decodes leave too little behind to be worth a trim.
TRIM_PIXELS = 4_000_000


def _find_malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; absent on musl and macOS
    except (OSError, AttributeError):  # pragma: no cover - depends on the C library
        return None


_MALLOC_TRIM = _find_malloc_trim()


def give_back_freed_memory() -> bool:
    """Return the C heap's free memory to the operating system (glibc's
    ``malloc_trim(0)``, which releases free pages in every arena, not only
    at the top of the heap). Takes milliseconds. Returns False where the C
    library has no ``malloc_trim``."""
    if _MALLOC_TRIM is None:  # pragma: no cover - depends on the C library
        return False
    _MALLOC_TRIM(0)
    return True


class BudgetTimeout(Exception):
    """Raised by :meth:`PixelBudget.acquire` when there was no room in time."""


class PixelBudget:
    """A counting semaphore of pixels, fair (first come, first served).

    ``total`` is the number of budget pixels that may be held at once. A
    request for more than ``total`` is granted ``total``: such an image
    still decodes, alone.
    """

    def __init__(self, total: int) -> None:
        if total <= 0:
            raise ValueError("the budget must be positive")
        self.total = total
        self._in_use = 0
        self._queue: deque[object] = deque()
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        """Budget pixels held now."""
        with self._cond:
            return self._in_use

    @property
    def waiting(self) -> int:
        """Callers waiting in :meth:`acquire` now."""
        with self._cond:
            return len(self._queue)

    def acquire(self, pixels: int, timeout: float | None) -> int:
        """Wait until ``pixels`` (capped at ``total``, at least 1) fit, take
        them and return how many were taken (pass that to :meth:`release`).
        Callers are served in arrival order: a large request is not starved
        by small ones behind it. ``timeout`` is in seconds (None: no limit).

        Raises :class:`BudgetTimeout` when the pixels did not fit within
        ``timeout`` seconds; nothing is taken then.
        """
        need = max(1, min(int(pixels), self.total))
        deadline = None if timeout is None else time.monotonic() + timeout
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._in_use + need > self.total:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise BudgetTimeout(f"{need} pixels did not fit in {timeout} s "
                                            f"({self._in_use} of {self.total} in use)")
                    self._cond.wait(remaining)
                self._in_use += need
                return need
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()  # the next in line may fit now

    def release(self, granted: int) -> None:
        """Give back what :meth:`acquire` returned."""
        with self._cond:
            self._in_use -= granted
            if self._in_use < 0:  # pragma: no cover - a caller bug
                self._in_use = 0
                raise RuntimeError("released more pixels than were acquired")
            self._cond.notify_all()

    @contextmanager
    def hold(self, pixels: int, timeout: float | None) -> Iterator[int]:
        """``with budget.hold(n, timeout):`` acquire, then release on exit."""
        granted = self.acquire(pixels, timeout)
        try:
            yield granted
        finally:
            self.release(granted)


#: The process's budget. Tests may replace it (``monkeypatch.setattr``);
#: ``app.imaging`` looks it up at each decode.
BUDGET = PixelBudget(TOTAL_PIXELS)
