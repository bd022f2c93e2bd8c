"""Artistic styles: pencil sketch, cartoon, oil painting, watercolour,
vintage. PIL in, PIL out, same size; an alpha channel is kept.

Heavy OpenCV filters run on a copy at most ``WORK_SIDE`` pixels on its longer
side and are scaled back, so every style stays well under a second.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ..picture import luminance
from . import check_range
from .filters import vignette_shade
from .tone import on_rgb, sepia_rgb

#: Longer side, in pixels, at which the slow style filters run.
WORK_SIDE = 768


def _at_work_size(rgb: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    h, w = rgb.shape[:2]
    f = WORK_SIDE / max(h, w)
    if f >= 1:
        return fn(rgb)
    small = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    return cv2.resize(fn(small), (w, h), interpolation=cv2.INTER_CUBIC)


def pencil_sketch(rgb: np.ndarray, color: bool = False, dark: float = 1.0) -> np.ndarray:
    """Pencil sketch of ``(H, W, 3)`` uint8 by colour dodge of the blurred
    negative; ``color`` keeps a little colour, ``dark`` > 1 gives heavier
    (charcoal-like) strokes. Returns ``(H, W, 3)`` uint8."""
    g = luminance(rgb)
    sigma = max(2.0, 0.012 * max(rgb.shape[:2]))
    blur = cv2.GaussianBlur(255.0 - g, (0, 0), sigma)
    sketch = np.clip(g * 255.0 / np.maximum(255.0 - blur, 1.0), 0, 255)
    sketch = 255.0 * (sketch / 255.0) ** (2.0 * dark)
    if color:
        f = rgb.astype(np.float32)
        tinted = (f * 0.35 + 255.0 * 0.65) * (sketch[..., None] / 255.0)
        return np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
    y = np.clip(np.rint(sketch), 0, 255).astype(np.uint8)
    return np.repeat(y[..., None], 3, axis=2)


def cartoon(rgb: np.ndarray) -> np.ndarray:
    """Cartoon look: smoothed flat colours (bilateral filter + quantisation)
    with dark outlines. ``(H, W, 3)`` uint8 in and out."""

    def work(a: np.ndarray) -> np.ndarray:
        smooth = a
        for _ in range(3):
            smooth = cv2.bilateralFilter(smooth, 9, 60, 7)
        q = (smooth // 40) * 40 + 20
        g = cv2.medianBlur(luminance(a).astype(np.uint8), 7)
        edges = cv2.adaptiveThreshold(g, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 5)
        return np.where(edges[..., None] == 0, 25, q).astype(np.uint8)

    return _at_work_size(rgb, work)



@dataclass(frozen=True)
class SketchParams:
    """Pencil sketch: ``color`` keeps a little colour (coloured pencil);
    ``dark`` 0.5..3 darkens the strokes (1 = pencil, 1.8 = charcoal)."""

    color: bool = False
    dark: float = 1.0

    def __post_init__(self) -> None:
        check_range("darkness", self.dark, 0.5, 3)


@dataclass(frozen=True)
class Look:
    """A style without parameters (cartoon, oil painting, watercolour, vintage)."""


def sketch(image: Image.Image, p: SketchParams) -> Image.Image:
    """Pencil, charcoal or coloured-pencil sketch (see :func:`pencil_sketch`)."""
    return on_rgb(image, lambda a: pencil_sketch(a, p.color, p.dark))


def cartoon_look(image: Image.Image, p: Look) -> Image.Image:
    """Cartoon look (see :func:`cartoon`)."""
    return on_rgb(image, cartoon)


def oil_painting(image: Image.Image, p: Look) -> Image.Image:
    """Oil painting (``cv2.xphoto.oilPainting``, brush 1/110 of the longer side, at least 4 px)."""

    def work(a: np.ndarray) -> np.ndarray:
        size = max(4, round(max(a.shape[:2]) / 110))
        return cv2.xphoto.oilPainting(a, size, 1, cv2.COLOR_RGB2Lab)

    return on_rgb(image, lambda a: _at_work_size(np.ascontiguousarray(a), work))


def watercolor(image: Image.Image, p: Look) -> Image.Image:
    """Watercolour: edge-preserving stylisation, softened and lightened by 15%."""

    def work(a: np.ndarray) -> np.ndarray:
        s = cv2.stylization(a, sigma_s=60, sigma_r=0.45)
        s = cv2.edgePreservingFilter(s, flags=cv2.RECURS_FILTER, sigma_s=30, sigma_r=0.3)
        return cv2.addWeighted(s, 0.85, np.full_like(s, 255), 0.15, 0)

    return on_rgb(image, lambda a: _at_work_size(np.ascontiguousarray(a), work))


def vintage(image: Image.Image, p: Look) -> Image.Image:
    """Faded sepia with a vignette (still a pure tint of luminance)."""
    shade = 0.08 + 0.88 * vignette_shade(image.height, image.width, 0.8)
    return on_rgb(image, lambda a: sepia_rgb(a, shade))
