"""Regular-expression fragments and small parsers shared by the operations.

All fragments work on normalised instruction text (see :mod:`.parser`):
lower case, articles and "it"/"the image" removed, "pixels" -> "px",
"percent" -> "%", quoted text replaced by placeholders ``⟦0⟧``, ``⟦1⟧``...
"""
from __future__ import annotations

import re

from .colors import COLOR  # noqa: F401  (re-exported for the operations)

#: A plain number: "90", "1.5", "-45".
NUM = r"-?\d+(?:\.\d+)?"
#: A pixel amount: "20 px".
PX = rf"{NUM}\s*px"
#: A quoted-text placeholder; group ``q`` is its index.
QUOTE = r"⟦(?P<q>\d+)⟧"
#: Words that scale an effect, with their strength (1.0 = default).
STRENGTH_WORDS: dict[str, float] = {
    "tiny bit": 0.3, "little bit": 0.4, "touch": 0.4, "tad": 0.4, "hint": 0.4, "smidge": 0.4,
    "barely": 0.3, "subtly": 0.4, "subtle": 0.4, "faintly": 0.4, "faint": 0.4,
    "slightly": 0.5, "slight": 0.5, "little": 0.5, "bit": 0.5, "lightly": 0.5, "gently": 0.5,
    "gentle": 0.5, "mildly": 0.5, "mild": 0.5, "softly": 0.5, "soft": 0.6, "light": 0.6, "small": 0.6,
    "somewhat": 0.7, "moderately": 0.8, "moderate": 0.8,
    "noticeably": 1.3, "quite": 1.3, "clearly": 1.3, "more": 1.0,
    "much": 1.8, "lot": 1.8, "lots": 1.8, "very": 1.8, "really": 1.8, "way": 2.0, "far": 1.8,
    "significantly": 1.8, "considerably": 1.8, "substantially": 1.8, "strongly": 1.8,
    "strong": 1.8, "heavily": 2.0, "heavy": 2.0, "hard": 1.8, "intense": 2.0, "intensely": 2.0,
    "dramatically": 2.2, "dramatic": 2.2, "big": 1.8, "large": 1.8, "massively": 2.5, "massive": 2.5,
    "extremely": 2.5, "extreme": 2.5, "super": 2.0, "huge": 2.5, "maximum": 3.0, "max": 3.0,
}
_strength_alt = "|".join(sorted((re.escape(w).replace(r"\ ", r"\s+") for w in STRENGTH_WORDS), key=len, reverse=True))
#: One strength phrase, possibly doubled ("very much", "a lot more").
STRENGTH = rf"(?:(?:{_strength_alt})\s+)*(?:{_strength_alt})"
_STRENGTH_RE = re.compile(rf"\b(?:{_strength_alt})\b")
_PERCENT_RE = re.compile(rf"(?P<n>{NUM})\s*%")

#: A position on the image: "at top", "on bottom", "in upper left corner", "centered".
POSITION = (
    r"(?:(?:at|on|in|along|across|to|near|into|onto|over|up)\s+)?(?:very\s+)?"
    r"(?:(?:top|bottom|upper|lower|middle|center)(?:\s+(?:left|right|center|middle))?"
    r"|left|right|centered|centrally|corner)"
    r"(?:\s+(?:corner|edge|area|part|side|half|section|portion))?"
    r"(?:\s+of\s+(?:frame|canvas|poster|page))?"
)


def strength_in(text: str, default: float = 1.0) -> float:
    """Multiply the strength words found in ``text`` ("slightly" 0.5, "very" 1.8...).

    Returns ``default`` when there are none. Result is clipped to 0.2..4.
    """
    found = [STRENGTH_WORDS[re.sub(r"\s+", " ", w)] for w in _STRENGTH_RE.findall(text)]
    if not found:
        return default
    value = 1.0
    for f in found:
        value *= f
    return max(0.2, min(4.0, value))


def percent_in(text: str) -> float | None:
    """The first "N%" in ``text`` as a number (``"by 20%"`` -> 20.0), or None."""
    m = _PERCENT_RE.search(text)
    return float(m.group("n")) if m else None


def position_in(text: str, default: str = "center") -> str:
    """The text position named in ``text`` as ``"<vertical>-<horizontal>"``.

    Vertical is top/center/bottom, horizontal left/center/right, e.g.
    ``"in upper left corner"`` -> ``"top-left"``, ``"at bottom"`` -> ``"bottom-center"``.
    Returns ``default`` (normalised the same way) when nothing is named.
    """
    vertical = horizontal = None
    if re.search(r"\b(?:top|upper|up)\b", text):
        vertical = "top"
    elif re.search(r"\b(?:bottom|lower)\b", text):
        vertical = "bottom"
    elif re.search(r"\b(?:middle|center|centered|centrally)\b", text):
        vertical = "center"
    if re.search(r"\bleft\b", text):
        horizontal = "left"
    elif re.search(r"\bright\b", text):
        horizontal = "right"
    if vertical is None and horizontal is None and re.search(r"\bcorner\b", text):
        return "bottom-right"  # "in the corner": where signatures and watermarks go
    if vertical is None and horizontal is None:
        return default if "-" in default else f"{default}-center"
    return f"{vertical or 'center'}-{horizontal or 'center'}"
