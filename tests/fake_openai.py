"""A fake OpenAI Images API: a real HTTP server on 127.0.0.1 for tests.

It implements ``POST /v1/images/generations`` (JSON body) and
``POST /v1/images/edits`` (multipart: ``image`` / ``image[]`` repeated,
``mask``, ``prompt``, ``model``, ``size``, ``quality``...) and answers like the
real API (https://platform.openai.com/docs/api-reference/images): a solid
colour PNG as ``data[0].b64_json`` plus a ``usage`` object. Errors use the
API's shape ``{"error": {"message", "type", "param", "code"}}``.

Every request is recorded in :attr:`FakeOpenAI.requests` (path, headers,
JSON body or multipart fields, uploaded files' bytes in order), failures
included, so tests can count SDK retries.

Use the class directly::

    with FakeOpenAI() as fake:
        client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url)

or the function-scoped ``fake_openai`` pytest fixture defined here (load it
with ``pytest_plugins = ["tests.fake_openai"]`` in ``conftest.py``, or import
it into a test module).

Failure behaviours, queued with :meth:`FakeOpenAI.fail_next` and consumed one
per request, in order:

==================== =====================================================
``"429"``            HTTP 429 rate limit with a ``Retry-After`` header
``"insufficient_quota"`` HTTP 429 with code ``insufficient_quota``
``"500"``, ``"503"`` server errors
``"slow"``           waits :attr:`FakeOpenAI.slow_seconds` before answering
``"moderation_blocked"`` HTTP 400, code ``moderation_blocked``
``"400"``            HTTP 400 invalid_request_error about ``size``
``"401"``            HTTP 401 invalid_api_key (echoes the key it received,
                     so tests can check it is not passed on)
``"malformed_json"`` HTTP 200, ``application/json``, truncated JSON
``"missing_b64"``    HTTP 200, ``data[0]`` has only a ``url``
``"bad_b64"``        HTTP 200, ``b64_json`` is base64 of bytes that are not an image
``"not_base64"``     HTTP 200, ``b64_json`` is not base64 at all
==================== =====================================================
"""
from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header

BEHAVIOURS = (
    "429",
    "insufficient_quota",
    "500",
    "503",
    "slow",
    "moderation_blocked",
    "400",
    "401",
    "malformed_json",
    "missing_b64",
    "bad_b64",
    "not_base64",
)

MODERATION_MESSAGE = (
    "Your request was rejected as a result of our safety system. Your request may contain "
    "content that is not allowed by our safety system."
)


