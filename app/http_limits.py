"""Request limits every route gets, enforced at the ASGI level before any
route sees the request.

- **Body size, while it streams.** Bytes are counted as each chunk arrives,
  whatever the framing (Content-Length or chunked) and the body type. As soon
  as the total passes the limit the request is answered 413 Content Too Large
  (RFC 9110 §15.5.14) and nothing more is read, so nothing beyond the limit
  reaches memory or a temporary file. A declared Content-Length over the
  limit gets 413 before a byte is read. ``multipart/form-data`` bodies may
  carry files: ``max_upload_bytes * MAX_FILES_PER_REQUEST +
  MULTIPART_OVERHEAD`` (``app/deps.py``; ``app/main.py`` passes it in).
  Every other body (JSON, URL-encoded forms) holds only text fields, so it
  gets ``RETOUCH_MAX_JSON_BYTES``. The counting follows Starlette's
  ``RequestBodyLimitMiddleware`` (``starlette/middleware/body_limit.py``),
  with the limit chosen per body type, a read timeout and this app's error
  bodies.
- **Slow bodies.** While the body is incomplete, each wait for its next
  chunk is bounded by ``RETOUCH_BODY_TIMEOUT`` seconds; past it the answer is
  408 Request Timeout (RFC 9110 §15.5.9) with ``Connection: close``.
- **JSON nesting.** A body the app would parse as JSON (anything but a form)
  is read whole (it is small, see above) and refused with 422 when arrays and
  objects nest deeper than :data:`MAX_JSON_DEPTH`, before any parser sees it:
  Python's ``json`` recurses once per level.
- **Control characters in the path.** A decoded path holding a C0 control
  character (U+0000-U+001F) or DEL (U+007F) is refused with 422: no route
  takes one, and PostgreSQL cannot store NUL in text.
- **HEAD** (:class:`HeadAsGetMiddleware`) is answered wherever GET is, as
  RFC 9110 §9.3.2 asks: the GET's status and headers, no body.

Errors are JSON ``{"detail": "<sentence>"}`` under ``/api/`` (and for
``/healthz``), a small HTML page elsewhere (:func:`send_error`). Errors met
while a route reads the body are raised as ``HTTPException`` subclasses, so
the app's own handler (``app/main.py``) renders them like any other error.
"""
from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable

import anyio
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send


#: Deepest nesting of JSON arrays and objects a request body may have.
MAX_JSON_DEPTH = 32

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JSON_TOKENS = re.compile(rb'[][{}"\\]')
_CLOSE = [(b"connection", b"close")]


class BodyTooLarge(HTTPException):
    """413 Content Too Large (RFC 9110 §15.5.14), with ``Connection: close``:
    the rest of the body is never read."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail, headers={"Connection": "close"})


class BodyTimeout(HTTPException):
    """408 Request Timeout (RFC 9110 §15.5.9), with ``Connection: close`` as
    that section asks."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"The request body stopped arriving (nothing for {seconds:g} seconds); "
                              "send it again.", headers={"Connection": "close"})


def has_control_character(text: str) -> bool:
    """True when ``text`` holds a C0 control character (U+0000-U+001F) or
    DEL (U+007F)."""
    return _CONTROL.search(text) is not None


