"""Honest options: say when a backend ignored or changed an option of a turn.

:func:`option_notes` compares what a turn asked for (``turn.size``,
``quality``, ``background``, ``model``) with what was made (the result
version's width and height, and ``turn.output``: what the backend reported)
and with the options the backend declares it takes (the ``takes_*``
capability flags of :class:`app.backends.base.ImageBackend`). It returns
short sentences for the turn's footer (``templates/_turn_footer.html``) and
the turn's JSON (``notes``); none when everything asked for was made.

Pure: no database, no I/O. ``turn``, ``version`` and ``backend`` are read
through attributes only, so tests pass simple stand-ins.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["option_notes", "who"]

_SIZE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
#: Values that ask for nothing in particular.
_NOTHING = (None, "", "auto")
#: How each built-in backend is named in a sentence.
_WHO = {"local": "the offline editor", "openai": "OpenAI", "openai-chat": "OpenAI",
        "diffusers": "the open-weights model"}


def who(backend: Any) -> str:
    """How a note names ``backend`` ("the offline editor", "OpenAI"...)."""
    name = getattr(backend, "name", "") or ""
    return _WHO.get(name) or getattr(backend, "label", "") or name or "the backend"


def _px(size: str | None) -> tuple[int, int] | None:
    m = _SIZE.match(size or "")
    return (int(m[1]), int(m[2])) if m else None


def _dims(w: int, h: int) -> str:
    return f"{w}×{h}"


def option_notes(turn: Any, version: Any, backend: Any) -> list[str]:
    """Sentences that say which options of ``turn`` ``backend`` ignored or
    changed, judged from the backend's ``takes_size``, ``takes_quality``,
    ``takes_background`` and ``takes_model`` flags and from the result:
    ``version`` (its ``width`` and ``height``; None when the turn made
    none) and ``turn.output`` (``{"model", "size", "quality",
    "background"}`` as the backend reported them, or None).

    Only finished turns that made something get notes (status
    ``succeeded``, or ``answered`` for the model and quality); ``backend``
    None (no longer configured) gives none. Example, the local backend
    asked for 1536x1024 at high quality on a 512x512 photo:
    ``["Asked for 1536×1024 at high quality; the offline editor ignores
    the size setting (the result is 512×512) and has no quality setting."]``.
    """
    if backend is None or getattr(turn, "kind", None) not in ("generate", "edit"):
        return []
    status = getattr(turn, "status", None)
    if status not in ("succeeded", "answered"):
        return []
    made = version if status == "succeeded" else None
    out = getattr(turn, "output", None) or {}
    name = who(backend)
    asked_size = getattr(turn, "size", None)
    asked_quality = getattr(turn, "quality", None)
    asked_background = getattr(turn, "background", None)
    asked_model = getattr(turn, "model", None)
    wanted = _px(asked_size) if asked_size not in _NOTHING else None
    result = (int(made.width), int(made.height)) if made is not None and made.width and made.height else None

    asked: list[str] = []   # "1536×1024", "at high quality", "with a transparent background"
    ignored: list[str] = []  # what the backend has no setting for
    changed: list[str] = []  # what it made differently, as clauses
    size_clause: str | None = None

    if wanted and result and wanted != result:
        asked.append(_dims(*wanted))
        if not getattr(backend, "takes_size", False):
            # Edits keep the photo's size unless the words resize it; generations take the size the
            # words name. Either way the setting was not what decided it.
            size_clause = (f"ignores the size setting (the result is {_dims(*result)})"
                           if getattr(turn, "kind", None) == "edit" else f"made {_dims(*result)}")
            ignored.append("size")
        elif getattr(turn, "mask_sha256", None):
            changed.append(f"kept the photo's size ({_dims(*result)}), as every region edit does")
        else:
            changed.append(f"made {_dims(*result)} instead")

    if asked_quality not in _NOTHING:
        if not getattr(backend, "takes_quality", False):
            asked.append(f"at {asked_quality} quality")
            ignored.append("quality")
        elif out.get("quality") not in _NOTHING and out.get("quality") != asked_quality:
            asked.append(f"at {asked_quality} quality")
            changed.append(f"used {out['quality']} quality")

    if asked_background not in _NOTHING:
        if not getattr(backend, "takes_background", False):
            asked.append(f"{_a(asked_background)} background")
            ignored.append("background")
        elif out.get("background") not in _NOTHING and out.get("background") != asked_background:
            asked.append(f"{_a(asked_background)} background")
            changed.append(f"made it {out['background']}")

    notes: list[str] = []
    if asked:
        clauses = []
        if size_clause:
            clauses.append(size_clause)
        rest = [k for k in ignored if k != "size"] if size_clause else ignored
        if rest:
            clauses.append("has no " + _and(rest) + (" setting" if len(rest) == 1 else " settings"))
        clauses.extend(changed)
        head = _asked(asked)
        notes.append(f"Asked for {head}; {name} {_and(clauses)}.")

    made_model = out.get("model")
    if asked_model:
        if not getattr(backend, "takes_model", False):
            notes.append(f"Asked for the model {asked_model}; {name} has no choice of model.")
        elif made_model and made_model != asked_model:
            notes.append(f"Asked for the model {asked_model}; {name} used {made_model}.")
    return notes


def _asked(parts: list[str]) -> str:
    """What was asked, as the object of "Asked for": ["1536×1024", "at high quality"] ->
    "1536×1024 at high quality"; a leading "at" is dropped ("high quality"), and a
    background after something else is joined with "with"."""
    first = parts[0]
    if first.startswith("at "):
        first = first[3:]
    rest = parts[1:]
    text = first
    for p in rest:
        text += (" " + p) if p.startswith("at ") else (" with " + p)
    return text


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