@dataclass
class UploadedFile:
    """One file part of a multipart request: form ``field`` name (e.g.
    ``"image[]"``), ``filename``, ``content_type`` and the raw ``data``."""

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    """One request the fake received.

    ``headers`` has lower-case names. ``json`` is the parsed JSON body (for
    generations), ``fields`` the multipart text fields (name -> list of
    values, in order), ``files`` the multipart file parts in order, and
    ``behaviour`` the queued failure used to answer it (None = success).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: dict | None = None
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    behaviour: str | None = None

    def param(self, name: str) -> str | None:
        """A request parameter (JSON key or multipart field), or None."""
        if self.json is not None:
            value = self.json.get(name)
            return None if value is None else str(value)
        values = self.fields.get(name)
        return values[0] if values else None

    @property
    def images(self) -> list[UploadedFile]:
        """The uploaded ``image`` / ``image[]`` files, in the order sent."""
        return [f for f in self.files if f.field in ("image", "image[]")]

    @property
    def mask(self) -> UploadedFile | None:
        """The uploaded ``mask`` file, or None."""
        return next((f for f in self.files if f.field == "mask"), None)


class FakeOpenAI:
    """A fake OpenAI Images API server on 127.0.0.1 (a free port).

    - ``image_size``: (width, height) in pixels of returned images when the
      request has no ``size`` (or ``"auto"``); default 1024x1024. Setting the
      attribute later changes it.
    - ``color``: RGB colour of the returned images.
    - ``slow_seconds``: how long ``"slow"`` waits before answering.
    - ``retry_after``: ``Retry-After`` header value sent with ``"429"``.

    :attr:`base_url` ends in ``/v1``; :attr:`requests` lists what arrived.
    """

    def __init__(
        self,
        *,
        image_size: tuple[int, int] = (1024, 1024),
        color: tuple[int, int, int] = (200, 40, 60),
        slow_seconds: float = 5.0,
        retry_after: str = "7",
    ) -> None:
        self.image_size = image_size
        self.color = color
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.requests: list[RecordedRequest] = []
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------- lifecycle

    def start(self) -> FakeOpenAI:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread. Returns self."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (wakes any ``"slow"`` request) and close the socket."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeOpenAI is not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``, to pass as the SDK's ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------ behaviour

    def fail_next(self, *behaviours: str) -> None:
        """Queue failure behaviours (see the module docstring), one per request."""
        for b in behaviours:
            if b not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {b!r}; choose from {', '.join(BEHAVIOURS)}")
        with self._lock:
            self._queue.extend(behaviours)

    def reset(self) -> None:
        """Forget recorded requests and queued failures."""
        with self._lock:
            self.requests.clear()
            self._queue.clear()

    @property
    def pending(self) -> list[str]:
        """Queued behaviours not used yet."""
        with self._lock:
            return list(self._queue)

    def _next_behaviour(self) -> str | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def png(self, size: tuple[int, int] | None = None) -> bytes:
        """A solid :attr:`color` PNG of ``size`` (default :attr:`image_size`)."""
        buf = io.BytesIO()
        Image.new("RGB", size or self.image_size, self.color).save(buf, format="PNG")
        return buf.getvalue()


# ------------------------------------------------------------------ server


def _make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeOpenAI/1.0"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802
            self._error(404, f"Unknown path {self.path}", "invalid_request_error", code="unknown_url")

        def do_POST(self) -> None:  # noqa: N802
            body = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            rec = RecordedRequest(method="POST", path=path, headers=headers, body=body)
            try:
                ctype, params = parse_options_header(headers.get("content-type", ""))
                if ctype == b"application/json":
                    rec.json = json.loads(body or b"{}")
                elif ctype == b"multipart/form-data":
                    rec.fields, rec.files = _parse_multipart(body, params[b"boundary"])
            except Exception as exc:  # a broken request is a test failure: answer 400
                fake._record(rec)
                self._error(400, f"Fake could not parse the body: {exc}", "invalid_request_error")
                return
            rec.behaviour = fake._next_behaviour()
            fake._record(rec)

            if path not in ("/v1/images/generations", "/v1/images/edits"):
                self._error(404, f"Unknown path {path}", "invalid_request_error", code="unknown_url")
                return
            if not headers.get("authorization", "").startswith("Bearer "):
                self._error(401, "You didn't provide an API key.", "invalid_request_error")
                return
            if rec.param("prompt") is None:
                self._error(400, "Missing required parameter: 'prompt'.", "invalid_request_error",
                            param="prompt", code="missing_required_parameter")
                return
            if path.endswith("/edits") and not rec.images:
                self._error(400, "Missing required parameter: 'image'.", "invalid_request_error",
                            param="image", code="missing_required_parameter")
                return
            self._answer(rec)

        # --------------------------------------------------------- answers

        def _answer(self, rec: RecordedRequest) -> None:
            b = rec.behaviour
            if b == "429":
                self._error(429, "Rate limit reached for images per minute. Please try again later.",
                            "requests", code="rate_limit_exceeded",
                            headers={"Retry-After": fake.retry_after})
            elif b == "insufficient_quota":
                self._error(429, "You exceeded your current quota, please check your plan and billing details.",
                            "insufficient_quota", code="insufficient_quota")
            elif b == "500":
                self._error(500, "The server had an error while processing your request. Sorry about that!",
                            "server_error")
            elif b == "503":
                self._error(503, "The engine is currently overloaded, please try again later.", "server_error")
            elif b == "moderation_blocked":
                self._error(400, MODERATION_MESSAGE, "image_generation_user_error", code="moderation_blocked")
            elif b == "400":
                self._error(400, "Invalid value: '3x3'. Supported values are: '1024x1024', '1024x1536', "
                            "'1536x1024', and 'auto'.", "invalid_request_error", param="size",
                            code="invalid_value")
            elif b == "401":
                key = rec.headers.get("authorization", "").removeprefix("Bearer ")
                self._error(401, f"Incorrect API key provided: {key}. You can find your API key at "
                            "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                            code="invalid_api_key")
            elif b == "malformed_json":
                self._send(200, b'{"created": 1700000000, "data": [{"b64_json": "iVBO', "application/json")
            elif b == "missing_b64":
                self._json(200, {"created": int(time.time()),
                                 "data": [{"url": "https://example.invalid/image.png"}]})
            elif b == "bad_b64":
                self._success(rec, b64=base64.b64encode(b"this is not a PNG, just some text").decode())
            elif b == "not_base64":
                self._success(rec, b64="%%% not base64 at all %%%")
            elif b == "slow":
                fake._stopping.wait(fake.slow_seconds)
                self._success(rec)
            else:
                self._success(rec)

        def _success(self, rec: RecordedRequest, *, b64: str | None = None) -> None:
            size = _parse_size(rec.param("size")) or fake.image_size
            prompt = rec.param("prompt") or ""
            text_tokens = max(1, len(prompt.split()))
            image_tokens = 323 * len(rec.images) + (323 if rec.mask else 0)
            output_tokens = {"low": 272, "medium": 1056, "high": 4160}.get(rec.param("quality") or "", 4160)
            self._json(200, {
                "created": int(time.time()),
                "background": "opaque",
                "output_format": "png",
                "quality": rec.param("quality") or "high",
                "size": f"{size[0]}x{size[1]}",
                "data": [{"b64_json": b64 if b64 is not None else base64.b64encode(fake.png(size)).decode()}],
                "usage": {
                    "input_tokens": text_tokens + image_tokens,
                    "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
                    "output_tokens": output_tokens,
                    "total_tokens": text_tokens + image_tokens + output_tokens,
                },
            })

        # --------------------------------------------------------- helpers

        def _read_body(self) -> bytes:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    line = self.rfile.readline().strip()
                    n = int(line.split(b";")[0], 16)
                    if n == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(n))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def _error(self, status: int, message: str, type_: str, *, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> None:
            self._json(status, {"error": {"message": message, "type": type_, "param": param, "code": code}},
                       headers=headers)

        def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json", headers)

        def _send(self, status: int, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-request-id", f"req_fake{len(fake.requests)}")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

    return Handler


def _parse_size(value: str | None) -> tuple[int, int] | None:
    if not value or "x" not in value:
        return None
    try:
        w, h = (int(v) for v in value.lower().split("x", 1))
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None


def _parse_multipart(body: bytes, boundary: bytes) -> tuple[dict[str, list[str]], list[UploadedFile]]:
    """Split a multipart/form-data body into text fields and file parts (in order)."""
    parts: list[dict] = []
    state: dict = {}

    def on_part_begin() -> None:
        state["part"] = {"headers": {}, "data": bytearray()}
        state["hname"] = bytearray()
        state["hvalue"] = bytearray()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["hname"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["hvalue"] += data[start:end]

    def on_header_end() -> None:
        state["part"]["headers"][bytes(state["hname"]).decode("latin-1").lower()] = bytes(state["hvalue"])
        state["hname"] = bytearray()
        state["hvalue"] = bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["part"]["data"] += data[start:end]

    def on_part_end() -> None:
        parts.append(state.pop("part"))

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    })
    parser.write(body)
    parser.finalize()

    fields: dict[str, list[str]] = {}
    files: list[UploadedFile] = []
    for part in parts:
        _, disp = parse_options_header(part["headers"].get("content-disposition", b""))
        name = disp.get(b"name", b"").decode()
        data = bytes(part["data"])
        if b"filename" in disp:
            ctype = part["headers"].get("content-type")
            files.append(UploadedFile(
                field=name,
                filename=disp[b"filename"].decode(),
                content_type=ctype.decode("latin-1") if ctype else None,
                data=data,
            ))
        else:
            fields.setdefault(name, []).append(data.decode("utf-8"))
    return fields, files


@pytest.fixture
def fake_openai():
    """A started :class:`FakeOpenAI` for one test; stopped afterwards."""
    with FakeOpenAI() as fake:
        yield fake
