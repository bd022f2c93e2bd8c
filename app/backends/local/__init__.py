"""The offline ``local`` backend: exact edits with Pillow and OpenCV.

The instruction is parsed into operations (:mod:`.parser`; each operation's
grammar in :mod:`.operations` or :mod:`.generate`, its typed parameters and
pure pixel function in :mod:`.functions`, all listed by unique name in
:func:`.registry.entries`) and applied in order. Every number the person
wrote must be used, words that disagree with the plan decline it, and each
result is checked against the quantities asked for (:meth:`Operation.verify`)
before it is handed over. Anything not fully understood is declined with a
helpful message instead of being half done.
"""
from __future__ import annotations

import cv2
import numpy as np

from app.backends.base import BackendDeclined, BackendFailed, EditRequest, EditResult, ImageBackend

from .declines import SUGGESTIONS_LEAD, not_understood, suggestion_list, suggestions, understood_part, with_reason
from .generate import make_canvas
from .parser import ParseFailure, Plan, parse_instruction
from .picture import Picture
from .registry import EDIT, GENERATE, ApplyContext, NotUnderstood

__all__ = ["LocalBackend"]


class LocalBackend(ImageBackend):
    """Exact, offline edits: tone, geometry, text, filters, styles, faces,
    backgrounds, inpainting of a selected area, and plain generated canvases."""

    name = "local"
    label = "Local (offline)"
    called = "This offline editor"
    can_generate = True
    accepts_mask = True
    accepts_references = True
    deterministic = True
    # Size: edits keep the photo's size, canvases take the size their words name (else request.size);
    # no quality, background or model setting. app/option_notes.py says so in the turn.
    takes_size = takes_quality = takes_background = takes_model = False

    def run(self, request: EditRequest) -> EditResult:
        """Parse ``request.instruction`` and apply it to ``request.image`` (or a
        new canvas). Returns the result with a one-line summary; raises
        :class:`BackendDeclined` for anything not fully understood or not
        possible (with ``suggestions`` when its message offers some),
        :class:`BackendFailed` if OpenCV fails unexpectedly."""
        mode = GENERATE if request.image is None else EDIT
        try:
            return self._run(request, mode)
        except BackendDeclined as exc:
            if not exc.suggestions and SUGGESTIONS_LEAD in exc.message:
                exc.suggestions = suggestion_list(mode)
            raise

    def _run(self, request: EditRequest, mode: str) -> EditResult:
        has_mask = request.mask is not None and request.image is not None
        try:
            plan = parse_instruction(
                request.instruction, mode=mode, has_mask=has_mask, references=len(request.references)
            )
        except ParseFailure as failure:
            if failure.reason:
                raise BackendDeclined(with_reason(failure.understood, failure.reason, mode)) from None
            raise BackendDeclined(not_understood(failure.understood, failure.unknown, mode)) from None
        _check_plan(plan, mode, has_mask)
        if request.references and not any(st.op.uses_references for st in plan.steps):
            raise BackendDeclined(with_reason(
                _describe(plan),
                "You attached an image, but this offline editor can only use an attached image as a style "
                "to paint in ('paint it in the style of this'). Remove the attachment to do this edit, "
                "or connect an OpenAI key to combine images.",
                mode,
            ))

        if mode == GENERATE:
            pic = make_canvas(plan.steps, request.size)
        else:
            pic = Picture.from_pil(request.image)
        mask = np.asarray(request.mask.convert("L")) if has_mask else None
        ctx = ApplyContext(mask=mask, generated=mode == GENERATE, references=tuple(request.references))
        try:
            for step in plan.steps:
                before = pic
                try:
                    pic = step.op.apply(pic, step.params, ctx)
                except BackendDeclined as exc:  # say what was understood, then why not
                    raise BackendDeclined(understood_part(_describe(plan)) + exc.message) from None
                problem = step.op.verify(before, pic, step.params)
                if problem:  # never hand over an edit that does not match the words
                    raise BackendDeclined(with_reason(
                        _describe(plan), f"I stopped because {problem}, so the result would not be what you asked.",
                        mode,
                    ))
        except NotUnderstood as exc:
            raise BackendDeclined(with_reason([], exc.message, mode)) from None
        except cv2.error as exc:
            raise BackendFailed(f"Image processing failed: {exc}", retryable=False) from None
        return EditResult(image=pic.to_pil(), message=_summary(plan, pic, mode))


def _describe(plan: Plan) -> list[str]:
    return [d for d in (st.op.describe(st.params) for st in plan.steps) if d]


def _check_plan(plan: Plan, mode: str, has_mask: bool) -> None:
    understood = _describe(plan)
    if not plan.steps:
        raise BackendDeclined("I did not find an edit I know in that instruction. Nothing was changed. " + suggestions(mode))
    if plan.mentions_region and not has_mask:
        raise BackendDeclined(with_reason(
            understood,
            "You mentioned a selected area, but nothing is selected. Paint over the area first, "
            "or leave out 'this area' to edit the whole image.",
            mode,
        ))
    for st in plan.steps:
        if st.op.needs_mask and not has_mask:
            raise BackendDeclined(with_reason(
                understood,
                "To remove or fill something, first select it (paint over it), then say 'remove this' "
                "or 'fill this with white'. This offline editor cannot find objects by name.",
                mode,
            ))
        if st.op.geometry and has_mask:
            raise BackendDeclined(with_reason(
                understood,
                f"'{st.op.describe(st.params)}' changes the whole image's shape, so it cannot be limited to "
                "the selected area. Clear the selection to apply it to the whole image.",
                mode,
            ))


def _summary(plan: Plan, pic: Picture, mode: str) -> str:
    parts = _describe(plan)
    if mode == GENERATE:
        parts.insert(0, f"created a {pic.width}x{pic.height} image")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "."
