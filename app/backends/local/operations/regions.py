"""Operations on the selected region only: remove (inpaint) and fill with a colour.

They need a mask; without one the instruction is declined with a hint to
select the area first.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..functions import canvas as fn
from ..colors import COLOR, color_name, require_colors
from ..picture import Picture
from ..registry import EDIT, ApplyContext, NotUnderstood, Operation, ParseContext, register

_REMOVE = (
    r"(?:remove|erase|delete|get\s+rid\s+of|take\s+out|take\s+away|clean\s+up|clear|wipe\s+out|wipe|eliminate|"
    r"retouch\s+out|heal|inpaint|fill\s+in|edit\s+out|paint\s+out|photoshop\s+out|make\s+disappear|disappear)"
)
_STOP = (
    r"(?:and|then|also|make|with|from|in|on|at|to|of|by|background|backdrop|bg|colors?|noise|grain|blur|"
    r"blurriness|saturation|border|frame|contrast|red\s+eye|but|so|please)\b"
)
_OBJECT = rf"(?:\s+(?!{_STOP})[a-z]+(?:\s+(?!{_STOP})[a-z]+)?(?:\s+(?:from|in|on)\s+(?!{_STOP})[a-z]+)?)?"
#: Longer side, in pixels, at which large holes are inpainted (then upscaled).
INPAINT_SIDE = 1024


def inpaint(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the ``mask > 0`` pixels of ``(H, W, 3)`` uint8 ``rgb`` from their
    surroundings (OpenCV Telea inpainting, mask dilated a few pixels). Returns
    ``(H, W, 3)`` uint8; pixels outside the dilated mask are unchanged."""
    h, w = mask.shape
    grow = max(3, round(max(h, w) / 250))
    m = cv2.dilate((mask > 0).astype(np.uint8) * 255, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    f = min(1.0, INPAINT_SIDE / max(h, w))
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


@register
class Remove(Operation):
    """Remove what is in the selected region by inpainting it from its surroundings."""

    name = "remove"
    modes = frozenset({EDIT})
    needs_mask = True
    priority = 90
    phrases = {rf"{_REMOVE}{_OBJECT}": {}}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        if ctx.mask is None:
            raise NotUnderstood("Select the area to remove first.")
        return Picture(inpaint(pic.rgb, ctx.mask), pic.alpha)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "removed the selected area (filled from its surroundings)"


@register
class FillColor(Operation):
    """Fill the selected region with a solid colour."""

    name = "fill_selection"
    Params = fn.FillParams
    function = staticmethod(fn.fill)
    modes = frozenset({EDIT})
    needs_mask = True
    priority = 70
    phrases = {
        rf"(?:fill|paint|color|colorize|cover|turn|make)(?:\s+(?:in|over))?\s+(?:with\s+|in\s+)?(?:(?:solid|plain|pure|flat)\s+)?{COLOR}(?:\s+color)?": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        colors = require_colors(phrase, "Name the colour to fill with, e.g. 'fill this with white'.")
        return {"color": colors[-1]}

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"filled the selected area with {color_name(params['color'])}"
