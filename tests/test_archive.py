"""Export, import and the timeline (app/archive.py), through the API, the
pages and the command line, on SQLite and PostgreSQL; and a hostile zip
corpus made here: bombs, traversal, 10,000 entries, mismatched JSON and
images that break the upload rules. A refused zip stores nothing."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import c2pa
import pytest
from PIL import Image

from app import archive
from tests.conftest import another_owner, png_bytes, wait_for_thread
from tests.test_provenance import mask_png
from tests.test_threads_api import create_from_photo, send

ROOT = Path(__file__).resolve().parent.parent


def make_thread(client) -> dict:
    """Upload, an edit with a mask, one with a reference, a declined turn,
    a revert and a branch: a tree with attachments."""
    thread = create_from_photo(client, png_bytes((40, 30)), title="Round trip ✓")
    tid = thread["id"]
    send(client, tid, "invert the left half", files=[("mask", ("mask.png", mask_png(), "image/png"))])
    wait_for_thread(client, tid)
    send(client, tid, "like this one", files=[("image", ("ref.png", png_bytes((20, 20), (0, 0, 255)), "image/png"))])
    wait_for_thread(client, tid)
    send(client, tid, "decline: add a dragon")
    wait_for_thread(client, tid)
    assert client.post(f"/api/v1/threads/{tid}/revert", json={"version": 2}).status_code == 200
    send(client, tid, "invert once more")
    return wait_for_thread(client, tid)


def export(client, thread_id: str) -> bytes:
    r = client.get(f"/api/v1/threads/{thread_id}/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert "attachment" in r.headers["content-disposition"]
    return r.content


def entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rezip(files: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def without_ids(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    doc.pop("exported_at")
    doc["thread"].pop("id")
    for t in doc["turns"]:
        t.pop("id")
    return doc


def import_zip(client, data: bytes):
    return client.post("/api/v1/threads/import", files={"archive": ("thread.zip", data, "application/zip")})


def test_export_holds_signed_versions_attachments_json_and_timeline(client, fake_backend):
    thread = make_thread(client)
    files = entries(export(client, thread["id"]))
    doc = json.loads(files["thread.json"])
    assert doc["format"] == "retouch-thread" and doc["schema_version"] == 1
    assert sorted(n for n in files if n.startswith("versions/")) == [f"versions/v00{n}.png" for n in (1, 2, 3, 4)]
    assert "attachments/turn-002-mask.png" in files and "attachments/turn-003-reference-1.png" in files
    assert [t["status"] for t in doc["turns"]] == ["succeeded", "succeeded", "succeeded", "declined", "succeeded",
                                                   "succeeded"]
    assert [v["parent"] for v in doc["versions"]] == [None, 1, 2, 2]
    assert doc["thread"]["head_version"] == 4 and doc["usage"]["total_tokens"] == 21
    for n in (1, 2, 3, 4):
        reader = c2pa.Reader("image/png", io.BytesIO(files[f"versions/v00{n}.png"]))
        assert reader.get_validation_state() in ("Valid", "Trusted")
    timeline = Image.open(io.BytesIO(files["timeline.webp"]))
    assert timeline.n_frames == 3  # the head (4) descends from 2 and 1


def test_round_trip_export_import_export(client, fake_backend):
    thread = make_thread(client)
    first = export(client, thread["id"])
    with another_owner(client) as other:
        r = import_zip(other, first)
        assert r.status_code == 201, r.text
        imported = r.json()
        assert imported["id"] != thread["id"] and imported["head_version"] == 4
        assert [v["sha256"] for v in imported["versions"]] == [v["sha256"] for v in thread["versions"]]
        assert [t["instruction"] for t in imported["turns"]] == [t["instruction"] for t in thread["turns"]]
        second = export(other, imported["id"])
        # the original owner does not see the import
        assert client.get(f"/api/v1/threads/{imported['id']}").status_code == 404
    a, b = json.loads(entries(first)["thread.json"]), json.loads(entries(second)["thread.json"])
    assert a["thread"]["id"] != b["thread"]["id"]
    assert without_ids(a) == without_ids(b)
    assert sorted(entries(first)) == sorted(entries(second))


def test_timeline_has_one_frame_per_version_of_the_lineage(client, fake_backend):
    thread = create_from_photo(client, png_bytes((40, 30)))
    for word in ("one", "two", "three", "four"):
        send(client, thread["id"], f"invert {word}")
        wait_for_thread(client, thread["id"])
    r = client.get(f"/api/v1/threads/{thread['id']}/timeline.webp")
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    im = Image.open(io.BytesIO(r.content))
    assert im.format == "WEBP" and im.n_frames == 5
    assert im.size == (archive.TIMELINE_SIDE, archive.TIMELINE_SIDE + archive.CAPTION_HEIGHT)
    token = client.post(f"/api/v1/threads/{thread['id']}/share").json()["token"]
    shared = client.get(f"/api/v1/shared/{token}/timeline.webp")
    assert Image.open(io.BytesIO(shared.content)).n_frames == 5


def test_timeline_of_a_thread_without_images_is_404(client, fake_backend):
    fake_backend.gate.clear()
    thread = client.post("/api/v1/threads", json={"prompt": "slow teal"}).json()
    assert client.get(f"/api/v1/threads/{thread['id']}/timeline.webp").status_code == 404
    fake_backend.gate.set()
    wait_for_thread(client, thread["id"])


# ---------------------------------------------------------------- hostile zips


def stored_files(client) -> set[str]:
    root = client.app.state.ctx.store.root
    return {str(p) for p in root.rglob("*") if p.is_file()}


def bomb_entry(size: int) -> bytes:
    return b"\0" * size


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` with a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def hostile_corpus(good: dict[str, bytes]) -> list[tuple[str, bytes, int, str]]:
    """(what, zip bytes, expected status, words the message must contain)."""
    doc = json.loads(good["thread.json"])

    def with_doc(change) -> bytes:
        d = json.loads(json.dumps(doc))
        change(d)
        return rezip({**good, "thread.json": json.dumps(d).encode()})

    # a deflated entry whose headers claim 10 bytes: reading is capped anyway, and the CRC gives it away
    lying = bytearray(rezip({**good, "versions/v001.png": bomb_entry(5 * 1024 * 1024)}, zipfile.ZIP_DEFLATED))
    for sig, offset in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
        pos = lying.find(sig)
        while pos != -1:
            name_len = struct.unpack_from("<H", lying, pos + (28 if sig == b"PK\x01\x02" else 26))[0]
            start = pos + (46 if sig == b"PK\x01\x02" else 30)
            if lying[start:start + name_len] == b"versions/v001.png":
                struct.pack_into("<I", lying, pos + offset, 10)
            pos = lying.find(sig, pos + 4)

    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(10_000):
            zf.writestr(f"x{i}", b"")
    cases = [
        ("not a zip", png_bytes(), 415, "not a zip"),
        ("empty", b"", 422, "empty"),
        ("truncated", rezip(good)[:200], 422, "damaged"),
        ("10,000 entries", many.getvalue(), 413, "10000 entries"),
        ("deflate bomb", rezip({**good, "versions/v001.png": bomb_entry(20 * 1024 * 1024)}, zipfile.ZIP_DEFLATED),
         413, "zip bomb"),
        ("entry over the upload limit", rezip({**good, "versions/v001.png": bomb_entry(30 * 1024 * 1024)},
                                              zipfile.ZIP_DEFLATED), 413, "limit"),
        ("headers that lie about the size", bytes(lying), 422, "damaged"),
        ("traversal", rezip({**good, "../../etc/passwd": b"x"}), 422, "not allowed"),
        ("nested traversal", rezip({**good, "versions/../../x.png": b"x"}), 422, "not allowed"),
        ("absolute path", rezip({**good, "/etc/passwd": b"x"}), 422, "not allowed"),
        ("backslash", rezip({**good, "..\\evil.png": b"x"}), 422, "not allowed"),
        ("drive letter", rezip({**good, "C:/evil.png": b"x"}), 422, "not allowed"),
        ("unknown entry", rezip({**good, "run.sh": b"x"}), 422, "not part of a Retouch export"),
        ("no thread.json", rezip({k: v for k, v in good.items() if k != "thread.json"}), 422, "no thread.json"),
        ("thread.json not JSON", rezip({**good, "thread.json": b"{nope"}), 422, "not valid JSON"),
        ("wrong schema version", with_doc(lambda d: d.update(schema_version=2)), 422, "schema_version"),
        ("extra field", with_doc(lambda d: d["thread"].update(admin=True)), 422, "thread.admin"),
        ("parent missing", with_doc(lambda d: d["versions"][1].update(parent=9)), 422, "parent 9"),
        ("parent cycle", with_doc(lambda d: d["versions"][0].update(parent=2)), 422, "not an earlier version"),
        ("head missing", with_doc(lambda d: d["thread"].update(head_version=42)), 422, "head version 42"),
        ("file missing", rezip({k: v for k, v in good.items() if k != "versions/v002.png"}), 422,
         "no versions/v002.png"),
        ("size mismatch", with_doc(lambda d: d["versions"][0].update(width=41)), 422, "thread.json says"),
        ("control character", with_doc(lambda d: d["turns"][1].update(instruction="a\x00b")), 422,
         "control character"),
        ("someone else's attachment", with_doc(lambda d: d["turns"][0].update(mask="attachments/turn-002-mask.png")),
         422, "not one of its own"),
        ("stray image", rezip({**good, "attachments/turn-001-markup.png": png_bytes()}), 422,
         "does not name"),
        ("not an image", rezip({**good, "versions/v001.png": b"GIF89a" + b"\0" * 100}), 415, "GIF"),
        ("too many pixels", rezip({**good, "versions/v001.png": png_declaring(9000, 9000)}), 413, "megapixels"),
        ("too long a side", rezip({**good, "versions/v001.png": png_declaring(20000, 10)}), 413, "longest side"),
        ("damaged png", rezip({**good, "versions/v001.png": good["versions/v001.png"][:300]}), 422, "damaged"),
        ("mask of the wrong size", rezip({**good, "attachments/turn-002-mask.png": mask_png((10, 10))}), 422,
         "mask"),
    ]
    return cases


@pytest.fixture
def unlimited_client(tmp_path, database_url, fake_backend):
    """A client of an app without the turn rate limit (imports count as turns)."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import make_settings

    with TestClient(create_app(make_settings(tmp_path / "data", database_url, turn_rate_limit="0"))) as c:
        yield c


