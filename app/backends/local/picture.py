"""The working image the local operations pass along: RGB pixels plus optional alpha."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass
class Picture:
    """An image being edited.

    - ``rgb``: ``(H, W, 3)`` uint8 array.
    - ``alpha``: ``(H, W)`` uint8 array (255 = opaque), or None for an opaque RGB image.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.rgb.shape[0])

    @classmethod
    def from_pil(cls, image: Image.Image) -> Picture:
        """Take a PIL image (any mode); keeps alpha when the image has it."""
        if "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info):
            rgba = np.asarray(image.convert("RGBA"))
            return cls(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]))
        return cls(np.asarray(image.convert("RGB")).copy())

    def to_pil(self) -> Image.Image:
        """Return a PIL image: mode ``RGBA`` when there is alpha, else ``RGB``."""
        if self.alpha is None:
            return Image.fromarray(self.rgb, "RGB")
        return Image.fromarray(np.dstack([self.rgb, self.alpha]), "RGBA")

    def with_rgb(self, rgb: np.ndarray) -> Picture:
        """Same alpha, new ``(H, W, 3)`` pixels of the same size (float arrays are rounded and clipped)."""
        return Picture(to_uint8(rgb), self.alpha)


def to_uint8(a: np.ndarray) -> np.ndarray:
    """Round and clip any numeric array to uint8 (0..255)."""
    if a.dtype == np.uint8:
        return a
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an ``(H, W, 3)`` array as float32 ``(H, W)``, 0..255."""
    f = rgb.astype(np.float32)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
