"""Decline messages: what was understood, what cannot be done, what to try instead."""
from __future__ import annotations

from .registry import EDIT

EDIT_SUGGESTIONS = (
    "'make it black and white'",
    "'add the text \"Hello\" at the top'",
    "'blur the background'",
    "'crop it to a square and add a thin white border'",
)
GENERATE_SUGGESTIONS = (
    "'a 1024x1024 image with a navy background and the title \"Hello\" in white'",
    "'a vertical gradient from orange to purple, 1200x628'",
    "'a solid red square, 256 by 256 pixels'",
)
CAPABILITIES = (
    "this offline editor makes exact edits (colour and tone, rotate, flip, crop, resize, borders, "
    "text, blur, sharpen, pixelate, artistic styles, faces, backgrounds, removing a selected area) "
    "and plain canvases with gradients and text; it cannot draw or change things in the picture"
)


#: How the sentence of suggestions starts (the page shows them as buttons instead).
SUGGESTIONS_LEAD = "Things I can do instead:"


def suggestions(mode: str, limit: int = 3) -> str:
    """Two or three example instructions that work in ``mode``, as one sentence."""
    options = EDIT_SUGGESTIONS if mode == EDIT else GENERATE_SUGGESTIONS
    return f"{SUGGESTIONS_LEAD} " + ", ".join(options[:limit]) + "."


def suggestion_list(mode: str, limit: int = 3) -> tuple[str, ...]:
    """The instructions :func:`suggestions` names, without their quotes, for
    ``BackendDeclined.suggestions`` (buttons that fill the composer)."""
    options = EDIT_SUGGESTIONS if mode == EDIT else GENERATE_SUGGESTIONS
    return tuple(o[1:-1] for o in options[:limit])


def understood_part(understood: list[str]) -> str:
    """"I understood: a; b." or "" when nothing was understood."""
    items = [u for u in understood if u]
    return f"I understood: {'; '.join(items)}. " if items else ""


def not_understood(understood: list[str], unknown: str, mode: str) -> str:
    """Message for words no operation understood (``unknown``), e.g. a subject to draw."""
    return (
        f"{understood_part(understood)}I can't do \"{unknown}\": {CAPABILITIES}. "
        "This offline editor cannot draw new objects or subjects; connect an OpenAI key to do that. "
        "Nothing was changed. " + suggestions(mode)
    )


def with_reason(understood: list[str], reason: str, mode: str) -> str:
    """Message for an operation that was recognised but could not be done as said."""
    return f"{understood_part(understood)}{reason} Nothing was changed. " + suggestions(mode)
