"""Load test: many clients, each creating a thread and queueing turns, against
one real ``retouch serve`` process with the ``local`` backend.

Each client has its own cookie jar (its own owner), uploads a photo, sends
all its instructions at once, then polls until its thread is idle. Checks:
no request failed, every turn succeeded, each thread has versions 1..N+1 in
submission order (version k+1's parent is version k).

``python bench/load_test.py`` runs the full size (50 clients x 10 turns) and
prints requests, errors, latency percentiles (ms) and throughput. The test
suite runs :func:`run_load` at a small size (tests/test_load.py).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find the bench package

from bench.server import running_server  # noqa: E402
INSTRUCTIONS = [
    "rotate it 90 degrees clockwise",
    "flip it horizontally",
    "make it a bit brighter",
    "invert the colors",
    "add a 4 pixel red border",
    "make it black and white",
    "increase the contrast",
    "flip it vertically",
    "make it warmer",
    "sharpen it",
]


@dataclass
class LoadResult:
    clients: int
    turns_per_client: int
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    versions: int = 0
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(round(p / 100 * (len(data) - 1))))]

    #: The load test's targets: p95 request latency (ms) and turns per second.
    P95_TARGET_MS = 1000.0

    def summary(self) -> str:
        return (f"{self.clients} clients x {self.turns_per_client} turns: {self.requests} requests, "
                f"{len(self.errors)} errors, {self.versions} versions, "
                f"latency p50 {self.percentile(50):.0f} ms, p95 {self.percentile(95):.0f} ms, "
                f"max {max(self.latencies_ms, default=0):.0f} ms; {self.seconds:.1f} s total, "
                f"{self.clients * self.turns_per_client / max(self.seconds, 1e-9):.1f} turns/s")


def photo_bytes(size: int = 256, seed: int = 0) -> bytes:
    """A small PNG photo stand-in (gradient and shapes), ``size`` pixels square."""
    im = Image.linear_gradient("L").resize((size, size)).convert("RGB")
    draw = ImageDraw.Draw(im)
    draw.ellipse((size // 4, size // 4, size * 3 // 4, size * 3 // 4), fill=((seed * 37) % 256, 120, 200))
    draw.rectangle((0, 0, size // 5, size // 5), fill=(250, 200, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


async def _client(base: str, index: int, turns: int, image_size: int, result: LoadResult, timeout: float) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        async def call(method: str, url: str, **kw) -> httpx.Response | None:
            t0 = time.perf_counter()
            try:
                r = await http.request(method, url, **kw)
            except httpx.HTTPError as exc:
                result.errors.append(f"client {index}: {method} {url}: {exc!r}")
                return None
            finally:
                result.requests += 1
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if r.status_code >= 400:
                result.errors.append(f"client {index}: {method} {url}: HTTP {r.status_code} {r.text[:200]}")
                return None
            return r

        r = await call("POST", "/api/v1/threads", files={"image": ("p.png", photo_bytes(image_size, index), "image/png")},
                       data={"title": f"load {index}"})
        if r is None:
            return
        tid = r.json()["id"]
        sent = []
        for k in range(turns):
            r = await call("POST", f"/api/v1/threads/{tid}/turns",
                           data={"instruction": INSTRUCTIONS[(index + k) % len(INSTRUCTIONS)]})
            if r is None:
                return
            sent.append(r.json()["id"])
        deadline = time.monotonic() + timeout
        while True:
            r = await call("GET", f"/api/v1/threads/{tid}")
            if r is None:
                return
            thread = r.json()
            pending = [t for t in thread["turns"] if t["status"] in ("queued", "running")]
            if not pending:
                break
            if time.monotonic() > deadline:
                result.errors.append(f"client {index}: {len(pending)} turns still pending after {timeout} s")
                return
            await asyncio.sleep(0.25)
        by_id = {t["id"]: t for t in thread["turns"]}
        bad = [by_id[i] for i in sent if by_id[i]["status"] != "succeeded"]
        if bad:
            result.errors.append(f"client {index}: turn ended {bad[0]['status']}: {bad[0]['message'] or bad[0]['error']}")
        results = [by_id[i]["result_version"] for i in sent]
        numbers = [v["number"] for v in thread["versions"]]
        parents = [v["parent"] for v in thread["versions"]]
        if results != list(range(2, turns + 2)) or numbers != list(range(1, turns + 2)) \
                or parents != [None, *range(1, turns + 1)]:
            result.errors.append(f"client {index}: versions out of order: results {results}, parents {parents}")
        result.versions += len(numbers) - 1


def run_load(base_url: str, clients: int, turns: int, *, image_size: int = 256, timeout: float = 600) -> LoadResult:
    """Run ``clients`` concurrent clients of ``turns`` turns each against
    ``base_url``. Returns a :class:`LoadResult` (``versions`` counts the
    versions the turns made, uploads excluded)."""
    result = LoadResult(clients, turns)
    t0 = time.perf_counter()

    async def main() -> None:
        await asyncio.gather(*(_client(base_url, i, turns, image_size, result, timeout) for i in range(clients)))

    asyncio.run(main())
    result.seconds = time.perf_counter() - t0
    return result


@contextmanager
def serve(data_dir: Path, env: dict | None = None, startup_timeout: float = 60):
    """Run ``retouch serve`` on a free port with the ``local`` backend and
    ``data_dir`` (no rate limits); yields the base URL and stops the server
    afterwards (:func:`bench.server.running_server`)."""
    settings = {"RETOUCH_BACKEND": "local", "RETOUCH_TURN_RATE_LIMIT": "0", "RETOUCH_ANONYMOUS_RATE_LIMIT": "0",
                **(env or {})}
    with running_server(Path(data_dir), settings, startup_timeout=startup_timeout) as server:
        yield server.url


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=512, help="photo side in pixels")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, serve(Path(d) / "data") as base:
        result = run_load(base, args.clients, args.turns, image_size=args.image_size)
    print(result.summary())
    p95 = result.percentile(95)
    print(f"p95 {p95:.0f} ms against the target of {LoadResult.P95_TARGET_MS:.0f} ms: "
          + ("ok" if p95 <= LoadResult.P95_TARGET_MS else "MISS"))
    for err in result.errors[:10]:
        print("  error:", err)
    ok = not result.errors and result.versions == args.clients * args.turns
    print("load test", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

