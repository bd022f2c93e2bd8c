"""Backgrounds: replace what is behind a given subject with white, a colour,
transparency, a blur or its own grey. PIL in, PIL out, same size. Finding
the subject is not done here: its soft mask is an explicit argument
(``subject``: ``(H, W)`` float 0..1, 1 = subject; see
``operations.background.foreground_alpha``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..picture import luminance, to_uint8
from . import ParamError
from .filters import gaussian_blur

Color = tuple[int, int, int]
ACTIONS = ("remove", "color", "transparent", "blur", "gray")


@dataclass(frozen=True)
class BackgroundParams:
    """What becomes of the background: ``action`` "remove" (white), "color"
    (``color``, RGB 0..255), "transparent" (alpha = subject x the image's
    own alpha), "blur" (Gaussian, sigma max(4, 1.2% of the longer side)
    px) or "gray" (Rec. 601 luminance). The subject's soft edge blends
    the two."""

    action: str = "remove"
    color: Color = (255, 255, 255)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ParamError(f"unknown background action {self.action!r}")
        if len(self.color) != 3 or any(not 0 <= v <= 255 for v in self.color):
            raise ParamError("color must be three values 0..255")


def replace_background(image: Image.Image, p: BackgroundParams, subject: np.ndarray) -> Image.Image:
    """``image`` with its background (where ``subject`` < 1) replaced as
    :class:`BackgroundParams` says. "transparent" returns ``RGBA`` with the
    colours unchanged; otherwise the mode and alpha channel are kept."""
    if subject.shape != (image.height, image.width):
        raise ParamError(f"the subject mask is {subject.shape[1]}x{subject.shape[0]}, not {image.width}x{image.height}")
    a = subject
    has_alpha = "A" in image.getbands()
    rgba = np.asarray(image.convert("RGBA")) if has_alpha else None
    rgb = np.ascontiguousarray(rgba[..., :3]) if rgba is not None else np.asarray(image.convert("RGB"))
    alpha = np.ascontiguousarray(rgba[..., 3]) if rgba is not None else None
    if p.action == "transparent":
        base = np.full(a.shape, 255, np.uint8) if alpha is None else alpha
        return Image.fromarray(np.dstack([rgb, np.rint(a * base).astype(np.uint8)]), "RGBA")
    f = rgb.astype(np.float32)
    if p.action == "blur":
        back = gaussian_blur(rgb, max(4.0, 0.012 * max(image.width, image.height))).astype(np.float32)
    elif p.action == "gray":
        back = np.repeat(luminance(rgb)[..., None], 3, axis=2)
    else:
        back = np.empty_like(f)
        back[:] = p.color
    out = to_uint8(back + (f - back) * a[..., None])
    if alpha is None:
        return Image.fromarray(out, "RGB")
    return Image.fromarray(np.dstack([out, alpha]), "RGBA")
