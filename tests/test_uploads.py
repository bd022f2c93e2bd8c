"""Uploads are decoded, normalised and re-encoded; bad files get a 4xx that
names the problem, and leave no row and no blob behind."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.conftest import make_settings, open_image, png_bytes


@pytest.fixture
def client(tmp_path, sqlite_url, fake_backend):
    from fastapi.testclient import TestClient

    from app.main import create_app

    settings = make_settings(tmp_path / "data", sqlite_url, max_upload_bytes=200_000, max_upload_pixels=1_000_000)
    with TestClient(create_app(settings)) as c:
        c.settings = settings
        yield c


def upload(client, data, name="photo.png", ctype="image/png"):
    return client.post("/api/v1/threads", files={"image": (name, data, ctype)})


def assert_nothing_stored(client):
    assert client.get("/api/v1/threads").json()["threads"] == []
    assert list(client.settings.blob_dir.rglob("*.*")) == []


def jpeg_with_exif(orientation: int | None = None, gps: bool = False) -> bytes:
    im = Image.new("RGB", (60, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 20))  # blue stripe on the left
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
    exif[0x010F] = "TestCam"
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


BAD_FILES = {
    "empty": (b"", 422, "empty"),
    "text named png": (b"hello, I am text", 415, "text file"),
    "html": (b"<!doctype html><script>alert(1)</script>", 415, "HTML"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 415, "SVG"),
    "truncated png": (png_bytes((300, 200))[:200], 422, "damaged or truncated"),
    "truncated jpeg": (png_bytes((300, 200), fmt="JPEG")[:300], 422, "damaged or truncated"),
    "gif": (png_bytes((10, 10), fmt="GIF"), 415, "GIF"),
    "bmp": (png_bytes((10, 10), fmt="BMP"), 415, "BMP"),
    "tiff": (png_bytes((10, 10), fmt="TIFF"), 415, "TIFF"),
    "too many pixels": (png_bytes((1200, 1000)), 413, "megapixels"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_upload_is_refused_and_nothing_is_stored(client, name):
    data, status, words = BAD_FILES[name]
    r = upload(client, data)
    assert r.status_code == status, r.text
    assert words.lower() in r.json()["detail"].lower()
    assert_nothing_stored(client)
    assert client.get("/healthz").status_code == 200


def test_too_many_bytes(client):
    noise = Image.frombytes("RGB", (400, 400), bytes(range(256)) * 1875)
    buf = io.BytesIO()
    noise.save(buf, "PNG", compress_level=0)
    assert len(buf.getvalue()) > 200_000
    r = upload(client, buf.getvalue())
    assert r.status_code == 413 and "MB" in r.json()["detail"]
    assert_nothing_stored(client)


def test_exif_orientation_is_applied_and_metadata_dropped(client):
    r = upload(client, jpeg_with_exif(orientation=6, gps=True), "cam.jpg", "image/jpeg")
    assert r.status_code == 201
    v1 = r.json()["versions"][0]
    assert (v1["width"], v1["height"]) == (20, 60)  # rotated upright
    stored = open_image(client.get(v1["image_url"]).content)
    assert stored.format == "PNG" and stored.size == (20, 60)
    r_, g_, b_ = stored.getpixel((10, 2))
    assert b_ > 200 and r_ < 60  # the blue stripe is now at the top
    assert not stored.getexif() and "exif" not in stored.info
    raw = client.get(v1["image_url"]).content
    assert b"TestCam" not in raw and b"GPS" not in raw


@pytest.mark.parametrize("mode,fmt", [("CMYK", "JPEG"), ("I;16", "PNG"), ("P", "PNG"), ("LA", "PNG"), ("RGBA", "WEBP")])
def test_unusual_modes_are_normalised(client, mode, fmt):
    im = Image.new("RGBA" if mode == "RGBA" else "RGB", (16, 16), (10, 120, 240, 128)[: 4 if mode == "RGBA" else 3])
    if mode == "I;16":
        im = Image.new("I;16", (16, 16), 40000)
    elif mode == "P":
        im = im.convert("P")
        im.info["transparency"] = 0
    elif mode != "RGBA":
        im = im.convert(mode)
    buf = io.BytesIO()
    im.save(buf, fmt, **({"transparency": 0} if mode == "P" else {}))
    r = upload(client, buf.getvalue(), f"x.{fmt.lower()}")
    assert r.status_code == 201, r.text
    stored = open_image(client.get(r.json()["versions"][0]["image_url"]).content)
    assert stored.mode in ("RGB", "RGBA")
    if mode == "I;16":
        assert stored.getpixel((0, 0))[0] == 40000 // 256


def test_bad_reference_image_queues_nothing(client):
    tid = upload(client, png_bytes()).json()["id"]
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "use this"},
                    files={"image": ("ref.png", b"not an image", "image/png")})
    assert r.status_code == 415 and "reference image" in r.json()["detail"]
    assert len(client.get(f"/api/v1/threads/{tid}").json()["turns"]) == 1


def test_oversized_request_is_refused_before_reading(client):
    r = client.post("/api/v1/threads", content=b"x" * 10, headers={
        "content-type": "multipart/form-data; boundary=x", "content-length": str(10**9)})
    assert r.status_code == 413


def test_sqlite_runs_in_wal_mode_with_foreign_keys(client):
    import sqlite3

    upload(client, png_bytes())
    db = client.settings.sqlalchemy_url.split("///", 1)[1]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_validation_errors_are_readable_strings(client):
    r = client.post("/api/v1/threads", json={"prompt": 5})
    assert r.status_code == 422 and "prompt" in r.json()["detail"]
    r = client.post("/api/v1/threads", json={"prompt": "x", "title": "t" * 300})
    assert r.status_code == 422 and "title" in r.json()["detail"]


def test_longest_side_is_a_setting(tmp_path, sqlite_url, fake_backend):
    from fastapi.testclient import TestClient

    from app.main import create_app

    settings = make_settings(tmp_path / "data", sqlite_url, max_upload_side=100)
    with TestClient(create_app(settings)) as c:
        r = c.post("/api/v1/threads", files={"image": ("wide.png", png_bytes((101, 10)), "image/png")})
        assert r.status_code == 413 and "at most 100 pixels" in r.json()["detail"]
        assert c.post("/api/v1/threads", files={"image": ("ok.png", png_bytes((100, 10)), "image/png")}).status_code == 201
