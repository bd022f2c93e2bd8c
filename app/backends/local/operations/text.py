"""Text grammar: exact quoted text placed at the top, bottom, centre or a
corner, sized to fit, kept legible with an outline (or a banner when asked).
Meme style puts the first text at the top and the second at the bottom.

``text``, ``canvas_text`` and ``details`` map phrases to the typed
:class:`~..functions.text.TextParams`; the pure functions of
:mod:`..functions.text` do the drawing. ``meme`` is a layout marker with no
pixels of its own (see its docstring)."""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from app.backends.base import BackendDeclined

from ..colors import COLOR, color_name, find_colors
from ..fonts import font_for
from ..functions import ParamError
from ..functions import text as fn
from ..phrases import POSITION, QUOTE, position_in
from ..picture import Picture
from ..registry import EDIT, GENERATE, ApplyContext, NotUnderstood, Operation, PlanOnlyOperation, ParseContext, Step, register

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
    Params = fn.TextParams
    function = staticmethod(fn.draw_text)
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
        """Draw with :func:`~..functions.text.draw_text` (``generated`` from
        ``ctx``), or, for text without a position when a region is selected,
        :func:`~..functions.text.draw_text_in_mask`. A detail line merged
        into the first one (``skip``) draws nothing. A
        :class:`~..functions.text.TextError` becomes ``BackendDeclined``."""
        if params.get("skip"):
            return pic
        try:
            p = replace(cls.typed(params), generated=ctx.generated)
            if ctx.mask is not None and params.get("default_position"):
                return Picture.from_pil(fn.draw_text_in_mask(pic.to_pil(), p, ctx.mask))
            return Picture.from_pil(fn.draw_text(pic.to_pil(), p))
        except ParamError as exc:
            raise BackendDeclined(str(exc)) from None

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
class Meme(PlanOnlyOperation):
    """Meme layout marker: texts go top, then bottom, large with an outline.

    No typed parameters or pixel function of its own, on purpose: the marker
    changes no pixels, it only tells :meth:`Text.finalize` to lay the
    quoted texts out as a meme (top, then bottom, ``meme=True`` in their
    :class:`~..functions.text.TextParams`). A function here would be the
    identity, and the layout is already a parameter of the text."""

    name = "meme"
    phrases = {r"meme(?:\s+(?:style|format|template|caption|captions|text))?(?:\s+with)?|(?:impact|meme)\s+font": {}}


fit_text = fn.fit_text
