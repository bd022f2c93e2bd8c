"""The image backend interface: one request in, one image (or a decline) out.

Shaped like ``llm.Model`` in simonw/llm: a small abstract class with a name and
capability flags, and one method to implement (:meth:`ImageBackend.run`).
Callers use :meth:`ImageBackend.edit`, which checks the request against the
capability flags and enforces the mask guarantee for every backend.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from PIL import Image


class BackendError(Exception):
    """Base class for errors a backend raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackendDeclined(BackendError):
    """The backend cannot do this instruction.

    ``message`` is shown to the person: it says what was understood, what
    cannot be done, and what the backend can do instead. No version is made.
    """


class BackendFailed(BackendError):
    """The backend tried and failed (network, rate limit, server error...).

    ``retryable`` is True when sending the same request again later may work
    (timeouts, HTTP 429 and 5xx), False when it will not (bad key, bad request).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


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
    - ``size``: requested output size ``"WIDTHxHEIGHT"`` in pixels, or None.
    - ``quality``: ``"low"``, ``"medium"``, ``"high"`` or None (backend default).
    """

    instruction: str
    image: Image.Image | None = None
    mask: Image.Image | None = None
    references: tuple[Image.Image, ...] = ()
    history: tuple[str, ...] = ()
    size: str | None = None
    quality: str | None = None


@dataclass
class EditResult:
    """A backend's answer: the new image, an optional note for the person
    (for example what was done), and the token usage the backend reported
    (a dict such as ``{"input_tokens": 10, "output_tokens": 4160}``), if any."""

    image: Image.Image
    message: str | None = None
    usage: dict | None = field(default=None)


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
                f"The {self.name} backend cannot create an image from text alone. "
                "Upload a photo first, or use a backend that generates images."
            )
        if request.mask is not None and not self.accepts_mask:
            raise BackendDeclined(f"The {self.name} backend cannot edit a selected region.")
        if request.references and not self.accepts_references:
            raise BackendDeclined(f"The {self.name} backend cannot use reference images.")
        result = self.run(request)
        if request.mask is not None and request.image is not None:
            result.image = composite_through_mask(request.image, result.image, request.mask)
        return result


def composite_through_mask(original: Image.Image, edited: Image.Image, mask: Image.Image) -> Image.Image:
    """Take ``edited`` where ``mask`` is 255 and ``original`` everywhere else.

    ``mask`` is mode ``L`` of ``original``'s size; values between 0 and 255
    blend. ``edited`` is resized (Lanczos) to ``original``'s size when it
    differs. The result has ``original``'s mode, unless either image has an
    alpha channel, in which case it is ``RGBA``. Pixels where the mask is 0
    are bit-identical to ``original``.
    """
    mode = "RGBA" if "A" in original.mode or "A" in edited.mode else original.mode
    if mode not in ("RGB", "RGBA"):
        mode = "RGB"
    base = original.convert(mode) if original.mode != mode else original
    top = edited.convert(mode) if edited.mode != mode else edited
    if top.size != base.size:
        top = top.resize(base.size, Image.Resampling.LANCZOS)
    return Image.composite(top, base, mask.convert("L"))