def test_hostile_zips_are_refused_and_store_nothing(unlimited_client, fake_backend):
    client = unlimited_client
    thread = create_from_photo(client, png_bytes((40, 30)))
    send(client, thread["id"], "invert the left half", files=[("mask", ("mask.png", mask_png(), "image/png"))])
    wait_for_thread(client, thread["id"])
    good = entries(export(client, thread["id"]))
    before_files = stored_files(client)
    before_threads = client.get("/api/v1/threads").json()["threads"]
    for what, data, status, words in hostile_corpus(good):
        r = import_zip(client, data)
        assert r.status_code == status, (what, r.status_code, r.text)
        assert words.lower() in r.json()["detail"].lower(), (what, r.json()["detail"])
    assert stored_files(client) == before_files
    assert client.get("/api/v1/threads").json()["threads"] == before_threads
    assert import_zip(client, rezip(good)).status_code == 201  # the corpus's base is a good zip


def test_zip_over_the_archive_limit_is_413(client, fake_backend, monkeypatch):
    monkeypatch.setattr(archive, "ARCHIVE_FILES", 0)  # the limit becomes 0 bytes
    r = import_zip(client, rezip({"thread.json": b"{}"}))
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_import_without_a_file_is_422(client, fake_backend):
    r = client.post("/api/v1/threads/import", data={"x": "1"})
    assert r.status_code == 422 and "Choose a Retouch export" in r.json()["detail"]


