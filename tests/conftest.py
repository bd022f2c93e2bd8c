"""Shared fixtures: a real SQLite file and the real PostgreSQL server, a
fake backend registered like simonw/llm's test models, and an app client
whose lifespan (migrations, worker) really runs."""
from __future__ import annotations

import io
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from sqlalchemy import create_engine, text

from app.backends import (
    BackendDeclined,
    BackendFailed,
    EditRequest,
    EditResult,
    ImageBackend,
    register_backend,
    unregister_backend,
)
from app.config import Settings
from app.main import create_app

pytest_plugins = ["tests.fake_openai", "tests.s3_server"]

POSTGRES_URL = os.environ.get("RETOUCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SHARED_EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
IN_CI = os.environ.get("CI", "").lower() == "true"


class FakeBackend(ImageBackend):
    """A deterministic backend for service tests. Instructions containing
    ``decline``/``fail``/``crash``/``slow`` trigger those paths; anything
    else inverts the image (or, with no image, makes a 64x48 teal image)."""

    name = "fake"
    can_generate = True
    accepts_mask = True
    accepts_references = True

    def __init__(self) -> None:
        self.requests: list[EditRequest] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_times = 0

    def run(self, request: EditRequest) -> EditResult:
        self.requests.append(request)
        words = request.instruction.lower()
        if "slow" in words:
            self.gate.wait(timeout=20)
        if "decline" in words:
            raise BackendDeclined("I cannot draw dragons. I can invert colours instead.")
        if "fail" in words and self.fail_times > 0:
            self.fail_times -= 1
            raise BackendFailed("The service is overloaded.", retryable=True)
        if "crash" in words:
            raise RuntimeError("secret internal detail")
        if request.image is None:
            return EditResult(Image.new("RGB", (64, 48), (0, 128, 128)), message="generated")
        return EditResult(ImageOps.invert(request.image.convert("RGB")), message="inverted",
                          usage={"total_tokens": 7})


@pytest.fixture
def fake_backend() -> Iterator[FakeBackend]:
    backend = FakeBackend()
    register_backend("fake", lambda: backend)
    yield backend
    backend.gate.set()
    unregister_backend("fake")


def _postgres_schema_url() -> Iterator[str]:
    schema = "t_" + secrets.token_hex(6)
    try:
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        if IN_CI:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@contextmanager
def fresh_postgres_database(prefix: str = "retouch_") -> Iterator[str]:
    """A new, empty PostgreSQL database (``CREATE DATABASE``) on the test
    server, dropped afterwards (``WITH (FORCE)``); yields its SQLAlchemy URL.
    Skips when the server is unreachable, except under ``CI=true``, where it fails."""
    name = prefix + secrets.token_hex(5)
    try:
        admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        if IN_CI:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required under CI=true: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, then the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'retouch.db'}"
    else:
        yield from _postgres_schema_url()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'db' / 'retouch.db'}"


def make_settings(data_dir: Path, database_url: str, backend: str = "fake", **extra) -> Settings:
    return Settings(data_dir=data_dir, database_url=database_url, backend=backend,
                    secret_key="test-secret", workers=2, **extra)


@pytest.fixture
def settings(tmp_path, database_url, fake_backend) -> Settings:
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@contextmanager
def another_owner(client: TestClient, **kwargs) -> Iterator[TestClient]:
    """A client of the same running app with its own cookie jar (another
    owner). It does not enter the app's lifespan again (``with
    TestClient(app)`` would start and then stop the worker): the first
    client's worker keeps running the turns."""
    other = TestClient(client.app, **kwargs)
    try:
        yield other
    finally:
        other.close()


def png_bytes(size=(40, 30), color=(200, 30, 30), mode="RGB", fmt="PNG", **save) -> bytes:
    """A real image file of ``size`` pixels."""
    im = Image.new(mode, size, color)
    # a little structure, so orientation and inversion are visible
    for x in range(size[0] // 4):
        for y in range(size[1] // 4):
            im.putpixel((x, y), (10, 200, 10) if mode == "RGB" else im.getpixel((x, y)))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def wait_for_turn(client: TestClient, turn_id: str, timeout: float = 30) -> dict:
    """Poll ``GET /api/v1/turns/{id}`` until the turn has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turn = client.get(f"/api/v1/turns/{turn_id}").json()
        if turn["status"] not in ("queued", "running"):
            return turn
        time.sleep(0.05)
    raise AssertionError(f"turn {turn_id} did not finish in {timeout} s")


def wait_for_thread(client: TestClient, thread_id: str, timeout: float = 30) -> dict:
    """Poll the thread until no turn is queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        thread = client.get(f"/api/v1/threads/{thread_id}").json()
        if all(t["status"] not in ("queued", "running") for t in thread["turns"]):
            return thread
        time.sleep(0.05)
    raise AssertionError(f"thread {thread_id} still busy after {timeout} s")


def open_image(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im
