"""One way to run a real ``retouch serve`` process for benchmarks and tests.

``running_server(data_dir, env)`` starts ``python -m app.cli serve`` on a
free port of 127.0.0.1 with a clean environment (no inherited ``RETOUCH_*``
or ``OPENAI_*`` variables) plus ``env``, waits for ``/healthz``, yields a
:class:`RunningServer` and stops the process afterwards. Used by
``bench/load_test.py``, ``bench/bench_memory.py`` and the tests that need a
real server (browser, HTTP hardening, load, events).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServerDidNotStart(RuntimeError):
    """The server exited, or did not answer ``/healthz`` in time; the message ends with its log's tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    """``url`` (``http://127.0.0.1:PORT``), ``port``, the process and its log file."""

    url: str
    port: int
    proc: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no server log: {exc})"
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def running_server(data_dir: Path, env: dict[str, str] | None = None, *,
                   startup_timeout: float = 60, stop_timeout: float = 20,
                   preload: str | None = None) -> Iterator[RunningServer]:
    """Run ``retouch serve`` with ``RETOUCH_DATA_DIR=data_dir`` and ``env``
    (seconds for ``startup_timeout``/``stop_timeout``), importing module
    ``preload`` first when given (a test backend that registers itself,
    e.g. ``tests.slow_backend``). The log goes to
    ``data_dir.parent / "server-PORT.log"``. Raises :class:`ServerDidNotStart`."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RETOUCH_", "OPENAI_"))}
    full_env.update(RETOUCH_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **(env or {}))
    log = Path(data_dir).parent / f"server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
        cmd = [sys.executable, "-m", "app.cli", *args] if preload is None else \
            [sys.executable, "-c", f"import {preload}; from app.cli import main; raise SystemExit(main({args!r}))"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = RunningServer(f"http://127.0.0.1:{port}", port, proc, log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise ServerDidNotStart(f"retouch serve exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.url}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServerDidNotStart(f"retouch serve did not answer /healthz in {startup_timeout:g} s:\n"
                                        f"{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
