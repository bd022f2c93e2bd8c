"""The Responses API part of the fake OpenAI server (``tests/fake_openai.py``):
``POST /v1/responses``, ``GET /v1/responses/{id}`` and
``DELETE /v1/responses/{id}``, with the ``image_generation`` tool.

It rejects what OpenAI rejects, by rules derived from the pinned SDK
(openai 3.52.0), not copied from Retouch:

1. **Shapes.** The JSON body is checked against the SDK's request TypedDict
   ``ResponseCreateParamsStreaming`` / ``ResponseCreateParamsNonStreaming``
   (``openai/types/responses/response_create_params.py``) by a recursive
   walk of ``typing.get_type_hints`` (:func:`check_type`): every nested
   TypedDict (input messages, ``input_image`` parts, the ``ImageGeneration``
   tool of ``tool_param.py``...) refuses unknown keys (400
   ``unknown_parameter``), missing ``Required`` keys (400
   ``missing_required_parameter``, e.g. an ``input_image`` without
   ``detail``), wrong JSON types (``invalid_type``) and values outside a
   ``Literal`` (``invalid_value``). Unions of TypedDicts are told apart by
   their ``type`` literal, as the API does.
2. **Models.** The outer ``model`` must be one of the SDK's
   ``ChatModel``/``ResponsesModel`` literals and not past the "Announced
   shutdown date" the SDK's deprecation notes give
   (:func:`app.backends.openai_chat.chat_model_problem`), else 404
   ``model_not_found``. The image tool's ``model`` and its size, quality and
   background follow the image catalogue (``app/backends/openai_models.py``),
   as the Images API fake does.
3. **Images.** ``input_image.image_url`` must be a ``data:`` URL of a
   PNG/JPEG/WebP under 50 MB (the fake cannot fetch URLs); the tool's
   ``input_image_mask.image_url`` a PNG data URL with an alpha channel and
   the size of the request's first input image ("Optional mask for
   inpainting"), and it needs an input image in the same request.
4. **State.** ``previous_response_id`` must name a stored response (404
   ``previous_response_not_found`` otherwise, the API's answer for unknown
   and expired ids). A response is stored unless ``store`` is false
   (``store`` docstring: default true). :meth:`ResponsesFake.forget`
   simulates expiry.

Outcomes are stated by the test, never guessed from the instruction: queue
them with :meth:`ResponsesFake.enqueue` (an image and words, words only, or
an image tool call the safety system failed). Without a queued outcome a
request gets an image plus :data:`DEFAULT_REPLY`.

Streaming sends the SDK's events in the API's order, each checked with the
SDK's ``ResponseStreamEvent`` union before it is sent: ``response.created``,
``response.in_progress``, for the image ``response.output_item.added``,
``response.image_generation_call.in_progress``, ``…generating``,
``…partial_image`` × ``partial_images``, ``…completed`` (no image in it),
``response.output_item.done`` (the image in ``item.result``); for the words
``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta`` per word, ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done``; then
``response.completed`` with ``usage`` and ``tool_usage.image_gen``.
"""
from __future__ import annotations

import base64
import binascii
import collections.abc
import io
import itertools
import json
import threading
import time
import typing
from dataclasses import dataclass, field
from typing import Any

import typing_extensions as te
from openai.types.responses import Response, ResponseStreamEvent, response_create_params
from PIL import Image
from pydantic import TypeAdapter

from app.backends import openai_models as catalogue
from app.backends.openai_chat import chat_model_problem
from tests import fake_c2pa

DEFAULT_REPLY = "Here is the image."
#: Made-up token counts: chat input tokens per word and per input image,
#: and chat output tokens per word of the reply.
CHAT_IMAGE_TOKENS = 85

_EVENTS = TypeAdapter(ResponseStreamEvent)
_LITERALS = {typing.Literal, te.Literal}
_REQUIRED = {typing.Required, te.Required}
_NOT_REQUIRED = {typing.NotRequired, te.NotRequired}


