"""A fake OpenAI Images API: a real HTTP server on 127.0.0.1 for tests. It
rejects what OpenAI rejects.

It implements ``POST /v1/images/generations`` (JSON body) and
``POST /v1/images/edits`` (multipart: ``image`` / ``image[]`` repeated,
``mask``, ``markup``, ``prompt``, ``model``, ``size``, ``quality``...) and
answers like the real API (https://platform.openai.com/docs/api-reference/images):
an ``ImagesResponse`` with the image(s) as ``data[i].b64_json`` and a ``usage``
object, or, with ``stream=true``, server-sent events. Errors use the API's
shape ``{"error": {"message", "type", "param", "code"}}``.

Every request is recorded in :attr:`FakeOpenAI.requests` (path, headers,
JSON body or multipart fields, uploaded files' bytes in order, the status
and error answered), refused ones included, so tests can count SDK retries.

Use the class directly::

    with FakeOpenAI() as fake:
        client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url)

or the function-scoped ``fake_openai`` pytest fixture defined here (load it
with ``pytest_plugins = ["tests.fake_openai"]`` in ``conftest.py``, or import
it into a test module).

What it checks, in order, and where each rule comes from
---------------------------------------------------------

Files named ``openai/...`` are of the pinned SDK (openai 3.52.0); the
catalogue is ``app/backends/openai_models.py``, whose functions and limits
are used here rather than copied.

0. ``Authorization: Bearer ...`` (401 without), then a queued failure
   behaviour (below), then:
1. **Parameter names, types and enum values**, derived at import time with
   ``typing.get_type_hints`` from the SDK's request TypedDicts
   (``openai/types/image_edit_params.py``: ``ImageEditParamsBase`` +
   ``ImageEditParamsStreaming``/``NonStreaming``;
   ``openai/types/image_generate_params.py``: ``ImageGenerateParamsBase`` +
   its variants); see :data:`EDIT_PARAMS` and :data:`GENERATE_PARAMS`. A
   ``Literal`` gives the allowed values, ``int`` an integer (multipart text is
   parsed), ``str`` a string (a ``Literal`` next to ``str``, as in ``model`` and
   ``size``, only suggests), ``Literal[True]``/``Literal[False]`` a boolean
   (``"true"``/``"false"`` in multipart), ``openai._types.FileTypes`` a file
   part, a nested TypedDict (``svg``) an object (``svg[model]`` in multipart).
   An unknown name: 400 ``unknown_parameter``; a wrong type: 400
   ``invalid_type``; a value outside the ``Literal``: 400 ``invalid_value``;
   no ``prompt`` (or, for edits, no image): 400
   ``missing_required_parameter``. ``model`` is required too (the generate
   docstring: "Specify a model explicitly"). JSON ``null`` for an
   ``Optional`` parameter counts as not sent. Edits must be multipart and
   generations JSON (what the SDK sends; ``openai/resources/images.py``).
2. **Model**: not in the catalogue's ``CATALOGUE``, or shut down there: 404
   ``model_not_found`` (``openai/types/image_model.py`` deprecation notes and
   the catalogue's dates).
3. **Per-model rules**, all by the catalogue: ``size_problem``,
   ``quality_problem`` (so the deprecated DALL-E ``standard``/``hd`` are
   refused) and ``background_problem``; ``transparent`` with ``jpeg``
   ("When using transparent, set the output format to png or webp",
   ``background`` docstring); ``input_fidelity`` only where the catalogue lists
   values ("For gpt-image-2, omit this parameter"); ``markup`` only where the
   catalogue's ``markup`` is True ("Supports GPT Image 2.5"); ``stream=true``
   only where ``streaming`` is True; ``response_format`` and ``style``
   ("Unsupported for GPT image models"); ``output_format`` gif/svg, ``svg``,
   ``frame_count``/``frame_duration_ms`` (gif only) need "project access"/"the
   GIF preview", which Retouch never asks for, so they are refused;
   ``output_compression`` only "with the webp or jpeg output formats", 0-100.
   **A capability the catalogue marks unknown (None) is refused**, like one
   marked unavailable: the fake is conservative, so a test that passes
   against it does not rely on an undocumented feature.
4. **Limits** (``image_edit_params.py``/``image_generate_params.py``
   docstrings, values from the catalogue): ``prompt`` at most
   ``MAX_PROMPT_CHARS`` (400 ``string_above_max_length``); ``n`` 1..10 and
   ``partial_images`` 0..``MAX_PARTIAL_IMAGES`` (``integer_below_min_value`` /
   ``integer_above_max_value``); at most ``MAX_INPUT_IMAGES`` images, each a
   png/webp/jpeg by its magic bytes and smaller than ``MAX_IMAGE_BYTES``
   ("less than 50MB"); ``mask`` a PNG smaller than ``MAX_MASK_BYTES``, with an
   alpha channel ("fully transparent areas") and the first image's
   dimensions; ``markup`` not together with ``mask``, a PNG with the first
   image's dimensions (after EXIF orientation) and at least one fully
   transparent pixel (alpha 0; "contain transparent pixels"). The ``code`` of
   file errors (``invalid_image_format``, ``invalid_image``,
   ``file_too_large``) is the fake's own: OpenAI documents none.

Answers
-------

- Without ``stream``: an ``ImagesResponse`` (``openai/types/images_response.py``)
  with the effective ``background`` (``auto`` -> ``opaque``),
  ``output_format`` (default ``png``), ``quality`` (``auto``/absent ->
  ``high``), ``size`` (the requested one; for ``auto``/absent
  :attr:`FakeOpenAI.image_size`), ``n`` images in ``data`` and ``usage`` with
  ``output_tokens_details``. Token counts are made up: text tokens = words of
  the prompt, 323 per input image/mask/markup, per output image 272 / 1056 /
  4160 / 6240 / 8320 for low / medium / high / xhigh / max.
- The image (:meth:`FakeOpenAI.render`): solid :attr:`FakeOpenAI.color` at the
  effective size; with ``background="transparent"`` an RGBA image that is fully
  transparent (alpha 0) except a centred opaque box of half the width and
  height. Encoded as the ``output_format`` (webp lossless).
- With ``stream=true``: ``text/event-stream``, chunked, ``Connection: close``.
  For i in range(``partial_images``): ``event: image_edit.partial_image`` (or
  ``image_generation.partial_image``) whose data has exactly the fields of
  ``ImageEditPartialImageEvent`` / ``ImageGenPartialImageEvent``
  (``openai/types/image_edit_partial_image_event.py``,
  ``image_gen_partial_image_event.py``), the image a solid
  ``partial_colors[i]``; then one ``image_edit.completed`` /
  ``image_generation.completed`` event per image with exactly the fields of
  ``ImageEditCompletedEvent`` / ``ImageGenCompletedEvent`` (incl. ``usage``).
  Every event is checked with the SDK class's ``model_validate`` before it is
  sent (an ``AssertionError`` in the server, so an SDK change fails the
  tests). :attr:`FakeOpenAI.event_delay` seconds pass before each event.

Failure behaviours, queued with :meth:`FakeOpenAI.fail_next` and consumed one
per request (any request that parses, as before), in order. All but
``"slow"``, ``"stream_break"`` and ``"stream_error"`` answer after the auth
check and before any validation, so fault tests need no valid request:

==================== =====================================================
``"429"``            HTTP 429 rate limit with a ``Retry-After`` header
``"insufficient_quota"`` HTTP 429 with code ``insufficient_quota``
``"500"``, ``"503"`` server errors
``"slow"``           waits :attr:`FakeOpenAI.slow_seconds`, then validates and answers
``"moderation_blocked"`` HTTP 400, code ``moderation_blocked``. When
                     :attr:`FakeOpenAI.moderation_categories` is set, the
                     message ends ``safety_violations=[violence, ...].``
                     (the form real answers have, e.g.
                     github.com/jeffstric/ZJT/issues/480) and the error
                     object has an extra key ``"moderation_categories"``
                     (a list; the fake's own addition)
``"400"``            HTTP 400 invalid_request_error about ``size``
``"401"``            HTTP 401 invalid_api_key (echoes the key it received,
                     so tests can check it is not passed on)
``"malformed_json"`` HTTP 200, ``application/json``, truncated JSON
``"missing_b64"``    HTTP 200, ``data[0]`` has only a ``url``
``"bad_b64"``        HTTP 200, ``b64_json`` is base64 of bytes that are not an image
``"not_base64"``     HTTP 200, ``b64_json`` is not base64 at all
``"stream_break"``   a valid streaming request gets its first partial-image
                     event, then the connection closes mid-body (no final
                     chunk): the SDK raises ``openai.APIConnectionError``.
                     Without ``stream`` the connection closes with no answer
``"stream_error"``   a valid streaming request gets its first partial-image
                     event, then ``event: error`` with ``{"error": {...,
                     "type": "server_error", "code": "server_error"}}`` and
                     the end of the stream (the SDK raises ``openai.APIError``).
                     Without ``stream``: HTTP 500 with that error
==================== =====================================================
"""
from __future__ import annotations

