"""Geometry: rotate, flip, crops, resize, border, pad. PIL in, PIL out.

Sizes are in pixels, angles in degrees clockwise, ratios as ``(width,
height)`` pairs of positive numbers, fractions of the image in 0..1. Every
function keeps the image's mode (``RGB`` stays ``RGB``, ``RGBA`` keeps its
alpha). Functions raise :class:`SizeError` when the result would be empty
or too large, never silently clip.
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageOps

from . import ParamError, check_range

#: Largest image a geometry function may produce: pixels in all, and per side.
MAX_OUTPUT_PIXELS = 50_000_000
MAX_SIDE = 16_000
#: Sides, in the order margins are given.
SIDES = ("top", "bottom", "left", "right")


class SizeError(ValueError):
    """The result would be empty, too large, or cannot be made from this image."""


def check_size(w: int, h: int) -> None:
    """Raise :class:`SizeError` unless 1 <= w, h and w*h <= MAX_OUTPUT_PIXELS, max(w, h) <= MAX_SIDE."""
    if w < 1 or h < 1:
        raise SizeError(f"That would make the image {w}x{h} pixels, which is too small.")
    if w * h > MAX_OUTPUT_PIXELS or max(w, h) > MAX_SIDE:
        raise SizeError(
            f"That would make the image {w}x{h} pixels; the limit is {MAX_OUTPUT_PIXELS // 1_000_000} "
            f"megapixels and {MAX_SIDE} px a side."
        )


def _fill(image: Image.Image, color: tuple[int, int, int], transparent: bool = False) -> tuple[int, ...]:
    if image.mode == "RGBA":
        return (*color, 0 if transparent else 255)
    return tuple(color)


# ------------------------------------------------------------------ rotate


@dataclass(frozen=True)
class RotateParams:
    """Rotation by ``degrees`` clockwise, 0 <= degrees < 360. 90, 180 and 270
    are exact pixel moves; other angles enlarge the canvas to hold the whole
    picture, filled with ``fill`` (RGB 0..255; transparent for RGBA)."""

    degrees: float
    fill: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        check_range("degrees", self.degrees, 0, 360, unit="°", open_high=True)


def rotated_size(w: int, h: int, degrees: float) -> tuple[int, int]:
    """Size in pixels of a ``w`` x ``h`` image after :func:`rotate` by ``degrees``."""
    if degrees in (90.0, 270.0):
        return h, w
    if degrees in (0.0, 180.0):
        return w, h
    return Image.new("L", (w, h)).rotate(-degrees, expand=True).size


def rotate(image: Image.Image, p: RotateParams) -> Image.Image:
    """Rotate ``image`` clockwise by ``p.degrees`` (see :class:`RotateParams`)."""
    exact = {0.0: None, 90.0: Image.Transpose.ROTATE_270, 180.0: Image.Transpose.ROTATE_180,
             270.0: Image.Transpose.ROTATE_90}
    if p.degrees in exact:
        method = exact[p.degrees]
        return image.copy() if method is None else image.transpose(method)
    return image.rotate(-p.degrees, resample=Image.Resampling.BICUBIC, expand=True,
                        fillcolor=_fill(image, p.fill, transparent=True))


# -------------------------------------------------------------------- flip


@dataclass(frozen=True)
class FlipParams:
    """Mirror: ``axis`` "horizontal" (left-right) or "vertical" (top-bottom)."""

    axis: str

    def __post_init__(self) -> None:
        if self.axis not in ("horizontal", "vertical"):
            raise ParamError(f"axis must be 'horizontal' or 'vertical', not {self.axis!r}")


def flip(image: Image.Image, p: FlipParams) -> Image.Image:
    """Mirror ``image`` (``ImageOps.mirror`` or ``ImageOps.flip``)."""
    return ImageOps.mirror(image) if p.axis == "horizontal" else ImageOps.flip(image)


# -------------------------------------------------------------------- crops


def crop_box(image: Image.Image, x: int, y: int, w: int, h: int) -> Image.Image:
    """The ``w`` x ``h`` pixels of ``image`` whose top-left corner is ``(x, y)``."""
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > image.width or y + h > image.height:
        raise SizeError(f"A {w}x{h} crop at ({x}, {y}) does not fit in a {image.width}x{image.height} image.")
    return image.crop((x, y, x + w, y + h))


@dataclass(frozen=True)
class CropAspectParams:
    """Centre crop to the largest area of aspect ``ratio`` = (width, height),
    both > 0 and the ratio between 1:100 and 100:1. ``label`` names it in
    messages ("square", "16:9")."""

    ratio: tuple[float, float]
    label: str = ""

    def __post_init__(self) -> None:
        rw, rh = self.ratio
        if rw <= 0 or rh <= 0:
            raise ParamError("an aspect ratio needs two positive numbers")
        check_range("aspect ratio", rw / rh, 0.01, 100)


def aspect_size(w: int, h: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """Largest ``(width, height)`` of aspect ``ratio`` inside ``w`` x ``h``,
    in whole pixels (the short side rounded to the nearest pixel)."""
    r = ratio[0] / ratio[1]
    if w / h > r:
        return max(1, min(w, round(h * r))), h
    return w, max(1, min(h, round(w / r)))


def crop_aspect(image: Image.Image, p: CropAspectParams) -> Image.Image:
    """Centre crop of ``image`` to ``p.ratio`` (see :func:`aspect_size`)."""
    nw, nh = aspect_size(image.width, image.height, p.ratio)
    return crop_box(image, (image.width - nw) // 2, (image.height - nh) // 2, nw, nh)


@dataclass(frozen=True)
class CropPixelsParams:
    """Centre crop to exactly ``size`` = (width, height) pixels, each >= 1;
    it must fit inside the image."""

    size: tuple[int, int]

    def __post_init__(self) -> None:
        check_range("crop width", self.size[0], 1, MAX_SIDE, unit=" px")
        check_range("crop height", self.size[1], 1, MAX_SIDE, unit=" px")


def crop_pixels(image: Image.Image, p: CropPixelsParams) -> Image.Image:
    """The centre ``p.size`` pixels of ``image``; :class:`SizeError` if larger than the image."""
    w, h = p.size
    if w > image.width or h > image.height:
        raise SizeError(
            f"Cannot crop a {image.width}x{image.height} image to {w}x{h}: the crop must fit inside the image. "
            "You could resize it instead, e.g. 'resize to 800x600'."
        )
    return crop_box(image, (image.width - w) // 2, (image.height - h) // 2, w, h)


@dataclass(frozen=True)
class CropMarginsParams:
    """Trim the same amount from every side: ``px`` pixels (>= 1), or
    ``percent`` of the width (left/right) and height (top/bottom), 0 < percent < 50."""

    px: int | None = None
    percent: float | None = None

    def __post_init__(self) -> None:
        if (self.px is None) == (self.percent is None):
            raise ParamError("give exactly one of px and percent")
        if self.px is not None:
            check_range("trim", self.px, 1, MAX_SIDE, unit=" px")
        else:
            check_range("trim", self.percent, 0.01, 49.99, unit="%")  # type: ignore[arg-type]


def crop_margins(image: Image.Image, p: CropMarginsParams) -> Image.Image:
    """``image`` without a margin of ``p.px`` pixels or ``p.percent`` % on each side."""
    if p.px is not None:
        dx = dy = p.px
    else:
        dx = round(image.width * p.percent / 100)  # type: ignore[operator]
        dy = round(image.height * p.percent / 100)  # type: ignore[operator]
    if 2 * dx >= image.width or 2 * dy >= image.height:
        raise SizeError("That trim would remove the whole image.")
    return crop_box(image, dx, dy, image.width - 2 * dx, image.height - 2 * dy)


@dataclass(frozen=True)
class CropSidesParams:
    """Cut ``value`` from each of ``sides`` (subset of top/bottom/left/right):
    ``unit`` "px" (pixels, >= 1) or "%" (of the height for top/bottom, of the
    width for left/right; 0 < value < 100)."""

    sides: tuple[str, ...]
    value: float
    unit: str = "px"

    def __post_init__(self) -> None:
        if not self.sides or any(s not in SIDES for s in self.sides):
            raise ParamError(f"sides must be some of {', '.join(SIDES)}")
        if self.unit not in ("px", "%"):
            raise ParamError("unit must be 'px' or '%'")
        check_range("amount", self.value, 0.01, MAX_SIDE if self.unit == "px" else 99.99, unit=self.unit)


def side_amounts(w: int, h: int, sides: tuple[str, ...], value: float, unit: str) -> dict[str, int]:
    """Pixels per side (``top``, ``bottom``, ``left``, ``right``) for ``value``
    ``unit`` on ``sides`` of a ``w`` x ``h`` image; 0 for the other sides."""
    out = {}
    for side in SIDES:
        full = h if side in ("top", "bottom") else w
        out[side] = 0 if side not in sides else round(value) if unit == "px" else round(full * value / 100)
    return out


def crop_sides(image: Image.Image, p: CropSidesParams) -> Image.Image:
    """``image`` with ``p.value`` ``p.unit`` cut from each of ``p.sides``."""
    cut = side_amounts(image.width, image.height, p.sides, p.value, p.unit)
    w = image.width - cut["left"] - cut["right"]
    h = image.height - cut["top"] - cut["bottom"]
    if w < 1 or h < 1:
        raise SizeError(f"Cutting that much from a {image.width}x{image.height} image would leave nothing.")
    return crop_box(image, cut["left"], cut["top"], w, h)


@dataclass(frozen=True)
class CropRegionParams:
    """Crop to ``box`` = (x, y, width, height) as fractions of the image, each
    in 0..1 with x + width <= 1 and y + height <= 1. ``label`` names it
    ("the left half")."""

    box: tuple[float, float, float, float]
    label: str = ""

    def __post_init__(self) -> None:
        x, y, w, h = self.box
        for name, v in (("x", x), ("y", y), ("width", w), ("height", h)):
            check_range(name, v, 0, 1)
        if w <= 0 or h <= 0 or x + w > 1 + 1e-9 or y + h > 1 + 1e-9:
            raise ParamError("the box must lie inside the image")


def region_bounds(w: int, h: int, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Pixel bounds ``(x0, y0, x1, y1)`` of the fractional ``box`` in a ``w`` x ``h`` image."""
    fx, fy, fw, fh = box
    return round(w * fx), round(h * fy), round(w * (fx + fw)), round(h * (fy + fh))


