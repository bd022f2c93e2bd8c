"""Geometry operations: rotate, flip, crop, resize, border.

They change the size or arrangement of pixels, so they are refused when a
mask is given (``geometry = True``).
"""
from __future__ import annotations

import re
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..colors import COLOR, color_name, find_colors
from ..phrases import NUM, percent_in
from ..picture import Picture
from app.backends.base import BackendDeclined

from ..registry import EDIT, ApplyContext, NotUnderstood, Operation, ParseContext, register

#: Largest image an operation may produce, in pixels (width x height).
MAX_OUTPUT_PIXELS = 50_000_000
MAX_SIDE = 16_000

_DIR = r"(?:clockwise|cw|counter\s*clockwise|anti\s*clockwise|ccw|(?:to\s+)?(?:left|right)|leftwards?|rightwards?)"
_ROT = r"(?:rotate|rotated|rotation|turn|turned|spin|tilt|tilted)"
_TURNS = {"quarter": 90, "half": 180, "three quarter": 270, "three quarters": 270, "full": 360}


def _check_size(w: int, h: int) -> None:
    if w < 1 or h < 1:
        raise BackendDeclined(f"That would make the image {w}x{h} pixels, which is too small.")
    if w * h > MAX_OUTPUT_PIXELS or max(w, h) > MAX_SIDE:
        raise BackendDeclined(
            f"That would make the image {w}x{h} pixels; the local backend stops at "
            f"{MAX_OUTPUT_PIXELS // 1_000_000} megapixels and {MAX_SIDE} px a side."
        )


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

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        deg = params.pop("degrees", None)
        m = re.search(rf"({NUM})", phrase)
        turn = re.search(r"three\s+quarters?|quarter|half|full", phrase)
        if deg is None and m:
            deg = float(m.group(1))
        elif deg is None and turn:
            deg = float(_TURNS[re.sub(r"\s+", " ", turn.group(0))])
        ccw = bool(re.search(r"counter|anti|ccw|left", phrase))
        if deg is None and re.search(r"clockwise|cw|left|right", phrase):
            deg = 90.0
        if deg is None or params.pop("bare", False) and m is None:
            raise NotUnderstood("Say how far to rotate, e.g. 'rotate 90 degrees clockwise' or 'rotate it upside down'.")
        clockwise = -deg if ccw else deg
        return {"degrees": clockwise % 360.0}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        a = params["degrees"]
        exact = {0.0: 0, 90.0: -1, 180.0: 2, 270.0: 1}
        if a in exact:
            k = exact[a]
            alpha = None if pic.alpha is None else np.ascontiguousarray(np.rot90(pic.alpha, k))
            return Picture(np.ascontiguousarray(np.rot90(pic.rgb, k)), alpha)
        im = pic.to_pil()
        if im.mode == "RGBA":
            out = im.rotate(-a, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0, 0))
        else:
            out = im.rotate(-a, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255))
        return Picture.from_pil(out)

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

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        sl = (slice(None), slice(None, None, -1)) if params["axis"] == "horizontal" else (slice(None, None, -1),)
        alpha = None if pic.alpha is None else np.ascontiguousarray(pic.alpha[sl])
        return Picture(np.ascontiguousarray(pic.rgb[sl]), alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"flipped {params['axis']}ly"


_CROP = r"(?:crop|cropped|cropping|cut|trim|trimmed|trimming|reframe|recrop)"
_RATIO = (
    rf"{NUM}\s*:\s*{NUM}|\d{{1,2}}\s+(?:by|to|x)\s+\d{{1,2}}(?!\s*px)(?!\d)|{NUM}\s+(?:by|to)\s+{NUM}\s+(?:aspect\s+)?ratio|{NUM}x{NUM}\s+(?:aspect\s+)?ratio"
)
_SHAPES = {
    "square": (1, 1), "widescreen": (16, 9), "wide screen": (16, 9), "cinematic": (21, 9),
    "cinemascope": (21, 9), "panorama": (3, 1), "panoramic": (3, 1), "portrait": (3, 4),
    "landscape": (4, 3), "golden ratio": (1.618, 1), "instagram portrait": (4, 5),
    "instagram story": (9, 16), "story": (9, 16), "instagram square": (1, 1), "instagram": (1, 1),
}
_SHAPE = "(?:" + "|".join(sorted((s.replace(" ", r"\s+") for s in _SHAPES), key=len, reverse=True)) + ")"
_ASPECT_TAIL = r"(?:\s+(?:aspect\s+ratio|aspect|ratio|format|crop|shape|orientation|mode|frame))?"


@register
class CropAspect(Operation):
    """Centre crop to an aspect ratio ("square", "16:9", "portrait" = 3:4...)."""

    name = "crop_aspect"
    geometry = True
    modes = frozenset({EDIT})
    phrases = {
        rf"{_CROP}(?:\s+(?:to|into|as|in))?\s+(?:(?:aspect\s+)?ratio\s+(?:of\s+)?)?(?:{_RATIO}|{_SHAPE}){_ASPECT_TAIL}": {},
        rf"(?:(?:aspect\s+)?ratio\s+(?:of\s+)?)?(?:{_RATIO}){_ASPECT_TAIL}|{_SHAPE}{_ASPECT_TAIL}": {},
        rf"(?:{_RATIO}|{_SHAPE})\s+(?:by\s+|via\s+|with\s+)?{_CROP}": {},
        rf"{_CROP}": {"bare": True},
    }
    priority = 60

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        m = re.search(rf"({NUM})\s*(?::|by|to|x)\s*({NUM})", phrase)
        if m:
            w, h = float(m.group(1)), float(m.group(2))
            if w <= 0 or h <= 0:
                raise NotUnderstood("An aspect ratio needs two positive numbers, e.g. 'crop to 16:9'.")
            return {"ratio": (w, h)}
        for shape in sorted(_SHAPES, key=len, reverse=True):
            if re.search(r"\b" + shape.replace(" ", r"\s+") + r"\b", phrase):
                return {"ratio": _SHAPES[shape], "shape": shape}
        raise NotUnderstood(
            "Say how to crop: e.g. 'crop to a square', 'crop to 16:9', 'crop to 800x600' or 'trim 10% from each side'."
        )

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        rw, rh = params["ratio"]
        r = rw / rh
        w, h = pic.width, pic.height
        if w / h > r:
            nw, nh = max(1, round(h * r)), h
        else:
            nw, nh = w, max(1, round(w / r))
        return _crop_box(pic, (w - nw) // 2, (h - nh) // 2, nw, nh)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        rw, rh = params["ratio"]
        label = params.get("shape") or f"{rw:g}:{rh:g}"
        if label not in ("square",) and params.get("shape"):
            label = f"{label} ({rw:g}:{rh:g})"
        return f"cropped to {'a square' if label == 'square' else label}"


def _crop_box(pic: Picture, x: int, y: int, w: int, h: int) -> Picture:
    alpha = None if pic.alpha is None else np.ascontiguousarray(pic.alpha[y:y + h, x:x + w])
    return Picture(np.ascontiguousarray(pic.rgb[y:y + h, x:x + w]), alpha)


@register
class CropPixels(Operation):
    """Centre crop to an exact size in pixels ("crop to 800x600")."""

    name = "crop_pixels"
    geometry = True
    modes = frozenset({EDIT})
    phrases = {
        rf"{_CROP}(?:\s+(?:to|into|down\s+to))?\s+(?:{NUM}x{NUM}|\d{{3,}}\s+by\s+\d{{3,}}|\d+\s+by\s+\d+(?=\s*px))(?:\s*px)?(?:\s+(?:in\s+)?(?:center|middle))?": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        m = re.search(r"(\d+)(?:x|\s+by\s+)(\d+)", phrase)
        if not m:
            raise NotUnderstood("Give the crop size in whole pixels, e.g. 'crop to 800x600'.")
        return {"size": (int(m.group(1)), int(m.group(2)))}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        w, h = params["size"]
        if w > pic.width or h > pic.height or w < 1 or h < 1:
            raise BackendDeclined(
                f"Cannot crop a {pic.width}x{pic.height} image to {w}x{h}: the crop must fit inside the image. "
                "You could resize it instead, e.g. 'resize to 800x600'."
            )
        return _crop_box(pic, (pic.width - w) // 2, (pic.height - h) // 2, w, h)

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
    phrases = {
        rf"{_CROP}\s+(?:off\s+|away\s+)?(?:{NUM}\s*(?:px|%)\s+)?(?:off\s+|from\s+|of\s+|around\s+|on\s+)?(?:each|every|all|both|four)?\s*(?:sides?|edges?|borders?|margins?)": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        pct = percent_in(phrase)
        px = re.search(rf"({NUM})\s*px", phrase)
        if px:
            return {"px": int(float(px.group(1)))}
        return {"percent": pct if pct is not None else 5.0}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        if "px" in params:
            dx = dy = params["px"]
        else:
            dx = round(pic.width * params["percent"] / 100)
            dy = round(pic.height * params["percent"] / 100)
        if 2 * dx >= pic.width or 2 * dy >= pic.height or dx < 0 or dy < 0:
            raise BackendDeclined("That trim would remove the whole image.")
        return _crop_box(pic, dx, dy, pic.width - 2 * dx, pic.height - 2 * dy)

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
            return {"factor": f}
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
            return {"factor": 0.5}
        if up and not params.get("bare"):
            return {"factor": 2.0}
        raise NotUnderstood(
            "Say the new size, e.g. 'resize to 800 pixels wide', 'resize to 640x480' or 'scale it down by 50%'."
        )

    @classmethod
    def target(cls, w: int, h: int, params: dict[str, Any]) -> tuple[int, int]:
        """New ``(width, height)`` in pixels for a ``w`` x ``h`` image."""
        if "size" in params:
            return params["size"]
        if "width" in params and "height" in params:
            return params["width"], params["height"]
        if "width" in params:
            return params["width"], max(1, round(h * params["width"] / w))
        if "height" in params:
            return max(1, round(w * params["height"] / h)), params["height"]
        if "longest" in params:
            f = params["longest"] / max(w, h)
        else:
            f = params["factor"]
        return max(1, round(w * f)), max(1, round(h * f))

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        nw, nh = cls.target(pic.width, pic.height, params)
        _check_size(nw, nh)
        if (nw, nh) == (pic.width, pic.height):
            return pic
        interp = cv2.INTER_AREA if nw * nh < pic.width * pic.height else cv2.INTER_LANCZOS4
        rgb = cv2.resize(pic.rgb, (nw, nh), interpolation=interp)
        alpha = None if pic.alpha is None else cv2.resize(pic.alpha, (nw, nh), interpolation=interp)
        return Picture(rgb, alpha)

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
        return f"scaled by {params['factor'] * 100:g}%"


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
        if "px" in params:
            return params["px"]
        return max(2, round(min(w, h) * params["fraction"]))

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        b = cls.width_px(pic.width, pic.height, params)
        if ctx.generated:  # a made-from-text canvas keeps the size asked for: draw inside
            b = min(b, (min(pic.width, pic.height) - 1) // 2)
            rgb = pic.rgb.copy()
            for sl in ((slice(0, b), slice(None)), (slice(pic.height - b, None), slice(None)),
                       (slice(None), slice(0, b)), (slice(None), slice(pic.width - b, None))):
                rgb[sl] = params["color"]
            return Picture(rgb, pic.alpha)
        _check_size(pic.width + 2 * b, pic.height + 2 * b)
        rgb = np.empty((pic.height + 2 * b, pic.width + 2 * b, 3), np.uint8)
        rgb[:] = params["color"]
        rgb[b:b + pic.height, b:b + pic.width] = pic.rgb
        alpha = None
        if pic.alpha is not None:
            alpha = np.full(rgb.shape[:2], 255, np.uint8)
            alpha[b:b + pic.height, b:b + pic.width] = pic.alpha
        return Picture(rgb, alpha)

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
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        fx, fy, fw, fh = params["box"]
        x0, y0 = round(pic.width * fx), round(pic.height * fy)
        x1, y1 = round(pic.width * (fx + fw)), round(pic.height * (fy + fh))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise BackendDeclined("That crop would leave no pixels.")
        return _crop_box(pic, x0, y0, x1 - x0, y1 - y0)

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
        return {"sides": sides, "value": value, "unit": unit}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        cut = {}
        for side in ("top", "bottom", "left", "right"):
            if side not in params["sides"]:
                cut[side] = 0
                continue
            full = pic.height if side in ("top", "bottom") else pic.width
            cut[side] = round(params["value"]) if params["unit"] == "px" else round(full * params["value"] / 100)
        w = pic.width - cut["left"] - cut["right"]
        h = pic.height - cut["top"] - cut["bottom"]
        if w < 1 or h < 1:
            raise BackendDeclined(f"Cutting that much from a {pic.width}x{pic.height} image would leave nothing.")
        return _crop_box(pic, cut["left"], cut["top"], w, h)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        unit = " px" if params["unit"] == "px" else "%"
        return f"cut {params['value']:g}{unit} off the {' and '.join(params['sides'])}"


_PAD_VERB = r"(?:pad|padded|extend|extended|expand|expanded|enlarge|grow|widen|letterbox|letterboxed|pillarbox|pillarboxed)"
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
    modes = frozenset({EDIT})
    priority = 40
    phrases = {
        # to a ratio or size: "pad to a square", "extend the canvas to 16:9 with black bars"
        rf"{_PAD_VERB}(?:\s+(?:out|canvas|{_PAD_COLOR}))*\s+(?:to|into|as)\s+{_PAD_TARGET}(?:\s+{_PAD_COLOR}|\s+(?:by|with|using)\s+(?:adding\s+)?(?:{COLOR}\s+)?{_PAD_NOUN})*": {},
        rf"(?:add|put|use)\s+(?:{_PAD_COLOR}\s+)?(?:bars|padding|space|canvas)\s+to\s+(?:make|get|fit|reach)\s+(?:{_PAD_TARGET})": {},
        rf"(?:letterbox|letterboxed|pillarbox|pillarboxed)(?:\s+{_PAD_COLOR})*": {"ratio_default": True},
        # by an amount: "add 100 px of white space on the right", "extend the canvas by 20% at the top"
        rf"(?:(?:add|put|insert|extend|expand|pad|grow|widen)\s+)?(?:(?:canvas|image)\s+)?(?:by\s+)?(?:{_AMOUNT}\s+)?(?:of\s+)?(?:{_PAD_COLOR}\s+)?"
        rf"(?:{_PAD_NOUN}\s+)?(?:of\s+{_AMOUNT}\s+)?(?:(?:on|to|at|along|around|for)\s+(?:{_SIDES}|(?:each|every|all|both)\s+(?:sides?|edges?)))"
        rf"(?:\s+{_PAD_COLOR})?": {"needs_amount": True},
        rf"{_PAD_VERB}(?:\s+canvas)?\s+(?:by\s+)?{_AMOUNT}(?:\s+{_PAD_COLOR})?(?:\s+(?:on|to|at|along|around)\s+(?:{_SIDES}|(?:each|every|all|both)\s+(?:sides?|edges?)))?(?:\s+{_PAD_COLOR})?": {},
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
            out["sides"] = _sides_in(phrase) or ["top", "bottom", "left", "right"]
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
        if "size" in params:
            tw, th = params["size"]
        elif "ratio" in params:
            rw, rh = params["ratio"]
            r = rw / rh
            tw, th = (max(w, round(h * r)), h) if w / h < r else (w, max(h, round(w / r)))
        else:
            add = {}
            for side in ("top", "bottom", "left", "right"):
                full = h if side in ("top", "bottom") else w
                amt = params["value"] if params["unit"] == "px" else full * params["value"] / 100
                add[side] = round(amt) if side in params["sides"] else 0
            return add["top"], add["bottom"], add["left"], add["right"]
        if tw < w or th < h:
            raise BackendDeclined(
                f"Padding cannot make a {w}x{h} image {tw}x{th}: that is smaller. "
                f"Try 'resize to {tw}x{th}' or 'crop to {tw}x{th}' instead."
            )
        left, top = (tw - w) // 2, (th - h) // 2
        return top, th - h - top, left, tw - w - left

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        top, bottom, left, right = cls.margins(pic.width, pic.height, params)
        nw, nh = pic.width + left + right, pic.height + top + bottom
        _check_size(nw, nh)
        rgb = np.empty((nh, nw, 3), np.uint8)
        rgb[:] = params["color"]
        rgb[top:top + pic.height, left:left + pic.width] = pic.rgb
        alpha = None
        if params.get("transparent") or pic.alpha is not None:
            alpha = np.full((nh, nw), 0 if params.get("transparent") else 255, np.uint8)
            alpha[top:top + pic.height, left:left + pic.width] = 255 if pic.alpha is None else pic.alpha
        return Picture(rgb, alpha)

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