# ---------------------------------------------------------------- pages and CLI


def test_home_page_import_form(client, fake_backend):
    thread = create_from_photo(client, png_bytes((40, 30)), prompt="invert it")
    wait_for_thread(client, thread["id"])
    data = export(client, thread["id"])
    home = client.get("/")
    assert 'id="import-thread"' in home.text and 'name="archive"' in home.text
    page = client.get(f"/t/{thread['id']}")
    assert f'href="/api/v1/threads/{thread["id"]}/export"' in page.text
    r = client.post("/threads/import", files={"archive": ("x.zip", data, "application/zip")}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/t/")
    r = client.post("/threads/import", files={"archive": ("x.zip", b"not a zip", "application/zip")})
    assert r.status_code == 415 and "not a zip file" in r.text


def run_cli(tmp_path, *args, db_url: str):
    env = {**os.environ, "RETOUCH_DATA_DIR": str(tmp_path / "data"), "RETOUCH_DATABASE_URL": db_url,
           "RETOUCH_BACKEND": "local"}
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_cli_export_and_import(tmp_path, sqlite_url, fake_backend):
    from fastapi.testclient import TestClient

    from app.main import create_app
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "data", sqlite_url)
    with TestClient(create_app(settings)) as client:
        thread = create_from_photo(client, png_bytes((40, 30)), prompt="invert it")
        wait_for_thread(client, thread["id"])
    out = tmp_path / "thread.zip"
    p = run_cli(tmp_path, "export", thread["id"], "-o", str(out), db_url=sqlite_url)
    assert p.returncode == 0, p.stderr
    assert "2 versions" in p.stdout and zipfile.is_zipfile(out)
    p = run_cli(tmp_path, "import", str(out), "--owner-of", thread["id"], db_url=sqlite_url)
    assert p.returncode == 0, p.stderr
    assert "imported thread" in p.stdout
    with TestClient(create_app(settings)) as client:
        assert len(client.get("/api/v1/threads").json()["threads"]) == 0  # a new browser is another owner
    p = run_cli(tmp_path, "export", "nope", "-o", str(out), db_url=sqlite_url)
    assert p.returncode == 2 and "no thread" in p.stderr
    bad = tmp_path / "bad.zip"
    bad.write_bytes(rezip({"../x": b"1"}))
    p = run_cli(tmp_path, "import", str(bad), db_url=sqlite_url)
    assert p.returncode == 2 and "not allowed" in p.stderr