import base64
import collections.abc
import io
import json
import re
import socket
import threading
import time
import typing
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import typing_extensions as te
from openai._types import FileTypes
from openai.types import (
    ImageEditCompletedEvent,
    ImageEditPartialImageEvent,
    ImageGenCompletedEvent,
    ImageGenPartialImageEvent,
    ImagesResponse,
    image_edit_params,
    image_generate_params,
)
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header

from app.backends import openai_models as catalogue
from tests import fake_c2pa, fake_responses

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
    "stream_break",
    "stream_error",
)
#: Behaviours answered after validation (the others answer before it).
_AFTER_VALIDATION = ("slow", "stream_break", "stream_error")

MODERATION_MESSAGE = (
    "Your request was rejected as a result of our safety system. Your request may contain "
    "content that is not allowed by our safety system."
)
STREAM_ERROR_MESSAGE = "The server had an error while streaming the image. Please try again."

#: ``n``: "Must be between 1 and 10" (``image_edit_params.py``, ``image_generate_params.py``).
N_RANGE = (1, 10)
#: ``output_compression``: "The compression level (0-100%)".
COMPRESSION_RANGE = (0, 100)
#: Output tokens per image by quality (made up; low/medium/high as before).
OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "xhigh": 6240, "max": 8320}
#: Input tokens per uploaded image, mask or markup (made up).
IMAGE_INPUT_TOKENS = 323


# ------------------------------------------------------- the parameter table


@dataclass(frozen=True)
class ParamSpec:
    """One request parameter as the SDK types it.

    ``kind`` is ``"file"`` (one file part), ``"files"`` (one or a list,
    ``image[]``), ``"object"`` (a nested TypedDict), ``"str"``, ``"int"``,
    ``"bool"`` or ``"enum"``. ``values`` are the ``Literal`` values (the only
    ones allowed for ``bool``/``enum``; suggestions for ``str``).
    """

    name: str
    kind: str
    values: tuple = ()
    required: bool = False
    nullable: bool = False


_LITERALS = {typing.Literal, te.Literal}
_UNIONS = {typing.Union}
try:  # ``X | Y`` unions
    import types as _types

    _UNIONS.add(_types.UnionType)
except AttributeError:  # pragma: no cover
    pass


