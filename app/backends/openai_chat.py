"""The ``openai-chat`` backend: a chat model that sees the conversation,
answers in words and draws with OpenAI's ``image_generation`` tool, through
the Responses API (``client.responses.create``).

Each turn sends one user message: the instruction, the version being edited
as an ``input_image`` and the reference images after it; a selected region
goes to the tool as ``input_image_mask`` (transparent = edit here, as for
the Images API). The image model and its size, quality and background come
from the composer's picker, checked by the image catalogue
(:mod:`app.backends.openai_models`). Markup is not sent: the tool has no
such parameter (``openai/types/responses/tool_param.py``, ``ImageGeneration``).

Context follows the version tree. The worker passes the id of the stored
response that made the base version as ``previous_response_id`` (only when
the version's pixels are exactly that response's image, the thread is the
one the response was made in, and the chain is shorter than
``RETOUCH_OPENAI_CHAIN_MAX``); otherwise the earlier instructions are sent
as text in a fresh conversation. When OpenAI no longer has the stored
response (404 ``previous_response_not_found``: deleted or expired), the
request is sent once more as a fresh conversation; the 404 made and billed
nothing. ``store`` is true unless ``RETOUCH_OPENAI_STORE=false``: OpenAI
keeps stored responses (at least 30 days), which chaining needs.

Rules from the SDK (openai 3.52.0):

- request shape: ``openai/types/responses/response_create_params.py``;
- events: ``response.image_generation_call.partial_image`` carries partial
  images; the tool's ``…completed`` event carries no image, so the image is
  read from ``response.output_item.done`` (``item.result``) or from the
  ``response.completed`` response's output;
- usage: ``Response.usage`` is the chat model's tokens;
  ``Response.tool_usage.image_gen`` the image tool's
  (``openai/types/responses/response.py``);
- chat models: ``openai/types/shared/chat_model.py`` and its deprecation
  notes ("Announced shutdown date"), read by :func:`chat_model_problem`.
"""
from __future__ import annotations

import base64
import inspect
import logging
import re
import typing
from datetime import date
from typing import Any

import httpx2
import openai
from openai.types.shared import chat_model as _chat_model_module
from openai.types.shared import responses_model as _responses_model_module

from app.backends import openai_models as catalogue
from app.backends.base import BackendFailed, EditRequest, EditResult, OptionRejected
from app.backends.openai_backend import (
    OpenAIBackend,
    _sentence,
    build_prompt,
    decode_b64_bytes,
    decode_b64_image,
    decode_image_bytes,
    fit_upload,
    image_options,
    mask_to_openai_png,
    moderation_decline,
    usage_dict,
)
from app.config import get_settings

log = logging.getLogger(__name__)

#: The chat model used unless ``RETOUCH_OPENAI_CHAT_MODEL`` says otherwise:
#: the SDK's own example ("Model ID used to generate the response, like
#: `gpt-6-astra`", ``response_create_params.py``), first in ``ChatModel``
#: and without a shutdown date.
DEFAULT_CHAT_MODEL = "gpt-6-astra"

#: The system instructions (``instructions``) of every request.
INSTRUCTIONS = (
    "You are the image editor inside Retouch, a self-hosted app for editing pictures by conversation. "
    "The person's message comes with the current version of their image (the first image) and any "
    "reference images after it. When they ask for a change or a new picture, use the image_generation "
    "tool, keeping everything they did not ask to change; then say in one or two short sentences what you "
    "did. When the request is unclear, ask one short question instead of drawing. Never claim an edit you "
    "did not make."
)


def _literals(tp: Any) -> list[str]:
    out: list[str] = []
    for arg in typing.get_args(tp):
        if typing.get_origin(arg) is typing.Literal:
            out += [a for a in typing.get_args(arg) if isinstance(a, str)]
        elif isinstance(arg, str):
            out.append(arg)
        else:
            out += _literals(arg)
    return out


#: Every model name the SDK lists for the Responses API (``ChatModel`` and ``ResponsesModel``).
CHAT_MODELS: tuple[str, ...] = tuple(dict.fromkeys(
    _literals(_chat_model_module.ChatModel) + _literals(_responses_model_module.ResponsesModel)))


def _shutdown_dates() -> dict[str, date]:
    """Each chat model's "Announced shutdown date" from the SDK's deprecation
    notes (the docstring under ``ChatModel`` in ``chat_model.py``)."""
    source = inspect.getsource(_chat_model_module)
    notes = source.split('"""Deprecated values:', 1)[-1]
    out: dict[str, date] = {}
    for entry in re.split(r"\n- ", notes):
        found = re.search(r"Announced shutdown date:\s*(\d{4}-\d{2}-\d{2})", entry)
        if not found:
            continue
        names = re.findall(r'"([^"]+)"', entry.split(":", 1)[0])
        for name in names:
            out[name] = date.fromisoformat(found.group(1))
    return out


