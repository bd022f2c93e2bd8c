"""Hostile and broken input (issue 5): every file of ``tests/hostile_corpus``
goes through the API as a thread image, a reference image and a mask.

- A bad file gets its 4xx with a message naming the problem, leaves no row
  (threads, turns, versions, share links) and no blob behind, and the server
  stays healthy.
- A good-but-unusual file (CMYK, 16-bit, palette transparency, EXIF rotation,
  GPS, polyglots, ICC profiles...) is accepted and stored normalised: RGB or
  RGBA, upright, looking right, with no metadata and none of its payload.
- Instructions are limited to 4000 characters; HTML in titles and
  instructions is inert on every page.
"""
from __future__ import annotations

import io
import re
import struct
import time

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from PIL import Image
from sqlalchemy import func, select

from app.backends import register_backend, unregister_backend
from app.imaging import MAX_SIDE
from app.main import create_app
from app.models import ShareLink, Thread, Turn, Version
from tests.conftest import FakeBackend, make_settings, wait_for_thread, wait_for_turn
from tests.hostile_corpus import (
    BAD,
    CORPUS,
    GOOD,
    HEAD_SIZE,
    KINDS,
    MAX_BYTES,
    MAX_PIXELS,
    PNG_MAGIC,
    picture,
    pil_bytes,
)

BACKEND = "fake-hostile"


@pytest.fixture(scope="module")
def backend():
    fake = FakeBackend()
    register_backend(BACKEND, lambda: fake)
    yield fake
    fake.gate.set()
    unregister_backend(BACKEND)


@pytest.fixture(scope="module")
def client(tmp_path_factory, backend):
    """One app for the whole corpus (fast), with small limits and no turn
    rate limit (hundreds of uploads in a few seconds are the point here)."""
    data = tmp_path_factory.mktemp("hostile") / "data"
    settings = make_settings(data, f"sqlite:///{data / 'retouch.db'}", backend=BACKEND,
                             max_upload_bytes=MAX_BYTES, max_upload_pixels=MAX_PIXELS, turn_rate_limit="0")
    with TestClient(create_app(settings)) as c:
        c.settings = settings
        r = c.post("/api/v1/threads", files={"image": ("head.png", pil_bytes(picture(), "PNG"), "image/png")})
        assert r.status_code == 201
        c.thread_id = r.json()["id"]  # references and masks go to this thread; its head is HEAD_SIZE
        yield c


# ------------------------------------------------------------------ helpers


def send(client, sample, kind):
    upload = (sample.filename, sample.data, sample.content_type)
    if kind == "photo":
        return client.post("/api/v1/threads", files={"image": upload})
    field = "image" if kind == "reference" else "mask"
    return client.post(f"/api/v1/threads/{client.thread_id}/turns", data={"instruction": "invert it"},
                       files={field: upload})


def counts(client) -> dict[str, int]:
    with client.app.state.ctx.sessions() as s:
        return {m.__name__: s.scalar(select(func.count()).select_from(m)) for m in (Thread, Turn, Version, ShareLink)}


def blob_files(client) -> set:
    return {p for p in client.settings.blob_dir.rglob("*") if p.is_file()}


def wait_idle(client, timeout=30.0) -> None:
    """Wait until no turn is queued or running, so that no background write
    lands while a test counts rows and files."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with client.app.state.ctx.sessions() as s:
            busy = s.scalar(select(func.count()).select_from(Turn).where(Turn.status.in_(("queued", "running"))))
        if not busy:
            return
        time.sleep(0.02)
    raise AssertionError("turns still running")


def png_chunk_types(data: bytes) -> list[bytes]:
    assert data.startswith(PNG_MAGIC)
    pos, out = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        out.append(kind)
        pos += 12 + length
    return out


def webp_chunk_types(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    pos, out = 12, []
    while pos + 8 <= len(data):
        kind, length = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        out.append(kind)
        pos += 8 + length + (length & 1)
    return out


def assert_clean_blob(path, data: bytes, forbidden) -> None:
    """A stored blob carries no metadata and none of the upload's payload."""
    for needle in forbidden:
        assert needle not in data, f"{needle!r} survived in {path.name}"
    if path.name.endswith(".thumb.webp"):
        assert set(webp_chunk_types(data)) <= {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}, webp_chunk_types(data)
    else:
        # no eXIf, iCCP, tEXt, zTXt, iTXt, acTL...: only the image itself
        assert set(png_chunk_types(data)) <= {b"IHDR", b"IDAT", b"IEND"}, png_chunk_types(data)
        assert data.endswith(b"IEND\xaeB`\x82")  # nothing after IEND


