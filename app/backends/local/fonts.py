"""Font lookup: Debian's DejaVu, then Noto (many scripts), checked per character.

:func:`font_for` returns a font file that has a glyph for every character of
the text, or None when no installed font does.
"""
from __future__ import annotations

import functools
from pathlib import Path

from PIL import ImageFont

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/truetype/noto"),
    Path("/usr/share/fonts/opentype/noto"),
    Path("/usr/share/fonts/truetype"),
)
#: Preferred files per style, most preferred first.
STYLES = {
    "sans": ("DejaVuSans-Bold.ttf", "NotoSans-Bold.ttf", "DejaVuSans.ttf", "NotoSans-Regular.ttf"),
    "serif": ("DejaVuSerif-Bold.ttf", "NotoSerif-Bold.ttf", "DejaVuSerif.ttf", "NotoSerif-Regular.ttf"),
    "italic": ("DejaVuSans-BoldOblique.ttf", "NotoSans-BoldItalic.ttf", "DejaVuSans-Bold.ttf"),
    "mono": ("DejaVuSansMono-Bold.ttf", "DejaVuSansMono.ttf"),
}
_PROBE_SIZE = 32


@functools.cache
def _find(name: str) -> Path | None:
    for d in FONT_DIRS:
        p = d / name
        if p.is_file():
            return p
    return None


@functools.cache
def _notdef(path: Path) -> tuple[tuple[int, int], bytes]:
    font = ImageFont.truetype(str(path), _PROBE_SIZE)
    m = font.getmask("\U000f0000")
    return m.size, bytes(m)


@functools.cache
def has_glyph(path: Path, ch: str) -> bool:
    """True if the font file at ``path`` draws ``ch`` (not the missing-glyph box)."""
    if ch.isspace() or ord(ch) < 32:
        return True
    font = ImageFont.truetype(str(path), _PROBE_SIZE)
    m = font.getmask(ch)
    return (m.size, bytes(m)) != _notdef(path)


def _covers(path: Path, text: str) -> bool:
    return all(has_glyph(path, ch) for ch in set(text))


@functools.cache
def _noto_files() -> tuple[Path, ...]:
    files: list[Path] = []
    for d in FONT_DIRS[1:3]:
        if d.is_dir():
            files += sorted(p for p in d.glob("Noto*-Bold.ttf"))
            files += sorted(p for p in d.glob("Noto*-Regular.ttf"))
    return tuple(files)


def font_for(text: str, style: str = "sans") -> Path | None:
    """A font file for ``style`` ("sans", "serif", "italic", "mono") with
    glyphs for every character in ``text``; None if no installed font has them."""
    for name in STYLES.get(style, STYLES["sans"]) + STYLES["sans"]:
        p = _find(name)
        if p is not None and _covers(p, text):
            return p
    for p in _noto_files():
        if _covers(p, text):
            return p
    return None
