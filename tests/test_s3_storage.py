"""Images in an S3 bucket (``RETOUCH_STORAGE_URL=s3://...``) on a real
S3-compatible server, SeaweedFS (``tests/s3_server.py``), started once per
session: the whole turn flow over HTTP, written-once content addressing,
the presigned-redirect mode, ``retouch gc`` on a bucket, and
``retouch migrate-data`` from SQLite + data folder to PostgreSQL + S3."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.db import make_engine
from app.gc import collect_garbage
from app.main import create_app
from app.migrate_data import copy_objects
from app.storage import FileStore, StorageError, StorageURLError, open_store, store_for_url
from app.storage.s3 import S3Store
from tests import conftest
from tests.conftest import make_settings, png_bytes, wait_for_thread

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600
PREFIX = "retouch"


def noisy_png(size=(640, 480), seed=1) -> bytes:
    """A PNG over 512 KiB (noise does not compress), so it is streamed, not sent from memory."""
    im = Image.frombytes("RGB", size, __import__("random").Random(seed).randbytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    assert len(buf.getvalue()) > 512 * 1024
    return buf.getvalue()


def s3_settings(tmp_path: Path, server, bucket: str, database_url: str | None = None, **extra):
    data = tmp_path / "data"
    return make_settings(data, database_url or f"sqlite:///{data / 'retouch.db'}", backend="local",
                         storage_url=f"s3://{bucket}/{PREFIX}", s3_endpoint_url=server.endpoint, **extra)


def object_bytes(server, bucket: str, key: str) -> bytes:
    return server.client().get_object(Bucket=bucket, Key=f"{PREFIX}/{key}")["Body"].read()


def keys(server, bucket: str) -> set[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"] for p in pages for o in p.get("Contents", [])}


def edit_thread(client: TestClient, photo: bytes) -> dict:
    """A photo (v1) and the local backend's black-and-white edit of it (v2)."""
    thread = client.post("/api/v1/threads", files={"image": ("p.png", photo, "image/png")}).json()
    r = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "make it black and white"})
    assert r.status_code == 202, r.text
    thread = wait_for_thread(client, thread["id"])
    assert [t["status"] for t in thread["turns"]] == ["succeeded", "succeeded"], thread["turns"]
    return thread


def test_storage_urls():
    """Unset = the data folder; file:// another folder; anything else is refused by name."""
    assert isinstance(store_for_url(None, data_dir=Path("/tmp/x")), FileStore)
    assert store_for_url("file:///tmp/retouch-y", data_dir=Path("/tmp/x")).root == Path("/tmp/retouch-y/blobs")
    for bad in ("http://example.com/b", "s3:///prefix", "file://host/path", "/just/a/path"):
        with pytest.raises(StorageURLError):
            store_for_url(bad, data_dir=Path("/tmp/x"))


