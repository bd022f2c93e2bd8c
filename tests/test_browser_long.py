"""A long thread in real Chromium: the page shows the newest turns and
versions, earlier turns load on scroll, and "Show all versions" draws the
whole tree (the performance issue's windows). Screenshots:
tests/artifacts/browser/long-*.png."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.test_browser import (  # noqa: F401 (fixtures)
    Server,
    browser,
    browser_test,
    busy_false,
    expect,
    new_thread,
    photo,
    serve,
    shot,
    ui,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    with serve(tmp_path_factory.mktemp("browser-long"), RETOUCH_BACKEND="local") as srv:
        yield srv


def grow(data_dir, thread_id: str, total: int) -> None:
    """Give the thread ``total`` versions, each with a finished turn, straight in its SQLite database."""
    from datetime import timedelta

    from app.db import make_engine, make_sessionmaker
    from app.models import Thread, Turn, Version, new_id, utcnow

    engine = make_engine(f"sqlite:///{(data_dir / 'retouch.db').resolve()}")
    with make_sessionmaker(engine)() as session:
        thread = session.get(Thread, thread_id)
        v1 = session.scalar(select(Version).where(Version.thread_id == thread_id, Version.number == 1))
        now = utcnow()
        for n in range(2, total + 1):
            turn = Turn(id=new_id(), thread=thread, kind="edit", instruction=f"step {n}", status="succeeded",
                        base_version=n - 1, result_version=n, backend="local",
                        created_at=now + timedelta(seconds=n), finished_at=now + timedelta(seconds=n))
            session.add(turn)
            session.add(Version(thread=thread, number=n, parent=n - 1 if n % 9 else n - 4, sha256=v1.sha256,
                                width=v1.width, height=v1.height, turn_id=turn.id, created_at=now + timedelta(seconds=n)))
        thread.head_version = total
        session.commit()
    engine.dispose()


@browser_test
def test_a_long_thread_loads_in_windows(ui, photo, server):
    page = ui.page()
    tid = new_thread(page, photo)
    grow(server.log.parent / "data", tid, 120)
    page.goto(f"/t/{tid}")
    busy_false(page)
    turns = page.locator("section#conversation li.turn")
    expect(turns).to_have_count(20)
    expect(page.locator("#version-tree .version-node")).to_have_count(60)
    shot(page, "long-01-newest")
    # Scrolling up loads earlier turns, 20 at a time, until the first.
    for expected in (40, 60, 80, 100, 120):
        page.evaluate("document.querySelector('section#conversation').scrollIntoView()")  # the top
        expect(turns).to_have_count(expected)
    expect(page.locator("li.older-turns")).to_have_count(0)
    expect(turns.first).to_contain_text("Uploaded a photo")
    shot(page, "long-02-all-turns")
    page.get_by_role("link", name="Show all 120 versions").click()
    expect(page.locator("#version-tree .version-node")).to_have_count(120)
    page.locator("#version-tree").scroll_into_view_if_needed()
    shot(page, "long-03-all-versions")
