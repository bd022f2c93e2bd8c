"""Colour and tone grammar: grayscale, sepia, invert, brightness, contrast,
saturation, warmth, tint, auto-enhance. None changes the image size.

Each operation maps phrases to the typed parameters of
:mod:`..functions.tone` (whose pure functions do the pixel work); strength
words and percentages are attached by the parser."""
from __future__ import annotations

from typing import Any

from ..colors import COLOR, color_name, require_colors
from ..functions import tone as fn
from ..registry import Operation, ParseContext, register

_MORE = r"(?:more|increase|increased|raise|boost|up|higher|add|enhance|stronger|crank\s+up|bump\s+up|pump\s+up|turn\s+up|push|amp\s+up|intensify|heighten|improve)"
_LESS = r"(?:less|decrease|decreased|reduce|reduced|lower|lessen|turn\s+down|tone\s+down|cut|weaken|soften|drop|dial\s+down|dial\s+back|pull\s+back|minimize)"


@register
class Grayscale(Operation):
    """Black and white: every channel set to the Rec. 601 luminance."""

    name = "grayscale"
    Params = fn.NoParams
    function = staticmethod(fn.grayscale)
    phrases = {
        r"black\s+(?:and\s+)?white|gray\s*scale|gray\s+tones?|monochrome|monochromatic|mono|noir|"
        r"(?:desaturate|desaturated)\s+(?:completely|fully|entirely|totally|100%)|"
        r"(?:completely|fully|entirely|totally)\s+desaturated?|"
        r"(?:remove|drop|strip|take|get\s+rid\s+of|no|without|kill|drain|suck|lose|eliminate)(?:\s+(?:out|away))?\s+"
        r"(?:(?:all|every|any|each)\s+)?(?:(?:bit|trace|hint|drop|shred|ounce)s?\s+of\s+)?colors?(?:\s+(?:out|away))?(?:\s+(?:of|from))?|"
        r"(?:all\s+)?colors?\s+(?:removed|stripped(?:\s+out)?|drained|gone)|"
        r"colorless|gray|zero\s+saturation|(?:saturation|colors?)\s+(?:to\s+)?(?:zero|0)|"
        r"(?:remove|drop|kill)\s+(?:all\s+)?saturation": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "converted to black and white"


SEPIA_DARK, SEPIA_LIGHT, sepia_rgb = fn.SEPIA_DARK, fn.SEPIA_LIGHT, fn.sepia_rgb


@register
class Sepia(Operation):
    """Sepia: a brown monochrome tint of the luminance."""

    name = "sepia"
    Params = fn.NoParams
    function = staticmethod(fn.sepia)
    phrases = {
        r"(?:(?:old|classic|warm|brownish|brown|antique|faded|nice|subtle|light|strong)\s+)*"
        r"sepia(?:\s+(?:tone|toned|tones|tint|tinted|filter|effect|look|color|colors|feel|vibe|style|treatment|wash))?|"
        r"sepia\s*toned?|(?:brownish|brown)\s+(?:tone|tint|monochrome|wash)": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "applied a sepia tone"


@register
class Invert(Operation):
    """Negative: 255 minus every channel."""

    name = "invert"
    Params = fn.NoParams
    function = staticmethod(fn.invert)
    phrases = {
        r"invert(?:ed)?(?:\s+colors?)?|inverse(?:\s+colors?)?|(?:photo\s+|film\s+|color\s+)?negative|colors?\s+inverted|"
        r"(?:reverse|flip|swap|switch|turn)\s+(?:all\s+)?colors?(?:\s+around)?(?:\s+(?:to|into)\s+(?:their\s+)?opposites?)?|"
        r"opposite\s+colors?|colors?\s+(?:reversed|flipped|swapped)": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "inverted the colours"


@register
class Brightness(Operation):
    """Brighter (lifts towards white, keeping white) or darker (scales towards black)."""

    name = "brightness"
    Params = fn.Amount
    function = staticmethod(fn.brightness)
    takes_strength = True
    phrases = {
        rf"brighter|lighter|brighten(?:\s+up)?|lighten(?:\s+up)?|less\s+dark|more\s+(?:bright|light|luminous|exposed)|"
        rf"{_MORE}\s+(?:brightness|exposure|lightness|light|luminosity)|(?:brightness|exposure)\s+(?:up|higher|increased|boost)|"
        rf"(?:too|very|quite)\s+dark|underexposed|(?:fix|correct)\s+underexposure|overexpose|lift\s+shadows": {"direction": 1},
        rf"darker|darken|dimmer|dim(?:\s+down)?|less\s+(?:bright|light)|{_LESS}\s+(?:brightness|exposure|lightness|luminosity)|"
        rf"(?:brightness|exposure)\s+(?:down|lower|reduced)|(?:too|very|quite)\s+bright|overexposed|underexpose|moodier": {"direction": -1},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "brightened the image" if params["direction"] > 0 else "darkened the image"


@register
class Contrast(Operation):
    """Contrast: stretch (or squeeze) around the mean luminance."""

    name = "contrast"
    Params = fn.Amount
    function = staticmethod(fn.contrast)
    takes_strength = True
    phrases = {
        rf"{_MORE}\s+contrast|contrast\s+(?:up|higher|boost|boosted|increased)|(?:more\s+)?contrasty|punchier|punchy|"
        rf"high\s+contrast|(?:deeper|richer)\s+blacks|more\s+contrast|(?:more|extra|some|add)\s+punch|punch\s+up|"
        rf"more\s+punch\s+with\s+(?:more|higher|increased|stronger|extra)\s+contrast": {"direction": 1},
        rf"{_LESS}\s+contrast|contrast\s+(?:down|lower|reduced|decreased)|low\s+contrast|flatter|flatten|"
        rf"washed\s+out|faded|fade|matte|softer\s+contrast": {"direction": -1},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "increased the contrast" if params["direction"] > 0 else "reduced the contrast"


@register
class Saturation(Operation):
    """Saturation: scale each pixel's distance from its gray value. Less
    saturated never reaches gray (use black and white for that)."""

    name = "saturation"
    Params = fn.Amount
    function = staticmethod(fn.saturation)
    takes_strength = True
    phrases = {
        rf"{_MORE}\s+(?:saturation|colors?|colorfulness|vibrance|vibrancy)|(?:more\s+)?(?:saturated|vivid|vibrant|colorful)(?:\s+colors?)?|"
        rf"saturate|oversaturate|colors?\s+(?:more\s+)?(?:pop|vivid|vibrant|saturated|colorful|intense|rich|richer|stronger|brighter|bolder|punchier|deeper)|"
        rf"(?:richer|stronger|brighter|bolder|punchier|deeper|intense|rich|bright|bold|vivid)\s+colors?|pop|saturation\s+(?:up|higher|boost|increased)|"
        rf"(?:punch|juice|liven|perk|pep)\s+up\s+colors?|colors?\s+(?:to\s+)?(?:be\s+)?(?:more\s+)?(?:vibrant|vivid|saturated|intense|colorful)|"
        rf"colors?\s+(?:stand\s+out|pop\s+(?:more|out))": {"direction": 1},
        rf"{_LESS}\s+(?:saturation|colors?|colorfulness|vibrance|vibrancy)|less\s+(?:saturated|vivid|vibrant|colorful|intense)|"
        rf"(?:mute|muted|dull|duller|subdued|desaturated?|undersaturated?|pastel)(?:\s+colors?)?|(?:softer|faded)\s+colors?|"
        rf"colors?\s+(?:less\s+(?:saturated|vivid|vibrant|intense|colorful)|muted|duller|more\s+muted|softer|subdued|faded)|"
        rf"saturation\s+(?:down|lower|reduced|decreased)": {"direction": -1},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "made the colours more vivid" if params["direction"] > 0 else "made the colours less saturated"


@register
class Warmth(Operation):
    """Colour temperature: warmer raises red and lowers blue; cooler the reverse."""

    name = "warmth"
    Params = fn.Amount
    function = staticmethod(fn.warmth)
    takes_strength = True
    priority = 40
    phrases = {
        rf"(?:warmer|warm(?:\s+up)?|warmth)(?:\s+(?:colors?|tones?))?|cozier|cosier|cozy|cosy|{_MORE}\s+(?:warmth|temperature)|(?:warm|golden|orange|amber|yellowish|orangey)\s+(?:tones?|tint|cast|look|glow|hue|feel|light)|"
        rf"more\s+(?:orange|yellow|golden|amber)|golden\s+hour|oranger|yellower|less\s+(?:cool|cold|blue)|sunnier|sunny": {"direction": 1},
        rf"(?:cooler|colder|cool\s+(?:down|off)|cold|bluer|bluish)(?:\s+(?:colors?|tones?))?|{_LESS}\s+(?:warmth|temperature)|(?:cool|cold|icy|bluish)\s+(?:tones?|tint|cast|look|hue|feel|light)|"
        rf"more\s+(?:blue|cool|cold)|icy|wintry|less\s+(?:warm|yellow|orange)": {"direction": -1},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "made the colours warmer" if params["direction"] > 0 else "made the colours cooler"


@register
class Tint(Operation):
    """Colour tint: multiply by a colour filter, normalised to keep brightness."""

    name = "tint"
    Params = fn.TintParams
    function = staticmethod(fn.tint)
    takes_strength = True
    phrases = {
        rf"{COLOR}\s+(?:tint|tinted|cast|tone|tones|hue|wash|overlay|filter|glow|toning)|"
        rf"(?:tint|tinted|tone|wash|colorize|colorise)\s+(?:in\s+|with\s+|to\s+)?{COLOR}|(?:more|extra)\s+{COLOR}\s+(?:tint|tone)": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        colors = require_colors(phrase, "Name the tint colour, e.g. 'give it a blue tint'.")
        params["color"] = colors[0]
        return params

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"added a {color_name(params['color'])} tint"


@register
class AutoEnhance(Operation):
    """Auto-enhance: local contrast (CLAHE on lightness) and a little more colour."""

    name = "auto_enhance"
    Params = fn.Amount
    function = staticmethod(fn.auto_enhance)
    takes_strength = True
    phrases = {
        r"auto(?:matic(?:ally)?)?\s*(?:(?:adjust|correct|fix|balance|set)\s+)?(?:levels?|contrast|tones?|colors?|exposure)|"
        r"auto(?:matic(?:ally)?)?\s*(?:enhance|enhanced|adjust|correct|fix)|enhance|improve|"
        r"(?:fix|correct|adjust|balance|set|level|stretch|optimi[sz]e)\s+(?:levels?|tones?|tonal\s+range|histogram|exposure|contrast|white\s+balance)"
        r"\s+auto(?:matic(?:ally)?)?|auto(?:matic)?\s+white\s+balance|one\s+click\s+(?:fix|enhance)|"
        r"equali[sz]e(?:\s+histogram)?|histogram\s+equali[sz]ation|normali[sz]e|(?:fix|correct)\s+(?:lighting|colors|exposure)|hdr(?:\s+look)?": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "auto-enhanced contrast and colour"

