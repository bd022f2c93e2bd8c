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
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
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
from tests.conftest import FakeBackend, make_settings, png_bytes

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
                               turn_rate_limit="0", max_upload_bytes=200_000, max_upload_pixels=1_000_000))
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP  # requests go to the app in-process (schemathesis' ASGI transport)
schema.location = "/openapi.json"


@pytest.fixture(scope="module")
def seed():
    """An owner with a thread (two versions), a finished turn and a share
    link. Starts the app's lifespan the way schemathesis does, and stops it
    at the end."""
    from schemathesis.python import asgi

    register_backend(BACKEND, lambda: _FAKE)
    with asgi.get_client(APP) as client:
        r = client.post("/api/v1/threads", data={"prompt": "invert it", "title": "seed"},
                        files={"image": ("seed.png", png_bytes((32, 24)), "image/png")})
        assert r.status_code == 201, r.text
        thread = r.json()
        cookie = r.cookies[OWNER_COOKIE]
        token = client.post(f"/api/v1/threads/{thread['id']}/share", cookies={OWNER_COOKIE: cookie}).json()["token"]
    yield {"cookie": cookie, "thread_id": thread["id"], "turn_id": thread["turns"][0]["id"], "token": token}
    asgi.shutdown_lifespans()
    unregister_backend(BACKEND)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case, seed):
    cookies = None
    if next(_turn) % 2 == 0:
        cookies = {OWNER_COOKIE: seed["cookie"]}
        for name in ("thread_id", "turn_id", "token"):
            if case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = seed[name]
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