def json_too_deep(data: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """True when the JSON text ``data`` (RFC 8259, UTF-8 bytes) nests arrays
    and objects more than ``max_depth`` levels deep. Brackets inside strings
    do not count. A linear scan that never parses, so it is safe on any
    input; for text that is not JSON the answer is only an estimate (the
    parser refuses it anyway)."""
    depth = 0
    in_string = False
    escaped = -1  # index of the character a backslash escapes
    for match in _JSON_TOKENS.finditer(data):
        i = match.start()
        c = data[i]
        if in_string:
            if i == escaped:
                continue
            if c == 0x5C:  # backslash
                escaped = i + 1
            elif c == 0x22:  # quote
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return True
        elif c in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def too_deep_message(max_depth: int = MAX_JSON_DEPTH) -> str:
    return f"The JSON body nests arrays and objects too deeply (at most {max_depth} levels)."


def wants_json(path: str) -> bool:
    """True for paths whose errors are JSON: the API and ``/healthz``."""
    return path.startswith("/api/") or path == "/healthz"


async def send_error(scope: Scope, send: Send, status: int, detail: str,
                     headers: dict[str, str] | Iterable[tuple[bytes, bytes]] | None = None) -> None:
    """Answer ``status`` from raw ASGI code: JSON ``{"detail": detail}`` for
    :func:`wants_json` paths, else a minimal HTML page (``detail`` escaped).
    ``headers`` (a dict, or raw ``(name, value)`` byte pairs) are added."""
    if wants_json(scope.get("path", "")):
        body, ctype = json.dumps({"detail": detail}).encode(), b"application/json"
    else:
        text = html.escape(detail)
        body = (f'<!doctype html><html lang="en"><meta charset="utf-8"><title>Error {status}</title>'
                f"<h1>Error {status}</h1><p>{text}</p><p><a href=\"/\">Back to Retouch</a></p></html>").encode()
        ctype = b"text/html; charset=utf-8"
    raw = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    if isinstance(headers, dict):
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    elif headers:
        raw += list(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _BodyReader:
    """Wraps an ASGI ``receive``: counts body bytes against ``limit``, and
    while the body is incomplete waits at most ``timeout`` seconds for each
    message. Past either it raises :class:`BodyTooLarge` or
    :class:`BodyTimeout` (and again on every later call) without reading
    further. Once the body is complete, calls pass straight through (apps
    wait on ``receive`` for ``http.disconnect``, for as long as they like)."""

    def __init__(self, receive: Receive, *, limit: int, timeout: float, too_large: str) -> None:
        self._receive = receive
        self.limit = limit
        self.timeout = timeout
        self.too_large = too_large
        self.received = 0
        self.complete = False
        self.failed: str | None = None  # "size" or "time"

    def _error(self) -> HTTPException:
        return BodyTooLarge(self.too_large) if self.failed == "size" else BodyTimeout(self.timeout)

    async def receive(self) -> Message:
        if self.failed:
            raise self._error()
        if self.complete:
            return await self._receive()
        try:
            with anyio.fail_after(self.timeout):
                message = await self._receive()
        except TimeoutError:
            self.failed = "time"
            raise self._error() from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.failed = "size"
                raise self._error()
            if not message.get("more_body", False):
                self.complete = True
        else:  # http.disconnect
            self.complete = True
        return message

    async def read_all(self) -> bytes:
        """The whole body (at most ``limit`` bytes, or an exception)."""
        chunks = []
        while not self.complete:
            message = await self.receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
        return b"".join(chunks)


class RequestLimitsMiddleware:
    """ASGI middleware: refuses control characters in the path (422), caps
    request bodies as they stream (413), times out slow bodies (408) and
    refuses deeply nested JSON (422); see the module docstring.

    ``max_form_bytes``: the largest ``multipart/form-data`` body (bytes);
    ``max_upload_bytes``: the largest file (bytes, named in the 413);
    ``max_json_bytes``: the largest other body (bytes); ``body_timeout``:
    seconds to wait for each chunk of an incomplete body.
    """

    def __init__(self, app: ASGIApp, *, max_form_bytes: int, max_upload_bytes: int, max_json_bytes: int,
                 body_timeout: float, max_json_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_upload_bytes = max_upload_bytes
        self.max_form_bytes = max_form_bytes
        self.max_json_bytes = max_json_bytes
        self.body_timeout = body_timeout
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if has_control_character(scope["path"]):
            await send_error(scope, send, 422, "The address holds a control character (such as %00); "
                                               "no page or API path takes one.")
            return
        headers = Headers(scope=scope)
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type == "multipart/form-data":
            limit = self.max_form_bytes
            too_large = (f"The request is too large; each file may be at most "
                         f"{self.max_upload_bytes / 1e6:.1f} MB.")
        else:
            limit = self.max_json_bytes
            too_large = f"The request body is too large (at most {_size(self.max_json_bytes)} without files)."
        declared = headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await send_error(scope, send, 413, too_large, _CLOSE)
            return
        reader = _BodyReader(receive, limit=limit, timeout=self.body_timeout, too_large=too_large)
        app_receive = reader.receive
        may_have_body = (declared is not None and declared.strip() not in ("", "0")) or "transfer-encoding" in headers
        if may_have_body and media_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            # FastAPI parses such bodies as JSON (and create_thread any non-form body): check the
            # nesting before a parser recurses into it.
            try:
                body = await reader.read_all()
            except (BodyTooLarge, BodyTimeout) as exc:
                await send_error(scope, send, exc.status_code, exc.detail, _CLOSE)
                return
            if json_too_deep(body, self.max_json_depth):
                await send_error(scope, send, 422, too_deep_message(self.max_json_depth))
                return
            app_receive = _replay(body, receive)

        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, app_receive, send_tracked)
        except (BodyTooLarge, BodyTimeout) as exc:  # a route that let the error through unhandled
            if started:
                raise
            await send_error(scope, send, exc.status_code, exc.detail, _CLOSE)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` as the whole request body, then
    passes later calls (waiting for ``http.disconnect``) to ``receive``."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} bytes"


class HeadAsGetMiddleware:
    """ASGI middleware: answers ``HEAD`` wherever ``GET`` is answered (RFC
    9110 §9.3.2: the same status and headers, Content-Length included, and no
    body). FastAPI's API routes take only the methods they list, so a HEAD
    from a link unfurler got 405; here it runs as a GET below this layer, and
    the response ends right after its headers, so a stream (server-sent
    events) sees its client leave instead of running on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # A copy: the server keeps reading its own scope's method, and must still see HEAD.
        get_scope = {**scope, "method": "GET"}
        finished = False

        async def send_headers_only(message: Message) -> None:
            nonlocal finished
            if finished:
                return
            if message["type"] == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                finished = True

        await self.app(get_scope, receive, send_headers_only)