def crop_region(image: Image.Image, p: CropRegionParams) -> Image.Image:
    """The part of ``image`` inside ``p.box``."""
    x0, y0, x1, y1 = region_bounds(image.width, image.height, p.box)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise SizeError("That crop would leave no pixels.")
    return crop_box(image, x0, y0, x1 - x0, y1 - y0)


# -------------------------------------------------------------------- resize


@dataclass(frozen=True)
class ResizeParams:
    """New size, by exactly one of: ``size`` (width, height) px; ``width``
    and/or ``height`` px (one alone keeps the aspect ratio); ``longest`` px
    for the longer side; ``factor`` (> 0, 1 = same size). ``stated`` keeps a
    percentage as written ("by 30%") for messages."""

    size: tuple[int, int] | None = None
    width: int | None = None
    height: int | None = None
    longest: int | None = None
    factor: float | None = None
    stated: float | None = None

    def __post_init__(self) -> None:
        given = [self.size is not None, self.width is not None or self.height is not None,
                 self.longest is not None, self.factor is not None]
        if sum(given) != 1:
            raise ParamError("give exactly one of size, width/height, longest and factor")
        for name, v in (("width", self.width), ("height", self.height), ("longest side", self.longest),
                        *((("width", self.size[0]), ("height", self.size[1])) if self.size else ())):
            if v is not None:
                check_range(name, v, 1, MAX_SIDE, unit=" px")
        if self.factor is not None:
            check_range("scale factor", self.factor, 0.0001, 100)


