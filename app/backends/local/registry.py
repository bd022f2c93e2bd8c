"""The operation registry: every operation declares its phrases, parameter
parsing, pixel work and summary in one class, registered with :func:`register`.

The parser (:mod:`.parser`) finds each operation's phrases in the instruction;
adding an operation means writing one class in one ``operations`` module.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np

from .functions import ParamError, fields_of
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
    #: The family the operation belongs to ("tone", "geometry", "text",
    #: "filters", "styles", "neural", "regions", "faces", "background",
    #: "canvas"); set from the defining module by :func:`register`.
    family: ClassVar[str] = ""
    compiled: ClassVar[list[tuple[Phrase, dict[str, Any]]]] = []
    #: Typed parameters (a frozen dataclass, units and bounds in its
    #: docstring) and the pure pixel function ``f(PIL image, params) -> PIL
    #: image``. Operations that set both get :meth:`apply` for free. Where
    #: the function needs more than the picture (a mask, detected face
    #: boxes, a subject mask, a reference image: extra explicit arguments),
    #: the operation's own :meth:`apply` finds or takes them and calls it.
    Params: ClassVar[type | None] = None
    function: ClassVar[Callable[..., Any] | None] = None

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
    def quantities(cls, params: dict[str, Any]) -> set[float]:
        """The numbers the parameters account for, to check that every number
        the person wrote was used. By default every number in ``params``
        (strings included), also read as a percentage (0.25 -> 25) and,
        for ``stated``, as given. Operations that transform what was said
        (e.g. 270° anticlockwise stored as 90) keep the original in ``stated``."""
        found: set[float] = set()

        def walk(v: Any) -> None:
            if isinstance(v, bool) or v is None:
                return
            if isinstance(v, (int, float)):
                found.update((float(v), round(float(v) * 100, 6)))
            elif isinstance(v, str):
                found.update(float(n) for n in re.findall(r"\d+(?:\.\d+)?", v))
            elif isinstance(v, dict):
                for x in v.values():
                    walk(x)
            elif isinstance(v, (list, tuple, set)):
                for x in v:
                    walk(x)
            elif hasattr(v, "__dataclass_fields__"):
                for name in v.__dataclass_fields__:
                    walk(getattr(v, name))

        walk(params)
        return found

    @classmethod
    def typed(cls, params: dict[str, Any]) -> Any:
        """``params`` as an instance of :attr:`Params` (keys that are not
        fields are left out). Raises :class:`~.functions.ParamError` for a
        value out of bounds."""
        assert cls.Params is not None
        return cls.Params(**fields_of(cls.Params, params))

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        """Return the edited picture. May raise ``BackendDeclined``.

        The default runs :attr:`function` on the picture as PIL with
        :meth:`typed` parameters; a :class:`~.functions.geometry.SizeError`
        or :class:`~.functions.ParamError` becomes ``BackendDeclined``."""
        if cls.Params is None or cls.function is None:
            raise NotImplementedError
        from app.backends.base import BackendDeclined

        from .functions.geometry import SizeError

        try:
            return Picture.from_pil(cls.function(pic.to_pil(), cls.typed(params)))
        except (SizeError, ParamError) as exc:
            raise BackendDeclined(str(exc)[:1].upper() + str(exc)[1:].rstrip(".") + ".") from None

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        """Check the result against the quantities the person gave (sizes,
        ratios, angles), computed independently of the pixel function.
        Returns what is wrong, or None. The default checks nothing."""
        return None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        """A short past-tense summary, e.g. "converted to black and white"."""
        return cls.name


class PlanOnlyOperation(Operation):
    """An operation that changes the plan, not pixels (``canvas``,
    ``purpose``, ``meme``): what it understood shapes the other steps, so
    it has no pixel function, leaves the picture as it is and adds nothing
    to the summary."""

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        return pic

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return ""


@dataclass
class Step:
    """One parsed operation: the class, its parameters, and where it was found
    (``span`` in normalised text, ``phrase`` the matched words)."""

    op: type[Operation]
    params: dict[str, Any]
    span: tuple[int, int]
    phrase: str
    extra_spans: list[tuple[int, int]] = field(default_factory=list)
    extra_words: list[str] = field(default_factory=list)


_REGISTRY: list[type[Operation]] = []


def register(cls: type[Operation]) -> type[Operation]:
    """Class decorator: compile ``cls.phrases`` (one :class:`~.rx.Phrase` per
    rule, matched leftmost-longest) and add ``cls`` to the registry under its
    unique ``name``. Raises ``ValueError`` for a name already taken."""
    if any(op.name == cls.name for op in _REGISTRY):
        raise ValueError(f"operation name {cls.name!r} is already registered")
    cls.compiled = [(Phrase(pattern), defaults) for pattern, defaults in cls.phrases.items()]
    if "family" not in cls.__dict__:
        module = cls.__module__.rsplit(".", 1)[-1]
        cls.family = {"generate": "canvas"}.get(module, module)
    _REGISTRY.append(cls)
    return cls


def operations(mode: str) -> list[type[Operation]]:
    """All registered operations offered in ``mode`` ("edit" or "generate")."""
    from . import operations as _load  # noqa: F401  (registers the operation modules)
    from . import generate as _gen  # noqa: F401

    return [op for op in _REGISTRY if mode in op.modes]


@dataclass(frozen=True)
class Entry:
    """One registered operation: its unique ``name``, ``family``, typed
    ``params`` (dataclass), pixel ``function``, one-line ``description``
    and the grammar class ``op``.

    ``params`` and ``function`` are None only for the plan markers that
    change no pixels (``canvas``, ``purpose``, ``meme``): they constrain or
    lay out other steps, and their docstrings say why."""

    name: str
    family: str
    params: type | None
    function: Callable[..., Any] | None
    description: str
    op: type[Operation]


def entries() -> dict[str, Entry]:
    """Every registered operation by its unique name."""
    operations("edit")
    return {
        op.name: Entry(op.name, op.family, op.Params, op.function, (op.__doc__ or "").strip().split("\n")[0], op)
        for op in _REGISTRY
    }
