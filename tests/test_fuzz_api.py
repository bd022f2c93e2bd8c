"""Fuzzing the JSON API (issue 5) with schemathesis, in-process through ASGI.

Every operation of the app's OpenAPI schema gets a bounded number of
generated requests (valid and invalid ones), and every response must pass
schemathesis' checks: no server error, a documented status code, the
documented content type and headers, and a body matching the documented
schema. The backend is the fake one, so queued turns are cheap.

Half the requests carry the cookie of an owner who has a real thread, turn
and share link, and use their ids in the path, so the fuzzer reaches the
code behind the 404s too; the other half are anonymous with generated ids.
Requests carry no ``Origin`` or ``Sec-Fetch-Site`` header (like a script), so
the cross-origin refusal does not hide the routes.
"""
from __future__ import annotations

import atexit
import collections
import itertools
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from sqlalchemy import create_engine, text
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.backends import register_backend, unregister_backend
from app.main import create_app
from app.security import OWNER_COOKIE
from tests.conftest import IN_CI, POSTGRES_URL, FakeBackend, make_settings, png_bytes

BACKEND = "fake-fuzz"
MAX_EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

#: examples run per operation ("METHOD /path"), filled in as the tests run
RAN: collections.Counter = collections.Counter()
#: examples run per (schemathesis phase, generation mode)
KINDS: collections.Counter = collections.Counter()
_turn = itertools.count()

# ``@schema.parametrize()`` needs the schema when the module is collected
# (schemathesis' lazy ``from_fixture`` loader does not work with pytest 9.2:
# it sets ``node._nodeid``). So the app is built here, which is cheap: its
# lifespan (migrations, worker) only starts with the first request.
_DATA = Path(tempfile.mkdtemp(prefix="retouch-fuzz-"))
atexit.register(shutil.rmtree, _DATA, ignore_errors=True)
_FAKE = FakeBackend()
register_backend(BACKEND, lambda: _FAKE)
APP = create_app(make_settings(_DATA / "data", f"sqlite:///{_DATA / 'retouch.db'}", backend=BACKEND,
                               turn_rate_limit="0", anonymous_rate_limit="0", max_upload_bytes=200_000,
                               max_upload_pixels=1_000_000))
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP  # requests go to the app in-process (schemathesis' ASGI transport)
schema.location = "/openapi.json"
# Strings with NUL and any other code point (schemathesis' defaults, stated here because
# PostgreSQL refuses NUL in text: the app must answer 422 before the database sees one).
schema.config.generation.update(allow_x00=True, codec="utf-8")


def _postgres_schema() -> str | None:
    """A fresh schema on the PostgreSQL server (dropped at exit), or None
    when the server is not reachable (then the PostgreSQL fuzzing is
    skipped, or fails under CI=true)."""
    name = "t_fuzz_" + secrets.token_hex(6)
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
    except Exception:  # noqa: BLE001 - reported by the test
        return None

    def drop() -> None:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()

    atexit.register(drop)
    return f"{POSTGRES_URL}?options=-csearch_path%3D{name}"


PG_URL = _postgres_schema()
APP_PG = create_app(make_settings(_DATA / "data-pg", PG_URL or f"sqlite:///{_DATA / 'unused.db'}", backend=BACKEND,
                                  turn_rate_limit="0", anonymous_rate_limit="0", max_upload_bytes=200_000,
                                  max_upload_pixels=1_000_000))
schema_pg = schemathesis.openapi.from_dict(APP_PG.openapi())
schema_pg.app = APP_PG
schema_pg.location = "/openapi.json"
schema_pg.config.generation.update(allow_x00=True, codec="utf-8")


def _seed(app):
    """An owner with a thread (two versions), a finished turn and a share
    link in ``app``. Starts the app's lifespan the way schemathesis does."""
    from schemathesis.python import asgi

    register_backend(BACKEND, lambda: _FAKE)
    with asgi.get_client(app) as client:
        r = client.post("/api/v1/threads", data={"prompt": "invert it", "title": "seed"},
                        files={"image": ("seed.png", png_bytes((32, 24)), "image/png")})
        assert r.status_code == 201, r.text
        thread = r.json()
        cookie = r.cookies[OWNER_COOKIE]
        token = client.post(f"/api/v1/threads/{thread['id']}/share", cookies={OWNER_COOKIE: cookie}).json()["token"]
    return {"cookie": cookie, "thread_id": thread["id"], "turn_id": thread["turns"][0]["id"], "token": token}


@pytest.fixture(scope="module")
def seed():
    """The owner's data on SQLite; the lifespans stop at the end."""
    from schemathesis.python import asgi

    yield _seed(APP)
    asgi.shutdown_lifespans()
    unregister_backend(BACKEND)


@pytest.fixture(scope="module")
def seed_pg():
    """The owner's data on PostgreSQL."""
    from schemathesis.python import asgi

    if PG_URL is None:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required under CI=true")
        pytest.skip("PostgreSQL not reachable")
    yield _seed(APP_PG)
    asgi.shutdown_lifespans()
    unregister_backend(BACKEND)


FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_schema(case, seed):
    _call(case, seed)


@schema_pg.parametrize()
@FUZZ_SETTINGS
def test_api_conforms_to_its_schema_on_postgres(case, seed_pg):
    """The same on PostgreSQL, which refuses NUL in text: any string that
    reaches the database unchecked would be a 500 here."""
    _call(case, seed_pg, count=False)


def _call(case, seed, count: bool = True) -> None:
    cookies = None
    if next(_turn) % 2 == 0:
        cookies = {OWNER_COOKIE: seed["cookie"]}
        for name in ("thread_id", "turn_id", "token"):
            if case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = seed[name]
    if count:
        RAN[f"{case.operation.method.upper()} {case.operation.path}"] += 1
        if case.meta is not None:
            KINDS[f"{case.meta.phase.name} {case.meta.generation.mode}"] += 1
    case.call_and_validate(cookies=cookies, checks=CHECKS)


def test_zz_fuzz_figures():
    """Every operation was fuzzed, within the bound; the figures are printed
    (``pytest -s``)."""
    operations = [f"{op.method.upper()} {op.path}" for op in
                  (result.ok() for result in schema.get_all_operations())]
    for name in sorted(operations):
        print(f"{RAN[name]:4d}  {name}")
    print(f"{sum(RAN.values()):4d}  in total over {len(operations)} operations")
    for name, n in sorted(KINDS.items()):
        print(f"{n:4d}  {name}")
    if RAN:  # empty when only this test was selected
        assert set(RAN) == set(operations)
        # each operation got real fuzzing; the bound on examples (plus
        # schemathesis' coverage-phase cases) keeps the run short
        assert all(n >= 5 for n in RAN.values()), RAN
        assert any(k.endswith("negative") for k in KINDS) and any(k.endswith("positive") for k in KINDS)
