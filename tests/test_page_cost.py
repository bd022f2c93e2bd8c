"""The cost of a request does not grow with the thread's history, and one
thread's state is read in one snapshot (the performance issue's tests).

- The thread page, the sidebar and an image GET run the same number of SQL
  statements for an 80-version and a 300-version thread (no N+1).
- The page shows the newest 20 turns; earlier ones load through
  ``/t/{id}/turns?before=PK`` until none remain.
- Readers hammering the thread JSON and page while turns finish never see a
  turn finished without its version, nor a version without its finished turn.
"""
from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, select

from app.models import Thread, Turn, Version, new_id, utcnow
from tests.conftest import png_bytes, wait_for_thread


def _engine(client):
    return client.app.state.ctx.sessions.kw["bind"]


@contextmanager
def counted(client):
    """Count the SQL statements the app runs inside the block."""
    statements: list[str] = []

    def before(conn, cursor, statement, *args):
        statements.append(statement)

    engine = _engine(client)
    worker = client.app.state.ctx.worker
    worker.claim = lambda: None  # the idle worker's polling is not the request's cost
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
        del worker.claim


def grow(client, thread_id: str, total: int) -> None:
    """Give the thread ``total`` versions (and a finished turn for each), straight in the database."""
    sessions = client.app.state.ctx.sessions
    with sessions() as session:
        thread = session.get(Thread, thread_id)
        v1 = session.scalar(select(Version).where(Version.thread_id == thread_id, Version.number == 1))
        have = session.scalar(select(Version.number).where(Version.thread_id == thread_id)
                              .order_by(Version.number.desc()).limit(1))
        now = utcnow()
        for n in range(have + 1, total + 1):
            turn = Turn(id=new_id(), thread=thread, kind="edit", instruction=f"step {n}", status="succeeded",
                        base_version=n - 1, result_version=n, backend="fake",
                        created_at=now + timedelta(seconds=n), finished_at=now + timedelta(seconds=n))
            session.add(turn)
            session.add(Version(thread=thread, number=n, parent=n - 1, sha256=v1.sha256, width=v1.width,
                                height=v1.height, turn_id=turn.id, created_at=now + timedelta(seconds=n)))
        thread.head_version = total
        session.commit()


def new_thread(client) -> str:
    r = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")})
    assert r.status_code == 201
    return r.json()["id"]


def test_requests_cost_the_same_at_80_and_300_versions(client):
    small, large = new_thread(client), new_thread(client)
    grow(client, small, 80)  # both beyond the page's windows (20 turns, 60 versions)
    grow(client, large, 300)
    for url in ("/t/{}", "/api/v1/threads/{}/versions/5/image?size=thumb", "/api/v1/threads/{}/versions/5/image"):
        for cached in (False, True):  # rendered afresh, then from the cache (app/render_cache.py)
            counts, seen = [], []
            for tid in (small, large):
                if cached:
                    client.get(url.format(tid))  # fills the cache
                else:
                    client.app.state.ctx.render_cache.clear()
                with counted(client) as statements:
                    assert client.get(url.format(tid)).status_code == 200
                counts.append(len(statements))
                seen.append([s[:60] for s in statements])
            assert counts[0] == counts[1], (url, cached, seen)
    with counted(client) as statements:
        assert client.get("/").status_code == 200
    assert len(statements) <= 3, statements  # the sidebar lists threads in one query


def test_the_page_shows_the_newest_turns_and_loads_earlier_ones(client):
    tid = new_thread(client)
    grow(client, tid, 46)  # 1 upload turn + 45 edits
    page = client.get(f"/t/{tid}").text
    assert page.count('class="turn ') == 20
    assert "Show 26 earlier turns" in page
    assert '<p class="instruction">step 46</p>' in page and '<p class="instruction">step 26</p>' not in page
    assert "Showing the newest" not in page  # 46 versions fit the tree's window
    seen = 20
    while (m := re.search(r'hx-get="(/t/[^"]+/turns\?before=\d+)"', page)):
        page = client.get(m.group(1).replace("&amp;", "&")).text
        seen += page.count('class="turn ')
    assert seen == 46 and "uploaded a photo" in page.lower()


def test_a_long_tree_shows_a_window_and_everything_on_request(client):
    tid = new_thread(client)
    grow(client, tid, 150)
    page = client.get(f"/t/{tid}").text
    assert "Show all 150 versions" in page
    assert page.count('class="version-node') == 60
    full = client.get(f"/t/{tid}/tree").text
    assert full.count('class="version-node') == 150


def test_reads_see_one_snapshot_while_turns_finish(client, fake_backend):
    tid = new_thread(client)
    problems: list[str] = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            thread = client.get(f"/api/v1/threads/{tid}").json()
            numbers = {v["number"] for v in thread["versions"]}
            finished = {t["result_version"] for t in thread["turns"] if t["status"] == "succeeded"}
            if finished - numbers:
                problems.append(f"turn finished without its version: {finished - numbers}")
            if numbers - finished:
                problems.append(f"version without its finished turn: {numbers - finished}")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for r in readers:
        r.start()
    try:
        for i in range(15):
            assert client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": f"invert {i}"}).status_code == 202
        wait_for_thread(client, tid)
    finally:
        stop.set()
        for r in readers:
            r.join()
    assert not problems, problems[:5]
