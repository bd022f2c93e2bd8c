"""Colour and tone: grayscale, sepia, invert, brightness, contrast,
saturation, warmth, tint, auto-enhance. PIL in, PIL out, same size.

Colours are RGB triples of 0..255. Amounts: ``percent`` (0..100, or up to
300 for effects that can more than double) when the person gave one, else
``strength`` (0.2..4, 1 = the default effect) from words like "slightly"
(0.5) or "a lot" (1.8). ``direction`` is +1 (more) or -1 (less). An alpha
channel is kept unchanged.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ..picture import luminance, to_uint8
from . import ParamError, check_range


def on_rgb(image: Image.Image, fn: Callable[[np.ndarray], np.ndarray]) -> Image.Image:
    """Apply ``fn`` (``(H, W, 3)`` uint8 -> any numeric ``(H, W, 3)``) to the
    colour channels of ``image``, keeping its alpha; result rounded and clipped."""
    if image.mode == "RGBA":
        a = np.asarray(image)
        return Image.fromarray(np.dstack([to_uint8(fn(np.ascontiguousarray(a[..., :3]))), a[..., 3]]), "RGBA")
    return Image.fromarray(to_uint8(fn(np.asarray(image.convert("RGB")))), "RGB")


@dataclass(frozen=True)
class NoParams:
    """An operation without parameters (grayscale, sepia, invert)."""


@dataclass(frozen=True)
class Amount:
    """How much of an effect: ``direction`` +1 (more) or -1 (less);
    ``percent`` 0..300 when given, else ``strength`` 0.2..4 (1 = default)."""

    direction: int = 1
    strength: float = 1.0
    percent: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise ParamError("direction must be +1 or -1")
        check_range("strength", self.strength, 0.05, 10)
        if self.percent is not None:
            check_range("amount", self.percent, 0, 300, unit="%")

    def fraction(self, base: float, cap: float = 0.95) -> float:
        """The effect as a fraction: ``percent``/100 if given, else ``base`` x
        sqrt(``strength``) (so "slightly" stays visible); at most ``cap``."""
        if self.percent is not None:
            return min(cap, abs(self.percent) / 100.0)
        return min(cap, base * self.strength ** 0.5)


@dataclass(frozen=True)
class TintParams(Amount):
    """A colour tint: ``color`` RGB 0..255, amount as in :class:`Amount`."""

    color: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.color) != 3 or any(not 0 <= c <= 255 for c in self.color):
            raise ParamError("color must be three values 0..255")


def grayscale(image: Image.Image, p: NoParams) -> Image.Image:
    """Every channel set to the Rec. 601 luminance."""
    return on_rgb(image, lambda a: np.repeat(np.rint(luminance(a))[..., None], 3, axis=2))


#: Sepia line: colour = DARK + s * (LIGHT - DARK) for s in 0..1 (no clipping,
#: so each channel is an exact linear function of the output luminance).
SEPIA_DARK = np.array([32.0, 20.0, 10.0], np.float32)
SEPIA_LIGHT = np.array([255.0, 236.0, 196.0], np.float32)


def sepia_rgb(rgb: np.ndarray, shade: np.ndarray | None = None) -> np.ndarray:
    """Sepia tint of ``rgb`` ``(H, W, 3)`` uint8: a pure function of luminance.

    ``shade`` (``(H, W)`` float 0..1, optional) scales the tone position, e.g.
    for a vignette; the result stays a linear tint. Returns uint8 ``(H, W, 3)``.
    """
    s = luminance(rgb) / 255.0
    if shade is not None:
        s = s * shade
    out = SEPIA_DARK + s[..., None] * (SEPIA_LIGHT - SEPIA_DARK)
    return np.rint(out).astype(np.uint8)


def sepia(image: Image.Image, p: NoParams) -> Image.Image:
    """A brown monochrome tint of the luminance (see :func:`sepia_rgb`)."""
    return on_rgb(image, sepia_rgb)


def invert(image: Image.Image, p: NoParams) -> Image.Image:
    """255 minus every colour channel."""
    return on_rgb(image, lambda a: 255 - a)


def brightness(image: Image.Image, p: Amount) -> Image.Image:
    """Brighter (+1: lifts towards white, keeping white; default 22%) or
    darker (-1: scales towards black; default 25%)."""
    a = p.fraction(0.22 if p.direction > 0 else 0.25)

    def fn(rgb: np.ndarray) -> np.ndarray:
        f = rgb.astype(np.float32)
        return f + a * (255.0 - f) if p.direction > 0 else f * (1.0 - a)

    return on_rgb(image, fn)


def contrast(image: Image.Image, p: Amount) -> Image.Image:
    """Stretch (+1) or squeeze (-1) the colours around the mean luminance
    (default 35%; stretch up to 300%, squeeze at most 95%)."""
    a = p.fraction(0.35, cap=3.0)
    k = 1.0 + a if p.direction > 0 else max(0.05, 1.0 - min(a, 0.95))

    def fn(rgb: np.ndarray) -> np.ndarray:
        mean = float(luminance(rgb).mean())
        return (rgb.astype(np.float32) - mean) * k + mean

    return on_rgb(image, fn)


def mix_saturation(rgb: np.ndarray, k: float) -> np.ndarray:
    """Scale each pixel's distance from its gray value by ``k`` (float result)."""
    f = rgb.astype(np.float32)
    y = luminance(rgb)[..., None]
    return y + (f - y) * k


def saturation(image: Image.Image, p: Amount) -> Image.Image:
    """More (+1, default +50%) or less (-1, default -45%, never reaching gray
    unless ``percent`` >= 100) saturated colours."""
    if p.direction > 0:
        k = 1.0 + p.fraction(0.5, cap=3.0)
    else:
        k = max(0.15, 1.0 - p.fraction(0.45, cap=1.0))
        if (p.percent or 0) >= 100:
            k = 0.0
    return on_rgb(image, lambda a: mix_saturation(a, k))


def warmth(image: Image.Image, p: Amount) -> Image.Image:
    """Warmer (+1: more red, less blue) or cooler (-1), default 12%."""
    a = p.fraction(0.12, cap=0.8) * p.direction
    gains = np.array([1.0 + a, 1.0 + a * 0.15, 1.0 - a], np.float32)
    return on_rgb(image, lambda rgb: rgb.astype(np.float32) * gains)


def tint(image: Image.Image, p: TintParams) -> Image.Image:
    """Multiply by a colour filter of ``p.color`` (default 35% strength),
    normalised to keep the brightness."""
    a = p.fraction(0.35, cap=1.0)
    gel = (1.0 - a) + a * np.array(p.color, np.float32) / 255.0
    lum = 0.299 * gel[0] + 0.587 * gel[1] + 0.114 * gel[2]
    gel = gel / max(lum, 0.05)
    return on_rgb(image, lambda rgb: rgb.astype(np.float32) * gel)


def auto_enhance(image: Image.Image, p: Amount) -> Image.Image:
    """Local contrast (CLAHE on CIELAB lightness, clip limit 1.5 + strength)
    and a little more colour (+15% x strength)."""
    s = p.strength

    def fn(rgb: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2LAB)
        clahe = cv2.createCLAHE(clipLimit=1.5 + 1.0 * s, tileGridSize=(8, 8))
        lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
        return mix_saturation(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 1.0 + 0.15 * s)

    return on_rgb(image, fn)
