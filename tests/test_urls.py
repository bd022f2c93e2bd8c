"""One URL builder (``app/urls.py``) and the thread dependencies
(``app/deps.py``): the owner's and a link holder's URLs, every link on a
thread page and a shared page resolving, and the collapsed owner/shared
routes answering 404 to strangers and revoked links."""
from __future__ import annotations

import html
import re

import pytest

from app.urls import OwnerOnly, Urls, share_link, thread_page
from tests.conftest import another_owner, png_bytes, wait_for_thread
from tests.test_page_cost import grow

# ---------------------------------------------------------------- the builder


def test_owner_urls():
    u = Urls.owned("T1")
    assert u.owner and u.page() == "/t/T1"
    assert u.version_page(3) == "/t/T1/versions/3"
    assert u.compare() == "/t/T1/compare"
    assert u.compare(1, 2) == "/t/T1/compare?before=1&after=2"
    assert u.compare(after=2) == "/t/T1/compare?after=2"
    assert u.turns_before(7) == "/t/T1/turns?before=7"
    assert u.tree() == "/t/T1/tree" and u.events() == "/t/T1/events"
    assert u.turn("X") == "/t/T1/turns/X" and u.turn("X", edit=True) == "/t/T1/turns/X?edit=1"
    assert u.submit_turn() == "/t/T1/turns"
    assert [u.cancel("X"), u.retry("X"), u.regenerate("X"), u.edit_turn("X")] == [
        "/t/T1/turns/X/cancel", "/t/T1/turns/X/retry", "/t/T1/turns/X/regenerate", "/t/T1/turns/X/edit"]
    assert [u.revert(), u.rename(), u.share(), u.revoke_share(), u.delete(), u.restore(), u.provenance()] == [
        "/t/T1/revert", "/t/T1/title", "/t/T1/share", "/t/T1/share/revoke", "/t/T1/delete", "/t/T1/restore",
        "/t/T1/provenance"]
    assert u.export() == "/api/v1/threads/T1/export"
    assert u.image(2) == "/api/v1/threads/T1/versions/2/image"
    assert u.thumbnail(2) == "/api/v1/threads/T1/versions/2/image?size=thumb"
    assert u.preview(2, 1024) == "/api/v1/threads/T1/versions/2/image?size=1024"
    assert u.attachment("X", "mask") == "/api/v1/threads/T1/turns/X/attachments/mask"
    assert u.partial("X", 4) == "/api/v1/threads/T1/turns/X/partial?i=4"
    assert u.timeline() == "/api/v1/threads/T1/timeline.webp"
    with pytest.raises(ValueError):
        u.fork()


def test_shared_urls_never_name_the_thread():
    u = Urls.shared("TOK")
    assert not u.owner and u.page() == "/s/TOK"
    assert u.version_page(3) == "/s/TOK/versions/3"
    assert u.compare(1, 2) == "/s/TOK/compare?before=1&after=2"
    assert u.turns_before(7) == "/s/TOK/turns?before=7"
    assert u.tree() == "/s/TOK/tree" and u.events() == "/s/TOK/events" and u.fork() == "/s/TOK/fork"
    assert u.image(2) == "/api/v1/shared/TOK/versions/2/image"
    assert u.attachment("X", "reference-1") == "/api/v1/shared/TOK/turns/X/attachments/reference-1"
    assert u.partial("X", 0) == "/api/v1/shared/TOK/turns/X/partial?i=0"
    assert u.timeline() == "/api/v1/shared/TOK/timeline.webp"
    for owner_only in (u.submit_turn, u.revert, u.rename, u.share, u.revoke_share, u.delete, u.restore,
                       u.provenance, u.export, lambda: u.turn("X"), lambda: u.cancel("X"),
                       lambda: u.retry("X"), lambda: u.regenerate("X"), lambda: u.edit_turn("X")):
        with pytest.raises(OwnerOnly):
            owner_only()
    assert Urls.of("T1", "TOK").page() == "/s/TOK" and Urls.of("T1").page() == "/t/T1"


def test_share_link_and_thread_page():
    assert share_link("http://host:8000/", "TOK") == "http://host:8000/s/TOK"
    assert share_link("https://x.example", "TOK") == "https://x.example/s/TOK"
    assert thread_page("T1") == "/t/T1"
    with pytest.raises(ValueError):
        Urls()
    with pytest.raises(ValueError):
        Urls(thread_id="T1", share_token="TOK")


