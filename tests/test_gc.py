"""Blob garbage collection (``app/gc.py`` and ``retouch gc``).

A thread with versions, a masked turn and a reference image is built
through the API, then files no row refers to are planted next to the real
blobs, some old (mtime pushed back) and some fresh. The tests show that gc
deletes exactly the old unreferenced blobs, thumbnails and ``.tmp-*``
files, never a referenced one or anything younger than the grace period,
and that the app still serves every version afterwards.
"""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.db import make_engine
from app.gc import DEFAULT_GRACE_SECONDS, NotARetouchDatabase, collect_garbage, referenced_digests
from app.main import create_app
from app.storage import BlobStore
from tests.conftest import make_settings, png_bytes, wait_for_thread

ROOT = Path(__file__).resolve().parent.parent
HOUR = 3600


def age(path: Path, seconds: float) -> Path:
    """Push ``path``'s mtime ``seconds`` into the past."""
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


def mask_png(size=(40, 30)) -> bytes:
    m = Image.new("L", size, 0)
    m.paste(255, (5, 5, 20, 20))
    buf = io.BytesIO()
    m.save(buf, "PNG")
    return buf.getvalue()


def build_thread(client: TestClient) -> dict:
    """Photo (v1), an edit (v2) and a masked edit with a reference (v3)."""
    thread = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")},
                         data={"prompt": "invert it"}).json()
    wait_for_thread(client, thread["id"])
    r = client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "invert the box"},
                    files=[("mask", ("m.png", mask_png(), "image/png")),
                           ("image", ("ref.png", png_bytes((20, 20), (1, 2, 250)), "image/png"))])
    assert r.status_code == 202, r.text
    return wait_for_thread(client, thread["id"])


def all_files(store: BlobStore) -> set[Path]:
    return {p for p in store.root.rglob("*") if p.is_file()}


@pytest.fixture
def app_client(settings):
    with TestClient(create_app(settings)) as c:
        yield c


def plant(store: BlobStore) -> dict[str, Path]:
    """Unreferenced files: old and fresh blobs with thumbnails, old and
    fresh temp files, and an unknown file."""
    old_sha = hashlib.sha256(b"old orphan").hexdigest()
    young_sha = hashlib.sha256(b"young orphan").hexdigest()
    files = {
        "old_blob": store.path(old_sha), "old_thumb": store.thumbnail_path(old_sha),
        "young_blob": store.path(young_sha), "young_thumb": store.thumbnail_path(young_sha),
        "old_tmp": store.root / old_sha[:2] / ".tmp-abc123",
        "young_tmp": store.root / young_sha[:2] / ".tmp-def456",
        "unknown": store.root / old_sha[:2] / "notes.txt",
    }
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode() * 10)
        if not name.startswith("young"):
            age(path, 2 * HOUR)
    return files


def test_gc_removes_only_old_unreferenced_files(settings, app_client):
    """With the default grace period: old orphans (blob, thumbnail, temp
    file) go; fresh orphans, unknown files and everything a version, mask
    or reference uses stay (even when old); every version still serves."""
    thread = build_thread(app_client)
    assert [t["status"] for t in thread["turns"]] == ["succeeded"] * 3
    store = BlobStore(settings.blob_dir)
    engine = make_engine(settings.sqlalchemy_url)
    refs = referenced_digests(engine)
    version_shas = {v["sha256"] for v in thread["versions"]}
    assert version_shas < refs and len(refs) == len(version_shas) + 2  # + mask + reference
    for path in all_files(store):  # referenced files are old too: age alone never deletes
        age(path, 10 * HOUR)
    referenced_files = all_files(store)
    planted = plant(store)

    result = collect_garbage(engine, store)
    engine.dispose()
    assert sorted(result.removed) == sorted([planted["old_blob"], planted["old_thumb"], planted["old_tmp"]])
    assert (result.blobs_removed, result.thumbnails_removed, result.temp_files_removed) == (1, 1, 1)
    assert result.bytes_freed == sum(len(n.encode()) * 10 for n in ("old_blob", "old_thumb", "old_tmp"))
    assert result.kept_young == 3 and result.missing == [] and result.referenced == len(refs)
    assert all_files(store) == referenced_files | {planted[k] for k in ("young_blob", "young_thumb",
                                                                          "young_tmp", "unknown")}
    for v in thread["versions"]:
        r = app_client.get(v["image_url"])
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == v["sha256"]
        assert app_client.get(v["image_url"], params={"size": "thumb"}).status_code == 200


