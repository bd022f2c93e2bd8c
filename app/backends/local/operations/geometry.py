"""Geometry grammar: rotate, flip, crop, resize, border, pad, and the
purposes and orientation words that go with them ("for a story", "landscape").

Each operation maps phrases to the typed parameters of
:mod:`..functions.geometry`, whose pure functions do the pixel work. They
change the size or arrangement of pixels, so they are refused when a mask is
given (``geometry = True``), and :meth:`verify` checks each result's size
against what the person asked for.
"""
from __future__ import annotations

import re
from typing import Any

from ..colors import COLOR, color_name, find_colors
from ..functions import geometry as fn
from ..phrases import NUM, percent_in
from ..picture import Picture
from ..registry import EDIT, ApplyContext, NotUnderstood, Operation, PlanOnlyOperation, ParseContext, Step, register

#: Largest image an operation may produce (see :mod:`..functions.geometry`).
MAX_OUTPUT_PIXELS = fn.MAX_OUTPUT_PIXELS
MAX_SIDE = fn.MAX_SIDE

_DIR = r"(?:clockwise|cw|counter\s*clockwise|anti\s*clockwise|ccw|(?:to\s+)?(?:left|right)|leftwards?|rightwards?)"
_ROT = r"(?:rotate|rotated|rotation|turn|turned|spin|tilt|tilted)"
_TURNS = {"quarter": 90, "half": 180, "three quarter": 270, "three quarters": 270, "full": 360}


@register
class Rotate(Operation):
    """Rotate by an angle in degrees; 90/180/270 are exact pixel moves, other
    angles expand the canvas (white, or transparent with alpha)."""

    name = "rotate"
    geometry = True
    phrases = {
        rf"{_ROT}(?:\s+(?:around|round|over))?(?:\s+(?:by|through|about))?\s+{NUM}(?:\s+degrees)?(?:\s+{_DIR})?": {},
        rf"{_ROT}(?:\s+(?:around|round|over))?(?:\s+(?:by|through))?\s+{_DIR}(?:\s+(?:by\s+)?{NUM}(?:\s+degrees)?)?": {},
        rf"{_ROT}(?:\s+(?:by|through))?\s+(?:quarter|half|three\s+quarters?|full)(?:\s+(?:turn|rotation|way|circle))?(?:\s+{_DIR})?": {},
        rf"(?:{_ROT}\s+)?upside\s+down": {"degrees": 180.0},
        rf"{NUM}\s+degrees(?:\s+{_DIR})?\s+(?:rotation|turn)|{NUM}\s+degrees\s+{_DIR}|(?:quarter|half)\s+turn(?:\s+{_DIR})?": {},
        r"rotate|rotation|spin": {"bare": True},
    }
    priority = 60

    Params = fn.RotateParams
    function = staticmethod(fn.rotate)

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        deg = params.pop("degrees", None)
        numbers = re.findall(rf"{NUM}", phrase)
        turn = re.search(r"three\s+quarters?|quarter|half|full", phrase)
        if len(numbers) > 1:
            raise NotUnderstood(f"'{phrase}' gives more than one angle; say one, e.g. 'rotate 90 degrees clockwise'.")
        stated = float(numbers[0]) if numbers else None
        if deg is None and stated is not None:
            deg = stated
        elif deg is None and turn:
            deg = float(_TURNS[re.sub(r"\s+", " ", turn.group(0))])
        ccw = bool(re.search(r"counter|anti|ccw|left", phrase))
        cw = bool(re.search(r"(?<!counter )(?<!anti )(?<!counter)(?<!anti)\b(?:clockwise|cw|right|rightwards?)\b", phrase))
        if ccw and cw:
            raise NotUnderstood(f"'{phrase}' names both directions; say 'clockwise' or 'counter-clockwise'.")
        if deg is None and (ccw or cw):
            deg = 90.0
        if deg is None or params.pop("bare", False) and stated is None:
            raise NotUnderstood("Say how far to rotate, e.g. 'rotate 90 degrees clockwise' or 'rotate it upside down'.")
        if not -360 <= deg <= 360:
            raise NotUnderstood(f"Give the angle between -360 and 360 degrees, not {deg:g}.")
        clockwise = -deg if ccw else deg
        out = {"degrees": clockwise % 360.0}
        if stated is not None:
            out["stated"] = stated
        return out

    @classmethod
    def quantities(cls, params: dict[str, Any]) -> set[float]:
        return {params["degrees"], abs(params.get("stated", params["degrees"]))}

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        want = fn.rotated_size(before.width, before.height, params["degrees"])
        if (after.width, after.height) != want:
            return f"the rotated image is {after.width}x{after.height} px, not the {want[0]}x{want[1]} px a {params['degrees']:g}° turn gives"
        return None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        a = params["degrees"]
        if a == 180:
            return "rotated 180°"
        if a > 180:
            return f"rotated {360 - a:g}° counter-clockwise"
        return f"rotated {a:g}° clockwise"


_FLIP = r"(?:flip|flipped|mirror|mirrored|reflect|reflected|flop)"
_H = r"(?:horizontally|horizontal|left\s+(?:to|and)\s+right|right\s+(?:to|and)\s+left|sideways|side\s+to\s+side|(?:across|along|on|over|around)\s+vertical\s+axis)"
_V = r"(?:vertically|vertical|upside\s+down|top\s+(?:to|and)\s+bottom|bottom\s+(?:to|and)\s+top|(?:across|along|on|over|around)\s+horizontal\s+axis)"


@register
class Flip(Operation):
    """Mirror left-right ("horizontal") or top-bottom ("vertical")."""

    name = "flip"
    geometry = True
    phrases = {
        rf"(?<!add )(?<!put )(?:{_FLIP}(?:\s+{_H})?|{_H}\s+{_FLIP}|mirror\s+effect)": {"axis": "horizontal"},
        rf"{_FLIP}\s+{_V}|{_V}\s+{_FLIP}": {"axis": "vertical"},
    }

    Params = fn.FlipParams
    function = staticmethod(fn.flip)

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        return None if after.rgb.shape == before.rgb.shape else "the flipped image changed size"

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"flipped {params['axis']}ly"


