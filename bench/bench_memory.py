"""Memory and CPU of hostile uploads against one real ``retouch serve``.

Run: ``.venv/bin/python bench/bench_memory.py [--requests 8] [--scans 10000]``.

Starts ``python -m app.cli serve`` (``local`` backend, no turn rate limit,
a temporary data directory), creates a thread from a small photo, then sends
``--requests`` concurrent worst-case turn requests, each with 4 reference
images that are 6320x6320 lossless WebPs of one colour (a few KB each, 40
megapixels each when decoded). The server's RSS is sampled from
``/proc/<pid>/status`` every 50 ms. Then a progressive JPEG with
``--scans`` extra empty scans is uploaded as a photo and the time to the
answer is measured.

First, one 40-megapixel PNG photo (one colour, ~130 KB) is uploaded and the
peak measured; the kernel's peak is then reset (``/proc/<pid>/clear_refs``).

Prints: baseline RSS, peak RSS (the kernel's VmHWM, which also sees peaks
between samples), the highest sampled RSS, RSS after the requests ended and
the worker went idle, the status codes, and the scan bomb's status and time.
The target (the attacker's report, 2026-12): 8 concurrent worst-case
requests keep the server under 1.5 GB; before the fix they reached 8.7 GB.
Exits 1 when the peak is over ``--limit-mb`` (default 1536).

Linux only (reads ``/proc``). The scan bomb is built like
``tests/test_image_budget.py`` builds it: Pillow's own 2048x2048
progressive JPEG of one colour, with its last scan (a luma AC refinement,
16 bytes) repeated before EOI; unchecked, libjpeg accepts it and spends
about 4 ms per scan (measured, Pillow 13, one core).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load_test import photo_bytes  # noqa: E402
from bench.server import running_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def webp_bomb(side: int = 6320, color=(40, 90, 160)) -> bytes:
    """A lossless WebP of ``side`` x ``side`` pixels of one colour (~2 KB)."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), color).save(buf, "WEBP", lossless=True)
    return buf.getvalue()


def png_photo(side: int = 6320, color=(200, 60, 30)) -> bytes:
    """A PNG of ``side`` x ``side`` pixels of one colour (40 MP in ~130 KB)."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), color).save(buf, "PNG")
    return buf.getvalue()


def reset_peak(pid: int) -> bool:
    """Reset the kernel's VmHWM of ``pid`` (``/proc/<pid>/clear_refs``, 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def scan_bomb(extra_scans: int, side: int = 2048) -> bytes:
    """A progressive JPEG whose last scan is repeated ``extra_scans`` times."""
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (128, 128, 128)).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    pos, last_scan = 2, None
    while data[pos + 1] != 0xD9:  # walk segments up to EOI
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if marker == 0xDA:  # entropy-coded data runs to the next real marker
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
            last_scan = data[pos:end]
        pos = end
    return data[:pos] + last_scan * extra_scans + data[pos:]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value, _unit = line.split()
                out[key[:-1]] = int(value) * 1024
    return out


class Sampler(threading.Thread):
    """Reads the RSS of ``pid`` every ``interval`` seconds; ``peak`` is the
    highest value seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self.stop = pid, interval, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, proc_status(self.pid)["VmRSS"])
            time.sleep(self.interval)


async def attack(base: str, cookies: httpx.Cookies, tid: str, requests: int, refs: list[bytes]) -> list[str]:
    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=600) as http:
        async def one(i: int) -> str:
            files = [("image", (f"ref{k}.webp", data, "image/webp")) for k, data in enumerate(refs)]
            r = await http.post(f"/api/v1/threads/{tid}/turns",
                                data={"instruction": "make it black and white"}, files=files)
            return f"{r.status_code}" + ("" if r.status_code < 400 else f" ({r.json().get('detail', '')[:80]})")
        return await asyncio.gather(*(one(i) for i in range(requests)))


def wait_idle(http: httpx.Client, tid: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turns = http.get(f"/api/v1/threads/{tid}").json()["turns"]
        if all(t["status"] not in ("queued", "running") for t in turns):
            return
        time.sleep(0.25)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=8, help="concurrent worst-case turn requests")
    ap.add_argument("--scans", type=int, default=10_000, help="extra scans in the progressive JPEG")
    ap.add_argument("--limit-mb", type=float, default=1536, help="fail when the peak RSS is over this")
    args = ap.parse_args()
    ref = webp_bomb()
    bomb = scan_bomb(args.scans)
    print(f"reference: {len(ref)} bytes lossless WebP, 6320x6320; "
          f"scan bomb: {len(bomb)} bytes, {args.scans} extra scans, 2048x2048")
    with tempfile.TemporaryDirectory() as d:
        data_dir = Path(d) / "data"
        data_dir.mkdir()
        env = {"RETOUCH_BACKEND": "local", "RETOUCH_TURN_RATE_LIMIT": "0", "RETOUCH_ANONYMOUS_RATE_LIMIT": "0"}
        with running_server(data_dir, env) as server:
            proc, base = server.proc, server.url
            with httpx.Client(base_url=base, timeout=600) as http:
                r = http.post("/api/v1/threads", files={"image": ("p.png", photo_bytes(256), "image/png")})
                r.raise_for_status()
                tid = r.json()["id"]
                time.sleep(1)
                baseline = proc_status(proc.pid)["VmRSS"]
                photo = png_photo()
                t0 = time.perf_counter()
                r = http.post("/api/v1/threads", files={"image": ("big.png", photo, "image/png")})
                photo_s = time.perf_counter() - t0
                photo_status = proc_status(proc.pid)
                photo_line = (f"one {len(photo) // 1000} KB 40 MP PNG photo: {r.status_code} in {photo_s:.1f} s, "
                              f"peak (VmHWM) {photo_status['VmHWM'] / 2**20:.0f} MB, "
                              f"after {photo_status['VmRSS'] / 2**20:.0f} MB")
                if not reset_peak(proc.pid):
                    photo_line += " (VmHWM could not be reset: the peak below includes it)"
                sampler = Sampler(proc.pid)
                sampler.start()
                t0 = time.perf_counter()
                statuses = asyncio.run(attack(base, http.cookies, tid, args.requests, [ref] * 4))
                took = time.perf_counter() - t0
                wait_idle(http, tid)
                time.sleep(1)
                sampler.stop.set()
                sampler.join()
                status = proc_status(proc.pid)
                t0 = time.perf_counter()
                r = http.post("/api/v1/threads", files={"image": ("scans.jpg", bomb, "image/jpeg")})
                bomb_s = time.perf_counter() - t0
                bomb_status = f"{r.status_code} {r.json().get('detail', '')[:120] if r.status_code >= 400 else ''}"
    mb = 1 / 2**20
    peak = status["VmHWM"]
    print(photo_line)
    print(f"{args.requests} concurrent requests x 4 references: answered {statuses} in {took:.1f} s")
    print(f"RSS baseline {baseline * mb:.0f} MB, peak (VmHWM) {peak * mb:.0f} MB, "
          f"highest sample {sampler.peak * mb:.0f} MB, after {status['VmRSS'] * mb:.0f} MB")
    print(f"scan bomb ({args.scans} scans): {bomb_status.strip()} in {bomb_s:.2f} s")
    ok = peak * mb <= args.limit_mb
    print("memory", "within" if ok else "OVER", f"{args.limit_mb:.0f} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