class ResponsesRejected(Exception):
    """An API error: HTTP ``status`` and the ``error`` object."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type_: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.error = {"message": message, "type": type_, "param": param, "code": code}


def _bad(message: str, param: str | None, code: str) -> ResponsesRejected:
    return ResponsesRejected(400, message, param=param, code=code)


# ------------------------------------------------------ shape validation


def _strip(tp: Any) -> tuple[Any, bool | None]:
    """Remove Required/NotRequired/Annotated; say which of the first two was seen."""
    required = None
    while True:
        origin = te.get_origin(tp)
        if origin in _REQUIRED:
            required, tp = True, te.get_args(tp)[0]
        elif origin in _NOT_REQUIRED:
            required, tp = False, te.get_args(tp)[0]
        elif origin in (typing.Annotated, te.Annotated):
            tp = te.get_args(tp)[0]
        else:
            return tp, required


def _members(tp: Any) -> list[Any]:
    tp, _ = _strip(tp)
    if te.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        out: list[Any] = []
        for a in te.get_args(tp):
            out += _members(a)
        return out
    return [tp]


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(td: type) -> dict[str, Any]:
    if td not in _HINTS:
        _HINTS[td] = typing.get_type_hints(td, include_extras=True)
    return _HINTS[td]


def _required_keys(td: type) -> set[str]:
    keys = set()
    for name, tp in _hints(td).items():
        _, req = _strip(tp)
        if req is True or (req is None and td.__total__):
            keys.add(name)
    return keys


def json_kind(value: Any) -> str:
    """A JSON value's type with its article, as the API's messages say it ("an integer")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_literals(td: type) -> tuple | None:
    """The values of a TypedDict's ``type`` Literal, or None."""
    tp = _hints(td).get("type")
    if tp is None:
        return None
    inner, _ = _strip(tp)
    return te.get_args(inner) if te.get_origin(inner) in _LITERALS else None


def check_type(tp: Any, value: Any, path: str) -> None:
    """Check JSON ``value`` against the SDK type ``tp``; ``path`` names it
    in errors (``tools[0].quality``). Raises :class:`ResponsesRejected`."""
    members = _members(tp)
    if value is None:
        if type(None) in members or Any in members:
            return
        raise _bad(f"Invalid type for '{path}': expected a value, but got null instead.", path, "invalid_type")
    members = [m for m in members if m is not type(None)]
    if Any in members or object in members:
        return
    if len(members) == 1:
        return _check_one(members[0], value, path)
    # A union: TypedDicts are chosen by their ``type`` literal, the rest by the JSON kind.
    if isinstance(value, dict):
        dicts = [m for m in members if te.is_typeddict(m)]
        if "type" in value and dicts:
            chosen = [m for m in dicts if (lits := _type_literals(m)) is None or value["type"] in lits]
            if not chosen:
                known = sorted({v for m in dicts for v in (_type_literals(m) or ())})
                raise _bad(f"Invalid value: '{value['type']}'. Supported values are: "
                           + ", ".join(f"'{k}'" for k in known) + ".", f"{path}.type", "invalid_value")
            dicts = chosen
        # The best-fitting member first (fewest unknown keys), so its error is the one reported.
        dicts.sort(key=lambda m: len(set(value) - set(_hints(m))))
        candidates = dicts + [m for m in members if te.get_origin(m) in (dict, collections.abc.Mapping)]
    else:
        candidates = [m for m in members if not te.is_typeddict(m)]
        candidates.sort(key=lambda m: not _same_kind(m, value))  # e.g. a list tries List[...] before str
    first: ResponsesRejected | None = None
    for m in candidates:
        try:
            return _check_one(m, value, path)
        except ResponsesRejected as exc:
            first = first or exc
    if first is not None:
        raise first
    raise _bad(f"Invalid type for '{path}': got {json_kind(value)}.", path, "invalid_type")


def _same_kind(tp: Any, value: Any) -> bool:
    """Whether ``tp`` is the kind of type a JSON ``value`` like this one could be."""
    origin = te.get_origin(tp)
    if isinstance(value, list):
        return origin in (list, collections.abc.Iterable, collections.abc.Sequence, typing.List)
    if isinstance(value, str):
        return tp is str or (origin in _LITERALS and any(isinstance(a, str) for a in te.get_args(tp)))
    return True


