"""``make bench``: every benchmark in one run, written to ``bench/results.md``
with the machine, the date and the commit.

Each figure is a ratio against a reference measured in the same run:
HTTP endpoints against hello-world FastAPI (``bench/bench_http.py``, wrk),
the bytes a page receives on first load, repeat load and per finished turn
against the issue's targets (``bench/bench_page_bytes.py``, Chromium),
turn overhead against the direct backend call and storing against the PNG
encode (``bench/bench_turn.py``), local operations against their budgets
(``bench/bench_local.py``), then the load test (``bench/load_test.py``, 50
clients x 10 turns, 0 errors required) and the memory bench. Exits 1 when
the load test or the local budgets fail; a missed ratio target is reported
(``MISS``), not fatal, because it depends on the machine.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import bench_http, bench_page_bytes, bench_turn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sh(*args: str) -> tuple[int, str]:
    p = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip()


def main() -> int:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    head = [f"# Benchmark results", "",
            f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
            f"- commit: {commit}",
            f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
            f"{platform.python_version()}, {platform.platform()}", ""]
    sections = []
    http = bench_http.run()
    sections += ["## HTTP, against hello-world FastAPI (wrk, medians of 3 rounds)", "", bench_http.table(http), ""]
    print(sections[-2], flush=True)
    page_bytes = bench_page_bytes.run()
    sections += ["## Bytes a page receives (Chromium)", "", bench_page_bytes.table(page_bytes), ""]
    print(sections[-2], flush=True)
    turn = bench_turn.run()
    sections += ["## Turns, against the direct backend call and the PNG encode", "", bench_turn.table(turn), ""]
    print(sections[-2], flush=True)
    failed = False
    for title, args in (("Local operations, against their budgets", ["bench/bench_local.py"]),
                        ("Load test", ["bench/load_test.py", "--clients", "50", "--turns", "10"]),
                        ("Memory", ["bench/bench_memory.py", "--requests", "8", "--scans", "10000"])):
        code, out = sh(*args)
        failed |= code != 0
        sections += [f"## {title}", "", "```", out[-6000:], "```", ""]
        print(f"{title}: exit {code}", flush=True)
    (ROOT / "bench" / "results.md").write_text("\n".join(head + sections))
    print("wrote bench/results.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