_CROP = r"(?:crop|cropped|cropping|cut|trim|trimmed|trimming|reframe|reframed|recrop|recropped)"
#: A ratio as numbers: "4:5", "16 by 9", "3 to 2 ratio", "16x9" (both sides up to 25: a ratio, not pixels).
_SMALL = r"(?:2[0-5]|1?\d)"
_RATIO = (
    rf"{NUM}\s*:\s*{NUM}|\d{{1,2}}\s+(?:by|to|x)\s+\d{{1,2}}(?!\s*px)(?!\d)|{NUM}\s+(?:by|to)\s+{NUM}\s+(?:aspect\s+)?ratio"
    rf"|{NUM}x{NUM}\s+(?:aspect\s+)?ratio|(?<!\d){_SMALL}x{_SMALL}(?!\d)(?!\s*px)"
)
#: Named shapes with their ratio (width, height) and orientation.
_SHAPES = {
    "square": (1, 1), "widescreen": (16, 9), "wide screen": (16, 9), "cinematic": (21, 9),
    "cinemascope": (21, 9), "panorama": (3, 1), "panoramic": (3, 1), "golden ratio": (1.618, 1),
    "instagram portrait": (4, 5), "instagram story": (9, 16), "story": (9, 16), "instagram square": (1, 1),
    "instagram": (1, 1),
}
#: Orientation words: alone they pick a default ratio; next to a ratio they must agree with it.
_ORIENTATIONS = {"portrait": "portrait", "landscape": "landscape", "vertical": "portrait", "horizontal": "landscape",
                 "tall": "portrait", "upright": "portrait"}
_DEFAULT_RATIO = {"portrait": (3, 4), "landscape": (4, 3)}
_ORIENT = r"(?:portrait|landscape|vertical|horizontal|tall|upright)"
_ORIENT_WORDS = rf"(?:(?:in\s+|as\s+)?{_ORIENT}(?:\s+(?:orientation|format|mode|layout|view))?)"
_SHAPE = "(?:" + "|".join(sorted((s.replace(" ", r"\s+") for s in _SHAPES), key=len, reverse=True)) + rf"|{_ORIENT})"
_ASPECT_TAIL = r"(?:\s+(?:aspect\s+ratio|aspect|ratio|format|crop|shape|orientation|mode|frame|size))?"
#: Where the picture is going: "for a story", "for print", "for my instagram post".
_PURPOSE = (
    r"(?:(?:my|our|your|an?|some|social|social\s+media|instagram|insta|ig|facebook|fb|twitter|x|tiktok|youtube|linkedin|"
    r"pinterest|whatsapp|phone|mobile|desktop|web|website|blog|online)\s+)*"
    r"(?:story|stories|reel|reels|post|posts|feed|grid|profile(?:\s+(?:picture|pic|photo))?|avatar|thumbnail|cover|"
    r"print|printing|prints|frame|album|web|website|blog|wallpaper|lock\s+screen|screen|tv|slides?|presentation|"
    r"instagram|insta|facebook|twitter|tiktok|youtube|linkedin|pinterest|social\s+media|banner|header|poster|postcard|card)"
)
#: Purposes that imply an orientation (checked against a given ratio).
_PURPOSE_ORIENTATION = {"story": "portrait", "stories": "portrait", "reel": "portrait", "reels": "portrait",
                        "tiktok": "portrait", "lock screen": "portrait", "phone": "portrait", "mobile": "portrait",
                        "youtube": "landscape", "tv": "landscape", "slide": "landscape", "slides": "landscape",
                        "presentation": "landscape", "desktop": "landscape", "banner": "landscape", "header": "landscape"}
#: Purposes that name a ratio when no ratio is given ("crop it for a story").
_PURPOSE_RATIO = {"story": (9, 16), "stories": (9, 16), "reel": (9, 16), "reels": (9, 16), "tiktok": (9, 16),
                  "instagram": (1, 1), "insta": (1, 1), "profile": (1, 1), "avatar": (1, 1), "youtube": (16, 9)}


def orientation_of(ratio: tuple[float, float]) -> str:
    """"portrait", "landscape" or "square" for a ratio (width, height)."""
    return "square" if ratio[0] == ratio[1] else "landscape" if ratio[0] > ratio[1] else "portrait"


def _orientation_word(text: str) -> str | None:
    m = re.search(rf"\b{_ORIENT}\b", text)
    return _ORIENTATIONS[m.group(0)] if m else None


def _label(ratio: tuple[float, float]) -> str:
    if ratio[0] == ratio[1]:
        return "a square"
    sep = "x" if all(float(v).is_integer() and v > 25 for v in ratio) else ":"
    return f"{ratio[0]:g}{sep}{ratio[1]:g}"


@register
class Purpose(PlanOnlyOperation):
    """Where the picture is going ("for a story", "for print"): no pixels of
    its own. It must agree with the orientation of a crop, resize or pad in
    the same instruction, and gives a bare "crop it" its ratio.

    No typed parameters or pixel function, on purpose: a purpose only
    constrains or completes the plan (:meth:`finalize`, and the crop's own
    finalize reads its ``ratio``); applied to a picture it is the identity,
    so a dataclass and a function here would describe nothing."""

    name = "purpose"
    modes = frozenset({EDIT})
    priority = 70
    phrases = {rf"(?:for|to\s+use\s+(?:as|for|on)|to\s+post\s+(?:as|on|to)|to\s+share\s+on)\s+{_PURPOSE}": {}}

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        words = phrase.split()
        purpose = re.sub(r"^(?:for|to\s+use\s+\w+|to\s+post\s+\w+|to\s+share\s+on)\s+", "", phrase)
        out: dict[str, Any] = {"purpose": re.sub(r"^(?:(?:my|our|your|an?|some)\s+)+", "", purpose)}
        for key in sorted(_PURPOSE_ORIENTATION, key=len, reverse=True):
            if re.search(rf"\b{key}\b", phrase):
                out["orientation"] = _PURPOSE_ORIENTATION[key]
                break
        for w in reversed(words):
            if w in _PURPOSE_RATIO:
                out["ratio"] = _PURPOSE_RATIO[w]
                break
        return out

    @classmethod
    def finalize(cls, steps: list[Step]) -> None:
        """A purpose that implies an orientation (a story is portrait) must
        agree with every shape the instruction fixes (a crop, a resize to
        WxH, a pad); "resize to 1920x1080 for my phone" is declined."""
        for p in (s for s in steps if s.op is cls):
            orient = p.params.get("orientation")
            if not orient:
                continue
            for s in steps:
                shape = _shape_of(s) if s.op.geometry else None
                if shape and orientation_of(shape) != orient:
                    raise NotUnderstood(
                        f"You asked for {_label(shape)}, which is {orientation_of(shape)}, but a "
                        f"{p.params['purpose']} is {orient}. Say which shape you want."
                    )