def _check_one(tp: Any, value: Any, path: str) -> None:
    origin = te.get_origin(tp)
    if origin in _LITERALS:
        allowed = te.get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise _bad(f"Invalid value: '{value}'. Supported values are: "
                       + ", ".join(f"'{a}'" for a in allowed) + ".", path, "invalid_value")
        return
    if te.is_typeddict(tp):
        if not isinstance(value, dict):
            raise _bad(f"Invalid type for '{path}': expected an object, but got {json_kind(value)} instead.",
                       path, "invalid_type")
        hints = _hints(tp)
        for key in value:
            if key not in hints:
                raise _bad(f"Unknown parameter: '{path}.{key}'.", f"{path}.{key}", "unknown_parameter")
        for key in sorted(_required_keys(tp)):
            if key not in value:
                raise _bad(f"Missing required parameter: '{path}.{key}'.", f"{path}.{key}",
                           "missing_required_parameter")
        for key, item in value.items():
            check_type(hints[key], item, f"{path}.{key}")
        return
    if origin in (list, collections.abc.Iterable, collections.abc.Sequence, typing.List):
        if not isinstance(value, list):
            raise _bad(f"Invalid type for '{path}': expected an array, but got {json_kind(value)} instead.",
                       path, "invalid_type")
        (item_tp,) = te.get_args(tp) or (Any,)
        for i, item in enumerate(value):
            check_type(item_tp, item, f"{path}[{i}]")
        return
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            raise _bad(f"Invalid type for '{path}': expected an object, but got {json_kind(value)} instead.",
                       path, "invalid_type")
        args = te.get_args(tp)
        for k, item in value.items():
            if args:
                check_type(args[1], item, f"{path}.{k}")
        return
    simple = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
    if tp in simple:
        ok = {str: lambda v: isinstance(v, str),
              int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              bool: lambda v: isinstance(v, bool)}[tp](value)
        if not ok:
            raise _bad(f"Invalid type for '{path}': expected {simple[tp]}, but got {json_kind(value)} instead.",
                       path, "invalid_type")
        return
    raise AssertionError(f"fake_responses: cannot check the SDK type {tp!r} at {path}")


def check_body(body: Any) -> None:
    """Check a ``POST /v1/responses`` body's shape against the SDK's
    ``ResponseCreateParams`` (streaming or not, by ``stream``)."""
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.", None, "invalid_type")
    variant = (response_create_params.ResponseCreateParamsStreaming if body.get("stream") is True
               else response_create_params.ResponseCreateParamsNonStreaming)
    hints = _hints(variant)
    for key in body:
        if key not in hints:
            raise _bad(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
    for key in ("model", "input"):
        if body.get(key) is None:
            raise _bad(f"Missing required parameter: '{key}'.", key, "missing_required_parameter")
    for key, value in body.items():
        check_type(hints[key], value, key)


# ------------------------------------------------------------- the fake


@dataclass
class Outcome:
    """What the next response does: ``text`` the assistant's words (None =
    no message), ``image`` whether the image tool makes an image,
    ``revised_prompt`` the prompt the tool reports, and ``failed`` a
    moderation failure of the tool call (status ``failed``, no image)."""

    text: str | None = DEFAULT_REPLY
    image: bool = True
    revised_prompt: str | None = None
    failed: bool = False


@dataclass
class StoredResponse:
    """A stored response: its JSON, the image it made (PNG bytes, or None)
    and the id it continued."""

    response: dict
    image: bytes | None
    previous: str | None


@dataclass
class ResponsesFake:
    """State of the fake's Responses API: queued outcomes and stored responses."""

    color: tuple[int, int, int] = (30, 120, 200)
    image_size: tuple[int, int] = (1024, 1024)
    #: Sign final images with a C2PA manifest (``tests/fake_c2pa.py``), as
    #: OpenAI does; ``FakeOpenAI(c2pa=True)`` turns it on.
    c2pa: bool = False
    store: dict[str, StoredResponse] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    _queue: list[Outcome] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def enqueue(self, text: str | None = DEFAULT_REPLY, *, image: bool = True, revised_prompt: str | None = None,
                failed: bool = False) -> None:
        """Queue the outcome of the next ``POST /v1/responses`` (see :class:`Outcome`)."""
        with self._lock:
            self._queue.append(Outcome(text, image, revised_prompt, failed))

    def forget(self, response_id: str) -> None:
        """Drop a stored response, as expiry would: later references get 404."""
        with self._lock:
            self.store.pop(response_id, None)

    def next_outcome(self) -> Outcome:
        with self._lock:
            return self._queue.pop(0) if self._queue else Outcome()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):04d}"

    def render(self, size: tuple[int, int], color: tuple[int, int, int] | None = None) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", size, color or self.color).save(buf, format="PNG")
        return buf.getvalue()


