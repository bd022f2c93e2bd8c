"""The operation registry: every operation declares its phrases, parameter
parsing, pixel work and summary in one class, registered with :func:`register`.

The parser (:mod:`.parser`) finds each operation's phrases in the instruction;
adding an operation means writing one class in one ``operations`` module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .picture import Picture
from .rx import Phrase

EDIT = "edit"
GENERATE = "generate"


class NotUnderstood(Exception):
    """An operation recognised its phrase but not its details (e.g. "rotate" with
    no angle). ``message`` tells the person what to say instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class ParseContext:
    """What the parser knows besides the text: ``mode`` ("edit" or "generate"),
    whether a mask was given, the quoted strings (placeholder index -> text)
    and how many reference images are attached."""

    mode: str
    has_mask: bool
    quotes: list[str]
    references: int = 0


@dataclass
class ApplyContext:
    """What an operation may need besides the picture.

    - ``mask``: ``(H, W)`` uint8 array (255 = edit) or None.
    - ``generated``: True when the picture is a fresh canvas made from text.
    - ``references``: the attached reference images (PIL, ``RGB``/``RGBA``).
    """

    mask: np.ndarray | None = None
    generated: bool = False
    references: tuple[Any, ...] = ()


class Operation:
    """One kind of edit. Subclasses set the class attributes and override
    :meth:`parse`, :meth:`apply` and :meth:`describe`.

    - ``name``: short id ("grayscale").
    - ``phrases``: regex (on normalised text) -> default parameters.
    - ``modes``: where the operation is offered ("edit", "generate").
    - ``geometry``: changes the size or arrangement of pixels; refused with a mask.
    - ``needs_mask``: only makes sense on a selected region.
    - ``takes_strength``: accepts "slightly", "a lot", "by 20%" nearby.
    - ``priority``: breaks ties between equally long matches (lower wins).
    - ``stage``: 0 for operations that make the backdrop (run first), 1 for
      patterns drawn over it, else 2.
    - ``uses_references``: uses the first attached reference image.

    A phrase whose defaults contain ``"_refs_only": True`` is only looked for
    when a reference image is attached.
    """

    name: ClassVar[str] = "operation"
    phrases: ClassVar[dict[str, dict[str, Any]]] = {}
    modes: ClassVar[frozenset[str]] = frozenset({EDIT, GENERATE})
    geometry: ClassVar[bool] = False
    needs_mask: ClassVar[bool] = False
    takes_strength: ClassVar[bool] = False
    priority: ClassVar[int] = 50
    stage: ClassVar[int] = 2
    uses_references: ClassVar[bool] = False
    compiled: ClassVar[list[tuple[Phrase, dict[str, Any]]]] = []

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        """Refine ``params`` (a copy of the matched phrase's defaults, plus
        ``strength``/``percent`` from nearby words) from the matched ``phrase``.
        Returns the parameters; raises :class:`NotUnderstood`."""
        return params

    @classmethod
    def finalize(cls, steps: list[Step]) -> None:
        """Adjust parameters once the whole plan is known (e.g. meme text
        positions). ``steps`` is every step of the instruction, in order."""

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        """Return the edited picture. May raise ``BackendDeclined``."""
        raise NotImplementedError

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        """A short past-tense summary, e.g. "converted to black and white"."""
        return cls.name


@dataclass
class Step:
    """One parsed operation: the class, its parameters, and where it was found
    (``span`` in normalised text, ``phrase`` the matched words)."""

    op: type[Operation]
    params: dict[str, Any]
    span: tuple[int, int]
    phrase: str
    extra_spans: list[tuple[int, int]] = field(default_factory=list)


_REGISTRY: list[type[Operation]] = []


def register(cls: type[Operation]) -> type[Operation]:
    """Class decorator: compile ``cls.phrases`` (one :class:`~.rx.Phrase` per
    rule, matched leftmost-longest) and add ``cls`` to the registry under its
    unique ``name``. Raises ``ValueError`` for a name already taken."""
    if any(op.name == cls.name for op in _REGISTRY):
        raise ValueError(f"operation name {cls.name!r} is already registered")
    cls.compiled = [(Phrase(pattern), defaults) for pattern, defaults in cls.phrases.items()]
    _REGISTRY.append(cls)
    return cls


def operations(mode: str) -> list[type[Operation]]:
    """All registered operations offered in ``mode`` ("edit" or "generate")."""
    from . import operations as _load  # noqa: F401  (registers the operation modules)
    from . import generate as _gen  # noqa: F401

    return [op for op in _REGISTRY if mode in op.modes]