def store_has(client, sha: str) -> bool:
    store = client.app.state.ctx.store
    return store.path(sha).is_file() and store.thumbnail_path(sha).is_file()


def open_png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data), formats=["PNG"])
    im.load()
    return im


# ------------------------------------------------------------------ the corpus


def test_the_corpus_is_big_and_covers_the_issue():
    assert len(BAD) >= 40, len(BAD)
    names = " | ".join(s.name for s in CORPUS).lower()
    for needed in ("zero bytes", "text named .png", "html with script", "svg with script", "truncated png",
                   "truncated jpeg", "bad ihdr crc", "decompression bomb 30000x30000", "100000x1", "gif (animated)",
                   "tiff", "bmp", "ico", "cmyk", "16-bit", "palette png with transparency", "exif-rotated",
                   "gps", "polyglot", "mask of the wrong size", "jpeg mask", "apng", "psd", "pdf", "zip", "exe",
                   "random bytes", "utf-16", "1000 idat", "truncated webp", "bad markers", "0x0", "1x0",
                   "chunk length overflow", "wrong magic", "sent as image/jpeg"):
        assert needed in names, needed
    # every bad file is refused as each kind it is sent as
    assert all(e.status >= 400 for s in BAD for e in s.expect.values())
    assert all(set(s.expect) == set(KINDS) for s in BAD if "photo" in s.expect)


CASES = [pytest.param(s, k, id=f"{s.name} -> {k}") for s in CORPUS for k in KINDS if k in s.expect]


@pytest.mark.parametrize("sample,kind", CASES)
def test_corpus_upload(client, backend, sample, kind):
    expect = sample.expect[kind]
    wait_idle(client)
    rows, files = counts(client), blob_files(client)

    r = send(client, sample, kind)

    assert r.status_code == expect.status, r.text
    assert r.headers["content-type"] == "application/json"
    if expect.status >= 400:
        detail = r.json()["detail"]
        assert isinstance(detail, str)
        for word in expect.words:
            assert word.lower() in detail.lower(), (word, detail)
        assert counts(client) == rows
        assert blob_files(client) == files
    else:
        _check_accepted(client, backend, sample, kind, r.json(), files)
    assert client.get("/healthz").status_code == 200


