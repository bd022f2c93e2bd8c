"""The image backend interface: one request in, one image (or a decline) out.

Shaped like ``llm.Model`` in simonw/llm: a small abstract class with a name and
capability flags, and one method to implement (:meth:`ImageBackend.run`).
Callers use :meth:`ImageBackend.edit`, which checks the request against the
capability flags and enforces the mask guarantee for every backend.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from PIL import Image, ImageOps


class BackendError(Exception):
    """Base class for errors a backend raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackendDeclined(BackendError):
    """The backend cannot do this instruction.

    ``message`` is shown to the person: it says what was understood, what
    cannot be done, and what the backend can do instead. No version is made.
    ``suggestions`` are those alternatives as instructions that would work
    (plain text, no quotes), which the page offers as buttons that fill the
    composer; ``message`` still names them, for the CLI and the API.
    """

    def __init__(self, message: str, *, suggestions: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.suggestions = tuple(suggestions)


class BackendFailed(BackendError):
    """The backend tried and failed (network, rate limit, server error...).

    ``retryable`` is True when sending the same request again later may work
    (timeouts, HTTP 429 and 5xx), False when it will not (bad key, bad request).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class OptionRejected(BackendFailed):
    """An option the backend (or the chosen model) does not take; ``message``
    states the rule, e.g. "1000x100: the ratio must be between 1:3 and 3:1."
    The service layer answers it with 422, ``retouch edit`` with exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


#: Called with (0-based index, image) for each partial image a backend streams.
PartialCallback = Callable[[int, Image.Image], None]
#: Called with the assistant's words so far, each time more of them stream in.
TextCallback = Callable[[str], None]


@dataclass(frozen=True)
class EditRequest:
    """Everything a backend needs for one turn.

    - ``instruction``: the person's text, 1 to 4000 characters.
    - ``image``: the thread's current version (mode ``RGB`` or ``RGBA``), or
      None when generating from text.
    - ``mask``: mode ``L``, the same size as ``image``; 255 marks pixels to
      edit, 0 pixels to keep. Only given together with ``image``.
    - ``references``: extra images the person attached (``RGB``/``RGBA``).
    - ``history``: earlier instructions that led to ``image``, oldest first.
    - ``size``: requested output size ``"WIDTHxHEIGHT"`` in pixels, or None
      (generations: the backend's default; edits: the image's shape).
    - ``quality``: ``"low"``, ``"medium"``, ``"high"`` (``"xhigh"``, ``"max"``
      where the model takes them) or None (backend default).
    - ``model``: the backend's model to use, or None for its default.
    - ``background``: ``"opaque"``, ``"transparent"`` or None (auto).
    - ``markup``: mode ``RGBA``, the size of ``image``: strokes drawn to guide
      the edit, transparent elsewhere. Never together with ``mask``.
    - ``safety_identifier``: a stable, non-identifying id of the person (a
      hash), for the vendor's abuse monitoring.
    - ``on_partial``: called with each partial image while the backend
      streams (from the backend's thread); None = do not stream.
    - ``previous_response_id``: conversational backends (``openai-chat``)
      continue this stored response, the one that made ``image``; None =
      start a fresh conversation, sending ``history`` as text.
    - ``restart_reason``: when a conversation existed but cannot be
      continued, a sentence saying why (shown in the turn); None otherwise.
    - ``on_text``: called with the assistant's words so far as they stream.
    """

    instruction: str
    image: Image.Image | None = None
    mask: Image.Image | None = None
    references: tuple[Image.Image, ...] = ()
    history: tuple[str, ...] = ()
    size: str | None = None
    quality: str | None = None
    model: str | None = None
    background: str | None = None
    markup: Image.Image | None = None
    safety_identifier: str | None = None
    on_partial: PartialCallback | None = field(default=None, compare=False)
    previous_response_id: str | None = None
    restart_reason: str | None = None
    on_text: TextCallback | None = field(default=None, compare=False)


@dataclass
class EditResult:
    """A backend's answer: the new image, an optional note for the person
    (for example what was done), the token usage the backend reported (a
    dict such as ``{"input_tokens": 10, "output_tokens": 4160}``), if any,
    and what it reports having made (``{"model", "size", "quality",
    "background", "output_format"}``), if anything.

    Conversational backends also fill in ``reply`` (the assistant's words),
    ``revised_prompt`` (the prompt the image tool used), ``response_id``
    (the stored response to continue from next time) and ``context``
    (``"chained"``: continued ``previous_response_id``; ``"fresh"``: a new
    conversation; ``"restarted"``: a new one although there was history).
    ``image`` is None when the model answered in words only (a question
    back, or a refusal): the turn then ends ``answered``, with no version.

    ``source`` is the final image file exactly as the vendor sent it (the
    decoded base64 bytes: PNG, JPEG or WebP), or None. Backends that receive
    a file fill it in (the OpenAI backends; never for partial images), so
    that the worker can keep a C2PA manifest the vendor embedded in it
    (``app/provenance.py``); ``image`` stays the decoded pixels.
    """

    image: Image.Image | None
    message: str | None = None
    usage: dict | None = field(default=None)
    output: dict | None = field(default=None)
    reply: str | None = None
    revised_prompt: str | None = None
    response_id: str | None = None
    context: str | None = None
    source: bytes | None = field(default=None, repr=False)


class ImageBackend(ABC):
    """A way of turning an :class:`EditRequest` into an image.

    Subclasses set ``name`` and the capability flags and implement
    :meth:`run`; they register themselves with
    :func:`app.backends.register_backend`.
    """

    name: ClassVar[str]
    #: Makes an image from text alone (``request.image`` is None).
    can_generate: ClassVar[bool] = False
    #: Honours ``request.mask``. Masked results are composited either way.
    accepts_mask: ClassVar[bool] = False
    #: Uses ``request.references``.
    accepts_references: ClassVar[bool] = False
    #: Uses ``request.markup`` (strokes that guide an edit).
    accepts_markup: ClassVar[bool] = False
    #: Keeps a conversation (``previous_response_id``) and may answer in words.
    conversational: ClassVar[bool] = False
    #: Conversational backends: whether the vendor stores responses, so a
    #: later turn can continue one (``EditRequest.previous_response_id``),
    #: and the longest chain of turns continued before starting afresh.
    stores_responses: bool = False
    chain_max: int = 0
    #: A short name for people (the composer's backend picker, turn footers).
    label: ClassVar[str] = ""
    #: How refusals name this backend to a person, with no internal names
    #: ("This offline editor cannot edit a selected region.").
    called: ClassVar[str] = "This backend"
    #: The same request always gives the same image (``local``): regenerating
    #: a turn would only repeat it, so Retouch neither offers nor accepts it.
    deterministic: ClassVar[bool] = False
    #: Runs on a paid service that bills per request (OpenAI): a turn stopped
    #: while it runs says that the service may still bill it.
    paid: ClassVar[bool] = False
    #: The options the backend acts on (``app/option_notes.py`` tells the person
    #: when a turn asked for one the backend ignores): ``request.size`` (the
    #: result has that size), ``request.quality``, ``request.background`` and
    #: ``request.model``. False = the option is accepted but has no effect.
    takes_size: ClassVar[bool] = False
    takes_quality: ClassVar[bool] = False
    takes_background: ClassVar[bool] = False
    takes_model: ClassVar[bool] = False

    def available(self) -> bool:
        """Whether this backend can run here (e.g. an API key is set); the
        composer only offers available backends."""
        return True

    def offered_models(self) -> list[dict]:
        """The models a person may pick per turn, each a dict with at least
        ``name`` (see ``ModelInfo.summary``); the first is the default.
        Empty for backends without a choice of model."""
        return []

    def problems(self) -> list[str]:
        """What is wrong with this backend's configuration, one sentence
        each, for the start-up log (``app/main.py``); empty when nothing is."""
        return []

    def check_options(self, *, model: str | None = None, size: str | None = None, quality: str | None = None,
                      background: str | None = None, image_size: tuple[int, int] | None = None,
                      has_mask: bool = False, has_markup: bool = False, reference_count: int = 0) -> None:
        """Refuse options this backend (or the chosen model) does not take,
        before anything is stored or sent. ``image_size`` is the image being
        edited, (width, height) pixels, or None for a generation.

        Raises :class:`OptionRejected` with the rule. The default refuses a
        model choice and markup, which backends must opt into.
        """
        if model:
            raise OptionRejected(f"{self.called} has no models to choose from.")
        if has_markup and not self.accepts_markup:
            raise OptionRejected(f"{self.called} cannot use drawing to guide an edit (markup).")
        if background == "transparent":
            raise OptionRejected(f"{self.called} cannot make a transparent background on request.")

    @abstractmethod
    def run(self, request: EditRequest) -> EditResult:
        """Do the edit. Raises :class:`BackendDeclined` or :class:`BackendFailed`."""

    def edit(self, request: EditRequest) -> EditResult:
        """Run ``request`` and enforce Retouch's guarantees.

        Declines requests the capability flags rule out. When a mask is
        given, every pixel outside it in the result is bit-identical to the
        input: the backend's output is resized to the input's size if needed
        and composited over the input through the mask (OpenAI treats masks
        only as guidance; Retouch guarantees them).

        Returns an :class:`EditResult`; raises :class:`BackendDeclined` or
        :class:`BackendFailed`.
        """
        if request.image is None and not self.can_generate:
            raise BackendDeclined(
                f"{self.called} cannot create an image from text alone. "
                "Upload a photo first, or use a backend that generates images."
            )
        if request.mask is not None and not self.accepts_mask:
            raise BackendDeclined(f"{self.called} cannot edit a selected region.")
        if request.references and not self.accepts_references:
            raise BackendDeclined(f"{self.called} cannot use reference images.")
        if request.markup is not None and request.mask is not None:
            raise OptionRejected("Drawing to guide an edit (markup) cannot be combined with a selected region.")
        self.check_options(model=request.model, size=request.size, quality=request.quality,
                           background=request.background,
                           image_size=request.image.size if request.image is not None else None,
                           has_mask=request.mask is not None, has_markup=request.markup is not None,
                           reference_count=len(request.references))
        result = self.run(request)
        if result.image is not None and request.mask is not None and request.image is not None:
            result.image = composite_through_mask(request.image, result.image, request.mask)
        return result


def composite_through_mask(original: Image.Image, edited: Image.Image, mask: Image.Image) -> Image.Image:
    """Take ``edited`` where ``mask`` is 255 and ``original`` everywhere else.

    ``mask`` is mode ``L`` of ``original``'s size; values between 0 and 255
    blend. When ``edited`` has another size, it is scaled to cover
    ``original`` and centre-cropped (``ImageOps.fit``, Lanczos), so a result
    of a slightly different aspect ratio is never stretched. The result has ``original``'s mode, unless either image has an
    alpha channel, in which case it is ``RGBA``. Pixels where the mask is 0
    are bit-identical to ``original``.
    """
    mode = "RGBA" if "A" in original.mode or "A" in edited.mode else original.mode
    if mode not in ("RGB", "RGBA"):
        mode = "RGB"
    base = original.convert(mode) if original.mode != mode else original
    top = edited.convert(mode) if edited.mode != mode else edited
    if top.size != base.size:
        top = ImageOps.fit(top, base.size, Image.Resampling.LANCZOS)
    return Image.composite(top, base, mask.convert("L"))
