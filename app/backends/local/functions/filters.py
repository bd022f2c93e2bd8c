"""Neighbourhood filters: blur, motion blur, sharpen, pixelate, denoise,
grain, vignette, posterize, solarize, emboss, edges. PIL in, PIL out, same size.

Sizes are in pixels; where none is given they scale with the image.
``strength`` is 0.05..10 (1 = the default effect, "slightly" 0.5, "a lot"
1.8); ``percent`` 0..300 replaces it where the person gave one. An alpha
channel is kept unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ..picture import luminance
from . import ParamError, check_range
from .tone import on_rgb


@dataclass(frozen=True)
class Strength:
    """How strong an effect is: ``strength`` 0.05..10 (1 = default) or
    ``percent`` 0..300 when given."""

    strength: float = 1.0
    percent: float | None = None

    def __post_init__(self) -> None:
        check_range("strength", self.strength, 0.05, 10)
        if self.percent is not None:
            check_range("amount", self.percent, 0, 300, unit="%")


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


@dataclass(frozen=True)
class BlurParams(Strength):
    """Gaussian blur: ``radius`` in pixels (0 < radius <= 500) when given,
    else 0.6% of the longer side (at least 2 px) scaled by strength or
    percent (50% = default). ``obscure`` doubles the default (a selected
    area is blurred to hide it)."""

    radius: float | None = None
    obscure: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.radius is not None:
            check_range("blur radius", self.radius, 0.01, 500, unit=" px")


def blur_sigma(w: int, h: int, p: BlurParams) -> float:
    """Gaussian sigma in pixels for a ``w`` x ``h`` image."""
    if p.radius is not None:
        return p.radius / 2.0 if p.radius > 2 else p.radius
    base = max(2.0, 0.006 * max(w, h))
    sigma = base * p.percent / 50.0 if p.percent is not None else base * p.strength ** 0.75
    return sigma * 2.0 if p.obscure else sigma


def blur(image: Image.Image, p: BlurParams) -> Image.Image:
    """Gaussian blur with :func:`blur_sigma`."""
    sigma = blur_sigma(image.width, image.height, p)
    return on_rgb(image, lambda a: gaussian_blur(a, sigma))


@dataclass(frozen=True)
class MotionBlurParams(Strength):
    """A straight streak 3% of the longer side long (x strength, at least 5
    px), ``vertical`` or horizontal."""

    vertical: bool = False


def motion_blur(image: Image.Image, p: MotionBlurParams) -> Image.Image:
    """Average along a line (see :class:`MotionBlurParams`)."""
    n = max(5, round(0.03 * max(image.width, image.height) * p.strength)) | 1
    k = np.zeros((n, n), np.float32)
    if p.vertical:
        k[:, n // 2] = 1.0 / n
    else:
        k[n // 2, :] = 1.0 / n
    return on_rgb(image, lambda a: cv2.filter2D(a, -1, k, borderType=cv2.BORDER_REFLECT))


def sharpen(image: Image.Image, p: Strength) -> Image.Image:
    """Unsharp mask: amount 1.2 x strength^0.75 (or percent/100 x 1.5), radius
    0.15% of the longer side (at least 1 px)."""
    amount = p.percent / 100.0 * 1.5 if p.percent is not None else 1.2 * p.strength ** 0.75
    sigma = max(1.0, 0.0015 * max(image.width, image.height))

    def fn(a: np.ndarray) -> np.ndarray:
        f = a.astype(np.float32)
        return f + amount * (f - cv2.GaussianBlur(f, (0, 0), sigma))

    return on_rgb(image, fn)


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


@dataclass(frozen=True)
class PixelateParams(Strength):
    """Square blocks of ``block`` pixels (2..4096) when given, else 1/64 of
    the longer side x strength (at least 4 px)."""

    block: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.block is not None:
            check_range("block size", self.block, 2, 4096, unit=" px")


def pixel_block(w: int, h: int, p: PixelateParams) -> int:
    """Block size in pixels for a ``w`` x ``h`` image."""
    return p.block if p.block is not None else max(4, round(max(w, h) / 64 * p.strength))


def pixelate(image: Image.Image, p: PixelateParams) -> Image.Image:
    """Mean colour per block (see :func:`pixelate_rgb`)."""
    block = pixel_block(image.width, image.height, p)
    return on_rgb(image, lambda a: pixelate_rgb(a, block))


def denoise(image: Image.Image, p: Strength) -> Image.Image:
    """Edge-preserving bilateral filter (7 px, colour sigma 25 x strength)."""
    return on_rgb(image, lambda a: cv2.bilateralFilter(np.ascontiguousarray(a), 7, 25 * p.strength, 5))


def grain(image: Image.Image, p: Strength) -> Image.Image:
    """Gaussian luminance noise, sigma 10 x strength levels, fixed seed (repeatable)."""
    rng = np.random.default_rng(12345)
    noise = rng.normal(0.0, 10.0 * p.strength, size=(image.height, image.width, 1)).astype(np.float32)
    return on_rgb(image, lambda a: a.astype(np.float32) + noise)


def vignette_shade(h: int, w: int, strength: float = 1.0) -> np.ndarray:
    """Radial falloff ``(H, W)`` float32: 1 in the centre, about ``1 - 0.45*strength`` in the corners."""
    y = (np.arange(h, dtype=np.float32) - (h - 1) / 2) / (h / 2)
    x = (np.arange(w, dtype=np.float32) - (w - 1) / 2) / (w / 2)
    r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2.0
    return np.clip(1.0 - 0.45 * strength * r2 ** 1.2, 0.0, 1.0)


def vignette(image: Image.Image, p: Strength) -> Image.Image:
    """Darken towards the corners (see :func:`vignette_shade`)."""
    shade = vignette_shade(image.height, image.width, p.strength)
    return on_rgb(image, lambda a: a.astype(np.float32) * shade[..., None])


@dataclass(frozen=True)
class PosterizeParams:
    """``levels`` per channel, 2..64."""

    levels: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.levels, int):
            raise ParamError("levels must be a whole number")
        check_range("levels", self.levels, 2, 64)


def posterize(image: Image.Image, p: PosterizeParams) -> Image.Image:
    """Each channel reduced to ``p.levels`` evenly spaced values."""
    n = p.levels
    return on_rgb(image, lambda a: np.floor(a.astype(np.float32) / 256.0 * n) * (255.0 / (n - 1)))


@dataclass(frozen=True)
class Plain:
    """A filter without parameters (solarize, emboss, edges)."""


def solarize(image: Image.Image, p: Plain) -> Image.Image:
    """Invert the tones at or above 128."""
    return on_rgb(image, lambda a: np.where(a >= 128, 255 - a, a))


def emboss(image: Image.Image, p: Plain) -> Image.Image:
    """Gray relief from a diagonal derivative of the luminance, centred on 128."""
    k = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)

    def fn(a: np.ndarray) -> np.ndarray:
        g = luminance(a)
        out = np.rint(cv2.filter2D(g, -1, k) + 128.0 - g)
        return np.repeat(out[..., None], 3, axis=2)

    return on_rgb(image, fn)


def edges(image: Image.Image, p: Plain) -> Image.Image:
    """Dark Canny edges (thresholds 50/150, blur 1.2 px) on white."""

    def fn(a: np.ndarray) -> np.ndarray:
        g = cv2.GaussianBlur(luminance(a).astype(np.uint8), (0, 0), 1.2)
        e = 255 - cv2.Canny(g, 50, 150)
        return np.repeat(e[..., None], 3, axis=2)

    return on_rgb(image, fn)
