"""HTTP throughput of Retouch as ratios against hello-world FastAPI, measured
side by side in one run with ``wrk`` (Debian package ``wrk``).

Run: ``.venv/bin/python bench/bench_http.py [--seconds 5] [--rounds 3]``
(part of ``make bench``). It starts ``bench/hello_app.py`` and a real
``retouch serve`` (same uvicorn, same defaults), seeds one owner with a
100-version and a 1000-version thread (rows written straight into SQLite,
all versions sharing one 1024x1024 image), then runs ``wrk`` against each
URL in turn, ``--rounds`` times interleaved, and reports the median req/s,
p50 and p99 latency, and req/s ÷ hello-world's. Last, the 100-version
page's p99 at c=4 while 8 slow turns run (:func:`run_in_flight`). Targets come from the
performance issue; a figure under its target is marked ``MISS``. Returns the
rows as dicts (``run()``) for ``bench/report.py``.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from bench.server import ROOT, free_port, running_server  # noqa: E402

#: (label, path key, connections, target ratio or None)
CASES = [
    ("hello-world FastAPI (def: the reference)", "hello", 16, None),
    ("hello-world FastAPI, async def", "hello_async", 16, None),
    ("/healthz", "healthz", 16, 0.8),
    ("static CSS", "css", 16, None),
    ("thumbnail GET", "thumb", 16, 0.5),
    ("Thread JSON, 100 versions", "json100", 16, 0.25),
    ("thread page, 100 versions", "page100", 16, 0.20),
    ("thread page, 1000 versions", "page1000", 16, 0.20),
    ("home page (sidebar: 2 threads)", "home", 16, None),
]


@contextmanager
def hello_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.hello_app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _photo() -> bytes:
    img = Image.effect_noise((1024, 1024), 40).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _multipart(fields: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    boundary = "benchboundary1234"
    out = io.BytesIO()
    for name, (filename, data, ctype) in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def upload_thread(server_url: str, cookie: str = "") -> tuple[str, str]:
    """Start a thread from the benchmark photo over HTTP, as the owner of
    ``cookie`` (a Cookie header; empty: a new owner). Returns (thread id,
    the Cookie header)."""
    body, ctype = _multipart({"image": ("photo.png", _photo(), "image/png")})
    req = urllib.request.Request(server_url + "/api/v1/threads", data=body, method="POST",
                                 headers={"Content-Type": ctype, "Origin": server_url,
                                          **({"Cookie": cookie} if cookie else {})})
    with urllib.request.urlopen(req, timeout=60) as resp:
        thread = json.loads(resp.read())
        return thread["id"], cookie or resp.headers["Set-Cookie"].split(";", 1)[0]


def seed(server_url: str, data_dir: Path) -> tuple[str, dict[str, str]]:
    """Create two threads over HTTP (an owner cookie and a real first
    version), then add versions and turns straight into the database until
    they have 100 and 1000 versions. Returns (the Cookie header, paths)."""
    first, cookie = upload_thread(server_url)
    ids = [first, upload_thread(server_url, cookie)[0]]
    from sqlalchemy import select

    from app.db import make_engine, make_sessionmaker
    from app.models import Thread, Turn, Version, new_id

    sessions = make_sessionmaker(make_engine(f"sqlite:///{(data_dir / 'retouch.db').resolve()}"))
    now = datetime.now(timezone.utc)
    with sessions() as session:
        for tid, total in zip(ids, (100, 1000)):
            thread = session.scalar(select(Thread).where(Thread.id == tid))
            v1 = thread.version(1)
            for n in range(2, total + 1):
                turn = Turn(id=new_id(), thread=thread, kind="edit", instruction=f"make it a little warmer ({n})",
                            status="succeeded", base_version=n - 1, result_version=n, backend="local",
                            created_at=now + timedelta(seconds=n), finished_at=now + timedelta(seconds=n))
                session.add(turn)
                session.add(Version(thread=thread, number=n, parent=n - 1 if n % 7 else max(1, n - 3),
                                    sha256=v1.sha256, width=v1.width, height=v1.height, turn_id=turn.id,
                                    created_at=now + timedelta(seconds=n)))
            thread.head_version = total
        session.commit()
    css = next(p.name for p in (ROOT / "static").glob("app*.css"))
    return cookie, {
        "healthz": "/healthz", "css": f"/static/{css}", "home": "/",
        "thumb": f"/api/v1/threads/{ids[0]}/versions/50/image?size=thumb",
        "json100": f"/api/v1/threads/{ids[0]}", "page100": f"/t/{ids[0]}", "page1000": f"/t/{ids[1]}",
    }


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, connections: int, seconds: float, headers: dict[str, str]) -> dict:
    """Run ``wrk`` once: {"rps", "p50_ms", "p99_ms", "errors"}."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s", url]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"), "errors": int(errors.group(1)) if errors else 0}


