"""Filter grammar: blur, motion blur, sharpen, pixelate, denoise, grain,
vignette, posterize, solarize, emboss, edges. Each maps phrases to the typed
parameters of :mod:`..functions.filters`, whose pure functions do the pixel
work; sizes scale with the image."""
from __future__ import annotations

import re
from typing import Any

from ..phrases import NUM
from ..functions import filters as fn
from ..picture import Picture
from ..registry import ApplyContext, NotUnderstood, Operation, ParseContext, register

_MORE = r"(?:more|increase|boost|enhance|add|bring\s+out|improve|raise|higher)"


gaussian_blur, pixelate_rgb, vignette_shade = fn.gaussian_blur, fn.pixelate_rgb, fn.vignette_shade


@register
class Blur(Operation):
    """Gaussian blur; "slightly"/"heavily" or "by 5 px" set the radius."""

    name = "blur"
    Params = fn.BlurParams
    function = staticmethod(fn.blur)
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
        return fn.blur_sigma(w, h, cls.typed(params))

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        # a selected area is blurred to be obscured, not just softened
        return super().apply(pic, {**params, "obscure": ctx.mask is not None}, ctx)

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        s = params.get("strength", 1.0)
        word = "slightly " if s < 0.8 else "strongly " if s > 1.4 else ""
        return f"{word}blurred the image"


@register
class MotionBlur(Operation):
    """Motion blur along a line (horizontal unless "vertical" is said)."""

    name = "motion_blur"
    Params = fn.MotionBlurParams
    function = staticmethod(fn.motion_blur)
    takes_strength = True
    phrases = {r"(?:(?:horizontal|vertical)\s+)?(?:motion|speed|movement)\s+(?:blur|blurred|effect|streaks?)(?:\s+(?:horizontal|vertical)(?:ly)?)?": {}}

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        params["vertical"] = "vertical" in phrase
        return params

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"added a {'vertical' if params['vertical'] else 'horizontal'} motion blur"


@register
class Sharpen(Operation):
    """Unsharp mask: add back the difference from a blurred copy."""

    name = "sharpen"
    Params = fn.Strength
    function = staticmethod(fn.sharpen)
    takes_strength = True
    phrases = {
        rf"sharpen(?:ed)?(?:\s+(?:edges|details?|up))?|sharper|crisper|crisp(?:en)?(?:\s+up)?|more\s+(?:sharp|detailed|defined|crisp)|"
        rf"unsharp\s+mask(?:ing)?|{_MORE}\s+(?:details?|sharpness|clarity|definition|crispness)|"
        rf"(?:less|reduce|remove|fix|undo)\s+(?:blur|blurriness)|deblur|unblur|less\s+blurry|clearer|clarity|in\s+focus|"
        rf"(?:details?|edges|lines|textures?)\s+(?:sharper|crisper|clearer|more\s+defined|pop)|(?:sharper|crisper|clearer|finer)\s+(?:details?|edges)|"
        rf"(?:bring\s+out|enhance|boost)\s+(?:fine\s+)?(?:details?|edges|texture)": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "sharpened the image"


_BLOCK_WORDS = {"tiny": 0.5, "small": 0.6, "fine": 0.6, "big": 2.0, "large": 2.0, "chunky": 2.0, "huge": 3.0}


@register
class Pixelate(Operation):
    """Pixelate into square blocks (default about 1/64 of the longer side)."""

    name = "pixelate"
    Params = fn.PixelateParams
    function = staticmethod(fn.pixelate)
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
        return fn.pixel_block(w, h, cls.typed(params))

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"pixelated the image ({params['block']} px blocks)" if "block" in params else "pixelated the image"


@register
class Denoise(Operation):
    """Reduce noise with an edge-preserving bilateral filter."""

    name = "denoise"
    Params = fn.Strength
    function = staticmethod(fn.denoise)
    takes_strength = True
    priority = 40
    phrases = {
        r"(?:remove|reduce|less|fix|clean\s+up|get\s+rid\s+of|lower)\s+(?:noise|grain|graininess|speckles)|denoise|de\s*noise|noise\s+reduction|less\s+grainy|less\s+noisy": {},
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "reduced noise"


@register
class Grain(Operation):
    """Add film grain (Gaussian luminance noise, fixed seed so results repeat)."""

    name = "grain"
    Params = fn.Strength
    function = staticmethod(fn.grain)
    takes_strength = True
    phrases = {r"(?:film\s+)?grain(?:y)?|(?:add\s+)?noise|noisy|gritty": {}}

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "added film grain"


@register
class Vignette(Operation):
    """Darken towards the corners."""

    name = "vignette"
    Params = fn.Strength
    function = staticmethod(fn.vignette)
    takes_strength = True
    phrases = {r"(?:vignette|vignetting)(?:\s+(?:effect|around|on|at|along|to)(?:\s+(?:all\s+)?(?:edges|corners|sides|borders|frame))?)?|"
               r"dark(?:en|er)?\s+(?:corners|edges)|(?:corners|edges)\s+darker": {}}

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "added a vignette"


@register
class Posterize(Operation):
    """Reduce each channel to a few levels (default 4)."""

    name = "posterize"
    Params = fn.PosterizeParams
    function = staticmethod(fn.posterize)
    phrases = {rf"posteri[sz]e[d]?(?:\s+(?:to|with|into)?\s*{NUM}\s*(?:levels?|colors?|tones?))?|poster\s+(?:effect|look)|flat\s+colors": {}}

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        m = re.search(r"(\d+)", phrase)
        if m and not 2 <= int(m.group(1)) <= 64:
            raise NotUnderstood("Posterize to between 2 and 64 levels per channel, e.g. 'posterize to 4 levels'.")
        params["levels"] = int(m.group(1)) if m else 4
        return params

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"posterized to {params['levels']} levels per channel"


@register
class Solarize(Operation):
    """Invert the tones above mid-gray."""

    name = "solarize"
    Params = fn.Plain
    function = staticmethod(fn.solarize)
    phrases = {r"solari[sz]e[d]?|solarization|solarisation": {}}

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "solarized the image"


@register
class Emboss(Operation):
    """Gray relief from a directional derivative."""

    name = "emboss"
    Params = fn.Plain
    function = staticmethod(fn.emboss)
    phrases = {r"emboss(?:ed)?(?:\s+effect)?|relief(?:\s+effect)?": {}}

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "embossed the image"


@register
class Edges(Operation):
    """Edge detection: dark lines on white (Canny on a lightly blurred luminance)."""

    name = "edges"
    Params = fn.Plain
    function = staticmethod(fn.edges)
    phrases = {r"edge\s+detect(?:ion|ed|or)?|detect\s+edges|find\s+edges|canny|outline\s+effect": {}}

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "turned it into an edge map"
