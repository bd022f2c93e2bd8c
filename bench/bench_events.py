"""Cross-process live updates: how long after a turn ends do open pages hear of it?

Starts two ``retouch serve`` processes (A and B) on one PostgreSQL database,
one data folder and one Redis (``RETOUCH_REDIS_URL``; with ``--redis-url ''``
none, so events go through PostgreSQL LISTEN/NOTIFY), opens the event stream
``/t/{id}/events`` of one thread on both, queues ``--turns`` turns through B
one after another, and for each turn measures, on each page, the time from
the turn's ``finished_at`` (written by whichever process ran it, before its
commit) to the first ``changed`` event that page received after it. Both
processes run turns, so per turn one page hears it in-process and the other
through Redis: the gap between the two pages is what crossing processes
adds. Prints median and max.

Usage: ``python -m bench.bench_events [--turns 20] [--database-url URL] [--redis-url URL]``
(defaults: the test PostgreSQL server, a fresh schema; Redis on 127.0.0.1:6379).
"""
from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bench.load_test import photo_bytes
from bench.server import RunningServer, running_server

POSTGRES_URL = os.environ.get("RETOUCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RETOUCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: Pause after each turn, so that no late event of one turn is taken for the next's, in seconds.
QUIET_SECONDS = 1.0


@contextmanager
def postgres_schema(url: str = POSTGRES_URL) -> Iterator[str]:
    """A fresh, empty schema on ``url``'s server; yields a database URL
    whose ``search_path`` is that schema, and drops it afterwards."""
    schema = "t_" + secrets.token_hex(6)
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def two_servers(tmp: Path, database_url: str, redis_url: str | None,
                env: dict[str, str] | None = None) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two ``retouch serve`` processes on one database and one data folder
    (so one secret key: an owner cookie works on both), started one after
    the other (migrations and the instance certificate are made once), with
    the ``local`` backend and no rate limits."""
    common = {"RETOUCH_DATABASE_URL": database_url, "RETOUCH_BACKEND": "local",
              "RETOUCH_TURN_RATE_LIMIT": "0", "RETOUCH_ANONYMOUS_RATE_LIMIT": "0", **(env or {})}
    if redis_url:
        common["RETOUCH_REDIS_URL"] = redis_url
    with running_server(tmp / "data", common) as a, running_server(tmp / "data", common) as b:
        yield a, b


class EventReader(threading.Thread):
    """Reads an event stream in the background; ``events`` holds
    ``(name, wall-clock seconds)`` as they arrive, ``ready`` is set on ``ready``."""

    def __init__(self, base: str, path: str, cookies: httpx.Cookies) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base, cookies=cookies, timeout=httpx.Timeout(10, read=None))
        self.path = path
        self.events: list[tuple[str, float]] = []
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.client.stream("GET", self.path) as stream:
                stream.raise_for_status()
                for line in stream.iter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                        self.events.append((name, time.time()))
                        if name == "ready":
                            self.ready.set()
        except BaseException as exc:  # closed by close(), or a real error the caller sees
            self.error = exc

    def changed_after(self, t: float) -> list[float]:
        """Arrival times of ``changed`` events at or after wall-clock ``t``."""
        return [at for name, at in list(self.events) if name == "changed" and at >= t]

    def close(self) -> None:
        self.client.close()


def finished_at(turn: dict) -> float:
    """The turn's ``finished_at`` as wall-clock seconds."""
    return datetime.fromisoformat(turn["finished_at"].replace("Z", "+00:00")).timestamp()


def wait_for_turn(client: httpx.Client, turn_id: str, timeout: float = 60) -> dict:
    """Poll the turn until it has ended; returns it. Raises AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turn = client.get(f"/api/v1/turns/{turn_id}").json()
        if turn["status"] not in ("queued", "running"):
            return turn
        time.sleep(0.02)
    raise AssertionError(f"turn {turn_id} did not end in {timeout} s")


def first_changed_after(reader: EventReader, t: float, timeout: float = 5.0) -> float | None:
    """Wall-clock arrival of the first ``changed`` event the reader got at or
    after wall-clock ``t``, or None when none came within ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = reader.changed_after(t)
        if got:
            return got[0]
        time.sleep(0.002)
    return None


def measure(a: RunningServer, b: RunningServer, turns: int, image_size: int = 512) -> list[dict]:
    """Queue ``turns`` turns through B on a thread made through A, with the
    thread's event stream open on both; returns per turn its ``finished_at``
    and the arrival of the first ``changed`` event after it on A's page
    (``a``) and on B's page (``b``), all wall-clock seconds (None: no event
    within 5 s)."""
    with httpx.Client(base_url=a.url, timeout=30) as owner_a:
        tid = owner_a.post("/api/v1/threads", files={"image": ("p.png", photo_bytes(image_size), "image/png")}
                           ).json()["id"]
        readers = [EventReader(s.url, f"/t/{tid}/events", owner_a.cookies) for s in (a, b)]
        for r in readers:
            r.start()
        try:
            for r in readers:
                if not r.ready.wait(10):
                    raise AssertionError(f"no ready event: {r.error!r}")
            results = []
            with httpx.Client(base_url=b.url, cookies=owner_a.cookies, timeout=30) as owner_b:
                for i in range(turns):
                    r = owner_b.post(f"/api/v1/threads/{tid}/turns",
                                     data={"instruction": "make it black and white" if i % 2 == 0 else "invert"})
                    assert r.status_code == 202, r.text
                    end = finished_at(wait_for_turn(owner_b, r.json()["id"]))
                    on_a, on_b = (first_changed_after(reader, end) for reader in readers)
                    results.append({"finished": end, "a": on_a, "b": on_b})
                    time.sleep(QUIET_SECONDS)  # let stragglers of this turn pass before the next
            return results
        finally:
            for r in readers:
                r.close()


def summary(results: list[dict]) -> str:
    """Median and max in milliseconds: from the turn's end to each page's
    event, and between the two pages (one heard it in-process, the other
    through Redis, so this is what crossing processes adds)."""
    def ms(values) -> str:
        got = [v * 1000 for v in values if v is not None]
        if not got:
            return "no events"
        return f"median {statistics.median(got):.1f} ms, max {max(got):.1f} ms (n={len(got)})"

    both = [x for x in results if x["a"] is not None and x["b"] is not None]
    missed_a, missed_b = (sum(1 for x in results if x[k] is None) for k in ("a", "b"))
    return "\n".join([
        f"turns {len(results)}; no event within 5 s on A's page: {missed_a}, on B's page: {missed_b}",
        "turn end (finished_at) -> event, page on A: " + ms(x["a"] - x["finished"] for x in both),
        "turn end (finished_at) -> event, page on B: " + ms(x["b"] - x["finished"] for x in both),
        "turn end -> event on the slower page:       " + ms(max(x["a"], x["b"]) - x["finished"] for x in both),
        "between the two pages (cross-process hop):  " + ms(abs(x["a"] - x["b"]) for x in both),
    ])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--database-url", default=POSTGRES_URL, help="PostgreSQL server (a fresh schema is made)")
    ap.add_argument("--redis-url", default=REDIS_URL, help="'' = no Redis: LISTEN/NOTIFY on PostgreSQL")
    ap.add_argument("--image-size", type=int, default=512, help="photo side in pixels")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, postgres_schema(args.database_url) as db, \
            two_servers(Path(d), db, args.redis_url or None) as (a, b):
        results = measure(a, b, args.turns, args.image_size)
    print(summary(results))
    return 0 if all(x["a"] is not None and x["b"] is not None for x in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
