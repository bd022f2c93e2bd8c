"""Bytes an open thread page receives per finished turn, and the first and
repeat load of a long thread, measured in real Chromium (Playwright).

Run: ``.venv/bin/python bench/bench_page_bytes.py [--turns 5]`` (part of
``make bench``). A real ``retouch serve`` (the ``local`` backend) gets the
100-version thread of ``bench/bench_http.py`` (every version a 1024x1024
photo); Chromium opens its page and every response's transferred size
(headers plus the body as sent, compressed where it was) is added up from
the browser's own accounting (``Request.sizes()``). Then ``--turns`` edits
are queued through the JSON API, as from another device, and the page
shows each result without a reload (its event stream). Reported per
finished turn: the bytes of everything but images, and the images (the new
version's preview and thumbnail) apart. Targets from the performance
issue: first load <= 1.5 MB, repeat load <= 50 KB, per turn <= 10 KB plus
the new preview.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from bench.bench_http import seed  # noqa: E402
from bench.server import running_server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
FIRST_LOAD_TARGET = 1_500_000
REPEAT_LOAD_TARGET = 50_000
PER_TURN_TARGET = 10_000


class Tally:
    """Transferred bytes of finished responses, split into images and the rest."""

    def __init__(self) -> None:
        self.images = 0
        self.other = 0

    def add(self, request) -> None:
        sizes = request.sizes()
        n = sizes["responseHeadersSize"] + sizes["responseBodySize"]
        if "/image" in request.url:
            self.images += n
        else:
            self.other += n

    def take(self) -> tuple[int, int]:
        out = (self.other, self.images)
        self.images = self.other = 0
        return out


def run(turns: int = 5) -> list[dict]:
    """Measure; returns rows {"label", "value" (bytes), "target", "ok"}."""
    rows = []
    env = {"RETOUCH_BACKEND": "local", "RETOUCH_TURN_RATE_LIMIT": "0", "RETOUCH_ANONYMOUS_RATE_LIMIT": "0"}
    with tempfile.TemporaryDirectory(prefix="bench-bytes-") as tmp, \
            running_server(Path(tmp) / "data", env) as server, sync_playwright() as p:
        cookie, paths = seed(server.url, Path(tmp) / "data")
        name, value = cookie.split("=", 1)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_cookies([{"name": name, "value": value, "url": server.url}])
        page = context.new_page()
        tally = Tally()
        page.on("requestfinished", tally.add)
        page.goto(server.url + paths["page100"], wait_until="networkidle")
        other, images = tally.take()
        rows.append({"label": "first load of a 100-version thread (1024x1024 images)", "value": other + images,
                     "target": FIRST_LOAD_TARGET, "ok": other + images <= FIRST_LOAD_TARGET})
        page.reload(wait_until="networkidle")
        other, images = tally.take()
        rows.append({"label": "repeat load of the same thread", "value": other + images,
                     "target": REPEAT_LOAD_TARGET, "ok": other + images <= REPEAT_LOAD_TARGET})
        page.wait_for_timeout(500)  # the event stream is open
        tally.take()
        tid = paths["page100"].rsplit("/", 1)[1]
        per_turn, per_turn_images = [], []
        with httpx.Client(base_url=server.url, headers={"Cookie": cookie, "Origin": server.url}, timeout=60) as c:
            for i in range(turns):
                turn = c.post(f"/api/v1/threads/{tid}/turns",
                              data={"instruction": ("make it warmer", "make it cooler")[i % 2]}).json()
                number = 100 + i + 1
                page.locator(f'section#conversation figure.version[data-version="{number}"] img').wait_for(
                    timeout=60_000)
                page.wait_for_load_state("networkidle")
                assert c.get(f"/api/v1/turns/{turn['id']}").json()["status"] == "succeeded"
                other, images = tally.take()
                per_turn.append(other)
                per_turn_images.append(images)
        browser.close()
    median = statistics.median(per_turn)
    rows.append({"label": f"bytes to an open page per finished turn, without images (median of {turns})",
                 "value": median, "target": PER_TURN_TARGET, "ok": median <= PER_TURN_TARGET})
    rows.append({"label": "… and its images (the new version's previews and the sidebar's thumbnail), median", "value":
                 statistics.median(per_turn_images), "target": None, "ok": True})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| what | bytes | target | |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['value']:,.0f} | {'≤ {:,}'.format(r['target']) if r['target'] else ''} | "
                     f"{'' if r['target'] is None else ('ok' if r['ok'] else 'MISS')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    print(table(run(args.turns)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
