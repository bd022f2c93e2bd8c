"""Artistic style grammar: pencil sketch, cartoon, oil painting, watercolour,
vintage. Each maps phrases to the typed parameters of
:mod:`..functions.styles`, whose pure functions do the pixel work.
"""
from __future__ import annotations

from typing import Any

from ..functions import styles as fn
from ..registry import Operation, register

WORK_SIDE, pencil_sketch, cartoon = fn.WORK_SIDE, fn.pencil_sketch, fn.cartoon


@register
class Sketch(Operation):
    """Pencil (or charcoal, or coloured pencil) sketch."""

    name = "sketch"
    Params = fn.SketchParams
    function = staticmethod(fn.sketch)
    phrases = {
        r"(?:pencil\s+|hand\s+drawn\s+|hand\s+sketched\s+|graphite\s+|hand\s+)?(?:sketch|sketched|sketchy|drawing|drawn|sketchbook)(?:\s+(?:style|look|effect))?|"
        r"(?:drawn|sketched)\s+(?:by\s+hand|in\s+pencil|with\s+(?:a\s+)?pencil)|pencil(?:\s+(?:art|style))?|line\s+(?:drawing|art)|hand\s+drawn": {},
        r"charcoal(?:\s+(?:drawing|sketch|style))?": {"dark": 1.8},
        r"colou?r(?:ed)?\s+pencil(?:\s+(?:drawing|sketch))?|crayon(?:\s+drawing)?": {"color": True},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        if params.get("color"):
            return "turned it into a coloured pencil drawing"
        return "turned it into a charcoal drawing" if params.get("dark") else "turned it into a pencil sketch"


@register
class Cartoon(Operation):
    """Cartoon / comic look."""

    name = "cartoon"
    Params = fn.Look
    function = staticmethod(fn.cartoon_look)
    phrases = {
        r"cartoon(?:ify|ified|ise|ize|ized|ised|ish|y)?(?:\s+(?:style|look|effect|version|character))?|toonify|"
        r"comic(?:\s+(?:book|strip))?(?:\s+(?:style|look|effect))?|cel\s+shad(?:ed|ing)|animated\s+(?:style|look)": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "gave it a cartoon look"


@register
class OilPainting(Operation):
    """Oil painting (``cv2.xphoto.oilPainting``)."""

    name = "oil_painting"
    Params = fn.Look
    function = staticmethod(fn.oil_painting)
    phrases = {
        r"oil(?:\s+(?:painting|paint|painted|style|look|effect|on\s+canvas))?|painting|painted|painterly|impasto|(?:acrylic|gouache)(?:\s+painting)?|"
        r"(?:painted|done|rendered|made)\s+(?:in|with)\s+oils?(?:\s+paint)?": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "made it look like an oil painting"


@register
class Watercolor(Operation):
    """Watercolour: edge-preserving stylisation, softened and lightened."""

    name = "watercolor"
    Params = fn.Look
    function = staticmethod(fn.watercolor)
    phrases = {
        r"water\s*colou?r(?:ed)?(?:\s+(?:painting|paint|style|look|effect))?|aquarelle|"
        r"styli[sz]e[d]?|styli[sz]ation|artistic(?:\s+(?:look|effect|filter|style))?": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "made it look like a watercolour"


@register
class Vintage(Operation):
    """Vintage: faded sepia with a vignette (still a pure tint of luminance)."""

    name = "vintage"
    Params = fn.Look
    function = staticmethod(fn.vintage)
    phrases = {
        r"vintage|retro|old(?:\s*school|\s+fashioned|\s+timey|\s+time|\s+film)?|aged|nostalgic|antique|"
        r"(?:faded|analog(?:ue)?|old)\s+film(?:\s+look)?|19th\s+century|1900s|daguerreotype": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "gave it a vintage sepia look with a vignette"