#: Chat model -> announced shutdown date, from the SDK.
SHUTDOWN_DATES: dict[str, date] = _shutdown_dates()


def chat_model_problem(name: str, setting: str = "RETOUCH_OPENAI_CHAT_MODEL", today: date | None = None) -> str | None:
    """Why the chat model ``name`` cannot be used today, as a sentence naming
    ``setting``, or None. Refused: names the SDK does not list for the
    Responses API, and models whose announced shutdown date (SDK deprecation
    notes) is today or earlier."""
    today = today or date.today()
    if name not in CHAT_MODELS:
        return (f"The chat model {name!r} ({setting}) is not one the OpenAI SDK lists; "
                f"set {setting} to a current model such as {DEFAULT_CHAT_MODEL}.")
    shutdown = SHUTDOWN_DATES.get(name)
    if shutdown is not None and shutdown <= today:
        return (f"The chat model {name!r} ({setting}) was shut down on {shutdown.isoformat()}; "
                f"set {setting} to a current model such as {DEFAULT_CHAT_MODEL}.")
    return None


def data_url(data: bytes, mime: str) -> str:
    """``data:<mime>;base64,...`` for ``data`` (how images go inline in a request)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class OpenAIChatBackend(OpenAIBackend):
    """Conversational editing through the Responses API (see the module
    docstring). Takes the :class:`OpenAIBackend` arguments plus:

    - ``chat_model``: the outer chat model (``RETOUCH_OPENAI_CHAT_MODEL``);
    - ``store``: ask OpenAI to keep responses so later turns can continue
      them (``RETOUCH_OPENAI_STORE``); False = every turn starts afresh.
    - ``chain_max``: the longest chain continued (``RETOUCH_OPENAI_CHAIN_MAX``).
    """

    name = "openai-chat"
    label = "OpenAI chat (conversation)"
    called = "The OpenAI chat model"
    accepts_markup = False
    conversational = True

    def __init__(self, *, chat_model: str | None = None, store: bool | None = None, chain_max: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        settings = get_settings()
        self.chat_model: str = chat_model or settings.openai_chat_model
        self.store: bool = settings.openai_store if store is None else store
        self.stores_responses = self.store
        self.chain_max = int(settings.openai_chain_max if chain_max is None else chain_max)

    def problems(self) -> list[str]:
        """The image model problems of :class:`OpenAIBackend`, plus a chat
        model that is unknown or shut down."""
        out = super().problems()
        if problem := chat_model_problem(self.chat_model):
            out.append(problem)
        return out

    def check_options(self, *, model: str | None = None, size: str | None = None, quality: str | None = None,
                      background: str | None = None, image_size: tuple[int, int] | None = None,
                      has_mask: bool = False, has_markup: bool = False, reference_count: int = 0) -> None:
        """The image catalogue's rules (:meth:`OpenAIBackend.check_options`),
        plus: no markup (the tool has no such parameter) and a chat model
        that is current. Raises :class:`OptionRejected`."""
        if has_markup:
            raise OptionRejected("The OpenAI chat model cannot take a drawing (markup); choose OpenAI images "
                                 "under Options for that, or describe the place in words.")
        if problem := chat_model_problem(self.chat_model):
            raise OptionRejected(problem)
        super().check_options(model=model, size=size, quality=quality, background=background,
                              image_size=image_size, has_mask=has_mask, has_markup=False,
                              reference_count=reference_count)

    def run(self, request: EditRequest) -> EditResult:
        """Send one turn to ``responses.create`` and read the answer.

        Returns an :class:`EditResult` with the image (None when the model
        answered in words only), ``reply``, ``revised_prompt``,
        ``response_id`` (None when ``store`` is off), ``context`` and
        ``usage`` = the image tool's tokens (``tool_usage.image_gen``, the
        Images API's shape) with the chat model's under ``"chat"``.

        Raises :class:`BackendDeclined` when the safety system refused,
        :class:`BackendFailed` for everything else that goes wrong.
        """
        client = self.client()
        previous = request.previous_response_id if self.store else None
        body = self._body(request, previous)
        try:
            result = self._call(client, body, request)
            result.context = "chained" if previous else ("restarted" if request.restart_reason else "fresh")
            if result.context == "restarted":
                result.message = _join(request.restart_reason, result.message)
        except _PreviousGone:
            log.info("stored response %s is gone; starting a fresh conversation", previous)
            body = self._body(request, None)
            result = self._call(client, body, request)
            result.context = "restarted"
            result.message = _join("OpenAI no longer had the earlier conversation (stored responses are "
                                   "deleted after a while), so Retouch started a new one and sent the earlier "
                                   "instructions as text.", result.message)
        if not self.store:
            result.response_id = None
        return result

    # ----------------------------------------------------------------- request

    def _body(self, request: EditRequest, previous: str | None) -> dict[str, Any]:
        """The ``responses.create`` arguments for ``request``, continuing ``previous`` if given."""
        model = request.model or self.model
        info = catalogue.CATALOGUE[model]
        tool: dict[str, Any] = {"type": "image_generation", "model": model, **image_options(request, info)}
        streaming = bool((request.on_partial or request.on_text) and info.streaming)
        if streaming and request.on_partial and self.partial_images > 0:
            tool["partial_images"] = min(self.partial_images, catalogue.MAX_PARTIAL_IMAGES)
        text = request.instruction if previous else build_prompt(request.instruction, request.history)
        if request.references:
            text += ("\n\n(The first image is the current version; the next "
                     + (f"{len(request.references)} are" if len(request.references) > 1 else "one is")
                     + " reference images.)")
        if request.mask is not None:
            text += "\n\n(Only the masked region may change.)"
        content: list[dict[str, Any]] = [{"type": "input_text", "text": text}]
        first_size = None
        images = ([("image.png", request.image, "The image")] if request.image is not None else []) + [
            (f"reference-{i}.png", ref, f"Reference image {i}") for i, ref in enumerate(request.references, 1)]
        for filename, image, what in images:
            fitted = fit_upload(image, filename, self.max_image_bytes, what)
            first_size = first_size or fitted.size
            content.append({"type": "input_image", "detail": "auto",
                            "image_url": data_url(fitted.file[1], fitted.file[2])})
        if request.mask is not None and first_size is not None:
            mask = mask_to_openai_png(request.mask, first_size)
            if len(mask) >= catalogue.MAX_MASK_BYTES:
                raise OptionRejected("The selected region's mask is over 4 MB as a PNG; select a simpler region.")
            tool["input_image_mask"] = {"image_url": data_url(mask, "image/png")}
        body: dict[str, Any] = {
            "model": self.chat_model,
            "instructions": INSTRUCTIONS,
            "input": [{"role": "user", "content": content}],
            "tools": [tool],
            "store": self.store,
        }
        if previous:
            body["previous_response_id"] = previous
        if request.safety_identifier:
            body["safety_identifier"] = request.safety_identifier
        if streaming:
            body["stream"] = True
        log.info("OpenAI responses.create model=%s image_model=%s images=%d mask=%s previous=%s stream=%s",
                 self.chat_model, model, len(images), request.mask is not None, previous, streaming)
        return body

    def _call(self, client: openai.OpenAI, body: dict[str, Any], request: EditRequest) -> EditResult:
        response, resent = self._send(client, lambda c: c.responses.create(**body))
        reader = _Reader(request)
        if body.get("stream"):
            reader.read_stream(response)
        else:
            reader.read_response(response)
        result = reader.result(body["tools"][0]["model"], self.chat_model)
        if resent:
            result.message = _join(result.message, f"OpenAI failed at first ({'; '.join(resent)}), so Retouch "
                                                   "sent the request again; only the last one is billed.")
        return result

    def _send(self, client, call):  # noqa: ANN001 - see OpenAIBackend._send
        """:meth:`OpenAIBackend._send`, but a 404 on ``previous_response_id``
        raises :class:`_PreviousGone` (the caller starts afresh)."""
        def guarded(c):  # noqa: ANN001
            try:
                return call(c)
            except openai.NotFoundError as exc:
                body = exc.body if isinstance(exc.body, dict) else {}
                if (exc.code or body.get("code")) == "previous_response_not_found" or \
                        (exc.param or body.get("param")) == "previous_response_id":
                    raise _PreviousGone() from None
                raise
        return super()._send(client, guarded)

    def delete_responses(self, response_ids: list[str]) -> int:
        """Delete stored responses (``responses.delete``), e.g. when their
        thread is deleted. Returns how many were deleted; failures (already
        gone, network) are logged, never raised."""
        deleted = 0
        for rid in response_ids:
            try:
                self.client().responses.delete(rid)
                deleted += 1
            except (openai.OpenAIError, BackendFailed, httpx2.HTTPError) as exc:
                log.warning("could not delete stored OpenAI response %s: %s", rid, type(exc).__name__)
        return deleted


class _PreviousGone(Exception):
    """OpenAI answered 404 for ``previous_response_id``."""


class _Reader:
    """Collects one response, streamed or whole, into an :class:`EditResult`."""

    def __init__(self, request: EditRequest) -> None:
        self.request = request
        self.text = ""
        self.image_item: Any = None
        self.response: Any = None
        self.response_id: str | None = None
        self.partials = 0

    def read_stream(self, stream: Any) -> None:
        try:
            for event in stream:
                kind = getattr(event, "type", "")
                if kind == "response.created":
                    self.response_id = event.response.id
                elif kind == "response.image_generation_call.partial_image":
                    self.partials += 1
                    if self.request.on_partial is not None:
                        self.request.on_partial(int(event.partial_image_index),
                                                decode_b64_image(event.partial_image_b64))
                elif kind == "response.output_text.delta":
                    self.text += event.delta
                    if self.request.on_text is not None:
                        self.request.on_text(self.text)
                elif kind == "response.output_item.done" and getattr(event.item, "type", "") == \
                        "image_generation_call":
                    self.image_item = event.item
                elif kind in ("response.completed", "response.incomplete"):
                    self.response = event.response
                elif kind == "response.failed":
                    error = getattr(event.response, "error", None)
                    raise BackendFailed("OpenAI could not finish the response"
                                        + (f": {_sentence(error.message)}" if error is not None else ".")
                                        + " Nothing was saved; you can try again.", retryable=False)
                elif kind == "error":
                    raise BackendFailed(f"OpenAI reported an error while answering: {_sentence(event.message)} "
                                        "Nothing was saved; you can try again.", retryable=False)
        except (openai.OpenAIError, httpx2.HTTPError, OSError, ValueError) as exc:
            body = getattr(exc, "body", None)
            code = str(body.get("code") or "") if isinstance(body, dict) else ""
            if "moderation" in code or "safety" in code:
                raise moderation_decline(body, body.get("message")) from None
            raise BackendFailed(
                f"The connection to OpenAI broke after {self.partials} partial image"
                f"{'s' if self.partials != 1 else ''}, before the answer was complete. Nothing was saved. "
                "Retouch did not resend it by itself: OpenAI may have billed it. You can try again.",
                retryable=False) from None
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if self.response is None:
            raise BackendFailed("OpenAI's stream ended before the response was complete. Nothing was saved; "
                                "you can try again.", retryable=False)
        self._absorb(self.response, streamed=True)

    def read_response(self, response: Any) -> None:
        if not isinstance(response, openai.types.responses.Response):
            raise BackendFailed("OpenAI sent back something that is not a Responses API response. "
                                "Check OPENAI_BASE_URL.", retryable=False)
        self.response = response
        self._absorb(response, streamed=False)

    def _absorb(self, response: Any, *, streamed: bool) -> None:
        """Take the image and the words from the final response's output
        where the stream did not already give them."""
        self.response_id = getattr(response, "id", None) or self.response_id
        words = []
        for item in getattr(response, "output", None) or []:
            kind = getattr(item, "type", "")
            if kind == "image_generation_call" and (self.image_item is None or not self.image_item.result):
                self.image_item = item
            elif kind == "message":
                for part in getattr(item, "content", None) or []:
                    if getattr(part, "type", "") == "output_text":
                        words.append(part.text)
                    elif getattr(part, "type", "") == "refusal":
                        words.append(part.refusal)
        if words:
            self.text = "\n\n".join(words)

    def result(self, image_model: str, chat_model: str) -> EditResult:
        item = self.image_item
        reply = self.text.strip() or None
        error = getattr(item, "error", None) if item is not None else None
        if item is not None and getattr(item, "status", "") == "failed":
            code = str(getattr(error, "code", "") or "")
            if "moderation" in code or "safety" in code or error is None:
                details = getattr(error, "moderation_details", None)
                raise moderation_decline({"categories": list(getattr(details, "categories", []) or [])},
                                         getattr(error, "message", None))
            raise BackendFailed(f"OpenAI's image tool failed: {_sentence(error.message)}", retryable=False)
        source = decode_b64_bytes(item.result) if item is not None and item.result else None
        image = decode_image_bytes(source) if source is not None else None
        if image is None and reply is None:
            raise BackendFailed("OpenAI answered with neither an image nor any words. Nothing was saved; "
                                "you can try again.", retryable=False)
        response = self.response
        chat_usage = usage_dict(response) or {}
        tool_usage = getattr(response, "tool_usage", None)
        image_usage = None
        if tool_usage is not None and getattr(tool_usage, "image_gen", None) is not None:
            image_usage = tool_usage.image_gen.model_dump(mode="json", exclude_none=True)
        usage = dict(image_usage or {})
        if chat_usage:
            usage["chat"] = {**chat_usage, "model": chat_model}
        output: dict[str, Any] = {"model": image_model, "chat_model": chat_model}
        if item is not None:
            for key in ("size", "quality", "background", "output_format"):
                value = getattr(item, key, None)
                if isinstance(value, str) and value:
                    output[key] = value
        return EditResult(image=image, usage=usage or None, output=output, reply=reply,
                          revised_prompt=getattr(item, "revised_prompt", None) if item is not None else None,
                          response_id=self.response_id, source=source)


def _join(*parts: str | None) -> str | None:
    text = " ".join(p for p in parts if p)
    return text or None

