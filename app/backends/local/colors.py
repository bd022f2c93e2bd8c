"""Colour words: CSS/X11 names (Pillow's ``ImageColor``), hex codes and light/dark variants.

``COLOR`` is a regular-expression fragment matching one colour phrase in
normalised (lower-case, "grey" -> "gray") text; :func:`parse_color` turns such
a phrase into an ``(r, g, b)`` tuple of 0..255 ints.
"""
from __future__ import annotations

import re

from PIL import ImageColor

_EXTRA = {
    "golden": "#ffd700",
    "skin": "#e0ac69",
    "rust": "#b7410e",
    "burgundy": "#800020",
    "mustard": "#e1ad01",
    "cream": "#fffdd0",
    "charcoal": "#36454f",
    "sand": "#c2b280",
    "mint": "#98ff98",
    "lilac": "#c8a2c8",
    "emerald": "#50c878",
    "ruby": "#e0115f",
    "sapphire": "#0f52ba",
    "amber": "#ffbf00",
    "mauve": "#e0b0ff",
    "scarlet": "#ff2400",
    "cobalt": "#0047ab",
}
_NAMES: dict[str, str] = {**{k: k for k in ImageColor.colormap}, **{k: k for k in _EXTRA}}
_PREFIXES = (
    "light", "dark", "pale", "deep", "bright", "medium", "vivid", "pastel", "neon", "hot",
    "sky", "navy", "royal", "forest", "lime", "sea", "spring", "steel", "slate", "midnight",
    "dodger", "cornflower", "dim", "lawn", "olive", "rosy", "indian", "powder", "cadet", "misty",
    "lemon", "ghost", "antique", "floral", "baby", "blood", "fire", "brick", "ocean", "sun",
)
_LIGHTER = {"light", "pale", "pastel", "baby"}
_DARKER = {"dark", "deep", "blood", "midnight"}

_name_alt = "|".join(sorted(_NAMES, key=len, reverse=True))
_prefix_alt = "|".join(sorted(_PREFIXES, key=len, reverse=True))

#: Regex fragment for one colour phrase: "#ff8800", "red", "light blue", "navy blue", "darkred".
COLOR = rf"(?:#[0-9a-f]{{6}}\b|#[0-9a-f]{{3}}\b|(?:(?:{_prefix_alt})\s+)?(?:{_name_alt})(?:ish)?\b)"
_COLOR_RE = re.compile(COLOR)


def _lookup(name: str) -> tuple[int, int, int] | None:
    name = name.replace(" ", "")
    if name in _EXTRA:
        return ImageColor.getrgb(_EXTRA[name])[:3]
    if name in ImageColor.colormap:
        return ImageColor.getrgb(name)[:3]
    return None


def parse_color(phrase: str) -> tuple[int, int, int]:
    """Turn a colour phrase matched by :data:`COLOR` into ``(r, g, b)`` (0..255).

    "light blue" -> lightblue, "navy blue" -> navy, "pale green" -> green mixed
    with white, "deep red" -> darkened red. Raises ``ValueError`` if unknown.
    """
    phrase = phrase.strip().lower()
    if phrase.endswith("ish"):
        phrase = phrase[:-3]
    if phrase.startswith("#"):
        return ImageColor.getrgb(phrase)[:3]
    whole = _lookup(phrase)
    if whole is not None:
        return whole
    words = phrase.split()
    if len(words) == 2:
        prefix, base = words
        rgb = _lookup(base)
        if rgb is None:
            raise ValueError(f"unknown colour {phrase!r}")
        if prefix in _LIGHTER:
            return tuple(int(round(c + (255 - c) * 0.5)) for c in rgb)  # type: ignore[return-value]
        if prefix in _DARKER:
            return tuple(int(round(c * 0.55)) for c in rgb)  # type: ignore[return-value]
        prefix_rgb = _lookup(prefix)
        if prefix_rgb is not None and prefix not in ("sky", "sea", "spring", "lime"):
            return prefix_rgb
        return rgb
    raise ValueError(f"unknown colour {phrase!r}")


def find_colors(text: str) -> list[tuple[int, int, int]]:
    """All colours named in ``text``, in order, as ``(r, g, b)`` tuples."""
    out = []
    for m in _COLOR_RE.finditer(text):
        try:
            out.append(parse_color(m.group(0)))
        except ValueError:
            continue
    return out


def require_colors(text: str, example: str) -> list[tuple[int, int, int]]:
    """:func:`find_colors`, or raise :class:`~.registry.NotUnderstood` saying
    ``example`` (how to name the colour) when ``text`` names none."""
    from .registry import NotUnderstood

    colors = find_colors(text)
    if not colors:
        raise NotUnderstood(example)
    return colors


_REVERSE: dict[tuple[int, int, int], str] = {}
for _name in sorted(ImageColor.colormap, key=lambda n: (len(n), n), reverse=True):
    if _name not in ("aqua", "fuchsia") and "grey" not in _name:
        _REVERSE[tuple(ImageColor.getrgb(_name)[:3])] = _name  # type: ignore[index]


def color_name(rgb: tuple[int, int, int]) -> str:
    """A short human name for ``rgb``: the CSS name if there is one, else hex."""
    return _REVERSE.get(tuple(rgb), "#%02x%02x%02x" % tuple(rgb))  # type: ignore[arg-type]