def _data_url_image(url: str, param: str) -> Image.Image:
    if not url.startswith("data:"):
        raise _bad(f"Invalid '{param}': the fake takes images as base64 data URLs only.", param, "invalid_value")
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        raise _bad(f"Invalid '{param}': expected a base64 data URL.", param, "invalid_value")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"Invalid '{param}': the data is not valid base64.", param, "invalid_value") from None
    if len(raw) >= catalogue.MAX_IMAGE_BYTES:
        raise _bad(f"Invalid '{param}': images must be smaller than 50 MB.", param, "file_too_large")
    try:
        img = Image.open(io.BytesIO(raw))
        img.size  # noqa: B018 - the header parsed
    except Exception:
        raise _bad(f"Invalid '{param}': the data could not be read as an image.", param, "invalid_image") from None
    if img.format not in ("PNG", "JPEG", "WEBP"):
        raise _bad(f"Invalid '{param}': unsupported image format {img.format}; use png, jpeg or webp.", param,
                   "invalid_image_format")
    return img


@dataclass
class _Call:
    body: dict
    tool: dict | None
    tool_info: catalogue.ModelInfo | None
    input_images: list[Image.Image]
    previous: StoredResponse | None


def validate(fake: ResponsesFake, body: Any) -> _Call:
    """Check a ``POST /v1/responses`` body as the API would; raise :class:`ResponsesRejected`."""
    check_body(body)
    problem = chat_model_problem(body["model"])
    if problem:
        raise ResponsesRejected(404, f"The model `{body['model']}` does not exist or you do not have access "
                                     f"to it. {problem}", param="model", code="model_not_found")
    if body.get("previous_response_id") and body.get("conversation"):
        raise _bad("previous_response_id cannot be used together with conversation.", "previous_response_id",
                   "invalid_value")
    previous = None
    if body.get("previous_response_id"):
        with fake._lock:
            previous = fake.store.get(body["previous_response_id"])
        if previous is None:
            raise ResponsesRejected(404, f"Previous response with id '{body['previous_response_id']}' not found.",
                                    param="previous_response_id", code="previous_response_not_found")
    images: list[Image.Image] = []
    items = body["input"] if isinstance(body["input"], list) else []
    for i, item in enumerate(items):
        content = item.get("content") if isinstance(item, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            if part.get("type") == "input_image":
                if not part.get("image_url"):
                    raise _bad("input_image needs image_url (the fake does not take file_id).",
                               f"input[{i}].content[{j}].image_url", "missing_required_parameter")
                images.append(_data_url_image(part["image_url"], f"input[{i}].content[{j}].image_url"))
    if len(images) > catalogue.MAX_INPUT_IMAGES:
        raise _bad(f"At most {catalogue.MAX_INPUT_IMAGES} input images.", "input", "array_above_max_length")
    tools = [t for t in body.get("tools") or [] if t.get("type") == "image_generation"]
    if len(tools) > 1:
        raise _bad("Only one image_generation tool may be given.", "tools", "invalid_value")
    tool = tools[0] if tools else None
    info = None
    if tool is not None:
        name = tool.get("model", "gpt-image-2.6-sunburst")  # the SDK docstring's default
        info = catalogue.CATALOGUE.get(name)
        if info is None or not info.live:
            raise ResponsesRejected(404, f"The model `{name}` does not exist or you do not have access to it.",
                                    param="tools[0].model", code="model_not_found")
        for key, check in (("size", catalogue.size_problem), ("quality", catalogue.quality_problem),
                           ("background", catalogue.background_problem)):
            if key in tool and (why := check(info, tool[key])):
                raise _bad(why, f"tools[0].{key}", "invalid_value")
        fmt = tool.get("output_format", "png")
        if fmt not in info.output_formats:
            raise _bad(f"output_format '{fmt}' is not available for {name} on this project.",
                       "tools[0].output_format", "unsupported_value")
        if "input_fidelity" in tool and tool["input_fidelity"] is not None and not info.input_fidelity:
            raise _bad(f"input_fidelity is not supported with {name}.", "tools[0].input_fidelity",
                       "unsupported_parameter")
        partials = tool.get("partial_images", 0)
        if not 0 <= partials <= catalogue.MAX_PARTIAL_IMAGES:
            raise _bad(f"Invalid 'tools[0].partial_images': expected 0 to {catalogue.MAX_PARTIAL_IMAGES}.",
                       "tools[0].partial_images", "invalid_value")
        if partials and info.streaming is not True:
            raise _bad(f"Partial images are not available for {name}.", "tools[0].partial_images",
                       "unsupported_value")
        if "input_image_mask" in tool:
            mask_url = tool["input_image_mask"].get("image_url")
            if not mask_url:
                raise _bad("input_image_mask needs image_url (the fake does not take file_id).",
                           "tools[0].input_image_mask.image_url", "missing_required_parameter")
            if not images:
                raise _bad("input_image_mask needs an input image in the same request.",
                           "tools[0].input_image_mask", "invalid_value")
            mask = _data_url_image(mask_url, "tools[0].input_image_mask.image_url")
            if mask.format != "PNG" or not (mask.mode in ("RGBA", "LA") or "transparency" in mask.info):
                raise _bad("The mask must be a PNG with an alpha channel (transparent = edit here).",
                           "tools[0].input_image_mask", "invalid_image")
            if mask.size != images[0].size:
                raise _bad(f"The mask is {mask.size[0]}x{mask.size[1]} but the first input image is "
                           f"{images[0].size[0]}x{images[0].size[1]}; they must match.",
                           "tools[0].input_image_mask", "invalid_image")
    return _Call(body, tool, info, images, previous)


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def answer(fake: ResponsesFake, call: _Call) -> tuple[dict, list[dict]]:
    """Make the response for a valid call: (the final Response JSON, the
    stream events in order). Stores it when ``store`` is not false."""
    outcome = fake.next_outcome()
    body, tool = call.body, call.tool
    rid = fake.new_id("resp")
    created = int(time.time())
    output: list[dict] = []
    events: list[dict] = []
    image_png = None
    tool_usage = {"image_gen": {"input_tokens": 0, "input_tokens_details": {"image_tokens": 0, "text_tokens": 0},
                                "output_tokens": 0, "total_tokens": 0},
                  "web_search": {"num_requests": 0}}
    base = {"id": rid, "object": "response", "created_at": created, "model": body["model"],
            "parallel_tool_calls": body.get("parallel_tool_calls", True), "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [], "instructions": body.get("instructions"),
            "previous_response_id": body.get("previous_response_id"), "store": body.get("store", True),
            "metadata": body.get("metadata") or {}, "error": None, "incomplete_details": None,
            "temperature": 1.0, "top_p": 1.0}
    base.pop("store")  # not a Response field
    events.append({"type": "response.created", "response": {**base, "status": "in_progress", "output": []}})
    events.append({"type": "response.in_progress", "response": {**base, "status": "in_progress", "output": []}})
    if tool is not None and outcome.image:
        index = len(output)
        iid = fake.new_id("ig")
        size = tool.get("size", "auto")
        if size == "auto":
            size_px = call.input_images[0].size if call.input_images else fake.image_size
        else:
            size_px = catalogue.parse_size(size)
        quality = tool.get("quality", "auto")
        quality = "high" if quality == "auto" else quality
        background = tool.get("background", "auto")
        background = "opaque" if background == "auto" else background
        common = {"id": iid, "type": "image_generation_call"}
        events.append({"type": "response.output_item.added", "output_index": index,
                       "item": {**common, "status": "in_progress", "result": None}})
        events.append({"type": "response.image_generation_call.in_progress", "item_id": iid, "output_index": index})
        events.append({"type": "response.image_generation_call.generating", "item_id": iid, "output_index": index})
        if outcome.failed:
            item = {**common, "status": "failed", "result": None,
                    "error": {"code": "moderation_blocked", "type": "image_generation_user_error", "param": None,
                              "message": "The image request was rejected by the safety system.",
                              "moderation_details": {"categories": ["violence"], "moderation_stage": "input"}}}
        else:
            for i in range(tool.get("partial_images", 0)):
                shade = 40 + 50 * i
                events.append({"type": "response.image_generation_call.partial_image", "item_id": iid,
                               "output_index": index, "partial_image_index": i,
                               "partial_image_b64": base64.b64encode(
                                   fake.render(size_px, (shade, shade, shade))).decode(),
                               "size": f"{size_px[0]}x{size_px[1]}", "quality": quality,
                               "background": background, "output_format": "png"})
            image_png = fake.render(size_px)
            if fake.c2pa:
                image_png = fake_c2pa.sign(image_png, "png", model=str(tool.get("model") or "gpt-image-1"))
            events.append({"type": "response.image_generation_call.completed", "item_id": iid, "output_index": index})
            words = len(_prompt_text(body).split())
            prompt = outcome.revised_prompt or f"An image: {_prompt_text(body)[:200]}"
            out_tokens = {"low": 272, "medium": 1056, "high": 4160, "xhigh": 6240, "max": 8320}[quality]
            image_in = 323 * len(call.input_images)
            tool_usage["image_gen"] = {"input_tokens": words + image_in,
                                       "input_tokens_details": {"image_tokens": image_in, "text_tokens": words},
                                       "output_tokens": out_tokens, "total_tokens": words + image_in + out_tokens}
            item = {**common, "status": "completed", "result": base64.b64encode(image_png).decode(),
                    "revised_prompt": prompt, "size": f"{size_px[0]}x{size_px[1]}", "quality": quality,
                    "background": background, "output_format": "png", "action": "edit" if call.input_images
                    else "generate"}
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        output.append(item)
    if outcome.text:
        index = len(output)
        mid = fake.new_id("msg")
        events.append({"type": "response.output_item.added", "output_index": index,
                       "item": {"id": mid, "type": "message", "role": "assistant", "status": "in_progress",
                                "content": []}})
        events.append({"type": "response.content_part.added", "item_id": mid, "output_index": index,
                       "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}})
        for word in _words(outcome.text):
            events.append({"type": "response.output_text.delta", "item_id": mid, "output_index": index,
                           "content_index": 0, "delta": word, "logprobs": []})
        part = {"type": "output_text", "text": outcome.text, "annotations": []}
        events.append({"type": "response.output_text.done", "item_id": mid, "output_index": index,
                       "content_index": 0, "text": outcome.text, "logprobs": []})
        events.append({"type": "response.content_part.done", "item_id": mid, "output_index": index,
                       "content_index": 0, "part": part})
        item = {"id": mid, "type": "message", "role": "assistant", "status": "completed", "content": [part]}
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
        output.append(item)
    chain_tokens = 0
    prev = call.previous
    while prev is not None:  # each chained turn re-bills earlier input
        chain_tokens += int(prev.response["usage"]["input_tokens"]) + int(prev.response["usage"]["output_tokens"])
        prev = fake.store.get(prev.previous) if prev.previous else None
    input_tokens = len(_prompt_text(body).split()) + CHAT_IMAGE_TOKENS * len(call.input_images) + chain_tokens
    output_tokens = len((outcome.text or "").split()) + (20 if image_png else 0)
    usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
             "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": input_tokens + output_tokens}
    final = {**base, "status": "completed", "completed_at": int(time.time()), "output": output, "usage": usage,
             "tool_usage": tool_usage}
    events.append({"type": "response.completed", "response": final})
    for n, event in enumerate(events):
        event["sequence_number"] = n
        _EVENTS.validate_python(event)  # drift from the SDK fails here
    Response.model_validate(final)
    if body.get("store", True) is not False:
        with fake._lock:
            fake.store[rid] = StoredResponse(final, image_png, body.get("previous_response_id"))
    return final, events


def _prompt_text(body: dict) -> str:
    """All ``input_text`` of the request, joined (or the input string)."""
    if isinstance(body["input"], str):
        return body["input"]
    texts = []
    for item in body["input"]:
        content = item.get("content")
        if isinstance(content, str):
            texts.append(content)
        for part in content if isinstance(content, list) else []:
            if part.get("type") == "input_text":
                texts.append(part["text"])
    return " ".join(texts)


def sse(event: dict) -> bytes:
    """One server-sent event for ``event``."""
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
