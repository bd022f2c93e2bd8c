"""The shared instruction-fidelity evaluation (../shared/eval/run.py) run
through the real ``retouch edit`` command with the local backend: every case
passes, with no wrong edit. It guards against regressions; the product is
also judged on held-out phrasings, which the project's own tests cover."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI, SHARED_EVAL

ROOT = Path(__file__).resolve().parent.parent


def test_shared_eval_passes_every_case():
    run_py = SHARED_EVAL / "run.py"
    missing = [what for what, ok in (("../shared/eval", run_py.is_file()),
                                     ("tesseract", shutil.which("tesseract") is not None)) if not ok]
    if missing:
        if IN_CI:
            pytest.fail(f"needed under CI=true: {', '.join(missing)}")
        pytest.skip(f"not available: {', '.join(missing)}")
    retouch = [sys.executable, "-m", "app.cli"]
    cmd = "env RETOUCH_BACKEND=local " + " ".join(retouch)
    p = subprocess.run([sys.executable, str(run_py), "--cmd", cmd], capture_output=True, text=True,
                       cwd=ROOT, timeout=900, env={**os.environ, "RETOUCH_BACKEND": "local"})
    score = [line for line in p.stdout.splitlines() if line.startswith("score:")]
    failures = [line for line in p.stdout.splitlines() if line[:4] in ("WRON", "ERR ", "DECL")]
    assert p.returncode == 0, f"{score} {failures}\n{p.stderr[-2000:]}"
    assert "wrong edits: 0" in score[0]
