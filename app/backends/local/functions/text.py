"""Text: exact text drawn at a position, sized to fit, kept legible with an
outline or a band behind it. PIL in, PIL out, same size; an alpha channel is
kept unchanged. Colours are RGB 0..255.

Raises :class:`TextError` (a :class:`~.ParamError`) when no installed font
has every glyph of the text, or when it cannot fit legibly: the text is
never handed back cut off or with missing glyphs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..fonts import font_for
from ..picture import luminance
from . import ParamError, check_range

Color = tuple[int, int, int]

_VERTICAL = ("top", "center", "bottom", "upper", "lower")
_HORIZONTAL = ("left", "center", "right")


class TextError(ParamError):
    """The text cannot be drawn exactly and legibly (no font, does not fit)."""


def _check_color(name: str, c: Color | None) -> None:
    if c is not None and (len(c) != 3 or any(not 0 <= v <= 255 for v in c)):
        raise ParamError(f"{name} must be three values 0..255")


@dataclass(frozen=True)
class TextParams:
    """Text to draw exactly as given.

    - ``text``: the exact words (``\\n`` separates lines).
    - ``position``: ``"<vertical>-<horizontal>"``, vertical top, center,
      bottom, upper (a title above the centre, 0.42 of the height) or lower
      (detail lines, 0.68 of the height); horizontal left, center, right.
    - ``color``: letters RGB, or None (white on a photo; black or white,
      whichever contrasts, on a generated canvas or a banner).
    - ``outline``: outline RGB, or None (contrasting with the letters).
    - ``banner``: RGB of a band behind the text, or None (on a photo, one is
      added when an outline alone may not keep the text legible).
    - ``banner_alpha``: the band's opacity, 0..255.
    - ``opacity``: of the whole drawing, 0.01..1 (watermarks are fainter).
    - ``scale``: font size factor, 0.05..10 (1 = 11% of the height on a
      photo, 12% on a canvas, 13% for memes).
    - ``style``: "sans", "serif", "italic" or "mono".
    - ``kind``: the noun used ("caption", "watermark", "details"...);
      a watermark is subtle and, in a corner, small.
    - ``meme``: meme layout (larger letters, outline, no band).
    - ``generated``: on a generated canvas (letters contrast with the
      backdrop, outline only where needed, no automatic band).
    - ``fill_box``: fill the image (text in a selected box): larger letters.
    """

    text: str
    position: str = "center-center"
    color: Color | None = None
    outline: Color | None = None
    banner: Color | None = None
    banner_alpha: int = 255
    opacity: float = 1.0
    scale: float = 1.0
    style: str = "sans"
    kind: str = "text"
    meme: bool = False
    generated: bool = False
    fill_box: bool = False

    def __post_init__(self) -> None:
        vert, _, horiz = self.position.partition("-")
        if vert not in _VERTICAL or horiz not in _HORIZONTAL:
            raise ParamError(f"unknown text position {self.position!r}")
        _check_color("color", self.color)
        _check_color("outline", self.outline)
        _check_color("banner", self.banner)
        check_range("banner opacity", self.banner_alpha, 0, 255)
        check_range("text opacity", self.opacity, 0.01, 1)
        check_range("text scale", self.scale, 0.05, 10)
        if self.style not in ("sans", "serif", "italic", "mono"):
            raise ParamError(f"unknown font style {self.style!r}")


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


def _split(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    if "A" in image.getbands():
        a = np.asarray(image.convert("RGBA"))
        return np.ascontiguousarray(a[..., :3]), np.ascontiguousarray(a[..., 3])
    return np.asarray(image.convert("RGB")), None


def _join(rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    if alpha is None:
        return Image.fromarray(rgb, "RGB")
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def _draw_rgb(rgb: np.ndarray, p: TextParams) -> np.ndarray:
    """:func:`draw_text` on an ``(H, W, 3)`` uint8 array; returns a new array."""
    text = p.text
    path = font_for(text, p.style)
    if path is None:
        raise TextError(f"No installed font can draw {text!r}.")
    h, w = rgb.shape[:2]
    generated = p.generated
    margin_x, margin_y = round(w * 0.05), round(h * 0.04)
    base = 0.13 if p.meme else 0.11 if not generated else 0.12
    if p.position.endswith(("left", "right")) and p.kind == "watermark":
        base = 0.05
    target = max(10, round(min(h * base, w * 0.2) * p.scale))
    if p.fill_box:
        target = max(10, round(min(h * 0.6, w * 0.3) * p.scale))
    font, lines, stroke = fit_text(text, str(path), w - 2 * margin_x, target)
    im = Image.fromarray(rgb, "RGB")
    draw = ImageDraw.Draw(im)
    block_w, block_h, boxes = _measure(draw, lines, font, stroke)
    if block_w > w or block_h > h:  # never hand over text that is cut off
        raise TextError(
            f"The text {text!r} does not fit legibly on a {w}x{h} image, so I did not add it. "
            "Try shorter text, or resize the image first."
        )
    vert, horiz = p.position.split("-")
    if vert in ("upper", "lower"):  # layouts: a title above the centre, detail lines below it
        y = round(h * (0.42 if vert == "upper" else 0.68) - block_h / 2)
    else:
        y = margin_y if vert == "top" else h - margin_y - block_h if vert == "bottom" else (h - block_h) // 2
    region = rgb[max(0, y):max(1, y + block_h), :]
    background = tuple(int(v) for v in region.reshape(-1, 3).mean(axis=0)) if region.size else (128, 128, 128)
    fill = p.color or (_contrast_color(background) if generated else (255, 255, 255))  # type: ignore[arg-type]
    outline = p.outline or _contrast_color(fill)
    if generated and p.outline is None:
        lum_fill = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
        lum_bg = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
        stroke = stroke if abs(lum_fill - lum_bg) < 90 else 0
    banner = p.banner
    banner_alpha = p.banner_alpha
    if banner is not None and p.color is None and banner_alpha > 200:
        fill = _contrast_color(banner)
        outline = _contrast_color(fill)
    subtle = p.opacity < 1.0 or p.kind == "watermark"
    if banner is None and not generated and not p.meme and not subtle:
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
    opacity = float(p.opacity)
    if opacity < 1.0:  # semi-transparent (watermarks): blend the drawing with the picture
        f = rgb.astype(np.float32)
        out = np.clip(np.rint(f + (out.astype(np.float32) - f) * opacity), 0, 255).astype(np.uint8)
    return out


def draw_text(image: Image.Image, p: TextParams) -> Image.Image:
    """``image`` with :class:`TextParams` text drawn on it (same size, alpha
    kept). Raises :class:`TextError` when no installed font has the glyphs
    or the text does not fit legibly."""
    rgb, alpha = _split(image)
    return _join(_draw_rgb(rgb, p), alpha)


def draw_text_in_mask(image: Image.Image, p: TextParams, mask: np.ndarray) -> Image.Image:
    """``image`` with the text drawn centred in the bounding box of the
    selected region (``mask``: ``(H, W)`` uint8, > 127 = selected), as large
    as fits (``fill_box``); ``p.position`` and ``p.generated`` are ignored.
    An empty selection leaves the image unchanged."""
    ys, xs = np.nonzero(mask > 127)
    if len(xs) == 0:
        return image
    rgb, alpha = _split(image)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    sub = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    drawn = _draw_rgb(sub, replace(p, position="center-center", fill_box=True, generated=False))
    out = rgb.copy()
    out[y0:y1, x0:x1] = drawn
    return _join(out, alpha)