def test_every_api_path_parameter_is_documented(client):
    """The routes that serve the owner and link holders with one handler
    still declare their path's parameters in the OpenAPI schema."""
    spec = client.app.openapi()
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------- every link resolves

LINK = re.compile(r'\s(href|src|srcset|action|hx-get|hx-post|data-[\w-]+)="([^"]*)"')


def page_links(text: str) -> dict[str, str]:
    """Every site-relative URL in ``text``'s attributes, with the attribute it was in."""
    found = {}
    for attr, value in LINK.findall(text):
        value = html.unescape(value)
        candidates = [part.strip().split(" ")[0] for part in value.split(",")] if attr == "srcset" else [value]
        for url in candidates:
            if url.startswith("/") and not url.startswith("//"):
                found.setdefault(url, attr)
    return found


def shape(url: str) -> str:
    """``url`` with its turn ids and numbers blanked: links of one shape go
    to one route with the same checks, so the crawl GETs one of each. The
    earlier-turns chain keeps its numbers: each batch holds other turns."""
    if "/turns?before=" in url:
        return url
    return re.sub(r"\d+", "N", re.sub(r"/turns/[^/?]+", "/turns/ID", url))


def crawl(client, start: str) -> dict[str, tuple[str, int]]:
    """Collect every link on ``start`` and on the HTML pages and fragments
    under it that its links reach (the thread's own pages), and GET one link
    of each :func:`shape` (the rest get status 0, as do event streams, which
    are not opened: they last). Returns {url: (attribute, status)}."""
    seen: dict[str, tuple[str, int]] = {}
    fetched: set[str] = set()
    queue = [(start, "start")]
    while queue:
        url, attr = queue.pop(0)
        if url in seen:
            continue
        if url.endswith("/events") or shape(url) in fetched:
            seen[url] = (attr, 0)
            continue
        fetched.add(shape(url))
        r = client.get(url, follow_redirects=False)
        seen[url] = (attr, r.status_code)
        if url.split("?")[0].startswith(start) and r.headers.get("content-type", "").startswith("text/html"):
            queue.extend((u, a) for u, a in page_links(r.text).items() if u not in seen)
    return seen


def rich_thread(client, fake_backend) -> tuple[str, str]:
    """A thread with attachments, a declined turn, a long history (older
    turns and a tree window), a share link and a turn still running."""
    tid = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()["id"]
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert it"},
                    files=[("image", ("ref.png", png_bytes(color=(0, 0, 200)), "image/png")),
                           ("mask", ("mask.png", png_bytes(color=(255, 255, 255)), "image/png"))])
    assert r.status_code == 202, r.text
    wait_for_thread(client, tid)
    client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "decline this"})
    wait_for_thread(client, tid)
    grow(client, tid, 62)  # past the page's windows: 20 turns, 60 versions
    token = client.post(f"/api/v1/threads/{tid}/share").json()["token"]
    return tid, token


def test_every_link_on_the_owner_and_shared_pages_resolves(client, fake_backend):
    tid, token = rich_thread(client, fake_backend)
    fake_backend.gate.clear()  # a running turn: its Stop button
    try:
        client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "slow invert"})
        owner = crawl(client, f"/t/{tid}")
        with another_owner(client) as visitor:
            shared = crawl(visitor, f"/s/{token}")
    finally:
        fake_backend.gate.set()
        wait_for_thread(client, tid)

    for seen in (owner, shared):
        broken = {u: s for u, (a, s) in seen.items() if s == 404 or s >= 500}
        assert not broken, broken
    owner_urls = set(owner)
    for expected in (f"/t/{tid}", f"/t/{tid}/tree", f"/t/{tid}/events", f"/t/{tid}/turns", f"/t/{tid}/revert",
                     f"/t/{tid}/title", f"/t/{tid}/delete", f"/t/{tid}/share/revoke", f"/t/{tid}/provenance",
                     f"/api/v1/threads/{tid}/export"):
        assert expected in owner_urls, expected
    t, any_id = re.escape(f"/t/{tid}"), r"[^/?]+"
    for pattern in (rf"{t}/turns\?before=\d+", rf"{t}/versions/\d+", rf"{t}/compare\?before=\d+&after=\d+",
                    rf"{t}/turns/{any_id}", rf"{t}/turns/{any_id}\?edit=1", rf"{t}/turns/{any_id}/edit",
                    rf"{t}/turns/{any_id}/cancel", rf"{t}/turns/{any_id}/retry", rf"{t}/turns/{any_id}/regenerate"):
        assert any(re.fullmatch(pattern, u) for u in owner_urls), pattern
    assert any("/attachments/mask" in u for u in owner_urls)
    assert any("/attachments/reference-1" in u for u in owner_urls)

    shared_urls = set(shared)
    assert not [u for u in shared_urls if u.startswith("/t/") or u.startswith("/api/v1/threads/")]
    assert not [u for u in shared_urls if tid in u]
    for expected in (f"/s/{token}/tree", f"/s/{token}/events", f"/s/{token}/fork",
                     f"/api/v1/shared/{token}/timeline.webp"):
        assert expected in shared_urls, expected
    assert any(u.startswith(f"/s/{token}/turns?before=") for u in shared_urls)
    assert any(u.startswith(f"/s/{token}/versions/") for u in shared_urls)
    assert any(u.startswith(f"/s/{token}/compare?") for u in shared_urls)
    assert any(u.startswith(f"/api/v1/shared/{token}/turns/") and "/attachments/" in u for u in shared_urls)


