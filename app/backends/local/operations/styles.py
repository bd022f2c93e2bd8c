"""Artistic styles: pencil sketch, cartoon, oil painting, watercolour, vintage.

Heavy OpenCV filters run on a copy at most ``WORK_SIDE`` pixels on its longer
side and are scaled back, so every style stays well under a second.
"""
from __future__ import annotations

from typing import Any, Callable

import cv2
import numpy as np

from ..picture import Picture, luminance
from ..registry import ApplyContext, Operation, register
from .filters import vignette_shade
from .tone import sepia_rgb

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


@register
class Sketch(Operation):
    """Pencil (or charcoal, or coloured pencil) sketch."""

    name = "sketch"
    phrases = {
        r"(?:pencil\s+|hand\s+drawn\s+|hand\s+sketched\s+|graphite\s+|hand\s+)?(?:sketch|sketched|sketchy|drawing|drawn|sketchbook)(?:\s+(?:style|look|effect))?|"
        r"(?:drawn|sketched)\s+(?:by\s+hand|in\s+pencil|with\s+(?:a\s+)?pencil)|pencil(?:\s+(?:art|style))?|line\s+(?:drawing|art)|hand\s+drawn": {},
        r"charcoal(?:\s+(?:drawing|sketch|style))?": {"dark": 1.8},
        r"colou?r(?:ed)?\s+pencil(?:\s+(?:drawing|sketch))?|crayon(?:\s+drawing)?": {"color": True},
    }

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        return Picture(pencil_sketch(pic.rgb, params.get("color", False), params.get("dark", 1.0)), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        if params.get("color"):
            return "turned it into a coloured pencil drawing"
        return "turned it into a charcoal drawing" if params.get("dark") else "turned it into a pencil sketch"


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


@register
class Cartoon(Operation):
    """Cartoon / comic look."""

    name = "cartoon"
    phrases = {
        r"cartoon(?:ify|ified|ise|ize|ized|ised|ish|y)?(?:\s+(?:style|look|effect|version|character))?|toonify|"
        r"comic(?:\s+(?:book|strip))?(?:\s+(?:style|look|effect))?|cel\s+shad(?:ed|ing)|animated\s+(?:style|look)": {},
    }

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        return Picture(cartoon(pic.rgb), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "gave it a cartoon look"


@register
class OilPainting(Operation):
    """Oil painting (``cv2.xphoto.oilPainting``)."""

    name = "oil_painting"
    phrases = {
        r"oil(?:\s+(?:painting|paint|painted|style|look|effect|on\s+canvas))?|painting|painted|painterly|impasto|(?:acrylic|gouache)(?:\s+painting)?|"
        r"(?:painted|done|rendered|made)\s+(?:in|with)\s+oils?(?:\s+paint)?": {},
    }

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        def work(a: np.ndarray) -> np.ndarray:
            size = max(4, round(max(a.shape[:2]) / 110))
            return cv2.xphoto.oilPainting(a, size, 1, cv2.COLOR_RGB2Lab)

        return Picture(_at_work_size(pic.rgb, work), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "made it look like an oil painting"


@register
class Watercolor(Operation):
    """Watercolour: edge-preserving stylisation, softened and lightened."""

    name = "watercolor"
    phrases = {
        r"water\s*colou?r(?:ed)?(?:\s+(?:painting|paint|style|look|effect))?|aquarelle|"
        r"styli[sz]e[d]?|styli[sz]ation|artistic(?:\s+(?:look|effect|filter|style))?": {},
    }

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        def work(a: np.ndarray) -> np.ndarray:
            s = cv2.stylization(a, sigma_s=60, sigma_r=0.45)
            s = cv2.edgePreservingFilter(s, flags=cv2.RECURS_FILTER, sigma_s=30, sigma_r=0.3)
            return cv2.addWeighted(s, 0.85, np.full_like(s, 255), 0.15, 0)

        return Picture(_at_work_size(pic.rgb, work), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "made it look like a watercolour"


@register
class Vintage(Operation):
    """Vintage: faded sepia with a vignette (still a pure tint of luminance)."""

    name = "vintage"
    phrases = {
        r"vintage|retro|old(?:\s*school|\s+fashioned|\s+timey|\s+time|\s+film)?|aged|nostalgic|antique|"
        r"(?:faded|analog(?:ue)?|old)\s+film(?:\s+look)?|19th\s+century|1900s|daguerreotype": {},
    }

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        shade = 0.08 + 0.88 * vignette_shade(pic.height, pic.width, 0.8)
        return Picture(sepia_rgb(pic.rgb, shade), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "gave it a vintage sepia look with a vignette"