def resized_size(w: int, h: int, p: ResizeParams) -> tuple[int, int]:
    """``(width, height)`` in pixels that :func:`resize` gives a ``w`` x ``h`` image."""
    if p.size is not None:
        return p.size
    if p.width is not None and p.height is not None:
        return p.width, p.height
    if p.width is not None:
        return p.width, max(1, round(h * p.width / w))
    if p.height is not None:
        return max(1, round(w * p.height / h)), p.height
    f = p.longest / max(w, h) if p.longest is not None else p.factor
    return max(1, round(w * f)), max(1, round(h * f))  # type: ignore[operator]


def resize(image: Image.Image, p: ResizeParams) -> Image.Image:
    """``image`` resized to :func:`resized_size` (area averaging when
    shrinking, Lanczos when enlarging)."""
    nw, nh = resized_size(image.width, image.height, p)
    check_size(nw, nh)
    if (nw, nh) == image.size:
        return image.copy()
    shrink = nw * nh < image.width * image.height
    return image.resize((nw, nh), Image.Resampling.BOX if shrink else Image.Resampling.LANCZOS)


# ------------------------------------------------------------ border and pad


@dataclass(frozen=True)
class BorderParams:
    """A solid border of ``color`` (RGB 0..255): ``px`` pixels wide (>= 1),
    or ``fraction`` of the shorter side (0 < fraction <= 0.5, at least 2 px).
    ``inside`` draws it over the picture's edge instead of enlarging the canvas."""

    color: tuple[int, int, int] = (255, 255, 255)
    px: int | None = None
    fraction: float | None = None
    inside: bool = False

    def __post_init__(self) -> None:
        if (self.px is None) == (self.fraction is None):
            raise ParamError("give exactly one of px and fraction")
        if self.px is not None:
            check_range("border width", self.px, 1, MAX_SIDE, unit=" px")
        else:
            check_range("border width", self.fraction * 100, 0.01, 50, unit="%")  # type: ignore[operator]