def _shape_of(step: Step, w: int | None = None, h: int | None = None) -> tuple[float, float] | None:
    """The aspect (width, height) a geometry step gives, when the words fix it."""
    p = step.params
    if step.op is CropAspect and p.get("kind") in ("ratio", "shape"):
        return p["ratio"]
    if step.op is CropPixels:
        return p["size"]
    if step.op is Resize and ("size" in p or ("width" in p and "height" in p)):
        return p.get("size") or (p["width"], p["height"])
    if step.op is Pad and ("size" in p or "ratio" in p):
        return p.get("size") or p["ratio"]
    return None


@register
class CropAspect(Operation):
    """Centre crop to an aspect ratio: numbers ("16:9", "4 by 5"), a named
    shape ("square", "widescreen"), or an orientation alone ("portrait" =
    3:4, "landscape" = 4:3). Orientation words next to a ratio must agree
    with it ("3:2 landscape"); otherwise the instruction is declined."""

    name = "crop_aspect"
    geometry = True
    modes = frozenset({EDIT})
    Params = fn.CropAspectParams
    function = staticmethod(fn.crop_aspect)
    phrases = {
        rf"{_CROP}(?:\s+(?:to|into|as|in|down\s+to))?\s+(?:{_ORIENT_WORDS}\s+)?(?:(?:aspect\s+)?ratio\s+(?:of\s+)?)?(?:{_RATIO}|{_SHAPE}){_ASPECT_TAIL}(?:\s+{_ORIENT_WORDS})?": {},
        rf"(?:{_ORIENT_WORDS}\s+)?(?:(?:aspect\s+)?ratio\s+(?:of\s+)?)?(?:{_RATIO}){_ASPECT_TAIL}(?:\s+{_ORIENT_WORDS})?|{_SHAPE}{_ASPECT_TAIL}": {},
        rf"(?:{_ORIENT_WORDS}\s+)?(?:{_RATIO}|{_SHAPE})(?:\s+{_ORIENT_WORDS})?\s+(?:by\s+|via\s+|with\s+)?{_CROP}": {},
        rf"{_CROP}": {"bare": True},
    }
    priority = 60

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        ratios = re.findall(rf"({NUM})\s*(?::|by|to|x)\s*({NUM})", phrase)
        orient = _orientation_word(phrase)
        if len(ratios) > 1:
            raise NotUnderstood(f"'{phrase}' gives more than one ratio; say one, e.g. 'crop to 16:9'.")
        if ratios:
            w, h = float(ratios[0][0]), float(ratios[0][1])
            if w <= 0 or h <= 0:
                raise NotUnderstood("An aspect ratio needs two positive numbers, e.g. 'crop to 16:9'.")
            ratio = (w, h)
            shape = next((s for s in sorted(_SHAPES, key=len, reverse=True)
                          if re.search(r"\b" + s.replace(" ", r"\s+") + r"\b", phrase)), None)
            if shape and _SHAPES[shape][0] / _SHAPES[shape][1] != w / h:
                raise NotUnderstood(f"You asked for {w:g}:{h:g} and also for {shape}, which is a different shape. "
                                    "Say which one you want.")
            if orient and orientation_of(ratio) != orient:
                raise NotUnderstood(
                    f"You asked for {w:g}:{h:g}, which is {orientation_of(ratio)}, but also said {orient}. "
                    f"Say e.g. 'crop to {h:g}:{w:g}' for a {orient} crop, or leave out '{orient}'."
                )
            return {"ratio": ratio, "label": f"{w:g}:{h:g}", "kind": "ratio"}
        for shape in sorted(_SHAPES, key=len, reverse=True):
            if re.search(r"\b" + shape.replace(" ", r"\s+") + r"\b", phrase):
                ratio = _SHAPES[shape]
                if orient and orientation_of(ratio) != orient:
                    raise NotUnderstood(f"'{shape}' and '{orient}' are different shapes; say which one you want.")
                label = "a square" if shape == "square" else f"{shape} ({ratio[0]:g}:{ratio[1]:g})"
                return {"ratio": ratio, "label": label, "kind": "shape"}
        if orient:
            ratio = _DEFAULT_RATIO[orient]
            return {"ratio": ratio, "label": f"{orient} ({ratio[0]:g}:{ratio[1]:g})", "kind": "orientation",
                    "orientation": orient}
        return {"kind": "bare"}

    @classmethod
    def finalize(cls, steps: list[Step]) -> None:
        """Make the crop words, orientation words and purposes of one
        instruction agree, or decline: the ratio given in numbers is the one
        used; a shape, orientation or purpose that disagrees with it is an
        error, one that agrees is dropped as already said."""
        purposes = [s for s in steps if s.op is Purpose]
        crops = [s for s in steps if s.op is cls]
        fixed = [(s, _shape_of(s)) for s in steps if s.op.geometry and s.op is not cls and _shape_of(s)]
        definite = [s for s in crops if s.params.get("kind") in ("ratio", "shape")]
        loose = [s for s in crops if s.params.get("kind") in ("orientation", "bare")]
        ratios = {(s.params["ratio"][0] / s.params["ratio"][1]) for s in definite}
        if len(ratios) > 1:
            said = " and ".join(s.params["label"] for s in definite)
            raise NotUnderstood(f"You asked for two different crops ({said}); say just one.")
        target = definite[0].params["ratio"] if definite else fixed[0][1] if fixed else None
        for s in definite[1:]:
            s.params["_drop"] = True
        for s in loose:
            orient = s.params.get("orientation")
            if target is not None:
                if orient and orientation_of(target) != orient:
                    raise NotUnderstood(
                        f"You asked for {_label(target)}, which is {orientation_of(target)}, but also said {orient}. "
                        "Say which one you want."
                    )
                if orient or s.params.get("kind") == "bare" and definite:
                    s.params["_drop"] = True
                    continue
            if s.params.get("kind") == "bare":
                chosen = next((p.params["ratio"] for p in purposes if "ratio" in p.params), None)
                if chosen is None:
                    raise NotUnderstood(
                        "Say how to crop: e.g. 'crop to a square', 'crop to 16:9', 'crop to 800x600' or "
                        "'trim 10% from each side'."
                    )
                s.params.update({"ratio": chosen, "label": f"{chosen[0]:g}:{chosen[1]:g}", "kind": "purpose"})
        for p in purposes:
            orient = p.params.get("orientation")
            shapes = [r for r in [*(s.params.get("ratio") for s in crops if not s.params.get("_drop")),
                                  *(r for _, r in fixed)] if r]
            for r in shapes:
                if orient and orientation_of(r) not in (orient,):
                    raise NotUnderstood(
                        f"You asked for {_label(r)}, which is {orientation_of(r)}, but a {p.params['purpose']} "
                        f"is {orient}. Say which shape you want."
                    )

    @classmethod
    def quantities(cls, params: dict[str, Any]) -> set[float]:
        return set(params.get("ratio", ()))

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        rw, rh = params["ratio"]
        w, h = after.width, after.height
        if w > before.width or h > before.height:
            return f"the crop came out {w}x{h} px, larger than the picture"
        if min(abs(w - h * rw / rh), abs(h - w * rh / rw)) > 1.0 + 1e-9:
            return f"the crop came out {w}x{h} px, which is not {rw:g}:{rh:g}"
        return None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        if "label" not in params:
            return "cropped"
        return f"cropped to {params['label']}"