def test_gc_grace_zero_and_dry_run(settings, app_client):
    """A dry run lists what would go and deletes nothing; grace 0 then
    removes fresh orphans too, and nothing referenced."""
    build_thread(app_client)
    store = BlobStore(settings.blob_dir)
    referenced_files = all_files(store)
    planted = plant(store)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        dry = collect_garbage(engine, store, grace_seconds=0, dry_run=True)
        assert dry.dry_run and dry.files_removed == 6
        assert all(p.exists() for p in planted.values())
        real = collect_garbage(engine, store, grace_seconds=0)
        assert sorted(real.removed) == sorted(dry.removed)
        assert all_files(store) == referenced_files | {planted["unknown"]}
        assert collect_garbage(engine, store, grace_seconds=0).files_removed == 0
    finally:
        engine.dispose()


def test_default_grace_spares_a_blob_whose_transaction_has_not_committed(settings, app_client):
    """A blob just written for a turn that has not committed yet is not
    referenced by any row; the default grace (1 hour) keeps it."""
    assert DEFAULT_GRACE_SECONDS == HOUR
    store = BlobStore(settings.blob_dir)
    sha = store.put(png_bytes((9, 9)))
    engine = make_engine(settings.sqlalchemy_url)
    try:
        assert collect_garbage(engine, store).files_removed == 0
        assert store.exists(sha)
        assert collect_garbage(engine, store, now=time.time() + HOUR + 1).removed == [store.path(sha)]
    finally:
        engine.dispose()


def test_gc_refuses_a_database_without_retouch_tables(tmp_path):
    """Pointed at an empty database, gc removes nothing and says why."""
    store = BlobStore(tmp_path / "blobs")
    sha = store.put(png_bytes())
    age(store.path(sha), 2 * HOUR)
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(NotARetouchDatabase):
            collect_garbage(engine, store, grace_seconds=0)
    finally:
        engine.dispose()
    assert store.exists(sha)
    with pytest.raises(ValueError):
        collect_garbage(make_engine(f"sqlite:///{tmp_path / 'empty.db'}"), store, grace_seconds=-1)


