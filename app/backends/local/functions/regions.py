"""Work on a selected region: remove what is there by inpainting it from its
surroundings. PIL in, PIL out, same size; the mask is an explicit argument
(``(H, W)`` uint8, > 0 = selected) and an alpha channel is kept unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from . import check_range
from .tone import on_rgb

#: Longer side, in pixels, at which large holes are inpainted (then upscaled).
INPAINT_SIDE = 1024


@dataclass(frozen=True)
class InpaintParams:
    """Inpainting: ``work_side`` (64..8192 px) is the longer side of the copy
    large images are inpainted on (the fill is then upscaled); the mask is
    grown by max(3, longer side / 250) px first."""

    work_side: int = INPAINT_SIDE

    def __post_init__(self) -> None:
        check_range("inpainting size", self.work_side, 64, 8192, unit=" px")


def inpaint_rgb(rgb: np.ndarray, mask: np.ndarray, work_side: int = INPAINT_SIDE) -> np.ndarray:
    """Fill the ``mask > 0`` pixels of ``(H, W, 3)`` uint8 ``rgb`` from their
    surroundings (OpenCV Telea inpainting, mask dilated a few pixels). Returns
    ``(H, W, 3)`` uint8; pixels outside the dilated mask are unchanged."""
    h, w = mask.shape
    grow = max(3, round(max(h, w) / 250))
    m = cv2.dilate((mask > 0).astype(np.uint8) * 255, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    f = min(1.0, work_side / max(h, w))
    radius = max(3, round(6 * f))
    if f < 1.0:
        small = cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
        sm = cv2.resize(m, small.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        filled = cv2.resize(cv2.inpaint(small, sm, radius, cv2.INPAINT_TELEA), (w, h), interpolation=cv2.INTER_CUBIC)
    else:
        filled = cv2.inpaint(rgb, m, radius, cv2.INPAINT_TELEA)
    out = rgb.copy()
    out[m > 0] = filled[m > 0]
    return out


def inpaint(image: Image.Image, p: InpaintParams, mask: np.ndarray) -> Image.Image:
    """``image`` with the selected pixels (``mask`` ``(H, W)`` uint8, > 0)
    filled from their surroundings (see :func:`inpaint_rgb`); alpha kept."""
    return on_rgb(image, lambda rgb: inpaint_rgb(np.ascontiguousarray(rgb), mask, p.work_side))
