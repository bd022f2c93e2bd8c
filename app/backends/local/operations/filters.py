"""Neighbourhood filters: blur, motion blur, sharpen, pixelate, denoise,
grain, vignette, posterize, solarize, emboss, edges. Sizes scale with the image."""
from __future__ import annotations

import math
import re
from typing import Any

import cv2
import numpy as np

from ..phrases import NUM
from ..picture import Picture, luminance
from ..registry import ApplyContext, Operation, ParseContext, register

_MORE = r"(?:more|increase|boost|enhance|add|bring\s+out|improve|raise|higher)"


def gaussian_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an ``(H, W, C)`` uint8 array with ``sigma`` in pixels.

    Large sigmas are done on a downscaled copy (same look, much faster).
    Returns an array of the same shape and dtype.
    """
    if sigma <= 0:
        return rgb.copy()
    h, w = rgb.shape[:2]
    if sigma > 8 and min(h, w) > 64:
        f = 4.0 / sigma
        small = cv2.resize(rgb, (max(8, round(w * f)), max(8, round(h * f))), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 4.0 * max(1.0, small.shape[1] / (w * f)))
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


@register
class Blur(Operation):
    """Gaussian blur; "slightly"/"heavily" or "by 5 px" set the radius."""

    name = "blur"
    takes_strength = True
    phrases = {
        rf"(?:gaussian\s+)?(?:blur|blurred|blurry|blurrier|blurring|defocus|defocused|out\s+of\s+focus|unfocused|soft\s+focus)"
        rf"(?:\s+(?:by|with|radius|of|strength|amount|to)?\s*(?:radius\s+(?:of\s+)?)?{NUM}\s*(?:px)?(?:\s+radius)?)?": {},
        rf"{NUM}\s*(?:px)?\s+(?:radius\s+)?(?:gaussian\s+)?blur": {},
        r"soften|softer|smooth|smoothen|smoother|dreamy|hazy": {"strength": 0.5},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        m = re.search(rf"({NUM})", phrase)
        if m and float(m.group(1)) > 0:
            params["radius"] = float(m.group(1))
        return params

    @classmethod
    def sigma(cls, w: int, h: int, params: dict[str, Any]) -> float:
        """Blur sigma in pixels for a ``w`` x ``h`` image."""
        if "radius" in params:
            return params["radius"] / 2.0 if params["radius"] > 2 else params["radius"]
        base = max(2.0, 0.006 * max(w, h))
        if "percent" in params:
            return base * params["percent"] / 50.0
        return base * params.get("strength", 1.0) ** 0.75

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        sigma = cls.sigma(pic.width, pic.height, params)
        if ctx.mask is not None and "radius" not in params:
            sigma *= 2.0  # a selected area is blurred to be obscured, not just softened
        return Picture(gaussian_blur(pic.rgb, sigma), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        s = params.get("strength", 1.0)
        word = "slightly " if s < 0.8 else "strongly " if s > 1.4 else ""
        return f"{word}blurred the image"


@register
class MotionBlur(Operation):
    """Motion blur along a line (horizontal unless "vertical" is said)."""

    name = "motion_blur"
    takes_strength = True
    phrases = {r"(?:(?:horizontal|vertical)\s+)?(?:motion|speed|movement)\s+(?:blur|blurred|effect|streaks?)(?:\s+(?:horizontal|vertical)(?:ly)?)?": {}}

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        params["vertical"] = "vertical" in phrase
        return params

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        n = max(5, round(0.03 * max(pic.width, pic.height) * params.get("strength", 1.0))) | 1
        k = np.zeros((n, n), np.float32)
        if params["vertical"]:
            k[:, n // 2] = 1.0 / n
        else:
            k[n // 2, :] = 1.0 / n
        return Picture(cv2.filter2D(pic.rgb, -1, k, borderType=cv2.BORDER_REFLECT), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"added a {'vertical' if params['vertical'] else 'horizontal'} motion blur"


@register
class Sharpen(Operation):
    """Unsharp mask: add back the difference from a blurred copy."""

    name = "sharpen"
    takes_strength = True
    phrases = {
        rf"sharpen(?:ed)?(?:\s+(?:edges|details?|up))?|sharper|crisper|crisp(?:en)?(?:\s+up)?|more\s+(?:sharp|detailed|defined|crisp)|"
        rf"unsharp\s+mask(?:ing)?|{_MORE}\s+(?:details?|sharpness|clarity|definition|crispness)|"
        rf"(?:less|reduce|remove|fix|undo)\s+(?:blur|blurriness)|deblur|unblur|less\s+blurry|clearer|clarity|in\s+focus|"
        rf"(?:details?|edges|lines|textures?)\s+(?:sharper|crisper|clearer|more\s+defined|pop)|(?:sharper|crisper|clearer|finer)\s+(?:details?|edges)|"
        rf"(?:bring\s+out|enhance|boost)\s+(?:fine\s+)?(?:details?|edges|texture)": {},
    }

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        amount = params["percent"] / 100.0 * 1.5 if "percent" in params else 1.2 * params.get("strength", 1.0) ** 0.75
        sigma = max(1.0, 0.0015 * max(pic.width, pic.height))
        f = pic.rgb.astype(np.float32)
        blurred = cv2.GaussianBlur(f, (0, 0), sigma)
        return pic.with_rgb(f + amount * (f - blurred))

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "sharpened the image"


def pixelate_rgb(rgb: np.ndarray, block: int) -> np.ndarray:
    """Replace each ``block`` x ``block`` pixel cell (grid from the top-left) of
    an ``(H, W, C)`` uint8 array by its mean colour. Returns the same shape."""
    h, w = rgb.shape[:2]
    block = max(1, int(block))
    sw, sh = math.ceil(w / block), math.ceil(h / block)
    pw, ph = sw * block, sh * block
    padded = cv2.copyMakeBorder(rgb, 0, ph - h, 0, pw - w, cv2.BORDER_REPLICATE)
    small = cv2.resize(padded, (sw, sh), interpolation=cv2.INTER_AREA)
    big = np.repeat(np.repeat(small, block, axis=0), block, axis=1)
    return np.ascontiguousarray(big[:h, :w])


_BLOCK_WORDS = {"tiny": 0.5, "small": 0.6, "fine": 0.6, "big": 2.0, "large": 2.0, "chunky": 2.0, "huge": 3.0}


@register
class Pixelate(Operation):
    """Pixelate into square blocks (default about 1/64 of the longer side)."""

    name = "pixelate"
    takes_strength = True
    phrases = {
        r"(?:pixelate[d]?|pixelize[d]?|pixelise[d]?|pixellate[d]?|mosaic|pixel\s+(?:effect|art|look|style)|(?:8|16)[\s-]*bit(?:\s+(?:look|style|game))?|blocky)"
        rf"(?:\s+(?:with|using|in|into|to)?\s*(?:(?:tiny|small|fine|big|large|chunky|huge)\s+)?(?:(?:blocks?|squares?|cells?|tiles?)\s+(?:of\s+)?)?(?:{NUM}\s*(?:px)?)?(?:\s*(?:blocks?|squares?|px|cells?|tiles?))?)?": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        m = re.search(r"(?<![\w.])(\d+)(?!\s*[-\s]*bit)", phrase)
        if m and int(m.group(1)) >= 2:
            params["block"] = int(m.group(1))
        for word, f in _BLOCK_WORDS.items():
            if re.search(rf"\b{word}\b", phrase):
                params["strength"] = params.get("strength", 1.0) * f
        return params

    @classmethod
    def block(cls, w: int, h: int, params: dict[str, Any]) -> int:
        """Block size in pixels for a ``w`` x ``h`` image."""
        if "block" in params:
            return params["block"]
        return max(4, round(max(w, h) / 64 * params.get("strength", 1.0)))

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        return Picture(pixelate_rgb(pic.rgb, cls.block(pic.width, pic.height, params)), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"pixelated the image ({params['block']} px blocks)" if "block" in params else "pixelated the image"


@register
class Denoise(Operation):
    """Reduce noise with an edge-preserving bilateral filter."""

    name = "denoise"
    takes_strength = True
    priority = 40
    phrases = {
        r"(?:remove|reduce|less|fix|clean\s+up|get\s+rid\s+of|lower)\s+(?:noise|grain|graininess|speckles)|denoise|de\s*noise|noise\s+reduction|less\s+grainy|less\s+noisy": {},
    }

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        s = params.get("strength", 1.0)
        out = cv2.bilateralFilter(pic.rgb, 7, 25 * s, 5)
        return Picture(out, pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "reduced noise"


@register
class Grain(Operation):
    """Add film grain (Gaussian luminance noise, fixed seed so results repeat)."""

    name = "grain"
    takes_strength = True
    phrases = {r"(?:film\s+)?grain(?:y)?|(?:add\s+)?noise|noisy|gritty": {}}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        rng = np.random.default_rng(12345)
        sigma = 10.0 * params.get("strength", 1.0)
        noise = rng.normal(0.0, sigma, size=(pic.height, pic.width, 1)).astype(np.float32)
        return pic.with_rgb(pic.rgb.astype(np.float32) + noise)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "added film grain"


def vignette_shade(h: int, w: int, strength: float = 1.0) -> np.ndarray:
    """Radial falloff ``(H, W)`` float32: 1 in the centre, about ``1 - 0.45*strength`` in the corners."""
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / (h / 2)
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / (w / 2)
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2.0
    return np.clip(1.0 - 0.45 * strength * r2 ** 1.2, 0.0, 1.0)


@register
class Vignette(Operation):
    """Darken towards the corners."""

    name = "vignette"
    takes_strength = True
    phrases = {r"vignette|vignetting|dark(?:en|er)?\s+(?:corners|edges)|(?:corners|edges)\s+darker": {}}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        shade = vignette_shade(pic.height, pic.width, params.get("strength", 1.0))
        return pic.with_rgb(pic.rgb.astype(np.float32) * shade[..., None])

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "added a vignette"


@register
class Posterize(Operation):
    """Reduce each channel to a few levels (default 4)."""

    name = "posterize"
    phrases = {rf"posteri[sz]e[d]?(?:\s+(?:to|with|into)?\s*{NUM}\s*(?:levels?|colors?|tones?))?|poster\s+(?:effect|look)|flat\s+colors": {}}

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        m = re.search(r"(\d+)", phrase)
        params["levels"] = max(2, min(64, int(m.group(1)))) if m else 4
        return params

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        n = params["levels"]
        q = np.floor(pic.rgb.astype(np.float32) / 256.0 * n)
        return pic.with_rgb(q * (255.0 / (n - 1)))

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"posterized to {params['levels']} levels per channel"


@register
class Solarize(Operation):
    """Invert the tones above mid-gray."""

    name = "solarize"
    phrases = {r"solari[sz]e[d]?|solarization|solarisation": {}}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        return Picture(np.where(pic.rgb >= 128, 255 - pic.rgb, pic.rgb).astype(np.uint8), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "solarized the image"


@register
class Emboss(Operation):
    """Gray relief from a directional derivative."""

    name = "emboss"
    phrases = {r"emboss(?:ed)?(?:\s+effect)?|relief(?:\s+effect)?": {}}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        k = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
        g = luminance(pic.rgb)
        out = cv2.filter2D(g, -1, k) + 128.0 - g
        y = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return Picture(np.repeat(y[..., None], 3, axis=2), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "embossed the image"


@register
class Edges(Operation):
    """Edge detection: dark lines on white (Canny on a lightly blurred luminance)."""

    name = "edges"
    phrases = {r"edge\s+detect(?:ion|ed|or)?|detect\s+edges|find\s+edges|canny|outline\s+effect": {}}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        g = cv2.GaussianBlur(luminance(pic.rgb).astype(np.uint8), (0, 0), 1.2)
        e = cv2.Canny(g, 50, 150)
        y = (255 - e).astype(np.uint8)
        return Picture(np.repeat(y[..., None], 3, axis=2), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "turned it into an edge map"
