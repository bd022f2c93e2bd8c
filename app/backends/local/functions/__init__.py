"""Typed parameters and pure pixel functions, one pair per operation.

Each module here holds, per operation, a frozen dataclass of parameters
(units and bounds in its docstring, checked in ``__post_init__``) and a
function ``f(image: PIL.Image.Image, params) -> PIL.Image.Image`` that knows
nothing about language. Operations that need more than the picture take
it as further explicit arguments: a selection mask (``regions.inpaint``,
``text.draw_text_in_mask``), detected face boxes (``faces.obscure_faces``),
the subject's soft mask (``background.replace_background``) or a reference
image (``neural.reference_style``). The grammar (:mod:`..operations`) maps
phrases to these parameters; the registry (:mod:`..registry`) maps each
unique operation name to (parameters, function, description).
"""
from __future__ import annotations

from typing import Any


class ParamError(ValueError):
    """A parameter outside its bounds; the message says which and why."""


def check_range(name: str, value: float, low: float, high: float, *, unit: str = "", open_high: bool = False) -> None:
    """Raise :class:`ParamError` unless ``low <= value <= high`` (``< high``
    when ``open_high``)."""
    ok = low <= value < high if open_high else low <= value <= high
    if not ok:
        bound = f"below {high:g}" if open_high else f"at most {high:g}"
        raise ParamError(f"{name} must be at least {low:g} and {bound}{unit}, not {value:g}{unit}")


def fields_of(params_type: type, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are fields of the dataclass ``params_type``."""
    names = params_type.__dataclass_fields__  # type: ignore[attr-defined]
    return {k: v for k, v in values.items() if k in names}