@register
class CropPixels(Operation):
    """Centre crop to an exact size in pixels ("crop to 800x600"). Two
    numbers up to 25 with an "x" ("16x9") are read as a ratio instead."""

    name = "crop_pixels"
    geometry = True
    modes = frozenset({EDIT})
    Params = fn.CropPixelsParams
    function = staticmethod(fn.crop_pixels)
    phrases = {
        rf"{_CROP}(?:\s+(?:to|into|down\s+to))?\s+(?:(?!{_SMALL}x{_SMALL}(?!\d))\d+x\d+|\d{{3,}}\s+by\s+\d{{3,}}|\d+\s+by\s+\d+(?=\s*px))(?:\s*px)?(?:\s+(?:in\s+)?(?:center|middle))?": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        m = re.search(r"(\d+)(?:x|\s+by\s+)(\d+)", phrase)
        if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
            raise NotUnderstood("Give the crop size in whole pixels, e.g. 'crop to 800x600'.")
        return {"size": (int(m.group(1)), int(m.group(2)))}

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        if (after.width, after.height) != tuple(params["size"]):
            return f"the crop came out {after.width}x{after.height} px, not {params['size'][0]}x{params['size'][1]}"
        return None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        w, h = params["size"]
        return f"cropped the centre {w}x{h} px"


@register
class CropMargins(Operation):
    """Trim the same amount (pixels or percent, default 5%) from every side."""

    name = "crop_margins"
    geometry = True
    modes = frozenset({EDIT})
    Params = fn.CropMarginsParams
    function = staticmethod(fn.crop_margins)
    phrases = {
        rf"{_CROP}\s+(?:off\s+|away\s+)?(?:{NUM}\s*(?:px|%)\s+)?(?:off\s+|from\s+|of\s+|around\s+|on\s+)?(?:each|every|all|both|four)?\s*(?:sides?|edges?|borders?|margins?)": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        pct = percent_in(phrase)
        px = re.search(rf"({NUM})\s*px", phrase)
        if px:
            if float(px.group(1)) != int(float(px.group(1))) or float(px.group(1)) < 1:
                raise NotUnderstood("Give the trim in whole pixels, e.g. 'trim 10 px from each side'.")
            return {"px": int(float(px.group(1)))}
        if pct is not None and not 0 < pct < 50:
            raise NotUnderstood("Trim less than 50% from each side, e.g. 'trim 10% from each side'.")
        return {"percent": pct if pct is not None else 5.0}

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        if "px" in params:
            want = (before.width - 2 * params["px"], before.height - 2 * params["px"])
        else:
            want = (before.width - 2 * round(before.width * params["percent"] / 100),
                    before.height - 2 * round(before.height * params["percent"] / 100))
        return None if (after.width, after.height) == want else f"the trimmed image is {after.width}x{after.height} px, not {want[0]}x{want[1]}"

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        amount = f"{params['px']} px" if "px" in params else f"{params['percent']:g}%"
        return f"trimmed {amount} from each side"


_RESIZE = (
    r"(?:resize|resized|rescale|rescaled|scale|scaled|shrink|shrunk|enlarge|enlarged|upscale|upscaled|downscale|"
    r"downscaled|downsize|downsized|upsize|upsample|downsample|reduce|blow\s+up|grow|size|make)"
)
_RESIZE_VERB = (
    r"(?:resize|resized|rescale|rescaled|scale|scaled|shrink|shrunk|enlarge|enlarged|upscale|upscaled|downscale|"
    r"downscaled|downsize|downsized|upsize|upsample|downsample|reduce|blow\s+up|grow)"
)
_UPDOWN = r"(?:\s+(?:down|up))?"
_WIDE = r"(?:wide|width|in\s+width|across|high|tall|height|in\s+height)"
_WORD_FACTORS = {"half": 0.5, "halve": 0.5, "double": 2.0, "twice": 2.0, "triple": 3.0, "quarter": 0.25,
                 "third": 1 / 3, "quadruple": 4.0}


@register
class Resize(Operation):
    """Resize: to a width or height (keeping the aspect ratio), to WxH, or by
    a factor/percentage ("half the size", "scale down by 50%", "2x")."""

    name = "resize"
    geometry = True
    modes = frozenset({EDIT})
    priority = 55
    Params = fn.ResizeParams
    function = staticmethod(fn.resize)
    phrases = {
        rf"(?:{_RESIZE}{_UPDOWN}\s+)?(?:to\s+)?(?:{NUM}\s*(?:px)?\s*{_WIDE}(?:\s+(?:and|by|,)\s+{NUM}\s*(?:px)?\s*{_WIDE})?)": {},
        rf"(?:{_RESIZE}{_UPDOWN}\s+)?(?:to\s+|set\s+)?(?:width|height)\s+(?:of\s+|to\s+|=\s*)?{NUM}(?:\s*px)?": {},
        rf"(?:{_RESIZE}{_UPDOWN}\s+)?(?:to\s+)?(?:{NUM}x{NUM}|{NUM}\s+by\s+{NUM})(?:\s*px)?": {},
        rf"{_RESIZE_VERB}{_UPDOWN}\s+(?:by\s+|to\s+)?(?:factor\s+(?:of\s+)?)?{NUM}(?!\s*:)\s*(?:%|x|times|px)?(?:\s+(?:of\s+)?(?:original\s+)?(?:size|smaller|bigger|larger))?": {},
        rf"{NUM}\s*(?:%|x|times)\s+(?:smaller|bigger|larger|size|of\s+(?:original\s+)?size|as\s+(?:big|large|small|wide|tall))": {},
        rf"(?:{_RESIZE}{_UPDOWN}\s+)?(?:to\s+|by\s+)?(?:half|double|twice|triple|quarter|third|halve|quadruple)\s+(?:(?:of\s+)?(?:original\s+|current\s+)?(?:size|resolution|dimensions)|as\s+(?:big|large|small|wide|tall))": {},
        rf"{_RESIZE_VERB}\s+(?:size|dimensions|resolution)(?:\s+(?:by|to)\s+(?:half|third|quarter|{NUM}\s*%|{NUM}\s*x|factor\s+of\s+{NUM}))?|"
        rf"(?:half|double|triple|quadruple|halve)\s+(?:size|resolution|dimensions)|(?:at\s+)?half\s+resolution|(?:{_RESIZE}{_UPDOWN}\s+)?(?:to\s+)?(?:half|double)": {},
        rf"(?:{_RESIZE}\s+)?(?:smaller|bigger|larger)|upscale|downscale|downsize|shrink|enlarge|upsample|downsample": {},
        rf"resize|rescale|scale": {"bare": True},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        down = bool(re.search(r"\b(?:down|shrink|shrunk|reduce|smaller|downscale\w*|downsize\w*|downsample|halve)\b", phrase))
        up = bool(re.search(r"\b(?:up|enlarge\w*|bigger|larger|upscale\w*|upsize|upsample|blow|grow)\b", phrase))
        m = re.search(rf"({NUM})x({NUM})|({NUM})\s+by\s+({NUM})", phrase)
        if m:
            w, h = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            return {"size": (int(float(w)), int(float(h)))}
        width = re.search(rf"({NUM})\s*(?:px)?\s*(?:wide|width|in\s+width|across)|width\s+(?:of\s+|to\s+|=\s*)?({NUM})", phrase)
        height = re.search(rf"({NUM})\s*(?:px)?\s*(?:high|tall|height|in\s+height)|height\s+(?:of\s+|to\s+|=\s*)?({NUM})", phrase)
        if width or height:
            out: dict[str, Any] = {}
            if width:
                out["width"] = int(float(width.group(1) or width.group(2)))
            if height:
                out["height"] = int(float(height.group(1) or height.group(2)))
            return out
        pct = percent_in(phrase)
        if pct is not None:
            p = pct / 100.0
            if re.search(r"\bsmaller\b", phrase) or (down and re.search(r"\bby\b", phrase)):
                f = 1.0 - p
            elif re.search(r"\b(?:bigger|larger)\b", phrase) or (up and re.search(r"\bby\b", phrase)):
                f = 1.0 + p
            else:
                f = p
            if f <= 0:
                raise NotUnderstood(f"Scaling by {pct:g}% would leave nothing; say e.g. 'scale it down by 50%'.")
            return {"factor": f, "stated": pct}
        fm = re.search(rf"({NUM})\s*(?:x|times)\b|factor\s+(?:of\s+)?({NUM})|\bby\s+({NUM})\b(?!\s*px)", phrase)
        if fm:
            f = float(next(g for g in fm.groups() if g is not None))
            if f <= 0:
                raise NotUnderstood("A scale factor must be positive, e.g. 'scale it by 2x'.")
            if (down and f > 1) or (up and f < 1):
                f = 1.0 / f
            return {"factor": f}
        px = re.search(rf"({NUM})\s*px", phrase)
        if px:
            return {"longest": int(float(px.group(1)))}
        for word, f in _WORD_FACTORS.items():
            if re.search(rf"\b{word}\b", phrase):
                return {"factor": f}
        if down and not params.get("bare"):
            return {"factor": 0.5, "vague": True}
        if up and not params.get("bare"):
            return {"factor": 2.0, "vague": True}
        raise NotUnderstood(
            "Say the new size, e.g. 'resize to 800 pixels wide', 'resize to 640x480' or 'scale it down by 50%'."
        )

    @classmethod
    def finalize(cls, steps: list[Step]) -> None:
        """One size per instruction: a vague resize ("make it smaller") next
        to an exact one ("800 wide") is dropped when they agree; two
        different sizes are declined."""
        resizes = [s for s in steps if s.op is cls]
        if len(resizes) < 2:
            return
        exact = [s for s in resizes if not s.params.get("vague")]
        vague = [s for s in resizes if s.params.get("vague")]
        if len({repr(sorted(s.params.items())) for s in exact}) > 1:
            said = " and ".join(cls.describe(s.params) for s in exact)
            raise NotUnderstood(f"You asked for two different sizes ({said}); say just one.")
        if not exact:
            exact, vague = vague[:1], vague[1:]
        for s in vague:
            s.params["_drop"] = True
            exact[0].params["expect"] = "smaller" if s.params["factor"] < 1 else "larger"

    @classmethod
    def target(cls, w: int, h: int, params: dict[str, Any]) -> tuple[int, int]:
        """New ``(width, height)`` in pixels for a ``w`` x ``h`` image."""
        return fn.resized_size(w, h, cls.typed(params))

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        p = params
        w, h = after.width, after.height
        if "size" in p and (w, h) != tuple(p["size"]):
            return f"the image came out {w}x{h} px, not {p['size'][0]}x{p['size'][1]}"
        if "width" in p and w != p["width"] or "height" in p and h != p["height"]:
            return f"the image came out {w}x{h} px"
        if "width" in p and "height" not in p and abs(h - before.height * w / before.width) > 1:
            return "the height did not keep the aspect ratio"
        if "height" in p and "width" not in p and abs(w - before.width * h / before.height) > 1:
            return "the width did not keep the aspect ratio"
        if "factor" in p and (abs(w - before.width * p["factor"]) > 1 or abs(h - before.height * p["factor"]) > 1):
            return f"the image came out {w}x{h} px, not {p['factor'] * 100:g}% of {before.width}x{before.height}"
        if "longest" in p and max(w, h) != p["longest"]:
            return f"the longest side came out {max(w, h)} px, not {p['longest']}"
        if p.get("expect") == "smaller" and w * h > before.width * before.height:
            return f"you asked for a smaller image, but {w}x{h} px is larger than {before.width}x{before.height}"
        if p.get("expect") == "larger" and w * h < before.width * before.height:
            return f"you asked for a larger image, but {w}x{h} px is smaller than {before.width}x{before.height}"
        return None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        if "size" in params:
            return "resized to {}x{} px".format(*params["size"])
        if "width" in params and "height" in params:
            return f"resized to {params['width']}x{params['height']} px"
        if "width" in params:
            return f"resized to {params['width']} px wide"
        if "height" in params:
            return f"resized to {params['height']} px tall"
        if "longest" in params:
            return f"resized so the longest side is {params['longest']} px"
        if "stated" in params and abs(params["factor"] - 1) * 100 == params["stated"]:
            return f"scaled {'down' if params['factor'] < 1 else 'up'} by {params['stated']:g}% (to {params['factor'] * 100:g}%)"
        return f"scaled to {params['factor'] * 100:g}%"


_WIDTHWORD = (
    r"(?:thick|thicker|thin|thinner|wide|narrow|fat|heavy|bold|slim|skinny|hairline|fine|big|small|large|medium|"
    r"subtle|chunky|generous|broad|very\s+thick|very\s+thin)"
)
_BNOUN = r"(?:border|frame|outline|margin|passe\s*partout|mat|matte)"
_BMOD = rf"(?:{_WIDTHWORD}|{NUM}\s*(?:px|%)?(?:\s+(?:wide|thick))?|{COLOR}|solid|simple|plain|nice|colored|clean|classic)"
_THICK = {"hairline": 0.004, "thin": 0.012, "thinner": 0.012, "fine": 0.008, "narrow": 0.012, "slim": 0.012,
          "skinny": 0.01, "subtle": 0.012, "small": 0.015, "medium": 0.03, "thick": 0.06, "thicker": 0.06,
          "wide": 0.06, "fat": 0.07, "heavy": 0.07, "bold": 0.06, "big": 0.06, "large": 0.06, "chunky": 0.08,
          "generous": 0.07, "broad": 0.07}


@register
class Border(Operation):
    """Add a solid border around the image (the canvas grows by twice the
    width; on a canvas generated from text it is drawn inside instead)."""

    name = "border"
    geometry = True
    Params = fn.BorderParams
    function = staticmethod(fn.border)
    phrases = {
        rf"(?:{_BMOD}\s+)*{_BNOUN}(?:\s+(?:of|in|with|that\s+is|which\s+is|about|,)?\s*{_BMOD})*"
        r"(?:\s+(?:all\s+)?(?:around(?:\s+edges?)?|on\s+all\s+sides|around\s+(?:edges?|outside)))?": {},
        rf"frame\s+(?:in|with)\s+{_BMOD}": {},
        rf"(?:surround|encircle|enclose|edge|frame|outline)(?:d)?\s+(?:with|in|by)\s+(?:{_BMOD}\s+)*{_BNOUN}(?:\s+(?:of|in|with)?\s*{_BMOD})*": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        colors = find_colors(phrase)
        out: dict[str, Any] = {"color": colors[0] if colors else (255, 255, 255)}
        px = re.search(rf"(?<![\w#.])({NUM})\s*(?:px)?(?:\s+(?:wide|thick))?(?![\d%])", phrase)
        pct = percent_in(phrase)
        if pct is not None:
            out["fraction"] = pct / 100.0
        elif px:
            out["px"] = int(float(px.group(1)))
        else:
            out["fraction"] = 0.03
            for w in re.findall(r"\b(?:very\s+)?(?:" + "|".join(_THICK) + r")\b", phrase):
                frac = _THICK[w.split()[-1]]
                if w.startswith("very"):
                    frac = frac * 1.6 if frac >= 0.03 else frac * 0.5
                out["fraction"] = frac
        if out.get("px", 1) <= 0:
            raise NotUnderstood("A border needs a positive width, e.g. 'add a 10 pixel white border'.")
        return out

    @classmethod
    def width_px(cls, w: int, h: int, params: dict[str, Any]) -> int:
        """Border width in pixels for a ``w`` x ``h`` image."""
        return fn.border_width(w, h, cls.typed(params))

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        # a made-from-text canvas keeps the size asked for: draw inside
        return super().apply(pic, {**params, "inside": ctx.generated}, ctx)

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        b = cls.width_px(before.width, before.height, params)
        grown = (after.width - before.width, after.height - before.height)
        if grown not in ((0, 0), (2 * b, 2 * b)):
            return f"the border came out {grown[0] / 2:g} px wide, not {b} px"
        if grown == (2 * b, 2 * b) and tuple(after.rgb[0, 0]) != tuple(params["color"]):
            return "the border is not the colour asked for"
        return None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        width = f"{params['px']} px " if "px" in params else ""
        return f"added a {width}{color_name(params['color'])} border"


_V_SIDE = r"(?:top|upper|bottom|lower)"
_H_SIDE = r"(?:left|right)"
_PART = r"(?:half|third|quarter|two\s+thirds|three\s+quarters)"
_FRACTIONS = {"half": 1 / 2, "third": 1 / 3, "quarter": 1 / 4, "two thirds": 2 / 3, "three quarters": 3 / 4}
_REGION = (
    rf"(?:{_V_SIDE}\s+{_H_SIDE}|{_H_SIDE}\s+{_V_SIDE}|{_V_SIDE}|{_H_SIDE}|middle|center|central)\s+{_PART}"
    rf"(?:\s+(?:of\s+)?(?:frame|picture|side))?|"
    rf"(?:center|middle|central)\s+{NUM}%|{NUM}%\s+(?:in\s+|at\s+)?(?:of\s+)?(?:center|middle)"
)


@register
class CropRegion(Operation):
    """Crop to a named part: a half ("left half"), a quarter ("top-right
    quarter"), a third, two thirds, or the centre N% ("crop to the centre 50%",
    N% of the width and of the height)."""

    name = "crop_region"
    geometry = True
    Params = fn.CropRegionParams
    function = staticmethod(fn.crop_region)
    modes = frozenset({EDIT})
    priority = 45
    phrases = {
        rf"(?:{_CROP}|keep|zoom(?:\s+in)?|isolate)(?:\s+(?:to|into|in\s+on|on|down\s+to|in\s+to))?\s+(?:{_REGION})": {},
        rf"(?:{_REGION})\s+(?:crop|only)": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        pct = percent_in(phrase)
        if pct is not None:
            if not 0 < pct <= 100:
                raise NotUnderstood("Give the centre crop as a percentage between 1 and 100, e.g. 'crop to the centre 50%'.")
            f = pct / 100.0
            return {"box": ((1 - f) / 2, (1 - f) / 2, f, f), "label": f"the centre {pct:g}%"}
        part = re.search(_PART, phrase).group(0)  # type: ignore[union-attr]
        part = re.sub(r"\s+", " ", part)
        f = _FRACTIONS[part]
        v = re.search(r"\b(top|upper|bottom|lower)\b", phrase)
        hz = re.search(r"\b(left|right)\b", phrase)
        vert = None if not v else "top" if v.group(1) in ("top", "upper") else "bottom"
        horiz = hz.group(1) if hz else None
        x, y, w, h = 0.0, 0.0, 1.0, 1.0
        if part == "quarter" and vert and horiz:
            w = h = 0.5
            x = 0.5 if horiz == "right" else 0.0
            y = 0.5 if vert == "bottom" else 0.0
        elif vert and horiz:
            raise NotUnderstood(
                f"'{phrase}' names two sides; say e.g. 'crop to the top-left quarter' or 'crop to the left half'."
            )
        elif vert:
            h = f
            y = 1.0 - f if vert == "bottom" else 0.0
        elif horiz:
            w = f
            x = 1.0 - f if horiz == "right" else 0.0
        else:  # "the middle third": that fraction of the width and of the height, centred
            w = h = f
            x, y = (1 - w) / 2, (1 - h) / 2
        where = "-".join(p for p in (vert, horiz) if p) or "centre"
        return {"box": (x, y, w, h), "label": f"the {where} {part}"}

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        x0, y0, x1, y1 = fn.region_bounds(before.width, before.height, params["box"])
        if (after.width, after.height) != (x1 - x0, y1 - y0):
            return f"the crop came out {after.width}x{after.height} px, not {x1 - x0}x{y1 - y0}"
        return None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"cropped to {params['label']}"


_SIDE = r"(?:top|bottom|left|right)"
_SIDES = rf"(?:{_SIDE}(?:\s*(?:,|and|&)?\s*{_SIDE}){{0,3}}|(?:left\s+and\s+right|top\s+and\s+bottom)|(?:both\s+)?sides)(?:\s+(?:sides?|edges?))?"
_AMOUNT = rf"{NUM}\s*(?:px|%)"


def _sides_in(text: str) -> list[str]:
    """The sides named in ``text`` ("left and right" -> ["left", "right"];
    "sides" alone -> left and right; "each side"/"all sides" -> all four)."""
    if re.search(r"\b(?:each|every|all|four)\s+(?:sides?|edges?)\b|\ball\s+around\b|\baround\b", text):
        return ["top", "bottom", "left", "right"]
    found = list(dict.fromkeys(re.findall(r"\b(top|bottom|left|right)\b", text)))
    if not found and re.search(r"\bsides\b", text):
        return ["left", "right"]
    return found


def _amount(text: str) -> tuple[float, str] | None:
    m = re.search(rf"({NUM})\s*(px|%)", text)
    return (float(m.group(1)), m.group(2)) if m else None


@register
class CropSides(Operation):
    """Remove an amount (pixels or percent) from named sides: "crop 50 px off
    the left", "cut off the bottom 20%", "trim 10% from the top and bottom"."""

    name = "crop_sides"
    geometry = True
    Params = fn.CropSidesParams
    function = staticmethod(fn.crop_sides)
    modes = frozenset({EDIT})
    priority = 45
    _VERB = rf"(?:{_CROP}|remove|chop|shave|take)(?:\s+(?:off|away))?"
    phrases = {
        rf"{_VERB}\s+(?:{_AMOUNT}\s+)(?:(?:off|away)\s+)?(?:of\s+|from\s+|on\s+|at\s+|off\s+)?{_SIDES}": {},
        rf"{_VERB}\s+(?:off\s+)?{_SIDES}\s+(?:by\s+)?{_AMOUNT}": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        amount = _amount(phrase)
        sides = _sides_in(phrase)
        if amount is None or not sides:
            raise NotUnderstood("Say how much to cut from which side, e.g. 'crop 50 px off the left'.")
        value, unit = amount
        if value <= 0:
            raise NotUnderstood("The amount to crop must be positive.")
        if unit == "%" and value >= 100:
            raise NotUnderstood("Cut less than 100% from a side.")
        return {"sides": tuple(sides), "value": value, "unit": unit}

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        c = fn.side_amounts(before.width, before.height, tuple(params["sides"]), params["value"], params["unit"])
        want = (before.width - c["left"] - c["right"], before.height - c["top"] - c["bottom"])
        return None if (after.width, after.height) == want else f"the image came out {after.width}x{after.height} px, not {want[0]}x{want[1]}"

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        unit = " px" if params["unit"] == "px" else "%"
        return f"cut {params['value']:g}{unit} off the {' and '.join(params['sides'])}"


_PAD_VERB = r"(?:pad|padded|extend|extended|expand|expanded|enlarge|grow|widen|letterbox|letterboxed|pillarbox|pillarboxed)"
#: "enlarge", "grow" and "expand" mean resizing unless the canvas is named.
_PAD_LEAD = (
    r"(?:(?:pad|padded|extend|extended|widen|letterbox|letterboxed|pillarbox|pillarboxed)(?:\s+canvas(?:\s+size)?)?"
    r"|(?:enlarge|enlarged|grow|expand|expanded)\s+canvas(?:\s+size)?)"
)
_PAD_NOUN = r"(?:canvas(?:\s+size)?|space|white\s*space|padding|bars|letterbox|empty\s+space|room|blank\s+space|margins?)"
_PAD_COLOR = rf"(?:(?:with|using|in|filled\s+with)\s+)?(?:{COLOR}|transparent|transparency|see\s+through)(?:\s+(?:bars|padding|space|background|borders?|color|edges))?"
_PAD_TARGET = rf"(?:(?:{_RATIO}|{NUM}x{NUM}(?:\s*px)?|{_SHAPE}){_ASPECT_TAIL})"


@register
class Pad(Operation):
    """Extend the canvas: by an amount on named sides ("add 100 px of white
    space on the right"), to an aspect ratio ("extend the canvas to 16:9 with
    black bars", "pad to a square") or to a size ("pad to 1920x1080"). The
    picture stays centred; the new area is white, a named colour, or
    transparent."""

    name = "pad"
    geometry = True
    Params = fn.PadParams
    function = staticmethod(fn.pad)
    modes = frozenset({EDIT})
    priority = 40
    phrases = {
        # to a ratio or size: "pad to a square", "extend the canvas to 16:9 with black bars"
        rf"{_PAD_LEAD}(?:\s+(?:out|canvas|{_PAD_COLOR}))*\s+(?:to|into|as)\s+{_PAD_TARGET}(?:\s+{_PAD_COLOR}|\s+(?:by|with|using)\s+(?:adding\s+)?(?:{COLOR}\s+)?{_PAD_NOUN})*": {},
        rf"(?:add|put|use)\s+(?:{_PAD_COLOR}\s+)?(?:bars|padding|space|canvas)\s+to\s+(?:make|get|fit|reach)\s+(?:{_PAD_TARGET})": {},
        rf"(?:letterbox|letterboxed|pillarbox|pillarboxed)(?:\s+{_PAD_COLOR})*": {"ratio_default": True},
        # by an amount: "add 100 px of white space on the right", "extend the canvas by 20% at the top"
        rf"(?:(?:add|put|insert|extend|expand|pad|grow|widen)\s+)?(?:(?:canvas|image)\s+)?(?:by\s+)?(?:{_AMOUNT}\s+)?(?:of\s+)?(?:{_PAD_COLOR}\s+)?"
        rf"(?:{_PAD_NOUN}\s+)?(?:of\s+{_AMOUNT}\s+)?(?:(?:on|to|at|along|around|for)\s+(?:{_SIDES}|(?:each|every|all|both)\s+(?:sides?|edges?)))"
        rf"(?:\s+{_PAD_COLOR})?": {"needs_amount": True},
        rf"{_PAD_LEAD}\s+(?:by\s+)?{_AMOUNT}(?:\s+{_PAD_COLOR})?(?:\s+(?:on|to|at|along|around)\s+(?:{_SIDES}|(?:each|every|all|both)\s+(?:sides?|edges?)))?(?:\s+{_PAD_COLOR})?": {},
        rf"(?:add\s+)?{_AMOUNT}\s+(?:of\s+)?(?:{_PAD_COLOR}\s+)?(?:padding|white\s*space|empty\s+space|blank\s+space)(?:\s+{_PAD_COLOR})?": {},
        rf"(?:pad|extend|expand|widen)\s+{_SIDES}(?:\s+(?:side|edge)s?)?\s+(?:with|by)\s+{_AMOUNT}(?:\s+of)?(?:\s+{_PAD_COLOR}|\s+{_PAD_NOUN})*": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        out: dict[str, Any] = {}
        colors = find_colors(phrase)
        if re.search(r"transparen|see\s+through", phrase):
            out["transparent"] = True
            out["color"] = (255, 255, 255)
        elif colors:
            out["color"] = colors[0]
        elif re.search(r"\bbars\b|letterbox|pillarbox", phrase):
            out["color"] = (0, 0, 0)
        else:
            out["color"] = (255, 255, 255)
        size = re.search(r"(\d+)x(\d+)", phrase)
        ratio = re.search(rf"({NUM})\s*:\s*({NUM})", phrase)
        shape = next((s for s in sorted(_SHAPES, key=len, reverse=True) if re.search(rf"\b{s}\b", phrase)), None)
        amount = _amount(phrase)
        if size and not re.search(r"aspect|ratio", phrase):
            out["size"] = (int(size.group(1)), int(size.group(2)))
        elif ratio or size:
            m = ratio or size
            w, h = float(m.group(1)), float(m.group(2))  # type: ignore[union-attr]
            if w <= 0 or h <= 0:
                raise NotUnderstood("An aspect ratio needs two positive numbers, e.g. 'pad to 16:9'.")
            out["ratio"] = (w, h)
        elif shape:
            out["ratio"] = _SHAPES[shape]
        elif amount:
            value, unit = amount
            if value <= 0:
                raise NotUnderstood("The amount to add must be positive, e.g. 'add 50 px of white space at the top'.")
            out["sides"] = tuple(_sides_in(phrase) or ["top", "bottom", "left", "right"])
            out["value"], out["unit"] = value, unit
        elif params.get("ratio_default"):
            out["ratio"] = (16, 9)
        else:
            raise NotUnderstood(
                "Say how much space to add and where, e.g. 'add 100 px of white space on the right', "
                "or the shape to pad to, e.g. 'pad to a square' or 'extend the canvas to 16:9 with black bars'."
            )
        return out

    @classmethod
    def margins(cls, w: int, h: int, params: dict[str, Any]) -> tuple[int, int, int, int]:
        """Pixels to add ``(top, bottom, left, right)`` to a ``w`` x ``h`` image."""
        return fn.pad_margins(w, h, cls.typed(params))

    @classmethod
    def verify(cls, before: Picture, after: Picture, params: dict[str, Any]) -> str | None:
        try:
            t, b, l, r = cls.margins(before.width, before.height, params)
        except fn.SizeError as exc:
            return str(exc)
        want = (before.width + l + r, before.height + t + b)
        if (after.width, after.height) != want:
            return f"the canvas came out {after.width}x{after.height} px, not {want[0]}x{want[1]}"
        if "ratio" in params:
            rw, rh = params["ratio"]
            if min(abs(want[0] - want[1] * rw / rh), abs(want[1] - want[0] * rh / rw)) > 1.0 + 1e-9:
                return f"the canvas came out {want[0]}x{want[1]} px, which is not {rw:g}:{rh:g}"
        return None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        color = "transparent" if params.get("transparent") else color_name(params["color"])
        if "size" in params:
            return "padded to {}x{} px with {} space".format(*params["size"], color)
        if "ratio" in params:
            rw, rh = params["ratio"]
            return f"padded to {'a square' if rw == rh else f'{rw:g}:{rh:g}'} with {color} space"
        unit = " px" if params["unit"] == "px" else "%"
        where = "every side" if len(params["sides"]) == 4 else "the " + " and ".join(params["sides"])
        return f"added {params['value']:g}{unit} of {color} space on {where}"
