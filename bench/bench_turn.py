"""What a turn adds to the backend's own time, and what storing a result
costs against encoding it, measured side by side in one run.

Run: ``.venv/bin/python bench/bench_turn.py [--turns 12]`` (part of
``make bench``). A real ``retouch serve`` (SQLite, the ``local`` backend),
followed from this process through its event stream, gets a 1024x1024 photo, then ``--turns`` edits alternating "make it black
and white" and "invert the colors". For each, the wall time from the POST
to the turn reading ``succeeded`` is compared with the time of the same
``backend.edit`` call made directly on the same image: the difference is
the overhead (HTTP, queue, decoding the base, storing, committing, and
learning of it as an open page does: from the thread's event stream, then
one GET of the turn). Target: p50 overhead <= 50 ms. Also: ``store_image`` (PNG, WebP
thumbnail, fsync) against the bare PNG encode, and the PNG encoders side by
side (Pillow at zlib level 3, the first; OpenCV's libpng with the RLE strategy,
the second; and the Up filter plus libdeflate, the current one).
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from app.backends import EditRequest, get_backend  # noqa: E402
from app.imaging import encode_png, open_png  # noqa: E402
from app.services import store_image  # noqa: E402
from app.storage import BlobStore  # noqa: E402
from bench.server import running_server  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / ".." / "shared" / "eval" / "images" / "astronaut.png"
INSTRUCTIONS = ("make it black and white", "invert the colors")
TARGET_OVERHEAD_MS = 50


def photo() -> Image.Image:
    if PHOTO.exists():
        return Image.open(PHOTO).convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS)
    return Image.effect_noise((1024, 1024), 40).convert("RGB")


def median_ms(fn, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


class EventFollower:
    """Follows a page's server-sent event stream (``/t/{id}/events``) on a
    thread of this process, as an open page does: :meth:`wait` returns at
    the next ``changed`` event since :meth:`clear`."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self._event = threading.Event()
        self._ready = threading.Event()
        self._client = httpx.Client(base_url=str(client.base_url), cookies=client.cookies, timeout=None,
                                    headers=dict(client.headers))
        self._thread = threading.Thread(target=self._follow, args=(path,), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the event stream did not open")

    def _follow(self, path: str) -> None:
        try:
            with self._client.stream("GET", path) as response:
                for line in response.iter_lines():
                    if line == "event: ready":
                        self._ready.set()
                    elif line == "event: changed":
                        self._event.set()
        except httpx.HTTPError:  # closed by close()
            pass

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)
        self._event.clear()

    def close(self) -> None:
        self._client.close()


def run(turns: int = 12) -> list[dict]:
    """Measure; returns rows {"label", "value", "reference", "ratio", "target", "ok"}."""
    image = photo()
    rows = []
    pil3 = median_ms(lambda: image.save(io.BytesIO(), "PNG", compress_level=3))
    cv = median_ms(lambda: encode_png(image))
    bgr = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
    rle = median_ms(lambda: cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1,
                                                       cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]))
    rows.append({"label": "PNG encode 1024x1024 (ms): OpenCV RLE (the previous encoder) ÷ Pillow level 3",
                 "value": rle, "reference": pil3, "ratio": rle / pil3, "target": None, "ok": True})
    rows.append({"label": "PNG encode 1024x1024 (ms): Up filter + libdeflate (the current one) ÷ Pillow level 3",
                 "value": cv, "reference": pil3, "ratio": cv / pil3, "target": None, "ok": True})
    with tempfile.TemporaryDirectory(prefix="bench-turn-") as tmp:
        store = BlobStore(Path(tmp) / "blobs")
        counter = [0]

        def store_one():
            counter[0] += 1
            im = image.copy()
            im.putpixel((0, 0), (counter[0] % 256, 0, 0))  # a new blob each time: the real write
            store_image(store, im)
        stored = median_ms(store_one)
        rows.append({"label": "store a result (PNG + thumbnail + fsync, ms) ÷ PNG encode", "value": stored,
                     "reference": cv, "ratio": stored / cv, "target": None, "ok": True})

        backend = get_backend("local")
        buf = io.BytesIO()
        image.save(buf, "PNG")
        overheads, totals, directs, waits, runs = [], [], [], [], []
        env = {"RETOUCH_BACKEND": "local", "RETOUCH_TURN_RATE_LIMIT": "0", "RETOUCH_ANONYMOUS_RATE_LIMIT": "0"}
        with running_server(Path(tmp) / "data", env) as server, httpx.Client(base_url=server.url, timeout=60,
                                                                            headers={"Origin": server.url}) as client:
            thread = client.post("/api/v1/threads", files={"image": ("p.png", buf.getvalue(), "image/png")}).json()
            tid = thread["id"]
            changed = EventFollower(client, f"/t/{tid}/events")
            try:
                for i in range(turns):
                    instruction = INSTRUCTIONS[i % 2]
                    head = client.get(f"/api/v1/threads/{tid}").json()["head_version"]
                    base = open_png(client.get(f"/api/v1/threads/{tid}/versions/{head}/image").content)
                    changed.clear()
                    t0 = time.perf_counter()
                    turn = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": instruction}).json()
                    while True:  # as an open page does: read the turn again after each change event
                        status = client.get(f"/api/v1/turns/{turn['id']}").json()["status"]
                        if status not in ("queued", "running"):
                            break
                        changed.wait(10)
                    total = (time.perf_counter() - t0) * 1000
                    assert status == "succeeded", status
                    done = client.get(f"/api/v1/turns/{turn['id']}").json()
                    created, started, finished = (datetime.fromisoformat(done[k]) for k in
                                                  ("created_at", "started_at", "finished_at"))
                    waits.append((started - created).total_seconds() * 1000)
                    runs.append((finished - started).total_seconds() * 1000)
                    direct = median_ms(lambda: backend.edit(EditRequest(instruction=instruction, image=base)), runs=3)
                    totals.append(total)
                    directs.append(direct)
                    overheads.append(total - direct)
            finally:
                changed.close()
    p50 = statistics.median(overheads)
    run_p50 = statistics.median(runs)
    rows.append({"label": "of which: queued → claimed, p50 (ms) vs the direct call", "value": statistics.median(waits),
                 "reference": statistics.median(directs), "ratio": statistics.median(waits) / statistics.median(directs),
                 "target": None, "ok": True})
    rows.append({"label": "of which: claimed → committed (backend, store, commit), p50 (ms) vs the direct call",
                 "value": run_p50, "reference": statistics.median(directs),
                 "ratio": run_p50 / statistics.median(directs), "target": None, "ok": True})
    rows.append({"label": f"turn overhead outside the backend, p50 of {turns} (ms) vs the direct call",
                 "value": p50, "reference": statistics.median(directs), "ratio": statistics.median(totals) /
                 statistics.median(directs), "target": TARGET_OVERHEAD_MS, "ok": p50 <= TARGET_OVERHEAD_MS})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| what | value | reference | ratio | target | |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['value']:.1f} | {r['reference']:.1f} | {r['ratio']:.2f} | "
                     f"{'≤ %d ms' % r['target'] if r['target'] else ''} | "
                     f"{'' if r['target'] is None else ('ok' if r['ok'] else 'MISS')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=12)
    args = parser.parse_args()
    print(table(run(args.turns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
