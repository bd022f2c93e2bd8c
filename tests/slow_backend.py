"""A backend that is slow on purpose, for crash tests of real server processes.

Importing this module registers it as ``slow-test`` (the name is
:data:`NAME`). Start a server that uses it with::

    [sys.executable, "-c", "import tests.slow_backend; from app.cli import main; "
     "raise SystemExit(main(['serve', '--port', PORT]))"]

with the repository root as cwd and ``RETOUCH_BACKEND=slow-test``. It reads
these environment variables when it is built:

- ``RETOUCH_TEST_SLOW_SECONDS``: how long each run sleeps, in seconds
  (default 1.5);
- ``RETOUCH_TEST_SLOW_LOG``: a file it appends one line to when a run starts
  (``start <instruction>``) and one when it completes (``done
  <instruction>``), so a test can tell which turns ran and how often (each
  line is one ``write`` on an ``O_APPEND`` file; a SIGKILL loses none);
- ``RETOUCH_TEST_SLOW_SIZE``: when set to ``WxH`` (pixels), every result is
  that big and full of random noise, so its PNG is large (about
  3 bytes per pixel) and takes a while to encode and write; otherwise the
  result is the input inverted (or a 64x48 image when generating).

Nothing in ``app/`` knows about this module.
"""
from __future__ import annotations

import os
import time

from PIL import Image, ImageOps

from app.backends import EditRequest, EditResult, ImageBackend, register_backend

NAME = "slow-test"


class SlowBackend(ImageBackend):
    """Sleeps, logs, then inverts (or makes noise); see the module docstring."""

    name = NAME
    can_generate = True
    accepts_mask = True
    accepts_references = True

    def __init__(self) -> None:
        self.seconds = float(os.environ.get("RETOUCH_TEST_SLOW_SECONDS", "1.5"))
        self.log_path = os.environ.get("RETOUCH_TEST_SLOW_LOG")
        size = os.environ.get("RETOUCH_TEST_SLOW_SIZE")
        self.size = tuple(int(v) for v in size.lower().split("x")) if size else None

    def _log(self, event: str, instruction: str) -> None:
        if not self.log_path:
            return
        line = f"{event} {' '.join(instruction.split())}\n".encode()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def run(self, request: EditRequest) -> EditResult:
        self._log("start", request.instruction)
        time.sleep(self.seconds)
        if self.size is not None:
            w, h = self.size
            image = Image.frombytes("RGB", (w, h), os.urandom(w * h * 3))  # incompressible
        elif request.image is None:
            image = Image.new("RGB", (64, 48), (0, 128, 128))
        else:
            image = ImageOps.invert(request.image.convert("RGB"))
        self._log("done", request.instruction)
        return EditResult(image=image, message="slowly done")


register_backend(NAME, SlowBackend)