def _unwrap(tp: Any) -> tuple[list[Any], bool]:
    """Flatten ``Required``/``NotRequired``/``Annotated``/``Optional``/``Union``
    into the list of member types; also say whether ``Required`` was seen."""
    members: list[Any] = []
    required = False

    def walk(t: Any) -> None:
        nonlocal required
        origin = te.get_origin(t)
        if origin in (typing.Required, te.Required):
            required = True
            walk(te.get_args(t)[0])
        elif origin in (typing.NotRequired, te.NotRequired):
            walk(te.get_args(t)[0])
        elif origin in (typing.Annotated, te.Annotated):
            walk(te.get_args(t)[0])
        elif origin in _UNIONS:
            for a in te.get_args(t):
                walk(a)
        else:
            members.append(t)

    walk(tp)
    return members, required


_FILE_MEMBERS = _unwrap(FileTypes)[0]


def _spec(name: str, tps: list[Any], required: bool) -> ParamSpec:
    members: list[Any] = []
    for tp in tps:
        members += _unwrap(tp)[0]
    nullable = type(None) in members
    rest = [m for m in members if m is not type(None)]
    if all(f in rest for f in _FILE_MEMBERS):
        rest = [m for m in rest if m not in _FILE_MEMBERS]
        seqs = [m for m in rest if te.get_origin(m) is collections.abc.Sequence
                and _unwrap(te.get_args(m)[0])[0] == _FILE_MEMBERS]
        rest = [m for m in rest if m not in seqs]
        if rest:
            raise TypeError(f"fake_openai: cannot map the SDK type of {name!r}: {tps}")
        return ParamSpec(name, "files" if seqs else "file", required=required, nullable=nullable)
    values = tuple(v for m in rest if te.get_origin(m) in _LITERALS for v in te.get_args(m))
    others = {m for m in rest if te.get_origin(m) not in _LITERALS}
    if len(others) == 1 and te.is_typeddict(next(iter(others))):
        kind = "object"
    elif others == {str}:
        kind = "str"
    elif others == {int} and not values:
        kind = "int"
    elif not others and values and all(isinstance(v, bool) for v in values):
        kind = "bool"
    elif not others and values and all(isinstance(v, str) for v in values):
        kind = "enum"
    else:
        raise TypeError(f"fake_openai: cannot map the SDK type of {name!r}: {tps}")
    return ParamSpec(name, kind, values, required, nullable)


def param_table(base: type, *variants: type) -> dict[str, ParamSpec]:
    """The parameters of a request TypedDict ``base`` plus those its
    ``variants`` add (``stream``), derived with ``typing.get_type_hints``.
    A parameter only some variants have, or only some require, is optional."""
    table: dict[str, ParamSpec] = {}
    hints = typing.get_type_hints(base, include_extras=True)
    for name, tp in hints.items():
        table[name] = _spec(name, [tp], _unwrap(tp)[1])
    added: dict[str, list[Any]] = {}
    for variant in variants:
        for name, tp in typing.get_type_hints(variant, include_extras=True).items():
            if name not in hints:
                added.setdefault(name, []).append(tp)
    for name, tps in added.items():
        required = len(tps) == len(variants) and all(_unwrap(tp)[1] for tp in tps)
        table[name] = _spec(name, tps, required)
    return table


#: ``POST /v1/images/edits`` parameters (``openai/types/image_edit_params.py``).
EDIT_PARAMS: dict[str, ParamSpec] = param_table(
    image_edit_params.ImageEditParamsBase,
    image_edit_params.ImageEditParamsStreaming,
    image_edit_params.ImageEditParamsNonStreaming,
)
#: ``POST /v1/images/generations`` parameters (``openai/types/image_generate_params.py``).
GENERATE_PARAMS: dict[str, ParamSpec] = param_table(
    image_generate_params.ImageGenerateParamsBase,
    image_generate_params.ImageGenerateParamsStreaming,
    image_generate_params.ImageGenerateParamsNonStreaming,
)


# ----------------------------------------------------------------- records


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
    ``status`` is the HTTP status answered and ``error`` the ``error`` object
    sent, if any (None while unanswered, or for a ``stream_break`` without
    an answer).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: dict | None = None
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    behaviour: str | None = None
    status: int | None = None
    error: dict | None = None

    def param(self, name: str) -> str | None:
        """A request parameter (JSON key or multipart field), or None."""
        if self.json is not None:
            value = self.json.get(name) if isinstance(self.json, dict) else None
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

    @property
    def markup(self) -> UploadedFile | None:
        """The uploaded ``markup`` file, or None."""
        return next((f for f in self.files if f.field == "markup"), None)