def _check_accepted(client, backend, sample, kind, body, files_before) -> None:
    store = client.app.state.ctx.store
    if kind == "photo":
        version = body["versions"][0]
        assert version["number"] == 1 and len(body["versions"]) == 1
        served = client.get(version["image_url"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/png"
        thumb = client.get(version["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        stored_path = store.path(version["sha256"])
        stored = [stored_path, store.thumbnail_path(version["sha256"])]
        assert stored_path.read_bytes() == served.content  # what is served is what is on disk
        im = open_png(served.content)
        assert (im.width, im.height) == (version["width"], version["height"])
        assert not im.getexif() and not im.info.get("icc_profile")
        sample.check(im)
        for data in (served.content, thumb.content):
            for needle in sample.forbidden:
                assert needle not in data
        t = Image.open(io.BytesIO(thumb.content), formats=["WEBP"])
        assert not t.getexif() and max(t.size) <= 256
    else:
        wait_for_turn(client, body["id"])
        with client.app.state.ctx.sessions() as s:
            turn = s.scalar(select(Turn).where(Turn.id == body["id"]))
            shas = list(turn.reference_sha256s) if kind == "reference" else [turn.mask_sha256]
        assert len(shas) == 1 and shas[0]
        stored = [store.path(shas[0])]
        im = open_png(store.read(shas[0]))
        if kind == "reference":
            assert body["reference_count"] == 1
            sample.check(im)
            assert backend.requests[-1].references[0].mode in ("RGB", "RGBA")
        else:
            assert body["has_mask"] is True
            assert im.size == HEAD_SIZE and im.convert("L").getextrema()[1] == 255  # stored as an RGB PNG
    wait_idle(client)
    # blobs are content-addressed, so the upload's blob may have existed before
    for path in set(stored) | (blob_files(client) - files_before):
        assert_clean_blob(path, path.read_bytes(), sample.forbidden)


def test_gps_is_gone_from_everything_stored_and_served(client):
    """The JPEG with GPS EXIF: besides the per-blob checks above, read the
    stored PNG's EXIF and scan every file under blobs/ for the marker."""
    from tests.hostile_corpus import MARKER

    sample = next(s for s in GOOD if "GPS" in s.name)
    r = send(client, sample, "photo")
    assert r.status_code == 201
    v1 = r.json()["versions"][0]
    for url in (v1["image_url"], v1["thumbnail_url"], v1["image_url"] + "?download=1"):
        data = client.get(url).content
        assert MARKER not in data and b"Exif" not in data
        im = Image.open(io.BytesIO(data))
        assert not im.getexif() and not im.getexif().get_ifd(0x8825)
    assert store_has(client, v1["sha256"])
    for path in client.settings.blob_dir.rglob("*"):
        if path.is_file():
            assert MARKER not in path.read_bytes(), path


def test_polyglot_payload_is_not_stored(client):
    """A PNG with an HTML/JS payload after IEND is accepted only because it
    is re-encoded: the stored bytes differ from the upload and hold no
    payload."""
    sample = next(s for s in GOOD if "polyglot" in s.name)
    r = send(client, sample, "photo")
    assert r.status_code == 201
    v1 = r.json()["versions"][0]
    stored = client.app.state.ctx.store.path(v1["sha256"]).read_bytes()
    assert stored != sample.data and b"<script" not in stored and b"<html" not in stored


def test_side_limit_lets_a_long_but_legal_image_through(client):
    r = client.post("/api/v1/threads", files={"image": ("wide.png", pil_bytes(Image.new("RGB", (MAX_SIDE, 2)), "PNG"),
                                                           "image/png")})
    assert r.status_code == 201, r.text
    assert r.json()["versions"][0]["width"] == MAX_SIDE


# ------------------------------------------------------------------ instruction length, inert HTML


def test_instruction_limit_is_4000_on_the_api_and_the_form(client):
    tid = client.thread_id
    wait_idle(client)
    rows = counts(client)
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "x" * 4001})
    assert r.status_code == 422 and "instruction" in r.json()["detail"]
    r = client.post("/api/v1/threads", json={"prompt": "x" * 4001})
    assert r.status_code == 422 and "prompt" in r.json()["detail"]
    r = client.post("/api/v1/threads", data={"prompt": "x" * 4001},
                    files={"image": ("a.png", pil_bytes(picture(), "PNG"), "image/png")})
    assert r.status_code == 422 and "4000" in r.json()["detail"]
    r = client.post(f"/t/{tid}/turns", data={"instruction": "x" * 4001}, follow_redirects=False)
    assert r.status_code == 422 and "4000" in r.text and "text/html" in r.headers["content-type"]
    r = client.post("/threads", data={"prompt": "x" * 4001}, follow_redirects=False)
    assert r.status_code == 422 and "4000" in r.text
    assert counts(client) == rows
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert " + "x" * 3993})
    assert r.status_code == 202  # exactly 4000 is fine
    wait_idle(client)


PAYLOADS = [
    '<script>alert("x")</script>',
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)' x='",
    '</title><script>alert(document.cookie)</script>',
    '" autofocus onfocus="alert(1)',
    "javascript:alert(1)//<svg/onload=alert(1)>",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_html_in_titles_and_instructions_is_inert_everywhere(client, payload):
    # new clients are new owners (own cookie jars); not entered with ``with``,
    # which would run the app's lifespan again and stop the shared worker
    owner = TestClient(client.app, follow_redirects=False)
    tid = owner.post("/api/v1/threads", data={"prompt": "invert " + payload, "title": payload},
                     files={"image": ("a.png", pil_bytes(picture(), "PNG"), "image/png")}).json()["id"]
    wait_for_thread(owner, tid)
    token = owner.post(f"/api/v1/threads/{tid}/share").json()["token"]
    escaped = str(escape(payload))
    pages = {"home": owner.get("/").text, "thread": owner.get(f"/t/{tid}").text,
             "fragment": owner.get(f"/t/{tid}", headers={"HX-Request": "true"}).text}
    pages["shared"] = TestClient(client.app, follow_redirects=False).get(f"/s/{token}").text
    for name, html in pages.items():
        assert payload not in html, name
        assert escaped in html, name
    shared = pages["shared"]
    assert re.search(r'<meta property="og:title" content="([^"]*)">', shared).group(1) == escaped
    assert f"<title>{escaped} · shared on Retouch</title>" in shared
    # the instruction in attribute context (the version's alt text) stays inside its quotes
    assert f'alt="Version 2: invert {escaped}"' in pages["thread"]
    # the API returns the text as data, unchanged
    assert owner.get(f"/api/v1/threads/{tid}").json()["title"] == " ".join(payload.split())


# ------------------------------------------------------------------ still healthy


def test_zz_server_still_works_after_the_whole_corpus(client):
    wait_idle(client)
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.post("/api/v1/threads", data={"prompt": "invert it"},
                    files={"image": ("ok.png", pil_bytes(picture((64, 48)), "PNG"), "image/png")})
    assert r.status_code == 201
    thread = wait_for_thread(client, r.json()["id"])
    assert [t["status"] for t in thread["turns"]] == ["succeeded", "succeeded"]
    assert len(thread["versions"]) == 2
