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
- GPT image models always return base64-encoded images in
  ``data[].b64_json`` and do not accept ``response_format``; they report
  token usage in ``usage``. Which model takes which size, quality,
  background and markup is the catalogue's business
  (:mod:`app.backends.openai_models`); :meth:`OpenAIBackend.check_options`
  applies it before anything is sent.
- With ``stream=True`` the answer is server-sent events: ``partial_images``
  (0 to 3) ``*.partial_image`` events, then one ``*.completed`` event with
  the image and usage (SDK ``openai/types/image_edit_stream_event.py`` and
  ``image_gen_stream_event.py``). A stream that breaks after it started is
  never resent.
- Errors come back as ``{"error": {"message", "type", "param", "code"}}``;
  a prompt or image refused by the safety system is HTTP 400 with code
  ``moderation_blocked``.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
import pydantic
from PIL import Image

from app.backends import openai_models as catalogue
from app.backends.base import (
    BackendDeclined,
    BackendError,
    BackendFailed,
    EditRequest,
    EditResult,
    ImageBackend,
    OptionRejected,
    PartialCallback,
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

#: How many times a result is offered to the pixel budget (each wait is
#: ``app.image_budget.WAIT_SECONDS``) before the turn fails: a paid image is
#: worth minutes of waiting.
RESULT_DECODE_ATTEMPTS = 10

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
    - ``model``: the default image model, e.g. ``"gpt-image-2.5-sunburst"``
      (a turn may choose another of :meth:`offered_models`).
    - ``models``: the models offered per turn (``RETOUCH_OPENAI_MODELS``);
      shut-down and unknown names are left out.
    - ``partial_images``: partial images to stream per turn (0 to 3; 0 =
      no streaming).
    - ``max_image_bytes``: largest image file sent; default the API's 50 MB.
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
    paid = True
    label = "OpenAI images"
    called = "The OpenAI image model"
    can_generate = True
    accepts_mask = True
    accepts_references = True
    accepts_markup = True  # per model: see check_options
    takes_size = takes_quality = takes_background = takes_model = True  # per model: see check_options

    def __init__(
        self,
        *,
        api_key: str | None = _UNSET,
        base_url: str | None = _UNSET,
        model: str | None = None,
        models: list[str] | None = None,
        partial_images: int | None = None,
        max_image_bytes: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        client: openai.OpenAI | None = None,
    ) -> None:
        settings = get_settings()
        self.api_key: str | None = settings.openai_api_key if api_key is _UNSET else api_key
        self.base_url: str | None = settings.openai_base_url if base_url is _UNSET else base_url
        self.model: str = model or settings.openai_model
        if models is None:
            models = [m.strip() for m in settings.openai_models.split(",") if m.strip()]
        self._listed = list(models)
        #: Offered models: the live, known ones of ``models``, the default first when live.
        self.models: list[str] = [m for m in dict.fromkeys([self.model, *models])
                                  if catalogue.model_problem(m) is None]
        self.partial_images: int = int(settings.openai_partial_images if partial_images is None else partial_images)
        #: Largest image file sent, in bytes (the API's limit; tests lower it).
        self.max_image_bytes: int = max_image_bytes or catalogue.MAX_IMAGE_BYTES
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

    def available(self) -> bool:
        """True when an API key (or a ready client) is configured."""
        return bool(self.api_key) or self._client is not None

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

    def offered_models(self) -> list[dict]:
        """The live models of ``RETOUCH_OPENAI_MODELS`` (default first), each
        as :meth:`ModelInfo.summary` describes it."""
        return [catalogue.CATALOGUE[m].summary() for m in self.models]

    def problems(self) -> list[str]:
        """What is wrong with the configured models, one sentence each (for
        the start-up log): a shut-down or unknown ``RETOUCH_OPENAI_MODEL``,
        and each such name in ``RETOUCH_OPENAI_MODELS``."""
        out = [p for p in [catalogue.model_problem(self.model)] if p]
        out += [p for p in (catalogue.model_problem(m, "RETOUCH_OPENAI_MODELS") for m in self._listed) if p]
        return out

    def check_options(self, *, model: str | None = None, size: str | None = None, quality: str | None = None,
                      background: str | None = None, image_size: tuple[int, int] | None = None,
                      has_mask: bool = False, has_markup: bool = False, reference_count: int = 0) -> None:
        """Refuse what the chosen model does not take, by the catalogue
        (:mod:`app.backends.openai_models`): a shut-down or unknown model
        (the message names ``RETOUCH_OPENAI_MODEL`` when it is the default),
        a size, quality or background outside the model's rules, markup on a
        model without it or together with a mask, and more than 16 images.
        Raises :class:`OptionRejected`."""
        name = model or self.model
        problem = catalogue.model_problem(name, "RETOUCH_OPENAI_MODEL" if not model else "the chosen model")
        if problem:
            raise OptionRejected(problem)
        info = catalogue.CATALOGUE[name]
        for check, value in ((catalogue.size_problem, size), (catalogue.quality_problem, quality),
                             (catalogue.background_problem, background)):
            if value and (why := check(info, value)):
                raise OptionRejected(why)
        if has_markup:
            if has_mask:
                raise OptionRejected("Drawing to guide an edit (markup) cannot be combined with a selected region.")
            if not info.markup:
                takes = ", ".join(m.name for m in catalogue.CATALOGUE.values() if m.live and m.markup)
                raise OptionRejected(
                    f"{name} does not take drawings to guide an edit (markup"
                    + (" is not documented for it" if info.markup is None else "")
                    + f"); choose one of {takes}.")
        images = reference_count + (1 if image_size else 0)
        if images > catalogue.MAX_INPUT_IMAGES:
            raise OptionRejected(f"OpenAI takes at most {catalogue.MAX_INPUT_IMAGES} images per edit; "
                                 f"this one has {images}.")

    def run(self, request: EditRequest) -> EditResult:
        """Send ``request`` to the Images API and return the new image.

        Without ``request.image`` this calls ``images.generate``; with one it
        calls ``images.edit`` with ``[current image, *references]`` and, if
        given, the mask (:func:`mask_to_openai_png`) or the markup. Each image
        is sent as PNG, or re-encoded to fit the API's 50 MB limit
        (:func:`fit_upload`; the result's ``message`` says so). ``size`` is
        sent when set; an edit without one asks for the image's own shape
        (:func:`app.backends.openai_models.matching_size`). ``quality`` and
        ``background`` are sent when set, ``safety_identifier`` when given.
        With ``request.on_partial`` and ``partial_images`` > 0 the request
        streams (``stream=True``) and each partial image is passed to
        ``on_partial`` as it arrives. The prompt is :func:`build_prompt` of
        the instruction and history.

        Returns an :class:`EditResult` whose ``image`` is RGB or RGBA at the
        size the API chose, ``usage`` the API's token usage as a plain dict
        (or None), and ``output`` the model and the effective size, quality,
        background and format the API reported.

        Raises :class:`BackendDeclined` when the safety system refused the
        request, :class:`OptionRejected` for options the model does not
        take, and :class:`BackendFailed` for everything else that goes wrong
        (see :func:`map_openai_error`), never with the API key in it. A
        stream that breaks after it started is not resent: OpenAI may have
        billed it.
        """
        model = request.model or self.model
        info = catalogue.CATALOGUE[model]  # check_options (in edit) refused unknown ones
        client = self.client()
        prompt = build_prompt(request.instruction, request.history)
        options: dict[str, Any] = {"model": model, "prompt": prompt, **image_options(request, info)}
        notes: list[str] = []
        if request.safety_identifier:
            options["safety_identifier"] = request.safety_identifier
        streaming = bool(request.on_partial and self.partial_images > 0 and info.streaming)
        if streaming:
            options["stream"] = True
            options["partial_images"] = min(self.partial_images, catalogue.MAX_PARTIAL_IMAGES)

        if request.image is None:
            log.info("OpenAI images.generate model=%s size=%s stream=%s", model, request.size, streaming)

            def call(client: openai.OpenAI) -> Any:
                return client.images.generate(**options)
        else:
            first = fit_upload(request.image, "image.png", self.max_image_bytes, "The image")
            images = [first.file]
            notes += [first.note] if first.note else []
            for i, ref in enumerate(request.references, start=1):
                fitted = fit_upload(ref, f"reference-{i}.png", self.max_image_bytes, f"Reference image {i}")
                images.append(fitted.file)
                notes += [fitted.note] if fitted.note else []
            if request.mask is not None:
                mask = mask_to_openai_png(request.mask, first.size)
                if len(mask) >= catalogue.MAX_MASK_BYTES:
                    raise OptionRejected(
                        f"The selected region's mask is {len(mask) / 1e6:.1f} MB as a PNG; OpenAI takes masks "
                        "under 4 MB. Select a simpler region (fewer, larger strokes).")
                options["mask"] = ("mask.png", mask, "image/png")
            if request.markup is not None:
                markup = request.markup.convert("RGBA")
                if markup.size != first.size:
                    markup = markup.resize(first.size, Image.Resampling.NEAREST)
                options["markup"] = ("markup.png", encode_png(markup), "image/png")
            log.info(
                "OpenAI images.edit model=%s images=%d mask=%s markup=%s size=%s stream=%s",
                model, len(images), request.mask is not None, request.markup is not None,
                options.get("size"), streaming,
            )

            def call(client: openai.OpenAI) -> Any:
                return client.images.edit(image=images, **options)

        response, resent = self._send(client, call)
        if streaming:
            result = read_stream(response, request.on_partial)
        else:
            raw = result_bytes(response)
            result = EditResult(image=decode_image_bytes(raw), usage=usage_dict(response),
                                output=output_dict(response), source=raw)
        result.output = {"model": model, **(result.output or {})}
        if resent:
            notes.append(
                f"OpenAI failed at first ({'; '.join(resent)}), so Retouch sent the request again "
                f"({len(resent) + 1} requests in all). "
                + ("The failed request" if len(resent) == 1 else f"The {len(resent)} failed requests")
                + " made no image, so only the last one is billed."
            )
        if notes:
            result.message = " ".join(notes)
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


def image_options(request: EditRequest, info: catalogue.ModelInfo) -> dict[str, Any]:
    """The ``size``, ``quality`` and ``background`` a request sends (the
    Images API's parameters and the image_generation tool's alike): the size
    asked for, else for an edit the image's own shape
    (:func:`app.backends.openai_models.matching_size`); quality and
    background only when chosen (``auto`` is the API's default)."""
    out: dict[str, Any] = {}
    if request.size:
        out["size"] = request.size
    elif request.image is not None:
        out["size"] = catalogue.matching_size(info, *request.image.size)
    if request.quality:
        out["quality"] = request.quality
    if request.background and request.background != "auto":
        out["background"] = request.background
    return out


def png_bytes(image: Image.Image) -> bytes:
    """Encode ``image`` (RGB or RGBA) as the PNG file sent to the API. Returns bytes."""
    return encode_png(image)


@dataclass
class FittedUpload:
    """An image as sent to the API: ``file`` the SDK's (name, bytes, MIME
    type) tuple, ``size`` its (width, height) in pixels, and ``note`` a
    sentence saying how it was changed to fit, or None when sent as is."""

    file: tuple[str, bytes, str]
    size: tuple[int, int]
    note: str | None = None


def fit_upload(image: Image.Image, filename: str, max_bytes: int, what: str) -> FittedUpload:
    """Encode ``image`` for ``images.edit`` under ``max_bytes`` bytes (the
    API takes png, webp or jpg files "less than 50MB", SDK
    ``image_edit_params.py``).

    Lossless PNG when it fits. Otherwise JPEG at quality 95 (WebP at quality
    95 for images with transparency); if that is still too large, the image
    is scaled down (Lanczos) until it fits. Returns a :class:`FittedUpload`
    whose ``note`` (starting with ``what``) says what was done.
    """
    png = png_bytes(image)
    if len(png) < max_bytes:
        return FittedUpload((filename, png, "image/png"), image.size)
    alpha = "A" in image.mode
    fmt, mime = ("WEBP", "image/webp") if alpha else ("JPEG", "image/jpeg")
    current = image
    while True:
        buf = io.BytesIO()
        current.convert("RGBA" if alpha else "RGB").save(buf, format=fmt, quality=95)
        data = buf.getvalue()
        if len(data) < max_bytes or min(current.size) <= 16:
            break
        scale = math.sqrt(max_bytes / len(data)) * 0.9
        current = image.resize((max(16, int(current.width * scale)), max(16, int(current.height * scale))),
                               Image.Resampling.LANCZOS)
    scaled = f", scaled to {current.width}x{current.height}" if current.size != image.size else ""
    note = (f"{what} is {len(png) / 1e6:.1f} MB as a PNG, over OpenAI's {max_bytes / 1e6:g} MB limit, "
            f"so Retouch sent it as {'WebP' if alpha else 'JPEG'} "
            f"(quality 95{scaled}, {len(data) / 1e6:.1f} MB).")
    name = filename.rsplit(".", 1)[0] + (".webp" if alpha else ".jpg")
    return FittedUpload((name, data, mime), current.size, note)


def read_stream(stream: Any, on_partial: PartialCallback | None) -> EditResult:
    """Read an ``images.edit``/``images.generate`` event stream (the SDK's
    ``ImageEditStreamEvent`` / ``ImageGenStreamEvent``): pass each
    ``*.partial_image`` frame to ``on_partial`` (index, image) and return the
    ``*.completed`` event's image (and its file as ``source``), usage and
    output settings.

    Raises :class:`BackendFailed` (not retryable: the request may have been
    billed) when the stream breaks, reports an error, or ends without a
    completed event; nothing of it is kept.
    """
    partials = 0
    completed = None
    try:
        for event in stream:
            kind = getattr(event, "type", "")
            if kind.endswith(".partial_image"):
                partials += 1
                if on_partial is not None:
                    on_partial(int(event.partial_image_index), decode_b64_image(event.b64_json))
            elif kind.endswith(".completed"):
                completed = event
    except (openai.OpenAIError, httpx2.HTTPError, OSError, ValueError) as exc:  # ValueError: bad JSON or event
        body = getattr(exc, "body", None)
        code = str(body.get("code") or body.get("type") or "") if isinstance(body, dict) else ""
        if "moderation" in code or "safety" in code:  # refused mid-stream: a decline, as before the stream
            message = body.get("message")
            raise moderation_decline(body, str(message) if message else None) from None
        detail = ""
        if isinstance(exc, openai.APIError) and getattr(exc, "message", None):
            detail = f" It said: {_sentence(str(exc.message))}"
        raise BackendFailed(
            f"The connection to OpenAI broke after {partials} partial image{'s' if partials != 1 else ''}, "
            "before the final image." + detail + " Nothing was saved. Retouch did not resend it by itself: "
            "OpenAI may have billed it. You can try again.",
            retryable=False,
        ) from None
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    if completed is None:
        raise BackendFailed(
            f"OpenAI's stream ended after {partials} partial image{'s' if partials != 1 else ''} without the "
            "final image. Nothing was saved; you can try again.",
            retryable=False,
        )
    raw = decode_b64_bytes(completed.b64_json)
    return EditResult(image=decode_image_bytes(raw), usage=usage_dict(completed),
                      output=output_dict(completed), source=raw)


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
    return decode_image_bytes(result_bytes(response))


def result_bytes(response: object) -> bytes:
    """The file of the first image of an Images API response, exactly as
    OpenAI sent it (``data[0].b64_json`` decoded, not yet checked to be an
    image; :func:`decode_image_bytes` does that). Raises
    :class:`BackendFailed` as :func:`result_image` does."""
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
    return decode_b64_bytes(b64)


def decode_b64_image(b64: str) -> Image.Image:
    """Decode one base64 image of the API (a final or a partial image) into
    a loaded RGB or RGBA PIL image. Raises :class:`BackendFailed` (not
    retryable) when it is not base64 or not a PNG/JPEG/WebP image within
    :data:`RESULT_MAX_BYTES` and :data:`RESULT_MAX_PIXELS`."""
    return decode_image_bytes(decode_b64_bytes(b64))


def decode_b64_bytes(b64: str) -> bytes:
    """The bytes of one base64 image of the API (the file OpenAI made, with
    whatever metadata, such as a C2PA manifest, it embedded). Raises
    :class:`BackendFailed` (not retryable) when it is not base64."""
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BackendFailed(
            "OpenAI sent back image data that is not valid base64, so it cannot be shown.",
            retryable=False,
        ) from None


def decode_image_bytes(raw: bytes) -> Image.Image:
    """Decode an image file OpenAI sent (see :func:`decode_b64_image`) into
    a loaded RGB or RGBA PIL image; raises :class:`BackendFailed` as it does."""
    for attempt in range(RESULT_DECODE_ATTEMPTS):
        try:
            return decode_image(
                raw,
                max_bytes=RESULT_MAX_BYTES,
                max_pixels=RESULT_MAX_PIXELS,
                what="image OpenAI sent back",
            )
        except ImageRejected as exc:
            # 503: the process-wide pixel budget (app/image_budget.py) stayed full. The image is
            # made and billed already, so wait again rather than lose it.
            if exc.status != 503 or attempt == RESULT_DECODE_ATTEMPTS - 1:
                raise BackendFailed(exc.message, retryable=False) from None
            log.warning("waiting again for room to decode an OpenAI result (attempt %d)", attempt + 2)
    raise AssertionError("unreachable")


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


def output_dict(response: object) -> dict:
    """What the API reports it made, as a plain dict: the effective
    ``size``, ``quality``, ``background`` and ``output_format`` (these
    matter when ``auto`` was sent; ``ImagesResponse`` and the completed
    stream events carry them). Missing ones are left out."""
    out = {}
    for key in ("size", "quality", "background", "output_format"):
        value = getattr(response, key, None)
        if isinstance(value, str) and value:
            out[key] = value
    return out


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


def moderation_decline(error: dict, reason: str | None) -> BackendDeclined:
    """The decline for a request OpenAI's safety system refused (code
    ``moderation_blocked``), with the API's ``reason`` and the categories
    when the error object lists them (``moderation_categories`` or
    ``categories``)."""
    because = f" It said: {_sentence(reason)}" if reason else ""
    categories = error.get("moderation_categories") or error.get("categories")
    if isinstance(categories, list) and categories:
        because += " Categories: " + ", ".join(str(c).replace("_", " ") for c in categories) + "."
    return BackendDeclined("OpenAI's safety system declined this request." + because
                           + " Try rephrasing the instruction or using a different image.")


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
    param = str(exc.param or body.get("param") or "") if hasattr(exc, "param") else str(body.get("param") or "")
    if status == 400 and ("moderation" in marker or "safety" in marker):
        return moderation_decline(body, reason)
    if code == "model_not_found" or param == "model":
        return BackendFailed(
            "OpenAI does not offer the image model this turn asked for"
            + (f" ({_sentence(reason)})" if reason else ".")
            + " Set RETOUCH_OPENAI_MODEL (and RETOUCH_OPENAI_MODELS) to live models: "
            + ", ".join(catalogue.live_models()) + "." + request_id,
            retryable=False,
        )
    if code == "invalid_api_key" or (status == 403 and "key" in marker):
        return BackendFailed(
            "OpenAI refused the API key. Check that OPENAI_API_KEY holds a valid, active key "
            "and restart Retouch." + request_id,
            retryable=False,
        )
    if status == 400 and param in ("size", "quality", "background", "input_fidelity", "markup", "mask",
                                   "image", "prompt", "partial_images", "n", "output_format"):
        what = {"size": "the size", "quality": "the quality", "background": "the background",
                "input_fidelity": "the input fidelity", "markup": "the drawing (markup)",
                "mask": "the selected region (mask)", "image": "an image", "prompt": "the instruction",
                "partial_images": "the number of partial images", "n": "the number of images",
                "output_format": "the output format"}[param]
        return BackendFailed(
            f"OpenAI refused {what} of this request" + (f": {_sentence(reason)}" if reason else ".")
            + " Change it in Options and try again." + request_id,
            retryable=False,
        )
    if code in ("billing_hard_limit_reached", "billing_not_active"):
        return BackendFailed(
            "The OpenAI account cannot be billed (" + code.replace("_", " ") + "). "
            + (_sentence(reason) if reason else "Check the plan and billing details of the account."),
            retryable=False,
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