def run(seconds: float = 5, rounds: int = 3) -> list[dict]:
    """Measure every case; returns one dict per case (label, rps, p50_ms,
    p99_ms, ratio, target, ok)."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-http-")))
        hello = stack.enter_context(hello_server())
        server = stack.enter_context(running_server(tmp / "data", {"RETOUCH_BACKEND": "local",
                                                                   "RETOUCH_TURN_RATE_LIMIT": "0",
                                                                   "RETOUCH_ANONYMOUS_RATE_LIMIT": "0"}))
        cookie, paths = seed(server.url, tmp / "data")
        samples: dict[str, list[dict]] = {key: [] for _, key, _, _ in CASES}
        for _ in range(rounds):
            for _, key, conns, _ in CASES:
                url = hello + "/" if key == "hello" else hello + "/async" if key == "hello_async" else \
                    server.url + paths[key]
                samples[key].append(wrk(url, conns, seconds, {"Cookie": cookie}))
    rows = []
    hello_rps = statistics.median(s["rps"] for s in samples["hello"])
    for label, key, conns, target in CASES:
        rps = statistics.median(s["rps"] for s in samples[key])
        ratio = rps / hello_rps
        rows.append({"label": f"{label}, c={conns}", "rps": rps,
                     "p50_ms": statistics.median(s["p50_ms"] for s in samples[key]),
                     "p99_ms": statistics.median(s["p99_ms"] for s in samples[key]),
                     "errors": sum(s["errors"] for s in samples[key]),
                     "ratio": ratio, "target": target, "ok": target is None or ratio >= target})
    rows.append(run_in_flight(hello_rps, seconds, rounds))
    return rows


#: Turns kept running on other threads while the thread page is measured.
IN_FLIGHT = 8
#: How long each of those turns' backend call takes, seconds (a remote backend's wait).
IN_FLIGHT_SECONDS = 1.0
#: Target p99 of the thread page (100 versions, c=4) with IN_FLIGHT turns running, ms.
IN_FLIGHT_P99_MS = 100


def _keep_turns_running(server_url: str, cookie: str, threads: list[str], stop: threading.Event,
                        finished: list[int]) -> None:
    """Keep one turn queued or running on each of ``threads`` until ``stop``;
    counts finished turns in ``finished[0]``."""
    import httpx

    with httpx.Client(base_url=server_url, headers={"Cookie": cookie, "Origin": server_url}, timeout=60) as c:
        pending: dict[str, str] = {}
        while not stop.is_set():
            for tid in threads:
                turn_id = pending.get(tid)
                if turn_id is not None and c.get(f"/api/v1/turns/{turn_id}").json()["status"] in ("queued", "running"):
                    continue
                if turn_id is not None:
                    finished[0] += 1
                pending[tid] = c.post(f"/api/v1/threads/{tid}/turns", data={"instruction": "invert"}).json()["id"]
            stop.wait(0.2)


def run_in_flight(hello_rps: float, seconds: float = 5, rounds: int = 3) -> dict:
    """The thread page (100 versions) at c=4 while :data:`IN_FLIGHT` turns run
    on other threads of the same owner, each a :data:`IN_FLIGHT_SECONDS`
    backend call (``tests/slow_backend.py``, as a remote API waits) whose
    1024x1024 result is then stored, announced and shown. One row as
    :func:`run` gives, with ``p99_target`` (:data:`IN_FLIGHT_P99_MS`)."""
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-inflight-")))
        server = stack.enter_context(running_server(tmp / "data", {
            "RETOUCH_BACKEND": "slow-test", "RETOUCH_TEST_SLOW_SECONDS": str(IN_FLIGHT_SECONDS),
            "RETOUCH_WORKERS": str(IN_FLIGHT), "RETOUCH_TURN_RATE_LIMIT": "0",
            "RETOUCH_ANONYMOUS_RATE_LIMIT": "0"}, preload="tests.slow_backend"))
        cookie, paths = seed(server.url, tmp / "data")
        others = [upload_thread(server.url, cookie)[0] for _ in range(IN_FLIGHT)]
        stop, finished = threading.Event(), [0]
        feeder = threading.Thread(target=_keep_turns_running, args=(server.url, cookie, others, stop, finished),
                                  daemon=True)
        feeder.start()
        try:
            time.sleep(IN_FLIGHT_SECONDS * 1.5)  # every thread has a turn running
            samples = [wrk(server.url + paths["page100"], 4, seconds, {"Cookie": cookie}) for _ in range(rounds)]
        finally:
            stop.set()
            feeder.join(timeout=30)
    rps = statistics.median(s["rps"] for s in samples)
    p99 = statistics.median(s["p99_ms"] for s in samples)
    return {"label": f"thread page, 100 versions, c=4, {IN_FLIGHT} slow turns in flight ({finished[0]} finished)",
            "rps": rps, "p50_ms": statistics.median(s["p50_ms"] for s in samples), "p99_ms": p99,
            "errors": sum(s["errors"] for s in samples), "ratio": rps / hello_rps, "target": None,
            "p99_target": IN_FLIGHT_P99_MS, "ok": p99 <= IN_FLIGHT_P99_MS}


def table(rows: list[dict]) -> str:
    lines = ["| what | req/s | p50 ms | p99 ms | ÷ hello-world | target | |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        target = ("≥ %.2f" % r["target"] if r.get("target") else
                  "p99 ≤ %d ms" % r["p99_target"] if r.get("p99_target") else "")
        lines.append(f"| {r['label']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['ratio']:.3f} | "
                     f"{target} | {'' if not target else ('ok' if r['ok'] else 'MISS')}"
                     f"{' (%d errors)' % r['errors'] if r['errors'] else ''} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(table(run(args.seconds, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