def test_retouch_gc_names_a_bad_storage_url(tmp_path):
    env = {**os.environ, "RETOUCH_DATA_DIR": str(tmp_path), "RETOUCH_STORAGE_URL": "ftp://host/x"}
    env.pop("RETOUCH_DATABASE_URL", None)
    run = subprocess.run([sys.executable, "-m", "app.cli", "gc"], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2 and "RETOUCH_STORAGE_URL must be" in run.stderr


def test_a_missing_bucket_stops_the_start(tmp_path, s3_env):
    settings = s3_settings(tmp_path, s3_env, "no-such-bucket-here")
    with pytest.raises(StorageError, match="no-such-bucket-here"):
        open_store(settings)


def test_turn_flow_over_http_with_s3(tmp_path, s3_env, s3_bucket):
    """Upload, edit with the local backend, then every image URL serves
    exactly the bytes in the bucket; nothing lands in the data folder."""
    settings = s3_settings(tmp_path, s3_env, s3_bucket)
    with TestClient(create_app(settings)) as client:
        thread = edit_thread(client, noisy_png())
        for v in thread["versions"]:
            sha, url = v["sha256"], v["image_url"]
            full = client.get(url)
            assert full.status_code == 200 and full.headers["content-type"] == "image/png"
            assert "immutable" in full.headers["cache-control"] and full.headers["etag"] == f'"{sha}"'
            assert hashlib.sha256(full.content).hexdigest() == sha
            assert full.content == object_bytes(s3_env, s3_bucket, f"blobs/{sha[:2]}/{sha}.png")
            assert client.get(url, headers={"If-None-Match": full.headers["etag"]}).status_code == 304
            thumb = client.get(url, params={"size": "thumb"})
            assert thumb.headers["content-type"] == "image/webp"
            assert thumb.content == object_bytes(s3_env, s3_bucket, f"blobs/{sha[:2]}/{sha}.thumb.webp")
            preview = client.get(url, params={"size": "512"})
            assert preview.status_code == 200 and max(Image.open(io.BytesIO(preview.content)).size) == 512
            assert preview.content == object_bytes(s3_env, s3_bucket, f"blobs/{sha[:2]}/{sha}.w512.webp")
        download = client.get(thread["versions"][1]["image_url"], params={"download": "1"})
        assert download.status_code == 200 and download.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"caBX" in download.content  # signed, and the signed copy is cached in the bucket
        assert any(k.startswith(f"{PREFIX}/c2pa-cache/") for k in keys(s3_env, s3_bucket))
        again = client.get(thread["versions"][1]["image_url"], params={"download": "1"})
        assert again.content == download.content
        export = client.get(f"/api/v1/threads/{thread['id']}/export")
        assert export.status_code == 200 and export.content[:2] == b"PK"
        assert client.get(f"/api/v1/threads/{thread['id']}/timeline.webp").status_code == 200
        head = client.head(thread["versions"][0]["image_url"])
        assert head.status_code == 200 and int(head.headers["content-length"]) > 512 * 1024 and not head.content
        sha = thread["versions"][0]["sha256"]
        s3_env.client().delete_object(Bucket=s3_bucket, Key=f"{PREFIX}/blobs/{sha[:2]}/{sha}.thumb.webp")
        thumb = client.get(thread["versions"][0]["image_url"], params={"size": "thumb"})  # a lost thumbnail is made again
        assert thumb.headers["content-type"] == "image/webp" and max(Image.open(io.BytesIO(thumb.content)).size) <= 256
        assert thumb.content == object_bytes(s3_env, s3_bucket, f"blobs/{sha[:2]}/{sha}.thumb.webp")
    assert not (settings.data_dir / "blobs").exists() or not any((settings.data_dir / "blobs").rglob("*.png"))


def test_blobs_are_content_addressed_and_written_once(s3_env, s3_bucket):
    """The key is the sha256; a second put of the same bytes writes
    nothing (If-None-Match: *) but refreshes LastModified, so gc's grace
    covers a reused blob; the HEAD-then-PUT fallback behaves the same."""
    store = S3Store(s3_bucket, PREFIX, endpoint_url=s3_env.endpoint)
    data = png_bytes((9, 9))
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest() and store.read(sha) == data and store.size(sha) == len(data)
    assert keys(s3_env, s3_bucket) == {f"{PREFIX}/blobs/{sha[:2]}/{sha}.png"}
    first = store.stat(f"{sha[:2]}/{sha}.png").mtime
    # Plant other bytes under a key, as if another writer were there first: put must not overwrite it.
    other = hashlib.sha256(b"other").hexdigest()
    s3_env.client().put_object(Bucket=s3_bucket, Key=f"{PREFIX}/blobs/{other[:2]}/{other}.png", Body=b"planted")
    time.sleep(1.1)  # LastModified has one-second resolution
    assert store.put(data) == sha
    assert store.stat(f"{sha[:2]}/{sha}.png").mtime > first
    store._put_once(f"{other[:2]}/{other}.png", b"other")
    assert store.read(other) == b"planted"
    store._conditional = False  # a server without conditional writes: HEAD, then PUT
    store._put_once(f"{other[:2]}/{other}.png", b"other")
    assert store.read(other) == b"planted"
    new = store.put(b"fresh bytes")
    assert store.read(new) == b"fresh bytes" and len(keys(s3_env, s3_bucket)) == 3
    with pytest.raises(FileNotFoundError):
        store.read(hashlib.sha256(b"never stored").hexdigest())
    assert not store.exists(hashlib.sha256(b"never stored").hexdigest())


def test_redirect_mode_answers_307_to_a_presigned_url_that_works(tmp_path, s3_env, s3_bucket):
    settings = s3_settings(tmp_path, s3_env, s3_bucket, s3_redirect=True)
    with TestClient(create_app(settings)) as client:
        thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((300, 200)), "image/png")}).json()
        v = thread["versions"][0]
        r = client.get(v["image_url"], follow_redirects=False)
        assert r.status_code == 307 and "X-Amz-Signature=" in r.headers["location"]
        assert r.headers["cache-control"].startswith("private, max-age=")
        with urllib.request.urlopen(r.headers["location"]) as s3:  # straight to SeaweedFS, no credentials
            body = s3.read()
            assert s3.headers["Content-Type"] == "image/png" and "immutable" in s3.headers["Cache-Control"]
        assert hashlib.sha256(body).hexdigest() == v["sha256"]
        for size, media in (("thumb", "image/webp"), ("1024", "image/webp")):
            r = client.get(v["image_url"], params={"size": size}, follow_redirects=False)
            assert r.status_code == 307
            with urllib.request.urlopen(r.headers["location"]) as s3:
                assert s3.headers["Content-Type"] == media and s3.read()[:4] == b"RIFF"
        assert client.get(v["image_url"], headers={"If-None-Match": f'"{v["sha256"]}"'},
                          follow_redirects=False).status_code == 304


