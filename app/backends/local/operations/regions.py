"""Operations on the selected region only: remove (inpaint) and fill with a colour.

The grammar maps phrases to the typed parameters of
:mod:`..functions.regions` and :mod:`..functions.canvas`; the pure
functions do the pixel work (the mask is an explicit argument of
:func:`~..functions.regions.inpaint`).

They need a mask; without one the instruction is declined with a hint to
select the area first.
"""
from __future__ import annotations

from typing import Any

from ..functions import canvas as fn
from ..functions import regions as rfn
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
INPAINT_SIDE = rfn.INPAINT_SIDE
inpaint = rfn.inpaint_rgb


@register
class Remove(Operation):
    """Remove what is in the selected region by inpainting it from its surroundings."""

    name = "remove"
    Params = rfn.InpaintParams
    function = staticmethod(rfn.inpaint)
    modes = frozenset({EDIT})
    needs_mask = True
    priority = 90
    phrases = {rf"{_REMOVE}{_OBJECT}": {}}

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        if ctx.mask is None:
            raise NotUnderstood("Select the area to remove first.")
        return Picture.from_pil(rfn.inpaint(pic.to_pil(), cls.typed(params), ctx.mask))

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
