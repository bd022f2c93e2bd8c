"""Text: exact quoted text placed at the top, bottom, centre or a corner,
sized to fit, kept legible with an outline (or a banner when asked).
Meme style puts the first text at the top and the second at the bottom."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.backends.base import BackendDeclined

from ..colors import COLOR, color_name, find_colors
from ..fonts import font_for
from ..phrases import POSITION, QUOTE, position_in
from ..picture import Picture, luminance
from ..registry import EDIT, GENERATE, ApplyContext, NotUnderstood, Operation, ParseContext, Step, register

_VERB = (
    r"(?:add|write|put|place|insert|overlay|print|type|stamp|include|show|display|caption|label|title|"
    r"superimpose|slap|headline|subtitle)"
)
_SIZE_WORD = (
    r"(?:big|bigger|large|huge|giant|small|smaller|tiny|bold|thick|italic|serif|fancy|nice|simple|short|centered|meme|"
    r"(?:semi\s+)?(?:transparent|translucent|opaque)|faint|subtle|discreet|see\s+through)"
)
_OPACITY_RE = re.compile(r"\b(?:(semi\s+)?(?:transparent|translucent|see\s+through)|faint|subtle|discreet)\b")
_ADJ = rf"(?:(?:{_SIZE_WORD}|{COLOR})\s+)*"
_NOUN = (
    r"(?:text|caption|title|heading|headline|header|subtitle|subheading|label|words?|line|message|quote|slogan|"
    r"watermark|tagline|phrase|lettering|meme\s+text|inscription|greeting|sign|name|letters?|numbers?|digits?|initials|"
    r"date|signature|credit|copyright|motto|tag)"
)
#: Words that introduce the exact text: "saying", "that reads", "which says",
#: "with the words", "spelling out", ":".
_SAYS = (
    r"(?:(?:which|that)\s+)?(?:says?|saying|reads?|reading|spells?(?:\s+out)?|spelling(?:\s+out)?|states?|stating|"
    r"shows?|showing|displays?|displaying|goes|going)"
    r"|with\s+(?:(?:following|these|those)\s+)?(?:text|words?|message|caption|title|phrase|line|inscription|lettering)(?:\s+(?:saying|reading))?"
    r"|of|:|,"
)
_LETTERS = r"(?:letters|font|text|type|lettering|characters|color|ink|caps)"
_BANNER = r"(?:banner|box|bar|strip|band|label|ribbon|rectangle)"
_BACKDROP = r"(?:background|backdrop)"


def _modifier(banner_nouns: str) -> str:
    return (
        rf"(?:{POSITION}|(?:in|with|using)\s+(?:(?:{_SIZE_WORD}|{COLOR})\s+)*{_LETTERS}|in\s+{COLOR}|"
        rf"(?:with\s+)?(?:(?:thick|thin)\s+)?(?:{COLOR}\s+)?(?:outline|stroke|shadow)|"
        rf"(?:on|with|in)\s+(?:(?:semi\s+)?transparent\s+|{COLOR}\s+)?{banner_nouns}|"
        rf"{_SIZE_WORD}|in\s+(?:serif|italic|bold)(?:\s+font)?)"
    )


def _phrases(banner_nouns: str) -> dict[str, dict[str, Any]]:
    # modifiers may come between the noun and the words: "a sign at the top that says 'OPEN'"
    lead = (
        rf"(?:{_VERB}\s+)?(?:{_ADJ}{_NOUN}\s*,?\s*(?:(?:{_modifier(banner_nouns)})\s*,?\s*)*)?"
        rf"(?:(?:{_SAYS})\s*,?\s*)?"
    )
    # a modifier after a quote belongs to it ("'A' at the top, 'B' at the bottom")
    mod = _modifier(banner_nouns)
    says_words = _SAYS.replace("|of|:|,", "")
    banner_lead = (
        rf"(?:{_VERB}\s+)?(?:(?:{_SIZE_WORD}|{COLOR})\s+)*{_BANNER}(?:\s*,?\s*{_modifier(banner_nouns)})*"
        rf"\s+(?:{_SAYS}|with|containing|for|that\s+reads|which\s+says)?\s*(?:text\s+|words?\s+)?"
    )
    return {
        rf"{banner_lead}{QUOTE}(?:\s*,?\s*{mod})*": {},
        rf"{lead}{QUOTE}(?:\s*,?\s*{mod})*": {},
        rf"(?:{_modifier(banner_nouns)}\s+)+(?:{_VERB}\s+)?(?:{_ADJ}{_NOUN}\s+)?(?:(?:{says_words})\s+)?{QUOTE}(?:\s+{mod})*": {},
        # "at the top, write 'Hello'": after a comma a verb, noun or "saying" must follow
        rf"(?:{_modifier(banner_nouns)}\s*,?\s*)+(?:{_VERB}\s+(?:{_ADJ}{_NOUN}\s+)?|{_ADJ}{_NOUN}\s+|(?:{says_words})\s+)"
        rf"(?:(?:{says_words})\s+)?{QUOTE}(?:\s+{mod})*": {},
        rf"(?:{_VERB}\s+)?{QUOTE}\s+as\s+{_ADJ}{_NOUN}(?:\s+{mod})*": {},
        rf"(?:{_VERB}\s+)?{_ADJ}{_NOUN}(?:\s+{_SAYS})?(?:\s+{mod})*": {"noquote": True},
    }


_SIZE_FACTORS = {"tiny": 0.45, "small": 0.65, "smaller": 0.75, "big": 1.35, "bigger": 1.35, "large": 1.35,
                 "huge": 1.7, "giant": 1.8}


@register
class Text(Operation):
    """Draw quoted text exactly. Parameters: ``text``, ``position``
    ("top-center"...), ``color``, ``outline``, ``banner``, ``scale``, ``style``."""

    name = "text"
    modes = frozenset({EDIT})
    phrases = _phrases(rf"(?:{_BANNER}|{_BACKDROP})")

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        if params.get("noquote"):
            raise NotUnderstood(
                "Put the exact words in quotes, e.g. add the text 'Happy birthday' at the bottom."
            )
        q = re.search(r"⟦(\d+)⟧", phrase)
        text = ctx.quotes[int(q.group(1))]
        where = r"\b(?:top|bottom|upper|lower|middle|center|centered|left|right|corner)\b"
        if re.search(where, phrase[:q.start()]) and re.search(where, phrase[q.end():]):
            raise NotUnderstood(
                f"I could not tell where {text!r} goes: a position comes both before and after it. "
                "Put each position right after its text, e.g. add 'A' at the top and 'B' at the bottom."
            )
        rest = phrase.replace(q.group(0), " ")
        out: dict[str, Any] = {"text": text}
        stroke = re.search(rf"({COLOR})\s+(?:outline|stroke|shadow)", rest)
        if stroke:
            out["outline"] = find_colors(stroke.group(1))[0]
            rest = rest.replace(stroke.group(0), " ")
        banner = re.search(rf"(?:((?:semi\s+)?transparent)|({COLOR}))?\s*(?:{_BANNER}|{_BACKDROP})\b", rest)
        if banner:
            out["banner"] = find_colors(banner.group(2))[0] if banner.group(2) else (0, 0, 0)
            out["banner_alpha"] = 150 if banner.group(1) or not banner.group(2) else 255
            rest = rest.replace(banner.group(0), " ")
        opacity = _OPACITY_RE.search(rest)
        if opacity:
            out["opacity"] = 0.6 if opacity.group(1) or "faint" not in opacity.group(0) else 0.4
            rest = rest.replace(opacity.group(0), " ")
        colors = find_colors(rest)
        if colors:
            out["color"] = colors[0]
        if re.search(rf"{POSITION}", rest) and re.search(r"\b(?:top|bottom|upper|lower|middle|center|centered|centrally|left|right|corner)\b", rest):
            out["position"] = position_in(rest)
        scale = 1.0
        for word, f in _SIZE_FACTORS.items():
            if re.search(rf"\b{word}\b", rest):
                scale *= f
        out["scale"] = scale
        out["style"] = "serif" if "serif" in rest else "italic" if "italic" in rest else "sans"
        noun = re.search(rf"\b{_NOUN}\b", rest)
        out["kind"] = noun.group(0) if noun else "text"
        if out["kind"] == "watermark":
            out.setdefault("opacity", 0.55)
        if font_for(text, out["style"]) is None:
            raise NotUnderstood(f"No installed font can draw all of {text!r}.")
        return out

    @classmethod
    def finalize(cls, steps: list[Step]) -> None:
        details = [s for s in steps if s.op is Details]
        if details:  # one block of detail lines under the title(s)
            details[0].params["text"] = "\n".join(s.params["text"] for s in details)
            for s in details[1:]:
                s.params["skip"] = True
            details[0].params.setdefault("position", "lower-center")
            for s in steps:
                if issubclass(s.op, Text) and s.op is not Details and "position" not in s.params:
                    s.params["position"] = "upper-center"
        texts = [s for s in steps if issubclass(s.op, Text) and s.op is not Details]
        meme = any(s.op is Meme for s in steps) or any("meme" in s.phrase for s in texts)
        unplaced = [s for s in texts if "position" not in s.params]
        if meme or len(texts) >= 2:
            taken = {s.params.get("position") for s in texts}
            for s in unplaced:
                for pos in ("top-center", "bottom-center", "center-center"):
                    if pos not in taken:
                        s.params["position"] = pos
                        taken.add(pos)
                        break
        for s in texts:
            s.params["meme"] = meme
            if "position" not in s.params:
                s.params["default_position"] = True
                kind = s.params.get("kind", "text")
                generated = s.op is GeneratedText
                if kind in ("caption", "subtitle") and not generated:
                    s.params["position"] = "bottom-center"
                elif kind in ("title", "heading", "headline", "header") and not generated:
                    s.params["position"] = "top-center"
                elif kind == "watermark":
                    s.params["position"] = "bottom-right"
                else:
                    s.params["position"] = "center-center"

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        if params.get("skip"):
            return pic
        if ctx.mask is not None and params.get("default_position"):
            return _draw_in_mask(pic, params, ctx.mask)
        return draw_text(pic, params, generated=ctx.generated)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        where = params.get("position", "center-center").replace("-center", "").replace("center", "centre")
        color = f" in {color_name(params['color'])}" if "color" in params else ""
        return f"added the text '{params['text']}' at the {where}{color}"


@register
class GeneratedText(Text):
    """Text on a generated canvas ("on a blue background" there means the canvas)."""

    name = "canvas_text"
    family = "canvas"
    modes = frozenset({GENERATE})
    phrases = _phrases(_BANNER)


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_WEEKDAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|march|april|may|june|july|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = (
    rf"(?:{_WEEKDAY}\s*,?\s*)?(?:(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH}|{_MONTH}\s+{_DAY})(?:\s*,?\s*\d{{4}})?|{_WEEKDAY}"
)
_TIME = r"\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.|o'clock|h)|noon|midnight"


@register
class Details(GeneratedText):
    """Unquoted detail lines of a layout (dates and times: "on Saturday 12
    June at 7 pm"), drawn smaller under the title. Weekday and month names
    are capitalised; everything else is written as given."""

    name = "details"
    family = "canvas"
    modes = frozenset({GENERATE})
    phrases = {
        rf"(?:(?:on|for|date)\s+)?(?:{_DATE})(?:\s*,?\s*(?:at|from|@)\s+(?:{_TIME})(?:\s*(?:-|to|until|till)\s*(?:{_TIME}))?)?|"
        rf"(?:at|from)\s+(?:{_TIME})(?:\s*(?:-|to|until|till)\s*(?:{_TIME}))?": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        text = re.sub(r"^(?:on|for|date)\s+", "", phrase.strip())

        def cap(m: re.Match[str]) -> str:
            word = m.group(0)
            return word.capitalize() if word in _WEEKDAYS or word in _MONTHS or re.fullmatch(_MONTH, word) else word

        text = re.sub(r"[a-z]+", cap, text)
        if font_for(text) is None:
            raise NotUnderstood(f"No installed font can draw all of {text!r}.")
        return {"text": text, "kind": "details", "scale": 0.45, "style": "sans"}

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        if params.get("skip"):
            return ""
        return "added the line" + ("s" if "\n" in params["text"] else "") + " '" + params["text"].replace("\n", "', '") + "'"


@register
class Meme(Operation):
    """Meme layout marker: texts go top, then bottom, large with an outline."""

    name = "meme"
    phrases = {r"meme(?:\s+(?:style|format|template|caption|captions|text))?(?:\s+with)?|(?:impact|meme)\s+font": {}}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        return pic

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return ""


def _draw_in_mask(pic: Picture, params: dict[str, Any], mask: np.ndarray) -> Picture:
    """Draw the text centred in the bounding box of the selected region."""
    ys, xs = np.nonzero(mask > 127)
    if len(xs) == 0:
        return pic
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    sub = Picture(np.ascontiguousarray(pic.rgb[y0:y1, x0:x1]))
    drawn = draw_text(sub, {**params, "position": "center-center", "fill_box": True})
    rgb = pic.rgb.copy()
    rgb[y0:y1, x0:x1] = drawn.rgb
    return Picture(rgb, pic.alpha)


def _wrap(words: list[str], n: int) -> list[str]:
    """Split ``words`` into ``n`` lines of similar length (in characters)."""
    total = sum(len(w) for w in words) + len(words) - 1
    lines, current = [], []
    for w in words:
        current.append(w)
        if len(lines) < n - 1 and len(" ".join(current)) >= total / n:
            lines.append(" ".join(current))
            current = []
    if current:
        lines.append(" ".join(current))
    return lines


def _measure(draw: ImageDraw.ImageDraw, lines: list[str], font: ImageFont.FreeTypeFont, stroke: int) -> tuple[int, int, list[tuple[int, int, int, int]]]:
    boxes = [draw.textbbox((0, 0), line, font=font, stroke_width=stroke) for line in lines]
    width = max(b[2] - b[0] for b in boxes)
    gap = round(font.size * 0.18)
    height = sum(b[3] - b[1] for b in boxes) + gap * (len(lines) - 1)
    return width, height, boxes


def fit_text(text: str, font_path: str, max_w: int, target: int) -> tuple[ImageFont.FreeTypeFont, list[str], int]:
    """Choose a font size (at most ``target`` px) and line breaks (1-3 lines)
    so ``text`` fits in ``max_w`` pixels. Returns ``(font, lines, stroke_px)``."""
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    words = text.split() or [text]
    best: tuple[ImageFont.FreeTypeFont, list[str], int] | None = None
    for n in range(1, min(3, len(words)) + 1):
        lines = text.splitlines() if "\n" in text else (_wrap(words, n) if n > 1 else [text])
        size = max(8, target)
        while True:
            font = ImageFont.truetype(font_path, size)
            stroke = max(1, round(size * 0.07))
            w, _, _ = _measure(draw, lines, font, stroke)
            if w <= max_w or size <= 8:
                break
            size = max(8, min(size - 1, int(size * max_w / w)))
        if best is None or size > best[0].size * 1.25:
            best = (font, lines, stroke)
        if size >= target * 0.8:
            break
    assert best is not None
    return best


def _lum(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _auto_banner(fill: tuple[int, int, int], region: np.ndarray, n_lines: int) -> tuple[tuple[int, int, int] | None, int]:
    """A translucent band behind text on a photo when an outline alone may not
    keep it legible: coloured (mid-tone) text, several lines, or a busy
    background of the text's own tone. Returns ``(colour or None, alpha)``."""
    lf = _lum(fill)
    if 40 < lf < 215:
        return ((255, 255, 255), 215) if lf < 128 else ((0, 0, 0), 170)
    lum = luminance(region) if region.size else np.zeros((1, 1), np.float32)
    same_tone = float((lum >= 200).mean()) if lf >= 128 else float((lum <= 55).mean())
    if n_lines >= 2 or same_tone > 0.03:
        return ((0, 0, 0), 140) if lf >= 128 else ((255, 255, 255), 170)
    return None, 0


def _contrast_color(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 110 else (255, 255, 255)


def draw_text(pic: Picture, params: dict[str, Any], generated: bool = False) -> Picture:
    """Draw ``params["text"]`` on ``pic`` and return the new picture (same size).

    Uses ``position`` ("top-left" ... "bottom-right"), optional ``color``,
    ``outline``, ``banner`` (+ ``banner_alpha``), ``scale`` and ``style``.
    Raises ``BackendDeclined`` when no installed font has the glyphs.
    """
    text = params["text"]
    path = font_for(text, params.get("style", "sans"))
    if path is None:
        raise BackendDeclined(f"No installed font can draw {text!r}.")
    w, h = pic.width, pic.height
    margin_x, margin_y = round(w * 0.05), round(h * 0.04)
    base = 0.13 if params.get("meme") else 0.11 if not generated else 0.12
    if params.get("position", "").endswith(("left", "right")) and params.get("kind") == "watermark":
        base = 0.05
    target = max(10, round(min(h * base, w * 0.2) * params.get("scale", 1.0)))
    if params.get("fill_box"):
        target = max(10, round(min(h * 0.6, w * 0.3) * params.get("scale", 1.0)))
    font, lines, stroke = fit_text(text, str(path), w - 2 * margin_x, target)
    im = Image.fromarray(pic.rgb, "RGB")
    draw = ImageDraw.Draw(im)
    block_w, block_h, boxes = _measure(draw, lines, font, stroke)
    if block_w > w or block_h > h:  # never hand over text that is cut off
        raise BackendDeclined(
            f"The text {text!r} does not fit legibly on a {w}x{h} image, so I did not add it. "
            "Try shorter text, or resize the image first."
        )
    vert, horiz = params.get("position", "center-center").split("-")
    if vert in ("upper", "lower"):  # layouts: a title above the centre, detail lines below it
        y = round(h * (0.42 if vert == "upper" else 0.68) - block_h / 2)
    else:
        y = margin_y if vert == "top" else h - margin_y - block_h if vert == "bottom" else (h - block_h) // 2
    region = pic.rgb[max(0, y):max(1, y + block_h), :]
    background = tuple(int(v) for v in region.reshape(-1, 3).mean(axis=0)) if region.size else (128, 128, 128)
    fill = params.get("color") or (_contrast_color(background) if generated else (255, 255, 255))  # type: ignore[arg-type]
    outline = params.get("outline") or _contrast_color(fill)
    if generated and "outline" not in params:
        lum_fill = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
        lum_bg = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
        stroke = stroke if abs(lum_fill - lum_bg) < 90 else 0
    banner = params.get("banner")
    banner_alpha = params.get("banner_alpha", 255)
    if banner is not None and "color" not in params and banner_alpha > 200:
        fill = _contrast_color(banner)
        outline = _contrast_color(fill)
    subtle = params.get("opacity", 1.0) < 1.0 or params.get("kind") == "watermark"
    if banner is None and not generated and not params.get("meme") and not subtle:
        banner, banner_alpha = _auto_banner(fill, region, len(lines))
    if banner is not None:
        pad = round(font.size * 0.35)
        overlay = Image.new("RGBA", im.size, (0, 0, 0, 0))
        odraw = ImageDraw.Draw(overlay)
        if horiz == "center":
            bx0, bx1 = 0, w
        else:
            bx0 = margin_x - pad if horiz == "left" else w - margin_x - block_w - pad
            bx1 = bx0 + block_w + 2 * pad
        odraw.rectangle((bx0, y - pad, bx1, y + block_h + pad), fill=(*banner, banner_alpha))
        im = Image.alpha_composite(im.convert("RGBA"), overlay).convert("RGB")
        draw = ImageDraw.Draw(im)
        if abs(_lum(banner) - _lum(fill)) > 90:
            stroke = 0
    gap = round(font.size * 0.18)
    for line, box in zip(lines, boxes):
        lw = box[2] - box[0]
        x = margin_x if horiz == "left" else w - margin_x - lw if horiz == "right" else (w - lw) // 2
        draw.text((x - box[0], y - box[1]), line, font=font, fill=tuple(fill), stroke_width=stroke,
                  stroke_fill=tuple(outline))
        y += box[3] - box[1] + gap
    out = np.asarray(im).copy()
    opacity = float(params.get("opacity", 1.0))
    if opacity < 1.0:  # semi-transparent (watermarks): blend the drawing with the picture
        f = pic.rgb.astype(np.float32)
        out = np.clip(np.rint(f + (out.astype(np.float32) - f) * opacity), 0, 255).astype(np.uint8)
    return Picture(out, pic.alpha)