def test_gc_on_s3_removes_unreferenced_objects_and_keeps_used_ones(tmp_path, s3_env, s3_bucket):
    """Orphans planted in the bucket go once older than the grace period
    (by LastModified); everything a row uses stays; ``retouch gc`` works
    on the bucket from the environment's settings."""
    settings = s3_settings(tmp_path, s3_env, s3_bucket)
    with TestClient(create_app(settings)) as client:
        thread = edit_thread(client, png_bytes((64, 48)))
        client.get(thread["versions"][0]["image_url"], params={"size": "512"})  # a preview too
        used = keys(s3_env, s3_bucket)
        store = client.app.state.ctx.store
        orphan = store.put(b"an orphan image")
        store.put_thumbnail(orphan, b"its thumbnail")
        store.put_source(b"a vendor file no turn names")
        engine = make_engine(settings.sqlalchemy_url)
        try:
            young = collect_garbage(engine, store)
            assert young.files_removed == 0 and young.kept_young == 3 and young.missing == []
            dry = collect_garbage(engine, store, now=time.time() + 2 * HOUR, dry_run=True)
            assert dry.files_removed == 3 and keys(s3_env, s3_bucket) - used != set()
            result = collect_garbage(engine, store, now=time.time() + 2 * HOUR)
        finally:
            engine.dispose()
        assert (result.blobs_removed, result.thumbnails_removed, result.sources_removed) == (1, 1, 1)
        assert all(str(p).startswith(f"s3://{s3_bucket}/{PREFIX}/blobs/") for p in result.removed)
        assert keys(s3_env, s3_bucket) - {k for k in keys(s3_env, s3_bucket) if "c2pa-cache" in k} == used
        for v in thread["versions"]:
            assert hashlib.sha256(client.get(v["image_url"]).content).hexdigest() == v["sha256"]
        store.put(b"another orphan")
    env = {**os.environ, **s3_env.serve_env(s3_bucket, PREFIX), "RETOUCH_DATA_DIR": str(settings.data_dir)}
    env.pop("RETOUCH_DATABASE_URL", None)
    cli = subprocess.run([sys.executable, "-m", "app.cli", "gc", "--grace-seconds", "0"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert "removed 1 blobs" in cli.stdout and f"s3://{s3_bucket}/{PREFIX}/blobs/" in cli.stdout
    assert keys(s3_env, s3_bucket) - {k for k in keys(s3_env, s3_bucket) if "c2pa-cache" in k} == used


@pytest.fixture
def fresh_postgres_database():
    """A new PostgreSQL database (CREATE DATABASE), dropped afterwards."""
    with conftest.fresh_postgres_database("retouch_move_") as url:
        yield url


def test_migrate_data_from_sqlite_and_files_to_postgres_and_s3(tmp_path, s3_env, s3_bucket,
                                                               fresh_postgres_database):
    """Three threads (an edit, a masked edit with a reference, a share
    link) on SQLite + the data folder move with ``retouch migrate-data``;
    a server on PostgreSQL + S3 then serves the same threads and images to
    the same owner, and takes new turns. A second run is refused (target
    not empty); the image copy alone is idempotent."""
    data = tmp_path / "data"
    source = make_settings(data, f"sqlite:///{data / 'retouch.db'}", backend="local")
    with TestClient(create_app(source)) as client:
        threads = [edit_thread(client, png_bytes((80, 60), (200, 30 * i, 30))) for i in range(2)]
        mask = Image.new("L", (80, 60), 0)
        mask.paste(255, (0, 0, 40, 60))
        buf = io.BytesIO()
        mask.save(buf, "PNG")
        t = threads[0]["id"]
        r = client.post(f"/api/v1/threads/{t}/turns", data={"instruction": "invert the colours"},
                        files=[("mask", ("m.png", buf.getvalue(), "image/png")),
                               ("image", ("ref.png", png_bytes((20, 20), (1, 2, 250)), "image/png"))])
        assert r.status_code == 202, r.text
        threads[0] = wait_for_thread(client, t)
        threads.append(client.post("/api/v1/threads", json={"prompt": "a 64x64 canvas with a red background"}).json())
        threads[2] = wait_for_thread(client, threads[2]["id"])
        share = client.post(f"/api/v1/threads/{t}/share").json()
        cookies = dict(client.cookies)
        before = {th["id"]: client.get(f"/api/v1/threads/{th['id']}").json() for th in threads}
    files = {p.relative_to(data / "blobs").as_posix() for p in (data / "blobs").rglob("*") if p.is_file()}

    env = {**os.environ, **s3_env.aws_env(), "RETOUCH_DATA_DIR": str(data)}
    for name in ("RETOUCH_DATABASE_URL", "RETOUCH_STORAGE_URL", "RETOUCH_S3_ENDPOINT_URL"):
        env.pop(name, None)
    # The copy runs in a session time zone other than UTC: SQLite's naive times must still land as UTC.
    args = [sys.executable, "-m", "app.cli", "migrate-data", "--to-database",
            fresh_postgres_database + "?options=-cTimeZone%3DAmerica/New_York",
            "--to-storage", f"s3://{s3_bucket}/{PREFIX}", "--to-s3-endpoint", s3_env.endpoint]
    run = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(files)} objects copied" in run.stdout and "threads: 3 rows" in run.stdout
    assert {k.removeprefix(f"{PREFIX}/blobs/") for k in keys(s3_env, s3_bucket)} == files

    again = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "not empty" in again.stderr
    target_store = S3Store(s3_bucket, PREFIX, endpoint_url=s3_env.endpoint)
    copied, present, _, _ = copy_objects(FileStore(data / "blobs"), target_store)
    assert (copied, present) == (0, len(files))

    target = make_settings(tmp_path / "target-data", fresh_postgres_database, backend="local",
                           storage_url=f"s3://{s3_bucket}/{PREFIX}", s3_endpoint_url=s3_env.endpoint)
    with TestClient(create_app(target), cookies=cookies) as client:
        listed = {th["id"] for th in client.get("/api/v1/threads").json()["threads"]}
        assert listed == set(before)
        for thread_id, old in before.items():
            new = client.get(f"/api/v1/threads/{thread_id}").json()
            assert new == old
            for v in new["versions"]:
                assert hashlib.sha256(client.get(v["image_url"]).content).hexdigest() == v["sha256"]
                assert client.get(v["image_url"], params={"size": "thumb"}).status_code == 200
        turn = next(x for x in before[t]["turns"] if x["has_mask"])
        for name in ("mask", "reference-1"):
            r = client.get(f"/api/v1/threads/{t}/turns/{turn['id']}/attachments/{name}")
            assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert client.get(share["url"].replace("http://testserver", "")).status_code == 200
        r = client.post(f"/api/v1/threads/{t}/turns", data={"instruction": "make it black and white"})
        assert r.status_code == 202, r.text  # the turns' key sequence moved past the copied rows
        after = wait_for_thread(client, t)
        assert after["turns"][-1]["status"] == "succeeded" and len(after["versions"]) == len(before[t]["versions"]) + 1
