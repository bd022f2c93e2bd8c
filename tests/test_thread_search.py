"""Searching threads (issue 14) through HTTP, on SQLite (FTS5) and
PostgreSQL (``to_tsvector('simple', ...)``): ``GET /api/v1/threads?q=``
and the sidebar's ``GET /threads/list?q=`` both call
``app.services.search_threads``. Property tests (hypothesis): any word of a
thread's title or instructions, or its start, finds the thread; any text,
FTS syntax included, answers 200."""
from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.conftest import another_owner, wait_for_thread

WORD = st.text(string.ascii_letters, min_size=1, max_size=3).flatmap(
    lambda head: st.text(string.ascii_letters + string.digits, max_size=9).map(lambda tail: head + tail))
WORDS = st.lists(WORD, min_size=1, max_size=6)
PROPERTY = hsettings(max_examples=15, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

NASTY = ['"', '""', "'", "*", "-", "- -", "NEAR", "NEAR(a b)", "NEAR(", "(", ")", "()", "a OR", "OR", "AND",
         "NOT", "a NOT", "^", "title:x", ":", "{a b}", "a + b", "\\", "%", "_", "&", "|", "!", "<->", "a:*",
         "'a':*", "\x00", "🙂", "ß", "e\u0301", "x" * 1000, "a " * 400, "NEAR/3", "col : x", "*a*"]


def ids(client, q, **params) -> list[str]:
    r = client.get("/api/v1/threads", params={"q": q, "limit": 500, **params})
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["threads"]]


def new(client, title, prompt) -> str:
    r = client.post("/api/v1/threads", json={"title": title, "prompt": prompt})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_any_word_of_title_or_instruction_finds_the_thread(client, fake_backend):
    @PROPERTY
    @given(title=WORDS, instruction=WORDS, data=st.data())
    def prop(title, instruction, data):
        tid = new(client, " ".join(title), " ".join(instruction))
        word = data.draw(st.sampled_from(title + instruction))
        assert tid in ids(client, word)
        assert tid in ids(client, word.upper())
        assert tid in ids(client, word[: max(1, len(word) // 2)])  # a prefix
        # a word from the title and one from the instruction, together
        assert tid in ids(client, f"{title[0]} {instruction[-1]}")

    prop()


def test_fts_syntax_never_errors(client, fake_backend):
    tid = new(client, 'Quotes "and" (brackets) - NEAR * stars', "make it NEAR-black, -dark (ish) \"really\"")
    for q in NASTY:
        ids(client, q)
        r = client.get("/threads/list", params={"q": q[:1000]})
        assert r.status_code == 200, (q, r.text)
    for raw in ("%ED%A0%80", "%FF%FE", "%00", "%22%2A%28"):  # a lone surrogate, bad UTF-8, NUL, "*(
        assert client.get(f"/api/v1/threads?q={raw}").status_code in (200, 422), raw
        assert client.get(f"/threads/list?q={raw}").status_code in (200, 422), raw
    r = client.get("/api/v1/threads", params={"q": "x" * 1001})
    assert r.status_code == 422 and "1000" in r.json()["detail"]  # a readable limit, not a 500
    assert tid in ids(client, '"NEAR"')
    assert tid in ids(client, "(brackets)")
    assert tid in ids(client, "-black")  # a word, not a negation

    @PROPERTY
    @given(q=st.text(max_size=60))
    def prop(q):
        ids(client, q)

    prop()


def test_every_word_must_match_and_results_are_the_owners(client, fake_backend):
    sunset = new(client, "Sunset poster", "add the words SUMMER SALE")
    forest = new(client, "Forest", "make it black and white")
    wait_for_thread(client, sunset)
    assert ids(client, "sun") == [sunset]
    assert ids(client, "poster summer") == [sunset]
    assert ids(client, "poster forest") == []
    assert set(ids(client, "")) == {sunset, forest} == set(ids(client, "  ** "))
    with another_owner(client) as other:
        assert ids(other, "sunset") == []


def test_renames_and_accents_are_searchable(client, fake_backend):
    tid = new(client, "café crème", "plus de lumière")
    assert tid in ids(client, "café") and tid in ids(client, "lumière")
    assert client.patch(f"/api/v1/threads/{tid}", json={"title": "Harbour at dawn"}).status_code == 200
    assert ids(client, "harbour") == [tid]
    assert ids(client, "crème") == []


def test_deleted_threads_are_not_found(client, fake_backend):
    tid = new(client, "Mountain", "more snow")
    wait_for_thread(client, tid)
    assert client.delete(f"/api/v1/threads/{tid}").status_code == 204
    assert ids(client, "mountain") == []
    assert client.post(f"/api/v1/threads/{tid}/restore").status_code == 200
    assert ids(client, "snow") == [tid]


def test_sidebar_search_fragment(client, fake_backend):
    tid = new(client, "Lighthouse at night", "brighter")
    r = client.get("/threads/list", params={"q": "lighthouse", "current": tid})
    assert r.status_code == 200 and f'href="/t/{tid}"' in r.text and 'aria-current="page"' in r.text
    assert "Today" in r.text and "Lighthouse at night" in r.text
    r = client.get("/threads/list", params={"q": "zebra"})
    assert "No threads match" in r.text and "zebra" in r.text
    page = client.get(f"/t/{tid}").text
    assert 'id="thread-search"' in page and 'hx-trigger="input changed delay:250ms, search"' in page


def test_sqlite_search_triggers_survive_every_migration(tmp_path):
    """A later migration that rebuilds ``turns`` or ``threads`` (Alembic batch
    mode) drops their triggers; ``app.db.migrate`` puts them back
    (``app.search_index.ensure_sqlite_search``) and refills the index."""
    import sqlite3

    from app.db import migrate
    from app.search_index import TRIGGERS

    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    with sqlite3.connect(tmp_path / "m.db") as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert set(TRIGGERS) <= names
        db.execute("DROP TRIGGER turns_fts_ai")  # as a table rebuild would
        db.execute("INSERT INTO threads (id, owner_id, title, created_at, updated_at, c2pa_instructions) "
                   "VALUES ('t1', 'o', 'Title', '2026-01-01', '2026-01-01', 0)")
        db.execute("INSERT INTO turns (id, thread_id, kind, instruction, status, reference_sha256s, attempts, "
                   "created_at) VALUES ('u1', 't1', 'edit', 'paint the walls teal', 'succeeded', '[]', 0, "
                   "'2026-01-01')")
    migrate(url)
    with sqlite3.connect(tmp_path / "m.db") as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert set(TRIGGERS) <= names
        assert db.execute("SELECT rowid FROM turns_fts WHERE turns_fts MATCH 'teal'").fetchall() == [(1,)]
