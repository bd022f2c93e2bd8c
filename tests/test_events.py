"""Live updates: the in-process hub, and the server-sent event stream of a
real ``retouch serve`` process read over real HTTP."""
from __future__ import annotations

import asyncio
import threading
import time

import httpx

from app.events import ThreadEvents
from bench.load_test import photo_bytes, serve


def test_publish_from_any_thread_reaches_only_that_threads_subscribers():
    async def scenario():
        events = ThreadEvents()
        events.start()
        async with events.subscribe("a") as qa, events.subscribe("b") as qb:
            assert events.subscriber_count("a") == 1
            worker = threading.Thread(target=events.publish, args=("a",))
            worker.start()
            worker.join()
            await asyncio.wait_for(qa.get(), 2)
            assert qb.empty()
            for _ in range(5):  # a burst coalesces into one pending notice
                events.publish("b")
            assert qb.qsize() == 1
        assert events.subscriber_count("a") == 0

    asyncio.run(scenario())


def read_events(lines, want: str, timeout: float) -> list[str]:
    """Event names read from the line iterator of an event stream until
    ``want`` arrives (or ``timeout`` seconds pass)."""
    seen, deadline = [], time.monotonic() + timeout
    for line in lines:
        if line.startswith("event: "):
            seen.append(line.removeprefix("event: "))
            if seen[-1] == want:
                return seen
        if time.monotonic() > deadline:
            break
    return seen


def test_an_open_page_hears_when_its_turn_finishes(tmp_path):
    with serve(tmp_path / "data") as base, httpx.Client(base_url=base, timeout=30) as owner:
        tid = owner.post("/api/v1/threads", files={"image": ("p.png", photo_bytes(128), "image/png")}).json()["id"]
        with owner.stream("GET", f"/t/{tid}/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["x-accel-buffering"] == "no"  # nginx passes each event on at once
            lines = stream.iter_lines()
            assert read_events(lines, "ready", 10) == ["ready"]
            r = owner.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "make it black and white"})
            assert r.status_code == 202, r.text
            assert read_events(lines, "changed", 20)[-1] == "changed"
        # not the owner: the stream is refused like the page (404), revealing nothing
        with httpx.Client(base_url=base, timeout=10) as stranger:
            assert stranger.get(f"/t/{tid}/events").status_code == 404
            token = owner.post(f"/api/v1/threads/{tid}/share").json()["url"].rsplit("/", 1)[-1]
            with stranger.stream("GET", f"/s/{token}/events") as shared:
                assert shared.status_code == 200 and shared.headers["x-robots-tag"] == "noindex"
                assert read_events(shared.iter_lines(), "ready", 10) == ["ready"]
            owner.delete(f"/api/v1/threads/{tid}/share")
            assert stranger.get(f"/s/{token}/events").status_code == 404
