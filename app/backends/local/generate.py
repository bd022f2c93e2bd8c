"""Making an image from text alone: a canvas of a given size with a solid
colour or gradient backdrop. Text, borders and filters then apply as edits.

Operations here are offered only in "generate" mode; :func:`make_canvas`
builds the starting picture from the plan.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from app.backends.base import BackendDeclined

from .functions import canvas as fn
from .colors import COLOR, color_name, find_colors, require_colors
from .phrases import NUM

from .picture import Picture
from .registry import GENERATE, ApplyContext, NotUnderstood, Operation, PlanOnlyOperation, ParseContext, Step, register

#: Default canvas size in pixels when none is given.
DEFAULT_SIZE = (1024, 1024)
#: Largest canvas, in pixels per side.
MAX_SIDE = 4096
_SHAPE_SIZES = {
    "square": (1024, 1024), "landscape": (1536, 1024), "portrait": (1024, 1536), "wide": (1536, 864),
    "widescreen": (1920, 1080), "horizontal": (1536, 1024), "vertical": (1024, 1536), "tall": (1024, 1536),
    "banner": (1500, 500), "header": (1500, 500), "thumbnail": (256, 256), "icon": (512, 512),
    "wallpaper": (1920, 1080), "desktop wallpaper": (1920, 1080), "phone wallpaper": (1080, 1920),
    "story": (1080, 1920), "hd": (1920, 1080), "full hd": (1920, 1080), "4k": (3840, 2160),
}
#: Default sizes for layouts named without a size (portrait cards and posters, landscape signs).
_NOUN_SIZES = {
    "invitation": (1024, 1434), "invite": (1024, 1434), "postcard": (1434, 1024), "card": (1024, 1434),
    "poster": (1024, 1536), "flyer": (1024, 1448), "flier": (1024, 1448), "sign": (1536, 1024),
    "slide": (1920, 1080), "banner": (1500, 500), "header": (1500, 500),
}
_SIZE = (
    rf"(?:(?:size|sized|resolution|dimensions|at|of|in)\s+)?(?:\d+x\d+|\d+\s+by\s+\d+|\d+:\d+)(?:\s*px)?"
    rf"(?:\s+(?:in\s+)?(?:size|resolution|big|large|aspect\s+ratio|ratio|format))?"
)
#: Longer side, in pixels, of a canvas given only as a ratio ("a 16:9 image").
RATIO_SIDE = 1536
#: Orientation each shape word implies.
_SHAPE_ORIENTATION = {
    "square": "square", "icon": "square", "thumbnail": "square", "landscape": "landscape", "wide": "landscape",
    "widescreen": "landscape", "horizontal": "landscape", "wallpaper": "landscape", "desktop wallpaper": "landscape",
    "hd": "landscape", "full hd": "landscape", "4k": "landscape", "banner": "landscape", "header": "landscape",
    "portrait": "portrait", "vertical": "portrait", "tall": "portrait", "phone wallpaper": "portrait", "story": "portrait",
}


def _orientation(w: float, h: float) -> str:
    return "square" if w == h else "landscape" if w > h else "portrait"
_SHAPE = r"(?:square|landscape|portrait|wide|widescreen|horizontal|vertical|tall|full\s+hd|hd|4k|(?:desktop|phone)\s+wallpaper)"
_PLATFORM = (
    r"(?:(?:empty|blank|plain|simple|clean|minimal|minimalist|flat|new|instagram|facebook|twitter|youtube|linkedin|"
    r"social\s+media|web|website|blog|email|desktop|phone|mobile|album|book|business|greeting)\s+)*"
)
_NOUN = _PLATFORM + (
    r"(?:post|ad|advert|advertisement|invitation|invite|page|sticker|screen|splash\s+screen|title\s+card|"
    r"image|picture|poster|canvas|wallpaper|banner|card|flyer|flier|thumbnail|cover|graphic|placeholder|"
    r"header|slide|icon|background|backdrop|artwork|illustration|sign|postcard|png|jpg|jpeg|frame|story|tile|swatch|rectangle)"
)


@register
class Canvas(PlanOnlyOperation):
    """Canvas size and shape: "800x600", "256 by 256 pixels", "square", "a poster".

    No typed parameters or pixel function of its own, on purpose: the size
    is not an edit of a picture but the choice of the picture to start
    from. :func:`make_canvas` weighs every canvas step of the plan (an
    exact size or ratio over a shape word over a layout noun such as
    "poster", and the request's own size) before any step runs, and
    :meth:`finalize` checks that they agree. Applied to the picture, the
    step changes nothing; a blank-canvas function here would either be the
    identity or, run after a fill of the same stage, wipe it."""

    name = "canvas"
    modes = frozenset({GENERATE})
    stage = 0
    phrases = {
        rf"(?:{_SIZE}\s+)?(?:{_SHAPE}\s+)?(?:{_NOUN}\s+)?(?:{_SHAPE}\s+)?{_NOUN}(?:\s*,?\s*{_SIZE})?|{_SIZE}|{_SHAPE}": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        words = {s for s in _SHAPE_ORIENTATION if re.search(rf"\b{s}\b", phrase)}
        ratio = re.search(r"(\d+):(\d+)", phrase)
        m = re.search(r"(\d+)(?:x|\s+by\s+)(\d+)", phrase)
        if ratio:
            a, b = int(ratio.group(1)), int(ratio.group(2))
            if a < 1 or b < 1 or max(a, b) / min(a, b) > 20:
                raise NotUnderstood("Give a canvas ratio of two positive numbers, e.g. 'a 16:9 image'.")
            f = RATIO_SIDE / max(a, b)
            return {"size": (round(a * f), round(b * f)), "ratio": (a, b), "orientation_words": sorted(words)}
        if m:
            w, h = int(m.group(1)), int(m.group(2))
            if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
                raise NotUnderstood(f"Canvas sizes go from 1 to {MAX_SIDE} pixels a side.")
            return {"size": (w, h), "orientation_words": sorted(words)}
        for shape in sorted(_SHAPE_SIZES, key=len, reverse=True):  # noqa: B007
            if re.search(rf"\b{shape}\b", phrase):
                return {"shape": shape, "size": _SHAPE_SIZES[shape]}
        for noun, noun_size in _NOUN_SIZES.items():
            if re.search(rf"\b{noun}\b", phrase):
                return {"noun_size": noun_size}
        return {}

    @classmethod
    def finalize(cls, steps: list[Step]) -> None:
        """One size per canvas, and shape words that agree with it: "a red
        square 100x200" or "a portrait poster 1000x500" are declined."""
        canvases = [s for s in steps if s.op is cls]
        exact = [s for s in canvases if "size" in s.params and "shape" not in s.params]
        if len({tuple(s.params["size"]) for s in exact}) > 1:
            said = " and ".join("{}x{}".format(*s.params["size"]) for s in exact)
            raise NotUnderstood(f"You asked for two different sizes ({said}); say just one.")
        if not exact:
            return
        w, h = exact[0].params["size"]
        words = [w_ for s in canvases for w_ in s.params.get("orientation_words", [])]
        words += [s.params["shape"] for s in canvases if "shape" in s.params]
        for word in words:
            want = _SHAPE_ORIENTATION.get(word)
            if want and want != _orientation(w, h):
                raise NotUnderstood(
                    f"You asked for {w}x{h}, which is {_orientation(w, h)}, but also said '{word}'. Say which one you want."
                )
        for s in canvases:
            if "shape" in s.params:
                s.params["_drop"] = True

    @classmethod
    def quantities(cls, params: dict[str, Any]) -> set[float]:
        return {float(v) for v in (*params.get("size", ()), *params.get("ratio", ()))}


@register
class Fill(Operation):
    """Solid background colour for the canvas."""

    name = "canvas_fill"
    Params = fn.FillParams
    function = staticmethod(fn.fill)
    modes = frozenset({GENERATE})
    stage = 0
    phrases = {
        rf"(?:(?:solid|plain|flat|pure|filled\s+with|all|completely|entirely|fully|full|just)\s+)?{COLOR}(?:\s+(?:background|backdrop|bg|fill|colored|color))*|"
        rf"(?:background|backdrop|bg|fill|filled)\s+(?:of\s+|in\s+|with\s+|color\s+|colored\s+|is\s+|that\s+is\s+)?(?:(?:solid|plain|pure)\s+)?{COLOR}|"
        rf"(?:on|against)\s+(?:(?:solid|plain|pure)\s+)?{COLOR}(?:\s+(?:background|backdrop))?": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        colors = require_colors(phrase, "Name the background colour, e.g. 'a 800x600 image with a navy background'.")
        return {"color": colors[0]}

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"filled with {color_name(params['color'])}"


_GDIR = r"(?:horizontal|horizontally|vertical|vertically|diagonal|diagonally|radial|circular|left\s+to\s+right|right\s+to\s+left|top\s+to\s+bottom|bottom\s+to\s+top)"
_FROM_TO = rf"(?:from\s+)?{COLOR}\s+(?:to|into|and|through|-)\s+{COLOR}(?:\s+(?:to|and|then)\s+{COLOR})?"


@register
class Gradient(Operation):
    """Gradient backdrop between two or three colours (horizontal by default)."""

    name = "gradient"
    Params = fn.GradientParams
    function = staticmethod(fn.gradient)
    modes = frozenset({GENERATE})
    stage = 0
    phrases = {
        rf"(?:{_GDIR}\s+)?(?:(?:{_FROM_TO}|{COLOR})\s+)?(?:{_GDIR}\s+)?(?:color\s+)?(?:gradient|fade|blend|ombre)(?:\s+(?:background|backdrop|fill))?"
        rf"(?:\s+(?:going\s+|running\s+|fading\s+|that\s+goes\s+)?{_FROM_TO})?(?:\s+(?:going\s+|running\s+)?(?:from\s+)?{_GDIR})?|"
        rf"(?:fading|fade|blending|blend|transitioning|transition|going)\s+from\s+{COLOR}\s+(?:to|into)\s+{COLOR}(?:\s+{_GDIR})?": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        colors = require_colors(phrase, "Name the gradient's colours, e.g. 'a vertical gradient from navy to white'.")
        if len(colors) == 1:
            c = colors[0]
            colors = [tuple(round(v * 0.45) for v in c), tuple(round(v + (255 - v) * 0.45) for v in c)]
        if re.search(r"vertical|top\s+to\s+bottom|bottom\s+to\s+top", phrase):
            direction = "vertical"
        elif re.search(r"diagonal", phrase):
            direction = "diagonal"
        elif re.search(r"radial|circular", phrase):
            direction = "radial"
        else:
            direction = "horizontal"
        if re.search(r"right\s+to\s+left|bottom\s+to\s+top", phrase):
            colors = colors[::-1]
        return {"colors": tuple(tuple(c) for c in colors), "direction": direction}

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        names = " to ".join(color_name(c) for c in params["colors"])
        return f"{params['direction']} gradient from {names}"


_PDIR = r"(?:horizontal|horizontally|vertical|vertically|diagonal|diagonally|slanted)"
_PSIZE = r"(?:thin|thick|narrow|wide|broad|fine|small|tiny|large|big|bold|chunky)"
_PKIND = (
    r"(?:pin\s*)?stripes|striped|stripe(?:\s+pattern)?|checkerboard|checkered|chequered|checker(?:ed)?\s+pattern|"
    r"chessboard|checks|checked|polka\s+dots?|polka\s+dot(?:ted)?|dots|dotted|spots|spotted|grid(?:\s+lines)?|graph\s+paper|squared\s+paper"
)
_PCOLORS = rf"(?:{COLOR}(?:\s*(?:,|and|&)\s*{COLOR})*)"
_KINDS = {"stripe": "stripes", "check": "checker", "chess": "checker", "dot": "dots", "spot": "dots", "grid": "grid",
          "graph": "grid", "squared": "grid"}


@register
class Pattern(Operation):
    """A pattern over the backdrop: stripes (vertical, horizontal, diagonal),
    checkerboard, polka dots or a grid, in one or two colours ("red and white
    stripes", "white polka dots on navy", "a grid of gray lines, 40 px")."""

    name = "pattern"
    Params = fn.PatternParams
    function = staticmethod(fn.pattern)
    modes = frozenset({GENERATE})
    stage = 1
    phrases = {
        rf"(?:{_PSIZE}\s+)?(?:{_PDIR}\s+)?(?:{_PSIZE}\s+)?(?:{_PCOLORS}\s+)?(?:{_PSIZE}\s+)?(?:{_PDIR}\s+)?(?:{_PKIND})(?:\s+pattern)?"
        rf"(?:\s+(?:in|of|with)\s+(?:{_PSIZE}\s+)?(?:{_PCOLORS}\s*)?(?:lines|squares|dots|stripes)?)?(?:\s+(?:running\s+)?{_PDIR})?"
        rf"(?:\s+(?:on|over|against)\s+(?:(?:solid|plain|dark|light)\s+)?{COLOR}(?:\s+(?:background|backdrop|bg))?)?"
        rf"(?:\s*,?\s*(?:every\s+)?{NUM}\s*px(?:\s+(?:wide|apart|squares|cells|spacing|stripes))?)?": {},
        rf"(?:{COLOR}\s+)?(?:lines|squares|dots|stripes)\s+(?:in|forming)\s+(?:a\s+)?(?:grid|checkerboard)": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        kind_word = re.search(r"stripe|check|chess|dot|spot|grid|graph|squared", phrase)
        kind = _KINDS[kind_word.group(0)] if kind_word else "stripes"
        if "grid" in phrase and "checkerboard" not in phrase:
            kind = "grid"
        out: dict[str, Any] = {"kind": kind}
        on = re.search(rf"(?:on|over|against)\s+(?:(?:solid|plain|dark|light)\s+)?({COLOR})", phrase)
        rest = phrase
        if on:
            out["background"] = find_colors(on.group(1))[0]
            rest = phrase.replace(on.group(0), " ")
        colors = find_colors(rest)
        if colors:
            out["color"] = colors[0]
        if len(colors) >= 2 and "background" not in out:
            out["background"] = colors[1]
        if kind == "stripes":
            out["direction"] = ("horizontal" if re.search(r"horizontal", phrase)
                                else "diagonal" if re.search(r"diagonal|slanted", phrase) else "vertical")
        px = re.search(rf"({NUM})\s*px", phrase)
        if px:
            if float(px.group(1)) < 1:
                raise NotUnderstood("Pattern sizes must be at least 1 pixel.")
            out["px"] = int(float(px.group(1)))
        else:
            sizes = {"thin": 0.5, "narrow": 0.5, "fine": 0.5, "small": 0.6, "tiny": 0.4, "thick": 2.0, "wide": 2.0,
                     "broad": 2.0, "large": 2.0, "big": 2.0, "bold": 1.6, "chunky": 2.2}
            for word, f in sizes.items():
                if re.search(rf"\b{word}\b", phrase):
                    out["scale"] = f
        return out

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        kind = {"stripes": f"{params.get('direction', 'vertical')} stripes", "checker": "a checkerboard",
                "dots": "polka dots", "grid": "a grid"}[params["kind"]]
        colors = [color_name(params.get("color", (0, 0, 0)))]
        if "background" in params:
            colors.append(color_name(params["background"]))
        return f"drew {kind} in {' on '.join(colors)}"


@register
class TextOnColor(Operation):
    """Layout colours: "gold on navy", "white text on black" -> the
    background colour, and the colour for text that names none."""

    name = "text_colors"
    Params = fn.FillParams
    function = staticmethod(fn.fill)
    modes = frozenset({GENERATE})
    stage = 0
    phrases = {
        rf"(?:(?:in|with|using)\s+)?{COLOR}(?:\s+(?:text|letters|lettering|writing|type|font|words))?\s+(?:on|over|against)\s+"
        rf"(?:(?:solid|plain|pure)\s+)?{COLOR}(?:\s+(?:background|backdrop|bg))?": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        fg, bg = find_colors(phrase)[:2]
        return {"text_color": fg, "color": bg}

    @classmethod
    def finalize(cls, steps: list[Step]) -> None:
        chosen = [s for s in steps if s.op is cls]
        if not chosen:
            return
        for s in steps:
            if s.op.name in ("canvas_text", "details") and "color" not in s.params:
                s.params["color"] = chosen[-1].params["text_color"]

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"{color_name(params['text_color'])} text on {color_name(params['color'])}"


def make_canvas(steps: list[Step], size: str | None) -> Picture:
    """Blank white canvas for a generation plan.

    The size comes from the plan's canvas steps (last one wins), else
    ``size`` ("WIDTHxHEIGHT"), else :data:`DEFAULT_SIZE`. Raises
    ``BackendDeclined`` when the plan draws nothing (no colour, gradient or text).
    """
    if not any(s.op.name in ("canvas_fill", "gradient", "canvas_text", "pattern", "text_colors") for s in steps):
        raise BackendDeclined(
            "There is no image to edit yet, and this offline editor can only create plain canvases: "
            "a solid colour or a gradient, with text. Try 'a 1024x1024 image with a navy background "
            "and the title \"Hello\" in white', or upload a photo first."
        )
    w, h = DEFAULT_SIZE
    if size:
        m = re.fullmatch(r"(\d+)x(\d+)", size.strip())
        if m:
            w, h = int(m.group(1)), int(m.group(2))
    shaped = [s.params["size"] for s in steps if s.op is Canvas and "shape" in s.params]
    explicit = [s.params["size"] for s in steps if s.op is Canvas and "size" in s.params and "shape" not in s.params]
    nouns = [s.params["noun_size"] for s in steps if s.op is Canvas and "noun_size" in s.params]
    # "a sign saying 'CLOSED'": the text's own noun names the canvas
    nouns += [_NOUN_SIZES[s.params["kind"]] for s in steps
              if s.op.name == "canvas_text" and s.params.get("kind") in _NOUN_SIZES and not nouns]
    if explicit or shaped:
        w, h = (explicit or shaped)[-1]
    elif nouns and not size:
        w, h = nouns[-1]
    rgb = np.full((h, w, 3), 255, np.uint8)
    return Picture(rgb)