class Rejected(Exception):
    """An API error answer: HTTP ``status`` and the ``error`` object."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.error = {"message": message, "type": type_, "param": param, "code": code}


def _bad(message: str, param: str | None, code: str | None) -> Rejected:
    return Rejected(400, message, param=param, code=code)


@dataclass
class _Call:
    """A validated request: typed ``params`` (absent = not sent) and files."""

    endpoint: str  # "edits" or "generations"
    params: dict[str, Any]
    images: list[UploadedFile] = field(default_factory=list)
    mask: UploadedFile | None = None
    markup: UploadedFile | None = None
    info: catalogue.ModelInfo | None = None

    @property
    def stream(self) -> bool:
        return self.params.get("stream") is True


# -------------------------------------------------------------------- fake


class FakeOpenAI:
    """A fake OpenAI Images API server on 127.0.0.1 (a free port).

    - ``image_size``: (width, height) in pixels of returned images when the
      request has no ``size`` (or ``"auto"``); default 1024x1024. Setting the
      attribute later changes it.
    - ``color``: RGB colour of the returned images.
    - ``partial_colors``: RGB colour of partial image i (streaming), cycled.
    - ``event_delay``: seconds waited before each streamed event (default 0).
    - ``slow_seconds``: how long ``"slow"`` waits before answering.
    - ``retry_after``: ``Retry-After`` header value sent with ``"429"``.
    - ``moderation_categories``: None, or the categories ``"moderation_blocked"``
      names (message and ``error.moderation_categories``).
    - ``c2pa``: sign every final image (Images API and Responses API; not
      partial images) with a C2PA manifest, as OpenAI does, using a test
      certificate (``tests/fake_c2pa.py``); default off. Still the requested
      ``output_format`` with the same pixels. Setting the attribute later
      changes it.

    :attr:`base_url` ends in ``/v1``; :attr:`requests` lists what arrived.
    """

    def __init__(
        self,
        *,
        image_size: tuple[int, int] = (1024, 1024),
        color: tuple[int, int, int] = (200, 40, 60),
        slow_seconds: float = 5.0,
        retry_after: str = "7",
        partial_colors: list[tuple[int, int, int]] | None = None,
        event_delay: float = 0.0,
        moderation_categories: list[str] | None = None,
        c2pa: bool = False,
    ) -> None:
        self.image_size = image_size
        self.color = color
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.partial_colors = partial_colors or [(40, 40, 40), (90, 90, 90), (140, 140, 140)]
        self.event_delay = event_delay
        self.moderation_categories = moderation_categories
        self.requests: list[RecordedRequest] = []
        #: The Responses API's queued outcomes and stored responses (``tests/fake_responses.py``).
        self.responses = fake_responses.ResponsesFake()
        self.c2pa = c2pa
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def c2pa(self) -> bool:
        """Whether final images carry a signed C2PA manifest (both APIs)."""
        return self.responses.c2pa

    @c2pa.setter
    def c2pa(self, value: bool) -> None:
        self.responses.c2pa = bool(value)

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

    # --------------------------------------------------------------- images

    def final(self, size: tuple[int, int] | None = None, *, output_format: str = "png",
              transparent: bool = False, model: str = "gpt-image-1") -> bytes:
        """A final image as returned: :meth:`render`, signed with a C2PA
        manifest when :attr:`c2pa` is on (``tests/fake_c2pa.py``)."""
        data = self.render(size, output_format=output_format, transparent=transparent)
        return fake_c2pa.sign(data, output_format, model=model) if self.c2pa else data

    def png(self, size: tuple[int, int] | None = None) -> bytes:
        """A solid :attr:`color` PNG of ``size`` (default :attr:`image_size`)."""
        return self.render(size)

    def render(self, size: tuple[int, int] | None = None, *, output_format: str = "png",
               transparent: bool = False, color: tuple[int, int, int] | None = None) -> bytes:
        """The image the fake returns: solid ``color`` (default :attr:`color`)
        at ``size`` (default :attr:`image_size`), encoded as ``output_format``
        (png, webp lossless, jpeg). With ``transparent`` (png/webp), RGBA:
        alpha 0 everywhere except an opaque box of half the width and height
        in the centre."""
        w, h = size or self.image_size
        rgb = tuple(color or self.color)
        if transparent and output_format != "jpeg":
            img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            bw, bh = w // 2, h // 2
            x0, y0 = (w - bw) // 2, (h - bh) // 2
            img.paste((*rgb, 255), (x0, y0, x0 + bw, y0 + bh))
        else:
            img = Image.new("RGB", (w, h), rgb)
        buf = io.BytesIO()
        if output_format == "webp":
            img.save(buf, format="WEBP", lossless=True)
        elif output_format == "jpeg":
            img.save(buf, format="JPEG", quality=95)
        else:
            img.save(buf, format="PNG")
        return buf.getvalue()


# -------------------------------------------------------------- validation


def _article(kind: str) -> str:
    return {"str": "a string", "int": "an integer", "bool": "a boolean", "object": "an object",
            "file": "a file", "files": "a file", "enum": "a string"}[kind]


_json_type = fake_responses.json_kind


def _supported(values: tuple) -> str:
    quoted = [f"'{v}'" for v in values]
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}" if len(quoted) > 1 else quoted[0]


def _invalid_value(spec: ParamSpec, value: Any) -> Rejected:
    return _bad(f"Invalid value: '{value}'. Supported values are: {_supported(spec.values)}.",
                spec.name, "invalid_value")


def _invalid_type(name: str, expected: str, got: str) -> Rejected:
    return _bad(f"Invalid type for '{name}': expected {expected}, but got {got} instead.", name, "invalid_type")


def _unknown(name: str) -> Rejected:
    return _bad(f"Unknown parameter: '{name}'.", name, "unknown_parameter")


def _missing(name: str) -> Rejected:
    return _bad(f"Missing required parameter: '{name}'.", name, "missing_required_parameter")


def _coerce_text(spec: ParamSpec, text: str) -> Any:
    """A multipart text value as the SDK type says."""
    if spec.kind == "int":
        if not re.fullmatch(r"[+-]?\d{1,18}", text.strip()):
            raise _invalid_type(spec.name, "an integer", f"'{text}'")
        return int(text)
    if spec.kind == "bool":
        if text not in ("true", "false"):
            raise _invalid_type(spec.name, "a boolean", f"'{text}'")
        value = text == "true"
        if value not in spec.values:
            raise _invalid_value(spec, text)
        return value
    if spec.kind == "enum" and text not in spec.values:
        raise _invalid_value(spec, text)
    return text


def _coerce_json(spec: ParamSpec, value: Any) -> Any:
    """A JSON value as the SDK type says."""
    if spec.kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif spec.kind == "bool":
        ok = isinstance(value, bool)
    elif spec.kind == "object":
        ok = isinstance(value, dict)
    else:  # str, enum
        ok = isinstance(value, str)
    if not ok:
        raise _invalid_type(spec.name, _article(spec.kind), _json_type(value))
    if spec.kind in ("bool", "enum") and value not in spec.values:
        raise _invalid_value(spec, str(value).lower() if isinstance(value, bool) else value)
    return value


def _parse_multipart_call(rec: RecordedRequest, table: dict[str, ParamSpec]) -> _Call:
    def base(name: str) -> str:
        return name.split("[", 1)[0]

    for name in [*rec.fields, *(f.field for f in rec.files)]:
        if base(name) not in table:
            raise _unknown(base(name))
    images = [f for f in rec.files if base(f.field) == "image"]
    sent = {base(n) for n in rec.fields} | {base(f.field) for f in rec.files}
    for name in ("prompt", "image", "model"):
        if name not in sent:
            raise _missing(name)
    params: dict[str, Any] = {}
    for name, values in rec.fields.items():
        spec = table[base(name)]
        if spec.kind in ("file", "files"):
            raise _invalid_type(spec.name, "a file", "a string")
        if spec.kind == "object":  # svg[model], svg[reasoning][effort]
            params.setdefault(spec.name, {})[name] = values[0]
            continue
        if name != spec.name:
            raise _invalid_type(spec.name, _article(spec.kind), "an array")
        params[spec.name] = _coerce_text(spec, values[0])
    for f in rec.files:
        spec = table[base(f.field)]
        if spec.kind not in ("file", "files"):
            raise _invalid_type(spec.name, _article(spec.kind), "a file")
        if f.field != spec.name and spec.kind != "files":
            raise _invalid_type(spec.name, "a file", "an array")
    singles = {}
    for f in rec.files:
        if table[base(f.field)].kind == "file":
            if f.field in singles:
                raise _bad(f"Invalid '{f.field}': only one file may be sent.", f.field, "invalid_value")
            singles[f.field] = f
    return _Call("edits", params, images=images, mask=singles.get("mask"), markup=singles.get("markup"))


def _parse_json_call(rec: RecordedRequest, table: dict[str, ParamSpec]) -> _Call:
    body = rec.json
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.", None, "invalid_type")
    for name in body:
        if name not in table:
            raise _unknown(name)
    params: dict[str, Any] = {}
    for name, value in body.items():
        spec = table[name]
        if value is None and spec.nullable:
            continue  # null = not sent
        params[name] = _coerce_json(spec, value)
    for name in ("prompt", "model"):
        if name not in params:
            raise _missing(name)
    return _Call("generations", params)


def _check_model(call: _Call) -> catalogue.ModelInfo:
    name = call.params["model"]
    info = catalogue.CATALOGUE.get(name)
    message = f"The model `{name}` does not exist or you do not have access to it."
    if info is not None and not info.live:
        message += (f" It was shut down on {info.shutdown.isoformat()}; "
                    f"use {info.replacement} instead.")
    if info is None or not info.live:
        raise Rejected(404, message, param="model", code="model_not_found")
    return info


def _check_model_rules(call: _Call, info: catalogue.ModelInfo) -> None:
    p = call.params
    for legacy, why in (("response_format", "GPT image models always return base64-encoded images"),
                        ("style", "describe the desired style in the prompt instead")):
        if legacy in p:
            raise _bad(f"Unsupported parameter: '{legacy}' is not supported with {info.name}: "
                       f"unsupported for GPT image models; {why}.", legacy, "unsupported_parameter")
    fmt = p.get("output_format", "png")
    if fmt not in info.output_formats:
        need = "project access" if fmt == "svg" else "access to the GIF preview"
        raise _bad(f"output_format '{fmt}' requires {need} for {info.name}, which this project does "
                   "not have.", "output_format", "unsupported_value")
    if "svg" in p:
        raise _bad("svg requires output_format=svg and project access, which this project does not have.",
                   "svg", "unsupported_value")
    for gif_only in ("frame_count", "frame_duration_ms"):
        if gif_only in p:
            raise _bad(f"{gif_only} is only supported with output_format=gif.", gif_only,
                       "unsupported_parameter")
    size = p.get("size", "auto")
    if problem := catalogue.size_problem(info, size):
        raise _bad(problem, "size", "invalid_value")
    quality = p.get("quality", "auto")
    if problem := catalogue.quality_problem(info, quality):
        raise _bad(problem, "quality", "invalid_value")
    background = p.get("background", "auto")
    if problem := catalogue.background_problem(info, background):
        raise _bad(problem, "background", "invalid_value")
    if background == "transparent" and fmt == "jpeg":
        raise _bad("A transparent background needs output_format png or webp, not jpeg.",
                   "output_format", "invalid_value")
    if "input_fidelity" in p:
        allowed = info.input_fidelity
        if not allowed:
            why = ("omit this parameter" if allowed == ()
                   else "it is not documented for this model")
            raise _bad(f"input_fidelity is not supported with {info.name}: {why}.",
                       "input_fidelity", "unsupported_parameter")
        if p["input_fidelity"] not in allowed:
            raise _bad(f"Invalid value: '{p['input_fidelity']}'. {info.name} supports input_fidelity "
                       f"{_supported(allowed)}.", "input_fidelity", "invalid_value")
    if call.markup is not None and info.markup is not True:
        why = "not documented for" if info.markup is None else "not supported with"
        raise _bad(f"markup is {why} {info.name} (it supports GPT Image 2.5).", "markup",
                   "unsupported_parameter")
    if call.stream and info.streaming is not True:
        why = "not documented for" if info.streaming is None else "not supported with"
        raise _bad(f"Streaming is {why} {info.name}.", "stream", "unsupported_value")
    if "output_compression" in p and fmt not in ("webp", "jpeg"):
        raise _bad("output_compression is only supported with the webp or jpeg output formats.",
                   "output_compression", "unsupported_parameter")


def _check_range(p: dict[str, Any], name: str, low: int, high: int) -> None:
    if name not in p:
        return
    value = p[name]
    if value < low:
        raise _bad(f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, "
                   f"but got {value} instead.", name, "integer_below_min_value")
    if value > high:
        raise _bad(f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, "
                   f"but got {value} instead.", name, "integer_above_max_value")


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _open(f: UploadedFile, param: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(f.data))
        img.size  # noqa: B018 - the header parsed
        return img
    except Exception:
        raise _bad(f"Invalid '{param}': the file could not be read as an image.", param,
                   "invalid_image") from None


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    w, h = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _check_limits(call: _Call) -> None:
    p = call.params
    prompt = p["prompt"]
    if len(prompt) > catalogue.MAX_PROMPT_CHARS:
        raise _bad(f"Invalid 'prompt': string too long. Expected a string with maximum length "
                   f"{catalogue.MAX_PROMPT_CHARS}, but got a string with length {len(prompt)} instead.",
                   "prompt", "string_above_max_length")
    _check_range(p, "n", *N_RANGE)
    _check_range(p, "partial_images", 0, catalogue.MAX_PARTIAL_IMAGES)
    _check_range(p, "output_compression", *COMPRESSION_RANGE)
    if call.endpoint != "edits":
        return
    if len(call.images) > catalogue.MAX_INPUT_IMAGES:
        raise _bad(f"Invalid 'image': array too long. Expected an array with maximum length "
                   f"{catalogue.MAX_INPUT_IMAGES}, but got an array with length {len(call.images)} instead.",
                   "image", "array_above_max_length")
    first: Image.Image | None = None
    for i, f in enumerate(call.images):
        if len(f.data) >= catalogue.MAX_IMAGE_BYTES:
            raise _bad(f"Invalid 'image' (file {i + 1}): {len(f.data):,} bytes; each image must be "
                       f"smaller than {catalogue.MAX_IMAGE_BYTES:,} bytes (50 MB).", "image", "file_too_large")
        if _sniff(f.data) not in ("png", "webp", "jpeg"):
            raise _bad(f"Invalid 'image' (file {i + 1}): unsupported image format. Supported formats "
                       "are png, webp and jpeg.", "image", "invalid_image_format")
        img = _open(f, "image")
        first = first or img
    if call.mask is not None and call.markup is not None:
        raise _bad("markup cannot be combined with mask.", "markup", "invalid_value")
    assert first is not None
    if call.mask is not None:
        data = call.mask.data
        if _sniff(data) != "png":
            raise _bad("Invalid 'mask': the mask must be a PNG file.", "mask", "invalid_image_format")
        if len(data) >= catalogue.MAX_MASK_BYTES:
            raise _bad(f"Invalid 'mask': {len(data):,} bytes; the mask must be smaller than "
                       f"{catalogue.MAX_MASK_BYTES:,} bytes (4 MB).", "mask", "file_too_large")
        mask = _open(call.mask, "mask")
        if not _has_alpha(mask):
            raise _bad(f"Invalid 'mask': the mask has no alpha channel (mode {mask.mode}); its fully "
                       "transparent areas say where to edit.", "mask", "invalid_image")
        if mask.size != first.size:
            raise _bad(f"Invalid 'mask': the mask is {mask.size[0]}x{mask.size[1]} but the first image is "
                       f"{first.size[0]}x{first.size[1]}; they must have the same dimensions.",
                       "mask", "invalid_image")
    if call.markup is not None:
        if _sniff(call.markup.data) != "png":
            raise _bad("Invalid 'markup': the markup must be a PNG file.", "markup", "invalid_image_format")
        markup = _open(call.markup, "markup")
        want = _oriented_size(first)
        if markup.size != want:
            raise _bad(f"Invalid 'markup': the markup is {markup.size[0]}x{markup.size[1]} but the first "
                       f"image is {want[0]}x{want[1]}; they must have the same dimensions.",
                       "markup", "invalid_image")
        try:
            lowest_alpha = markup.convert("RGBA").getextrema()[3][0]
        except Exception:
            raise _bad("Invalid 'markup': the file could not be decoded.", "markup", "invalid_image") from None
        if lowest_alpha != 0:
            raise _bad("Invalid 'markup': the markup must contain transparent pixels (alpha 0).",
                       "markup", "invalid_image")


def validate(rec: RecordedRequest) -> _Call:
    """Check a recorded request as the API would; raise :class:`Rejected`."""
    ctype, _ = parse_options_header(rec.headers.get("content-type", ""))
    if rec.path.endswith("/edits"):
        if ctype != b"multipart/form-data":
            raise _bad("The fake takes edits as multipart/form-data, as the SDK sends them.", None,
                       "invalid_request")
        call = _parse_multipart_call(rec, EDIT_PARAMS)
    else:
        if ctype != b"application/json":
            raise _bad("Generations take a JSON body (application/json), as the SDK sends them.", None,
                       "invalid_request")
        call = _parse_json_call(rec, GENERATE_PARAMS)
    call.info = _check_model(call)
    _check_model_rules(call, call.info)
    _check_limits(call)
    return call


# ------------------------------------------------------------------ server


def _make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeOpenAI/1.0"
        protocol_version = "HTTP/1.1"
        _rec: RecordedRequest | None = None

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802
            self._stored_response("GET")

        def do_DELETE(self) -> None:  # noqa: N802
            self._stored_response("DELETE")

        def _stored_response(self, method: str) -> None:
            """``GET``/``DELETE /v1/responses/{id}``: the stored response, or 404."""
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            rec = self._rec = RecordedRequest(method=method, path=path, headers=headers, body=b"")
            fake._record(rec)
            rid = path.removeprefix("/v1/responses/")
            if not path.startswith("/v1/responses/") or "/" in rid:
                self._error(404, f"Unknown path {path}", "invalid_request_error", code="unknown_url")
                return
            if not headers.get("authorization", "").startswith("Bearer "):
                self._error(401, "You didn't provide an API key.", "invalid_request_error")
                return
            with fake.responses._lock:
                stored = fake.responses.store.get(rid)
                if stored is not None and method == "DELETE":
                    del fake.responses.store[rid]
                    fake.responses.deleted.append(rid)
            if stored is None:
                self._error(404, f"Response with id '{rid}' not found.", "invalid_request_error",
                            param="response_id", code="not_found")
            elif method == "DELETE":
                self._send(200, b"", "application/json")
            else:
                self._json(200, stored.response)

        def do_POST(self) -> None:  # noqa: N802
            body = self._read_body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0]
            rec = self._rec = RecordedRequest(method="POST", path=path, headers=headers, body=body)
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

            if path not in ("/v1/images/generations", "/v1/images/edits", "/v1/responses"):
                self._error(404, f"Unknown path {path}", "invalid_request_error", code="unknown_url")
                return
            if not headers.get("authorization", "").startswith("Bearer "):
                self._error(401, "You didn't provide an API key.", "invalid_request_error")
                return
            if rec.behaviour is not None and rec.behaviour not in _AFTER_VALIDATION:
                self._answer_behaviour(rec)
                return
            if rec.behaviour == "slow":
                fake._stopping.wait(fake.slow_seconds)
            if path == "/v1/responses":
                self._responses(rec)
                return
            try:
                call = validate(rec)
            except Rejected as exc:
                self._json(exc.status, {"error": exc.error})
                return
            if call.stream:
                self._stream(rec, call)
            elif rec.behaviour == "stream_break":
                self._drop()
            elif rec.behaviour == "stream_error":
                self._error(500, STREAM_ERROR_MESSAGE, "server_error", code="server_error")
            else:
                self._success(rec, call)

        # --------------------------------------------------------- answers

        def _responses(self, rec: RecordedRequest) -> None:
            """``POST /v1/responses`` (``tests/fake_responses.py``)."""
            if rec.json is None:
                self._error(400, "The Responses API takes a JSON body.", "invalid_request_error")
                return
            try:
                call = fake_responses.validate(fake.responses, rec.json)
            except fake_responses.ResponsesRejected as exc:
                self._json(exc.status, {"error": exc.error})
                return
            final, events = fake_responses.answer(fake.responses, call)
            if rec.json.get("stream") is not True:
                if rec.behaviour == "stream_break":
                    self._drop()
                    return
                self._json(200, final)
                return
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                rec.status = 200
                for event in events:
                    if fake.event_delay > 0 and event["type"] in (
                            "response.image_generation_call.partial_image", "response.output_text.delta",
                            "response.output_item.done"):
                        fake._stopping.wait(fake.event_delay)
                    self._chunk(fake_responses.sse(event))
                    if event["type"] == "response.image_generation_call.partial_image" and self._broke_off(rec):
                        return
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _answer_behaviour(self, rec: RecordedRequest) -> None:
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
                categories = fake.moderation_categories
                if categories is None:
                    self._error(400, MODERATION_MESSAGE, "image_generation_user_error", code="moderation_blocked")
                else:
                    message = f"{MODERATION_MESSAGE} safety_violations=[{', '.join(categories)}]."
                    self._json(400, {"error": {"message": message, "type": "image_generation_user_error",
                                               "param": None, "code": "moderation_blocked",
                                               "moderation_categories": list(categories)}})
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
                self._json(200, _lenient_response(fake, rec, base64.b64encode(
                    b"this is not a PNG, just some text").decode()))
            elif b == "not_base64":
                self._json(200, _lenient_response(fake, rec, "%%% not base64 at all %%%"))
            else:  # pragma: no cover - BEHAVIOURS and this list drifted apart
                raise AssertionError(f"behaviour {b!r} has no answer")

        def _success(self, rec: RecordedRequest, call: _Call) -> None:
            eff = _effective(fake, call)
            b64 = base64.b64encode(fake.final(eff["size_px"], output_format=eff["output_format"],
                                              transparent=eff["background"] == "transparent",
                                              model=str(call.params.get("model")))).decode()
            payload: dict[str, Any] = {
                "created": int(time.time()),
                "background": eff["background"],
                "output_format": eff["output_format"],
                "quality": eff["quality"],
                "size": eff["size"],
                "data": [{"b64_json": b64} for _ in range(eff["n"])],
                "usage": _usage(call, eff),
            }
            if eff["safety_identifier"]:
                payload["safety_identifier"] = eff["safety_identifier"]
            ImagesResponse.model_validate(payload)  # drift from the SDK fails here
            self._json(200, payload)

        def _stream(self, rec: RecordedRequest, call: _Call) -> None:
            eff = _effective(fake, call)
            prefix = "image_edit" if call.endpoint == "edits" else "image_generation"
            partial_cls, completed_cls = ((ImageEditPartialImageEvent, ImageEditCompletedEvent)
                                          if call.endpoint == "edits"
                                          else (ImageGenPartialImageEvent, ImageGenCompletedEvent))
            common = {"background": eff["background"], "output_format": eff["output_format"],
                      "quality": eff["quality"], "size": eff["size"]}
            transparent = eff["background"] == "transparent"
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.send_header("x-request-id", f"req_fake{len(fake.requests)}")
                self.end_headers()
                self.close_connection = True
                rec.status = 200
                partials = call.params.get("partial_images") or 0
                for i in range(partials):
                    color = tuple(fake.partial_colors[i % len(fake.partial_colors)])
                    event = {
                        **common,
                        "b64_json": base64.b64encode(fake.render(
                            eff["size_px"], output_format=eff["output_format"], transparent=transparent,
                            color=color)).decode(),
                        "created_at": int(time.time()),
                        "partial_image_index": i,
                        "type": f"{prefix}.partial_image",
                    }
                    self._event(event["type"], event, partial_cls)
                    if self._broke_off(rec):
                        return
                if partials == 0 and self._broke_off(rec):
                    return
                final = base64.b64encode(fake.final(eff["size_px"], output_format=eff["output_format"],
                                                    transparent=transparent,
                                                    model=str(call.params.get("model")))).decode()
                usage_keys = completed_cls.model_fields["usage"].annotation.model_fields
                usage = {k: v for k, v in _usage(call, eff).items() if k in usage_keys}
                for _ in range(eff["n"]):
                    event = {**common, "b64_json": final, "created_at": int(time.time()),
                             "type": f"{prefix}.completed", "usage": usage,
                             "safety_identifier": eff["safety_identifier"]}
                    self._event(event["type"], event, completed_cls)
                self._chunk(b"")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up

        def _broke_off(self, rec: RecordedRequest) -> bool:
            """Apply ``stream_break``/``stream_error`` after the first partial
            image (or at once without partials); True when the stream ended."""
            if rec.behaviour == "stream_break":
                self._drop()
                return True
            if rec.behaviour == "stream_error":
                error = {"message": STREAM_ERROR_MESSAGE, "type": "server_error", "code": "server_error",
                         "param": None}
                rec.error = error
                self._chunk(f"event: error\ndata: {json.dumps({'error': error})}\n\n".encode())
                self._chunk(b"")
                return True
            return False

        def _event(self, name: str, data: dict, cls: type) -> None:
            assert set(data) == set(cls.model_fields), (name, sorted(data), sorted(cls.model_fields))
            cls.model_validate(data)  # drift from the SDK fails here
            if fake.event_delay > 0:
                fake._stopping.wait(fake.event_delay)
            self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        def _chunk(self, data: bytes) -> None:
            """One chunk of a chunked body (``b""`` is the last one)."""
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _drop(self) -> None:
            """Close the connection now, mid-body or before any answer."""
            self.close_connection = True
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

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
            if self._rec is not None and isinstance(payload.get("error"), dict):
                self._rec.error = payload["error"]
            self._send(status, json.dumps(payload).encode(), "application/json", headers)

        def _send(self, status: int, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
            if self._rec is not None:
                self._rec.status = status
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


def _effective(fake: FakeOpenAI, call: _Call) -> dict[str, Any]:
    """What a valid request gets: size (str and pixels), quality, background,
    output format, n and the effective safety identifier."""
    p = call.params
    size = p.get("size", "auto")
    size_px = fake.image_size if size == "auto" else catalogue.parse_size(size)
    quality = p.get("quality", "auto")
    background = p.get("background", "auto")
    return {
        "size_px": tuple(size_px),
        "size": f"{size_px[0]}x{size_px[1]}",
        "quality": "high" if quality == "auto" else quality,
        "background": "opaque" if background == "auto" else background,
        "output_format": p.get("output_format", "png"),
        "n": p.get("n", 1),
        "safety_identifier": p.get("safety_identifier") or p.get("user") or None,
    }


def _usage(call: _Call, eff: dict[str, Any]) -> dict[str, Any]:
    text_tokens = max(1, len(call.params["prompt"].split()))
    image_tokens = IMAGE_INPUT_TOKENS * (len(call.images) + (call.mask is not None) + (call.markup is not None))
    output_tokens = OUTPUT_TOKENS[eff["quality"]] * eff["n"]
    return {
        "input_tokens": text_tokens + image_tokens,
        "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
        "output_tokens": output_tokens,
        "output_tokens_details": {"image_tokens": output_tokens, "text_tokens": 0},
        "total_tokens": text_tokens + image_tokens + output_tokens,
    }


def _lenient_response(fake: FakeOpenAI, rec: RecordedRequest, b64: str) -> dict[str, Any]:
    """An ``ImagesResponse`` for ``bad_b64``/``not_base64``, which answer
    before validation: unusable parameters fall back to the defaults."""
    size = catalogue.parse_size(rec.param("size") or "") or fake.image_size
    quality = rec.param("quality") if rec.param("quality") in OUTPUT_TOKENS else "high"
    text_tokens = max(1, len((rec.param("prompt") or "").split()))
    image_tokens = IMAGE_INPUT_TOKENS * (len(rec.images) + (rec.mask is not None))
    output_tokens = OUTPUT_TOKENS[quality]
    return {
        "created": int(time.time()),
        "background": "opaque",
        "output_format": "png",
        "quality": quality,
        "size": f"{size[0]}x{size[1]}",
        "data": [{"b64_json": b64}],
        "usage": {
            "input_tokens": text_tokens + image_tokens,
            "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
            "output_tokens": output_tokens,
            "output_tokens_details": {"image_tokens": output_tokens, "text_tokens": 0},
            "total_tokens": text_tokens + image_tokens + output_tokens,
        },
    }


def _parse_multipart(body: bytes, boundary: bytes) -> tuple[dict[str, list[str]], list[UploadedFile]]:
    """Split a multipart/form-data body into text fields and file parts (in order)."""
    parts: list[dict] = []
    state: dict = {}

    def on_part_begin() -> None:
        state["part"] = {"headers": {}, "data": []}
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
        state["part"]["data"].append(bytes(data[start:end]))

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
        data = b"".join(part["data"])
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
