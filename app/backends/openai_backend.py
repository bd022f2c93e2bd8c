"""The ``openai`` backend: edits and generates images with the OpenAI Images API.

It uses the official ``openai`` SDK (``client.images.generate`` and
``client.images.edit``) with an explicit timeout.

Retries and billing. The SDK's own retries are switched off for every call
(its client keeps ``max_retries`` for anyone else who uses it); Retouch
resends a request itself, at most ``max_retries`` times, and only after a
failure in which OpenAI cannot have made (and billed) an image:

- the connection could not be opened (refused, DNS, connect timeout);
- HTTP 408, 409, 429 (except ``insufficient_quota``) and 5xx, which answer
  with an error instead of an image. It waits what ``Retry-After`` /
  ``retry-after-ms`` asks (a request asking for more than
  :data:`RETRY_AFTER_MAX_SECONDS` is not resent), else
  :data:`RETRY_BACKOFF_SECONDS` doubled each time.

A request that timed out while waiting for the answer, lost its connection
mid-answer, or got an HTTP 200 that could not be read is never resent:
OpenAI may have generated, and billed, the image. When a request was resent
the turn says so: the result's ``message`` on success, the error otherwise.

Rules this module relies on, from the OpenAI Images API reference
(https://platform.openai.com/docs/api-reference/images/createEdit and
https://platform.openai.com/docs/api-reference/images/create):

- ``image`` may be a list of images; with several, the mask applies to the
  first one. Retouch sends the current version first, then the references.
- ``mask`` is "an additional image whose fully transparent areas (e.g. where
  alpha is zero) indicate where ``image`` should be edited". It must be a PNG
  of the same dimensions as the first image (and under 4 MB). The model treats
  it as guidance only; :meth:`ImageBackend.edit` composites the result back
  over the original so pixels outside the mask stay exact.
- GPT image models (``gpt-image-1`` and later) always return base64-encoded
  images in ``data[].b64_json`` and do not accept ``response_format``; they
  report token usage in ``usage``.
- Errors come back as ``{"error": {"message", "type", "param", "code"}}``;
  a prompt or image refused by the safety system is HTTP 400 with code
  ``moderation_blocked``.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import openai
import pydantic
from PIL import Image

from app.backends.base import (
    BackendDeclined,
    BackendError,
    BackendFailed,
    EditRequest,
    EditResult,
    ImageBackend,
)
from app.config import get_settings
from app.imaging import ImageRejected, decode_image, encode_png

log = logging.getLogger(__name__)

#: How many earlier instructions the prompt repeats (the most recent ones).
HISTORY_MAX_ITEMS = 10
#: Longest earlier instruction repeated in the prompt, in characters.
HISTORY_MAX_CHARS = 300
#: Largest image accepted back from the API, in bytes (after base64 decoding).
RESULT_MAX_BYTES = 64 * 1024 * 1024
#: Largest image accepted back from the API, in pixels (width x height).
RESULT_MAX_PIXELS = 50_000_000

#: Longest ``Retry-After`` that Retouch waits before resending, in seconds;
#: when the API asks for longer, the turn fails with the wait in its message.
RETRY_AFTER_MAX_SECONDS = 20.0
#: First wait before resending when the API gave no ``Retry-After``, in
#: seconds; doubled for each further resend, up to 8 seconds.
RETRY_BACKOFF_SECONDS = 0.5
RETRY_BACKOFF_MAX_SECONDS = 8.0

_UNSET: Any = object()
_KEY_PATTERN = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_\-*.]{6,}")


class OpenAIBackend(ImageBackend):
    """Image edits and text-to-image through the OpenAI Images API.

    Every constructor argument defaults to the matching setting of
    :func:`app.config.get_settings` (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``,
    ``RETOUCH_OPENAI_MODEL``, ``RETOUCH_OPENAI_TIMEOUT``,
    ``RETOUCH_OPENAI_MAX_RETRIES``); pass a value to override it (tests do).

    - ``api_key``: the OpenAI key; ``None`` means none is configured, and
      :meth:`run` then raises :class:`BackendFailed`.
    - ``base_url``: API root ending in ``/v1``; ``None`` means the SDK default.
    - ``model``: image model name, e.g. ``"gpt-image-1"``.
    - ``timeout``: seconds to wait for one HTTP request (connect, send, read).
    - ``max_retries``: how many times one turn's request may be resent after
      a failure that generated no image (connection refused, 408, 409, 429,
      5xx; see the module docstring). 0 = never. Timeouts are never resent.
    - ``client``: a ready ``openai.OpenAI`` client to use instead of building
      one (the other connection arguments are then ignored).

    Constructing the backend never contacts the API and never fails for a
    missing key; the SDK client is built on first use.
    """

    name = "openai"
    can_generate = True
    accepts_mask = True
    accepts_references = True

    def __init__(
        self,
        *,
        api_key: str | None = _UNSET,
        base_url: str | None = _UNSET,
        model: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        client: openai.OpenAI | None = None,
    ) -> None:
        settings = get_settings()
        self.api_key: str | None = settings.openai_api_key if api_key is _UNSET else api_key
        self.base_url: str | None = settings.openai_base_url if base_url is _UNSET else base_url
        self.model: str = model or settings.openai_model
        self.timeout: float = float(settings.openai_timeout if timeout is None else timeout)
        self.max_retries: int = int(settings.openai_max_retries if max_retries is None else max_retries)
        self._client = client
        self._single: openai.OpenAI | None = None  # the client with SDK retries off
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return (
            f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, "
            f"timeout={self.timeout!r}, max_retries={self.max_retries!r})"
        )

    # ------------------------------------------------------------------ client

    def client(self) -> openai.OpenAI:
        """The ``openai.OpenAI`` SDK client (built on first use, thread-safe).

        Raises :class:`BackendFailed` (not retryable) when no API key is set
        or the SDK rejects the settings (e.g. a negative ``max_retries``).
        """
        if self._client is not None:
            return self._client
        if not self.api_key:
            raise BackendFailed(
                "The OpenAI backend has no API key. Set the OPENAI_API_KEY environment "
                "variable and restart Retouch, or choose the local backend "
                "(RETOUCH_BACKEND=local).",
                retryable=False,
            )
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = openai.OpenAI(
                        api_key=self.api_key,
                        base_url=self.base_url or None,
                        timeout=self.timeout,
                        max_retries=self.max_retries,
                    )
                except (openai.OpenAIError, TypeError, ValueError) as exc:
                    raise BackendFailed(
                        "The OpenAI client could not be set up: "
                        f"{_sentence(_redact(str(exc), self.api_key))} Check OPENAI_BASE_URL, "
                        "RETOUCH_OPENAI_TIMEOUT and RETOUCH_OPENAI_MAX_RETRIES.",
                        retryable=False,
                    ) from None
        return self._client

    # --------------------------------------------------------------------- run

    def run(self, request: EditRequest) -> EditResult:
        """Send ``request`` to the Images API and return the new image.

        Without ``request.image`` this calls ``images.generate``; with one it
        calls ``images.edit`` with ``[current image, *references]`` as PNG
        files and, if given, the mask converted by :func:`mask_to_openai_png`.
        ``size`` (``"WIDTHxHEIGHT"`` pixels) and ``quality`` are sent only when
        set. The prompt is :func:`build_prompt` of the instruction and history.

        Returns an :class:`EditResult` whose ``image`` is RGB or RGBA at the
        size the API chose (:meth:`ImageBackend.edit` resizes and composites
        masked results) and whose ``usage`` is the API's token usage as a
        plain dict, or None if it reported none.

        Raises :class:`BackendDeclined` when the safety system refused the
        request, and :class:`BackendFailed` for everything else that goes
        wrong (see :func:`map_openai_error`), never with the API key in it.
        """
        client = self.client()
        prompt = build_prompt(request.instruction, request.history)
        options: dict[str, Any] = {"model": self.model, "prompt": prompt}
        if request.size:
            options["size"] = request.size
        if request.quality:
            options["quality"] = request.quality

        if request.image is None:
            log.info("OpenAI images.generate model=%s size=%s", self.model, request.size)

            def call(client: openai.OpenAI) -> Any:
                return client.images.generate(**options)
        else:
            images = [("image.png", png_bytes(request.image), "image/png")]
            images += [
                (f"reference-{i}.png", png_bytes(ref), "image/png")
                for i, ref in enumerate(request.references, start=1)
            ]
            if request.mask is not None:
                options["mask"] = ("mask.png", mask_to_openai_png(request.mask, request.image.size), "image/png")
            log.info(
                "OpenAI images.edit model=%s images=%d mask=%s size=%s",
                self.model, len(images), request.mask is not None, request.size,
            )

            def call(client: openai.OpenAI) -> Any:
                return client.images.edit(image=images, **options)

        response, resent = self._send(client, call)
        result = EditResult(image=result_image(response), usage=usage_dict(response))
        if resent:
            result.message = (
                f"OpenAI failed at first ({'; '.join(resent)}), so Retouch sent the request again "
                f"({len(resent) + 1} requests in all). "
                + ("The failed request" if len(resent) == 1 else f"The {len(resent)} failed requests")
                + " made no image, so only the last one is billed."
            )
        return result

    def _send(self, client: openai.OpenAI, call: Callable[[openai.OpenAI], Any]) -> tuple[Any, list[str]]:
        """Run ``call`` with SDK retries off, resending it after unbilled
        failures (see the module docstring) at most :attr:`max_retries` times.

        Returns (the SDK response, a short description of each failed attempt,
        e.g. ``["HTTP 503"]``). Raises :class:`BackendDeclined` or
        :class:`BackendFailed`; after resends, the error says how many
        requests were sent.
        """
        single = self._single
        if single is None:
            single = self._single = client.with_options(max_retries=0)
        resent: list[str] = []
        while True:
            try:
                return call(single), resent
            except openai.OpenAIError as exc:
                mapped = map_openai_error(exc, timeout=self.timeout, api_key=self.api_key)
                wait = unbilled_retry_wait(exc, len(resent)) if len(resent) < self.max_retries else None
                if wait is None:
                    log.warning("OpenAI request failed (%s): %s", type(exc).__name__, mapped.message)
                    if resent and isinstance(mapped, BackendFailed):
                        mapped = BackendFailed(
                            f"{mapped.message} Retouch sent the request {len(resent) + 1} times; "
                            "none of them made an image, so none is billed.",
                            retryable=mapped.retryable,
                        )
                    raise mapped from None
                resent.append(_attempt_label(exc))
                log.warning("OpenAI request failed (%s, %s); sending it again in %.2g s (%d of at most %d)",
                            type(exc).__name__, resent[-1], wait, len(resent), self.max_retries)
                time.sleep(wait)
            except (json.JSONDecodeError, pydantic.ValidationError):
                raise BackendFailed(
                    "OpenAI sent back a response that is not valid JSON, so no image could be read "
                    "from it. Try again; if it keeps happening, check OPENAI_BASE_URL.",
                    retryable=False,
                ) from None



# ------------------------------------------------------------------ helpers


def png_bytes(image: Image.Image) -> bytes:
    """Encode ``image`` (RGB or RGBA) as the PNG file sent to the API. Returns bytes."""
    return encode_png(image)


def mask_to_openai_png(mask: Image.Image, size: tuple[int, int]) -> bytes:
    """Convert a Retouch mask to the PNG the Images API expects.

    Takes ``mask`` in mode ``L`` (255 = edit here, 0 = keep) and ``size``, the
    image's (width, height) in pixels; a mask of another size is resized to
    it (nearest neighbour). Returns the bytes of an RGBA PNG of that size that
    is fully transparent (alpha 0) wherever the mask is above 0 and fully
    opaque (alpha 255) elsewhere: the API edits where alpha is zero (OpenAI
    Images API reference, ``mask`` parameter of "Create image edit"). Partly
    selected pixels (feathered edges) are opened to the model so that the
    later composite through the original mask has edited pixels to blend.
    """
    m = mask.convert("L")
    if m.size != tuple(size):
        m = m.resize(tuple(size), Image.Resampling.NEAREST)
    alpha = m.point(lambda v: 0 if v > 0 else 255)
    out = Image.new("RGBA", m.size, (0, 0, 0, 255))
    out.putalpha(alpha)
    return encode_png(out)


def build_prompt(
    instruction: str,
    history: tuple[str, ...] | list[str] = (),
    *,
    max_items: int = HISTORY_MAX_ITEMS,
    max_chars: int = HISTORY_MAX_CHARS,
) -> str:
    """The prompt for one turn: the earlier instructions as context, then this one.

    Takes the person's ``instruction`` and ``history`` (earlier instructions,
    oldest first). Without history the prompt is the instruction itself.
    Otherwise it is::

        Earlier instructions in this conversation (already applied to the image):
        1. ...
        2. ...

        Now: <instruction>

    Only the last ``max_items`` earlier instructions are listed (a line says
    how many were left out), each on one line and cut to ``max_chars``
    characters. Returns the prompt string.
    """
    instruction = instruction.strip()
    items = [" ".join(h.split()) for h in history]
    items = [h for h in items if h]
    if not items:
        return instruction
    omitted = max(0, len(items) - max_items)
    items = items[omitted:]
    lines = ["Earlier instructions in this conversation (already applied to the image):"]
    if omitted:
        lines.append(f"({omitted} older instruction{'s' if omitted != 1 else ''} not shown)")
    for n, item in enumerate(items, start=1):
        if len(item) > max_chars:
            item = item[: max_chars - 1].rstrip() + "…"
        lines.append(f"{n}. {item}")
    return "\n".join(lines) + f"\n\nNow: {instruction}"


def result_image(response: object) -> Image.Image:
    """Decode the first image of an Images API response.

    Takes the SDK's ``ImagesResponse``. Returns a fully loaded RGB or RGBA
    PIL image decoded from ``data[0].b64_json`` (GPT image models always
    answer in ``b64_json``; OpenAI Images API reference, "The image response").

    Raises :class:`BackendFailed` (not retryable) when the response is not an
    ``ImagesResponse``, has no image, has only a ``url``, or when the data is
    not base64 or not a PNG/JPEG/WebP image.
    """
    data = getattr(response, "data", None)
    if not isinstance(response, openai.types.ImagesResponse):
        raise BackendFailed(
            "OpenAI sent back something that is not an Images API response, so no image "
            "could be read from it. Check OPENAI_BASE_URL.",
            retryable=False,
        )
    if not data:
        raise BackendFailed("OpenAI answered without any image.", retryable=False)
    first = data[0]
    b64 = getattr(first, "b64_json", None)
    if not b64:
        if getattr(first, "url", None):
            raise BackendFailed(
                "OpenAI answered with an image URL instead of the image data (b64_json) "
                "that GPT image models return; check RETOUCH_OPENAI_MODEL.",
                retryable=False,
            )
        raise BackendFailed("OpenAI answered without the image data (no b64_json).", retryable=False)
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BackendFailed(
            "OpenAI sent back image data that is not valid base64, so it cannot be shown.",
            retryable=False,
        ) from None
    try:
        return decode_image(
            raw,
            max_bytes=RESULT_MAX_BYTES,
            max_pixels=RESULT_MAX_PIXELS,
            what="image OpenAI sent back",
        )
    except ImageRejected as exc:
        raise BackendFailed(exc.message, retryable=False) from None


def usage_dict(response: object) -> dict | None:
    """The response's token usage as a plain JSON-able dict, or None.

    For example ``{"input_tokens": 50, "output_tokens": 4160,
    "total_tokens": 4210, "input_tokens_details": {...}}`` (token counts).
    """
    usage = getattr(response, "usage", None)
    if usage is None:
        return None
    if hasattr(usage, "model_dump"):
        return usage.model_dump(mode="json", exclude_none=True)
    return dict(usage) if isinstance(usage, dict) else None


def map_openai_error(exc: Exception, *, timeout: float, api_key: str | None = None) -> BackendError:
    """Translate an ``openai`` SDK exception into a Retouch backend error.

    Takes the exception, the request timeout in seconds (for the message) and
    the API key (scrubbed from any text that is passed on). Returns (does not
    raise) one of:

    - :class:`BackendDeclined` for HTTP 400 whose code or type mentions
      moderation or safety (``moderation_blocked``), with the API's reason;
    - :class:`BackendFailed` ``retryable=True`` for timeouts, connection
      errors, 408, 409, 429 (quoting ``Retry-After`` when sent; but a 429
      ``insufficient_quota`` is not retryable) and 5xx;
    - :class:`BackendFailed` ``retryable=False`` for 401 (key rejected),
      other 4xx (with the API's message) and anything else.
    """
    if isinstance(exc, openai.APITimeoutError):
        return BackendFailed(
            f"OpenAI did not answer within {timeout:g} seconds. Image requests can be slow; "
            "try again, or raise RETOUCH_OPENAI_TIMEOUT. Retouch did not resend it by itself: "
            "OpenAI may still have made, and billed, the image.",
            retryable=True,
        )
    if isinstance(exc, openai.APIConnectionError):
        return BackendFailed(
            "Could not connect to the OpenAI API. Check the network connection "
            "(and OPENAI_BASE_URL if it is set), then try again.",
            retryable=True,
        )
    if isinstance(exc, openai.APIStatusError):
        return _map_status_error(exc, api_key)
    if isinstance(exc, openai.APIResponseValidationError):
        return BackendFailed(
            "OpenAI sent back a response in an unexpected shape, so no image could be read from it.",
            retryable=False,
        )
    return BackendFailed(
        f"The OpenAI request failed ({type(exc).__name__}): {_redact(str(exc), api_key)}",
        retryable=False,
    )


def _map_status_error(exc: openai.APIStatusError, api_key: str | None) -> BackendError:
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    api_message = body.get("message") if isinstance(body.get("message"), str) else None
    reason = _redact(api_message.strip(), api_key) if api_message and api_message.strip() else None
    code = str(exc.code or body.get("code") or "")
    kind = str(exc.type or body.get("type") or "")
    request_id = f" (request id {exc.request_id})" if getattr(exc, "request_id", None) else ""

    if status == 401:
        return BackendFailed(
            "The OpenAI API key was rejected (HTTP 401). Check that OPENAI_API_KEY holds a "
            "valid, active key and restart Retouch." + request_id,
            retryable=False,
        )
    marker = f"{code} {kind}".lower()
    if status == 400 and ("moderation" in marker or "safety" in marker):
        because = f" It said: {_sentence(reason)}" if reason else ""
        return BackendDeclined(
            "OpenAI's safety system declined this request." + because
            + " Try rephrasing the instruction or using a different image."
        )
    if status == 429:
        if code == "insufficient_quota" or kind == "insufficient_quota":
            return BackendFailed(
                "The OpenAI account has run out of quota (HTTP 429 insufficient_quota). "
                + (_sentence(reason) if reason else "Check the plan and billing details of the account."),
                retryable=False,
            )
        wait = _retry_after(exc)
        return BackendFailed(
            "OpenAI is rate-limiting requests (HTTP 429)"
            + (f"; it asked to wait {wait} before trying again." if wait else "; wait a little and try again.")
            + request_id,
            retryable=True,
        )
    if status >= 500:
        return BackendFailed(
            f"OpenAI had a server problem (HTTP {status})"
            + (f": {_sentence(reason)}" if reason else ".")
            + " This is usually temporary; try again in a moment." + request_id,
            retryable=True,
        )
    if status in (408, 409):
        return BackendFailed(
            f"OpenAI could not finish the request (HTTP {status})"
            + (f": {_sentence(reason)}" if reason else ".")
            + " Try again." + request_id,
            retryable=True,
        )
    what = {403: "refused access", 404: "could not find what was asked for"}.get(status, "rejected the request")
    return BackendFailed(
        f"OpenAI {what} (HTTP {status})" + (f": {_sentence(reason)}" if reason else ".") + request_id,
        retryable=False,
    )


def unbilled_retry_wait(exc: Exception, resent: int) -> float | None:
    """How long to wait, in seconds, before resending a request that failed
    with ``exc`` after ``resent`` earlier resends; None = do not resend.

    Only failures that cannot have produced (and billed) an image are resent:
    a connection that could not be opened, and HTTP 408, 409, 429 (not
    ``insufficient_quota``) and 5xx. A ``Retry-After`` longer than
    :data:`RETRY_AFTER_MAX_SECONDS` means None.
    """
    if isinstance(exc, openai.APITimeoutError):
        # Only a connect timeout is safe: nothing reached OpenAI.
        return _backoff(resent) if type(exc.__cause__).__name__ == "ConnectTimeout" else None
    if isinstance(exc, openai.APIConnectionError):
        return _backoff(resent) if type(exc.__cause__).__name__ == "ConnectError" else None
    if not isinstance(exc, openai.APIStatusError):
        return None
    status = exc.status_code
    body = exc.body if isinstance(exc.body, dict) else {}
    if status == 429 and "insufficient_quota" in f"{exc.code} {exc.type} {body.get('code')} {body.get('type')}":
        return None
    if status not in (408, 409, 429) and status < 500:
        return None
    asked = _retry_after_seconds(exc)
    if asked is None:
        return _backoff(resent)
    return asked if asked <= RETRY_AFTER_MAX_SECONDS else None


def _backoff(resent: int) -> float:
    return min(RETRY_BACKOFF_SECONDS * (2 ** resent), RETRY_BACKOFF_MAX_SECONDS)


def _attempt_label(exc: Exception) -> str:
    """A few words naming a failed attempt, e.g. ``"HTTP 503"``."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APIConnectionError):
        return "could not connect"
    return type(exc).__name__


def _retry_after_seconds(exc: openai.APIStatusError) -> float | None:
    """The wait the server asked for (``retry-after-ms`` or a numeric
    ``Retry-After``), in seconds, or None."""
    headers = exc.response.headers if exc.response is not None else {}
    try:
        if headers.get("retry-after-ms") is not None:
            seconds = float(headers["retry-after-ms"]) / 1000
        elif headers.get("retry-after") is not None:
            seconds = float(headers["retry-after"])
        else:
            return None
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _retry_after(exc: openai.APIStatusError) -> str | None:
    """The wait the server asked for, as text such as ``"20 seconds"``, or None."""
    headers = exc.response.headers if exc.response is not None else {}
    ms = headers.get("retry-after-ms")
    value = headers.get("retry-after")
    try:
        if ms is not None:
            seconds = float(ms) / 1000
        elif value is not None:
            seconds = float(value)
        else:
            return None
    except ValueError:
        return f"until {value}" if value else None
    if seconds < 0:
        return None
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


def _sentence(text: str) -> str:
    """``text`` ending with a full stop (or other end punctuation)."""
    return text if text.endswith((".", "!", "?")) else text + "."


def _redact(text: str, api_key: str | None) -> str:
    """``text`` with the API key, and anything shaped like an OpenAI key, replaced by ``***``."""
    if api_key:
        text = text.replace(api_key, "***")
    return _KEY_PATTERN.sub("***", text)
