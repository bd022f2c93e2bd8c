"""Rate limits (per owner on turns, per address on logins), with the ``limits`` library (moving window,
in memory: one server process).

Every request that queues a turn (creating a thread from a prompt, sending an
instruction, trying a turn again) takes one hit for its owner. Past the
limit the request is refused with 429 and a ``Retry-After`` header
(RFC 6585 §4, RFC 9110 §10.2.3) before anything is stored.
"""
from __future__ import annotations

import math
import time

from fastapi import HTTPException
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimiter:
    """``limit`` is a ``limits`` string such as ``"30/minute"``; an empty
    string or ``"0"`` turns limiting off. ``what`` names what is counted
    (``"turns"``, ``"login attempts"``) in the 429 message."""

    def __init__(self, limit: str, what: str) -> None:
        self.item: RateLimitItem | None = parse(limit) if limit and limit.strip() not in ("0", "off") else None
        self.what = what
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> None:
        """Count one for ``key`` (an owner id, a client address). Raises
        HTTPException 429 with ``Retry-After`` (seconds) past the limit."""
        if self.item is None or self.limiter.hit(self.item, self.what, key):
            return
        reset = self.limiter.get_window_stats(self.item, self.what, key).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        raise HTTPException(
            429,
            f"You are sending {self.what} too quickly (at most {self.item.amount} per "
            f"{_period(self.item)}). Try again in {wait} seconds.",
            headers={"Retry-After": str(wait)},
        )


def _period(item: RateLimitItem) -> str:
    unit = item.GRANULARITY.name
    return unit if item.multiples == 1 else f"{item.multiples} {unit}s"
