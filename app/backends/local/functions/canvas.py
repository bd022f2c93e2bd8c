"""Canvas generation: solid fills, gradients and patterns. PIL in (the
canvas, which gives the size), PIL out, same size; colours are RGB 0..255.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..picture import to_uint8
from . import ParamError, check_range

Color = tuple[int, int, int]


def _check_color(name: str, c: Color | None) -> None:
    if c is not None and (len(c) != 3 or any(not 0 <= v <= 255 for v in c)):
        raise ParamError(f"{name} must be three values 0..255")


def _keep_alpha(image: Image.Image, rgb: np.ndarray) -> Image.Image:
    if image.mode == "RGBA":
        return Image.fromarray(np.dstack([rgb, np.asarray(image)[..., 3]]), "RGBA")
    return Image.fromarray(rgb, "RGB")


@dataclass(frozen=True)
class FillParams:
    """A solid ``color`` (RGB 0..255) over the whole image."""

    color: Color

    def __post_init__(self) -> None:
        _check_color("color", self.color)


def fill(image: Image.Image, p: FillParams) -> Image.Image:
    """``image`` filled with ``p.color`` (alpha kept)."""
    rgb = np.empty((image.height, image.width, 3), np.uint8)
    rgb[:] = p.color
    return _keep_alpha(image, rgb)


@dataclass(frozen=True)
class GradientParams:
    """A gradient through ``colors`` (2 or 3 RGB stops, evenly spaced),
    ``direction`` "horizontal" (left to right), "vertical" (top to bottom),
    "diagonal" or "radial" (centre outwards)."""

    colors: tuple[Color, ...]
    direction: str = "horizontal"

    def __post_init__(self) -> None:
        if not 2 <= len(self.colors) <= 3:
            raise ParamError("a gradient needs 2 or 3 colours")
        for c in self.colors:
            _check_color("gradient colour", c)
        if self.direction not in ("horizontal", "vertical", "diagonal", "radial"):
            raise ParamError(f"unknown gradient direction {self.direction!r}")


def gradient(image: Image.Image, p: GradientParams) -> Image.Image:
    """A :class:`GradientParams` gradient the size of ``image`` (alpha kept)."""
    h, w = image.height, image.width
    direction = p.direction
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    if direction == "horizontal":
        t = np.broadcast_to(xs, (h, w))
    elif direction == "vertical":
        t = np.broadcast_to(ys, (h, w))
    elif direction == "diagonal":
        t = (xs + ys) / 2
    else:
        t = np.hypot((xs - 0.5) * w, (ys - 0.5) * h)
        t = t / max(float(t.max()), 1.0)
    stops = np.array(p.colors, np.float32)
    positions = np.linspace(0.0, 1.0, len(stops))
    if direction in ("horizontal", "vertical"):
        line = ys[:, 0] if direction == "vertical" else xs[0]
        colors = np.stack([np.interp(line, positions, stops[:, c]) for c in range(3)], axis=-1)
        colors = np.clip(np.rint(colors), 0, 255).astype(np.uint8)
        rgb = np.broadcast_to(colors[:, None, :] if direction == "vertical" else colors[None, :, :], (h, w, 3))
        return _keep_alpha(image, np.ascontiguousarray(rgb))
    rgb = np.stack([np.interp(t, positions, stops[:, c]) for c in range(3)], axis=-1)
    return _keep_alpha(image, to_uint8(rgb))


@dataclass(frozen=True)
class PatternParams:
    """A two-colour pattern: ``kind`` "stripes", "checker", "dots" or "grid";
    ``color`` (RGB) drawn over ``background`` (RGB, or None to keep the
    canvas); stripes' ``direction`` "vertical", "horizontal" or "diagonal";
    cell size ``px`` (1..4096 pixels) or, when None, 1/16 of the shorter
    side x ``scale`` (0.1..10), at least 4 px."""

    kind: str = "stripes"
    color: Color = (0, 0, 0)
    background: Color | None = None
    direction: str = "vertical"
    px: int | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("stripes", "checker", "dots", "grid"):
            raise ParamError(f"unknown pattern {self.kind!r}")
        _check_color("color", self.color)
        _check_color("background", self.background)
        if self.px is not None:
            check_range("pattern size", self.px, 1, 4096, unit=" px")
        check_range("pattern scale", self.scale, 0.1, 10)


def pattern(image: Image.Image, p: PatternParams) -> Image.Image:
    """A :class:`PatternParams` pattern over ``image`` (alpha kept)."""
    h, w = image.height, image.width
    cell = p.px or max(4, round(min(w, h) / 16 * p.scale))
    ys, xs = np.mgrid[0:h, 0:w]
    kind = p.kind
    if kind == "stripes":
        coord = {"vertical": xs, "horizontal": ys}.get(p.direction, xs + ys)
        fg = (coord // cell) % 2 == 0
    elif kind == "checker":
        fg = ((xs // cell) + (ys // cell)) % 2 == 0
    elif kind == "dots":
        period = cell * 2
        dx, dy = xs % period - period / 2, ys % period - period / 2
        fg = dx * dx + dy * dy <= (cell * 0.55) ** 2
    else:
        line = max(1, round(cell * 0.08)) if p.px is None else max(1, round(cell * 0.06))
        period = cell * 2 if p.px is None else cell
        fg = (xs % period < line) | (ys % period < line)
    rgb = np.asarray(image.convert("RGB")).copy()
    if p.background is not None:
        rgb[:] = p.background
    rgb[fg] = p.color
    return _keep_alpha(image, rgb)