def border_width(w: int, h: int, p: BorderParams) -> int:
    """Border width in pixels for a ``w`` x ``h`` image."""
    if p.px is not None:
        return p.px
    return max(2, round(min(w, h) * p.fraction))  # type: ignore[operator]


def border(image: Image.Image, p: BorderParams) -> Image.Image:
    """``image`` framed by :func:`border_width` pixels of ``p.color`` on every side
    (``ImageOps.expand``), or drawn inside its edge when ``p.inside``."""
    b = border_width(image.width, image.height, p)
    if p.inside:
        b = min(b, (min(image.width, image.height) - 1) // 2)
        out = image.copy()
        inner = image.crop((b, b, image.width - b, image.height - b))
        out.paste(Image.new(image.mode, image.size, _fill(image, p.color)))
        out.paste(inner, (b, b))
        return out
    check_size(image.width + 2 * b, image.height + 2 * b)
    return ImageOps.expand(image, border=b, fill=_fill(image, p.color))


@dataclass(frozen=True)
class PadParams:
    """Extend the canvas, keeping the picture, by exactly one of: ``size``
    (width, height) px, not smaller than the image, picture centred;
    ``ratio`` (width, height) > 0, the smallest canvas of that aspect that
    holds the picture, centred; or ``value`` ``unit`` ("px" >= 1, or "%" of
    the height/width, 0 < % <= 1000) on each of ``sides``. New area: ``color``
    (RGB 0..255), or transparent when ``transparent``."""

    color: tuple[int, int, int] = (255, 255, 255)
    transparent: bool = False
    size: tuple[int, int] | None = None
    ratio: tuple[float, float] | None = None
    sides: tuple[str, ...] = ()
    value: float | None = None
    unit: str = "px"

    def __post_init__(self) -> None:
        given = [self.size is not None, self.ratio is not None, self.value is not None]
        if sum(given) != 1:
            raise ParamError("give exactly one of size, ratio and an amount")
        if self.ratio is not None and (self.ratio[0] <= 0 or self.ratio[1] <= 0):
            raise ParamError("an aspect ratio needs two positive numbers")
        if self.value is not None:
            check_range("amount", self.value, 0.01, MAX_SIDE if self.unit == "px" else 1000, unit=self.unit)
            if not self.sides or any(s not in SIDES for s in self.sides):
                raise ParamError(f"sides must be some of {', '.join(SIDES)}")


def pad_margins(w: int, h: int, p: PadParams) -> tuple[int, int, int, int]:
    """Pixels to add ``(top, bottom, left, right)`` to a ``w`` x ``h`` image."""
    if p.value is not None:
        add = side_amounts(w, h, p.sides, p.value, p.unit)
        return add["top"], add["bottom"], add["left"], add["right"]
    if p.size is not None:
        tw, th = p.size
    else:
        rw, rh = p.ratio  # type: ignore[misc]
        r = rw / rh
        tw, th = (max(w, round(h * r)), h) if w / h < r else (w, max(h, round(w / r)))
    if tw < w or th < h:
        raise SizeError(
            f"Padding cannot make a {w}x{h} image {tw}x{th}: that is smaller. "
            f"Try 'resize to {tw}x{th}' or 'crop to {tw}x{th}' instead."
        )
    left, top = (tw - w) // 2, (th - h) // 2
    return top, th - h - top, left, tw - w - left


def pad(image: Image.Image, p: PadParams) -> Image.Image:
    """``image`` on a larger canvas (see :class:`PadParams`); with
    ``p.transparent`` the result is ``RGBA``."""
    top, bottom, left, right = pad_margins(image.width, image.height, p)
    nw, nh = image.width + left + right, image.height + top + bottom
    check_size(nw, nh)
    mode = "RGBA" if p.transparent or image.mode == "RGBA" else image.mode
    src = image.convert(mode) if image.mode != mode else image
    canvas = Image.new(mode, (nw, nh), _fill(src, p.color, transparent=p.transparent))
    canvas.paste(src, (left, top))
    return canvas


__all__ = [
    "BorderParams", "CropAspectParams", "CropMarginsParams", "CropPixelsParams", "CropRegionParams",
    "CropSidesParams", "FlipParams", "PadParams", "ResizeParams", "RotateParams", "SizeError",
    "aspect_size", "border", "border_width", "check_size", "crop_aspect", "crop_margins", "crop_pixels",
    "crop_region", "crop_sides", "flip", "pad", "pad_margins", "region_bounds", "resize", "resized_size",
    "rotate", "rotated_size", "side_amounts",
]