def test_collapsed_routes_send_the_viewers_headers(client):
    tid = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()["id"]
    token = client.post(f"/api/v1/threads/{tid}/share").json()["token"]
    for tail in ("", "/tree", "/versions/1", "/compare?before=1&after=1", f"/turns?before={10**6}"):
        own, shared = client.get(f"/t/{tid}{tail}"), client.get(f"/s/{token}{tail}")
        assert own.status_code == shared.status_code == 200, (tail, own.status_code, shared.status_code)
        assert "x-robots-tag" not in own.headers
        assert shared.headers["x-robots-tag"] == "noindex" and shared.headers["referrer-policy"] == "no-referrer"


# ---------------------------------------------------------------- 404s through the collapsed routes


def thread_paths(prefix: str) -> list[str]:
    """GETs of the pages that serve both the owner and link holders."""
    return [prefix, f"{prefix}/turns?before=1", f"{prefix}/tree", f"{prefix}/versions/1",
            f"{prefix}/compare", f"{prefix}/events"]


def api_paths(prefix: str, turn_id: str) -> list[str]:
    """GETs of the JSON API routes that serve both the owner and link holders."""
    return [prefix, f"{prefix}/versions/1/image", f"{prefix}/versions/1/image?size=thumb",
            f"{prefix}/turns/{turn_id}/attachments/mask", f"{prefix}/turns/{turn_id}/partial",
            f"{prefix}/versions/1/credentials", f"{prefix}/timeline.webp"]


def test_another_owners_thread_and_a_revoked_link_are_404(client, fake_backend):
    tid = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()["id"]
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert"},
                    files={"mask": ("m.png", png_bytes(color=(255, 255, 255)), "image/png")})
    turn_id = r.json()["id"]
    wait_for_thread(client, tid)
    token = client.post(f"/api/v1/threads/{tid}/share").json()["token"]
    owned = thread_paths(f"/t/{tid}") + api_paths(f"/api/v1/threads/{tid}", turn_id)
    shared = thread_paths(f"/s/{token}") + api_paths(f"/api/v1/shared/{token}", turn_id)

    def ok(c, url) -> bool:
        r = c.get(url, follow_redirects=False)
        return r.status_code in (200, 303)  # a finished turn's partial sends on to its image

    readable = [u for u in owned + shared if not u.endswith("/events")]  # streams: checked by their 404 below
    assert all(ok(client, u) for u in readable), [u for u in readable if not ok(client, u)]
    with another_owner(client) as stranger:
        assert [stranger.get(u).status_code for u in owned] == [404] * len(owned)
        assert all(ok(stranger, u) for u in shared if not u.endswith("/events"))
        assert client.post(f"/t/{tid}/share/revoke").status_code in (200, 303)
        assert [stranger.get(u).status_code for u in shared] == [404] * len(shared)
    assert [client.get(u).status_code for u in shared] == [404] * len(shared)
    assert client.get(f"/api/v1/shared/{token}").json()["detail"] == "This share link does not exist or was revoked."
    assert client.get(f"/t/{tid}").status_code == 200  # the owner still has it