def run_gc(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RETOUCH_DATA_DIR": str(data_dir)}
    env.pop("RETOUCH_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "app.cli", "gc", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def test_retouch_gc_command(tmp_path, fake_backend):
    """``retouch gc`` prints each removed file and a summary; ``--dry-run``
    removes nothing; the default grace keeps fresh files; exit 2 for a
    negative grace or an unmigrated database."""
    data = tmp_path / "data"
    settings = make_settings(data, f"sqlite:///{data / 'retouch.db'}")
    with TestClient(create_app(settings)) as c:
        build_thread(c)
    store = BlobStore(settings.blob_dir)
    planted = plant(store)

    dry = run_gc(data, "--grace-seconds", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {planted['young_blob']}" in dry.stdout
    assert "would remove 2 blobs, 2 thumbnails and 2 temporary files" in dry.stdout
    assert all(p.exists() for p in planted.values())

    default = run_gc(data)
    assert default.returncode == 0, default.stderr
    assert "removed 1 blobs, 1 thumbnails and 1 temporary files" in default.stdout
    assert f"removed {planted['old_blob']}" in default.stdout and planted["young_blob"].exists()

    zero = run_gc(data, "--grace-seconds", "0")
    assert "removed 1 blobs, 1 thumbnails and 1 temporary files" in zero.stdout
    assert not planted["young_blob"].exists() and planted["unknown"].exists()

    assert run_gc(data, "--grace-seconds", "-1").returncode == 2
    bad = run_gc(tmp_path / "elsewhere")
    assert bad.returncode == 2 and "no Retouch tables" in bad.stderr


def test_a_markup_drawing_counts_as_used(settings, app_client, fake_backend):
    """A turn's markup (strokes that guided an edit) is kept like its mask."""
    fake_backend.accepts_markup = True  # the test backend takes drawings, as OpenAI's 2.5 models do
    thread = app_client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    drawing = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    drawing.paste((255, 0, 0, 255), (5, 5, 15, 15))
    buf = io.BytesIO()
    drawing.save(buf, "PNG")
    r = app_client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "a hat here"},
                        files={"markup": ("d.png", buf.getvalue(), "image/png")})
    assert r.status_code == 202, r.text
    wait_for_thread(app_client, thread["id"])
    assert fake_backend.requests[-1].markup is not None
    engine = make_engine(settings.sqlalchemy_url)
    try:
        refs = referenced_digests(engine)
    finally:
        engine.dispose()
    turn_id = r.json()["id"]
    served = app_client.get(f"/api/v1/threads/{thread['id']}/turns/{turn_id}/attachments/markup").content
    assert hashlib.sha256(served).hexdigest() in refs
    assert len(refs) == 3  # the photo, the result and the drawing


def test_a_vendor_source_file_is_kept_while_a_turn_names_it(settings, app_client, fake_backend, monkeypatch):
    """The worker keeps a result file that came with a C2PA manifest as
    ``<sha>.source`` (turn ``output["source_sha256"]``); gc keeps it while a
    turn names it, whatever its age, and collects ``.source`` files no turn
    names once they are older than the grace period."""
    from tests import fake_c2pa

    plain_run = fake_backend.run

    def signed_run(request):
        result = plain_run(request)
        buf = io.BytesIO()
        result.image.save(buf, "PNG")
        result.source = fake_c2pa.sign(buf.getvalue())  # as OpenAI sends it: the file with its manifest
        return result

    monkeypatch.setattr(fake_backend, "run", signed_run)
    thread = app_client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(), "image/png")}).json()
    r = app_client.post(f"/api/v1/threads/{thread['id']}/turns", data={"instruction": "invert it"})
    thread = wait_for_thread(app_client, thread["id"])
    kept = next(t for t in thread["turns"] if t["id"] == r.json()["id"])["output"]["source_sha256"]
    store = BlobStore(settings.blob_dir)
    source = store.path(kept, ".source")
    assert source.is_file() and not store.path(kept).exists()  # never a version PNG's name
    orphan_sha = hashlib.sha256(b"a vendor file no turn names").hexdigest()
    orphan, young = store.path(orphan_sha, ".source"), store.path(hashlib.sha256(b"young").hexdigest(), ".source")
    # named by a version's digest, but only a turn's source_sha256 keeps a .source file
    misnamed = store.path(thread["versions"][0]["sha256"], ".source")
    for path in (orphan, young, misnamed):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
    for path in all_files(store) - {young}:
        age(path, 10 * HOUR)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        result = collect_garbage(engine, store)
    finally:
        engine.dispose()
    assert sorted(result.removed) == sorted([orphan, misnamed])
    assert result.sources_removed == 2 and result.blobs_removed == 0 and result.files_removed == 2
    assert result.missing == [] and result.kept_young == 1 and source.is_file() and young.is_file()
    download = app_client.get(f"/api/v1/threads/{thread['id']}/versions/2/image?download=1")
    assert download.status_code == 200 and fake_c2pa.CLAIM_GENERATOR.encode() in download.content
