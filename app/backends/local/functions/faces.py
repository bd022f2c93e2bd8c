"""Faces: blur or pixelate given face boxes. PIL in, PIL out, same size;
pixels outside the (padded) boxes stay unchanged and an alpha channel is
kept. Detection is not done here: the boxes are an explicit argument
(see :func:`..operations.faces.detect_faces`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import ParamError, check_range
from .filters import gaussian_blur, pixelate_rgb
from .tone import on_rgb

#: A face box: ``(x, y, w, h)`` in pixels.
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class FacesParams:
    """How faces are hidden: ``method`` "blur" (sigma max(3, longer box side
    / 7 x strength) px) or "pixelate" (blocks max(4, longer box side / (10 /
    strength)) px); ``strength`` 0.05..10 (1 = default). Each box is padded
    by 12% of its width left and right and 18% of its height above and
    below. A percentage is not used."""

    method: str = "blur"
    strength: float = 1.0

    def __post_init__(self) -> None:
        check_range("strength", self.strength, 0.05, 10)
        if self.method not in ("blur", "pixelate"):
            raise ParamError(f"unknown face method {self.method!r}")


def obscure_faces(image: Image.Image, p: FacesParams, faces: list[Box]) -> Image.Image:
    """``image`` with every face box in ``faces`` blurred or pixelated (see
    :class:`FacesParams`); everything else unchanged."""

    def fn(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        out = rgb.copy()
        for x, y, w, h in faces:
            pad_x, pad_y = round(w * 0.12), round(h * 0.18)
            x0, y0 = max(0, x - pad_x), max(0, y - pad_y)
            x1, y1 = min(width, x + w + pad_x), min(height, y + h + pad_y)
            region = rgb[y0:y1, x0:x1]
            if p.method == "pixelate":
                block = max(4, round(max(w, h) / (10 / p.strength)))
                out[y0:y1, x0:x1] = pixelate_rgb(region, block)
            else:
                sigma = max(3.0, max(w, h) / 7.0 * p.strength)
                out[y0:y1, x0:x1] = gaussian_blur(region, sigma)
        return out

    return on_rgb(image, fn)