def test_imported_images_keep_no_metadata(client, fake_backend):
    """A version file with extra chunks (text, EXIF) is re-encoded; one as
    Retouch writes it is kept byte for byte, less its manifest."""
    from PIL import PngImagePlugin

    thread = create_from_photo(client, png_bytes((40, 30)))
    good = entries(export(client, thread["id"]))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret GPS 51.5,-0.1")
    buf = io.BytesIO()
    Image.open(io.BytesIO(good["versions/v001.png"])).save(buf, "PNG", pnginfo=info)
    r = import_zip(client, rezip({**good, "versions/v001.png": buf.getvalue()}))
    assert r.status_code == 201, r.text
    stored = client.get(r.json()["versions"][0]["image_url"]).content
    assert b"secret GPS" not in stored and b"caBX" not in stored
    r = import_zip(client, rezip(good))
    assert r.json()["versions"][0]["sha256"] == thread["versions"][0]["sha256"]


def test_ids_never_read_as_command_line_options(tmp_path, sqlite_url):
    """One id in 64 used to start with "-", and ``retouch export ID`` then
    took it for an option. New ids never do; an older one still works
    after ``--``."""
    from app.models import new_id

    assert not any(new_id().startswith("-") for _ in range(5000))
    p = run_cli(tmp_path, "export", "-o", str(tmp_path / "x.zip"), "--", "-uSvy1VYkSoMVzG6", db_url=sqlite_url)
    assert p.returncode != 0 and "following arguments are required" not in p.stderr, p.stderr
