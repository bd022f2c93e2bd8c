"""A backend that streams partial images, for tests of real server processes.

Importing this module registers it as ``partial-test`` (:data:`NAME`); start
a server that uses it as ``tests/slow_backend.py`` says. Each run sends
:data:`FRAMES` partial images (flat colours, 64x48) and the words so far
through the request's ``on_partial`` and ``on_text``, pausing
``RETOUCH_TEST_PARTIAL_SECONDS`` (default 0.5) after each, then returns
the input inverted (or a 64x48 image when generating).
"""
from __future__ import annotations

import os
import time

from PIL import Image, ImageOps

from app.backends import EditRequest, EditResult, ImageBackend, register_backend

NAME = "partial-test"
FRAMES = 3


class PartialBackend(ImageBackend):
    """Streams FRAMES partial images, then inverts; see the module docstring."""

    name = NAME
    can_generate = True
    accepts_mask = True
    accepts_references = True

    def __init__(self) -> None:
        self.pause = float(os.environ.get("RETOUCH_TEST_PARTIAL_SECONDS", "0.5"))

    def run(self, request: EditRequest) -> EditResult:
        for i in range(FRAMES):
            if request.on_partial is not None:
                request.on_partial(i, Image.new("RGB", (64, 48), (80 * i, 100, 200)))
            if request.on_text is not None:
                request.on_text(" ".join(["step"] * (i + 1)))
            time.sleep(self.pause)
        if request.image is None:
            return EditResult(image=Image.new("RGB", (64, 48), (0, 128, 128)), message="streamed")
        return EditResult(image=ImageOps.invert(request.image.convert("RGB")), message="streamed")


register_backend(NAME, PartialBackend)
