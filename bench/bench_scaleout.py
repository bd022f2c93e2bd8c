"""Scale-out benchmark: turns per minute with 1 and with 3 ``retouch worker``
processes on one PostgreSQL database.

For each worker count it makes a fresh database (``RETOUCH_TEST_POSTGRES_URL``),
starts one web-only ``retouch serve --workers 0`` and the workers
(``--concurrency 1`` each unless told otherwise), queues ``turns`` turns over
6 threads with the slow test backend (each run sleeps ``--sleep`` seconds,
default 2), and times from the first turn queued to the last one ended. It
prints one line per worker count and the ratio. With a 2 s backend the ideal
is 30 turns per minute per concurrent run.

    .venv/bin/python bench/bench_scaleout.py [--sleep 2] [--workers 1 3] [--turns-per-worker 12]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: find the tests package

from tests.test_multiprocess import Cluster, fresh_database, queue, upload_thread  # noqa: E402

THREADS = 6


def measure(workers: int, concurrency: int, sleep: float, turns: int) -> float:
    """Turns per minute with ``workers`` worker processes of ``concurrency``
    each, for ``turns`` turns of a backend that sleeps ``sleep`` seconds."""
    with tempfile.TemporaryDirectory() as tmp, fresh_database() as url:
        cluster = Cluster(Path(tmp), url, sleep)
        try:
            upgrade = cluster.run("db", "upgrade")
            assert upgrade.returncode == 0, upgrade.stderr
            web, base = cluster.serve("web", 0)
            procs = [cluster.spawn(f"worker-{i}", "worker", "--concurrency", str(concurrency))
                     for i in range(workers)]
            cluster.wait_ready(base, web)
            with httpx.Client(base_url=base, timeout=30) as client:
                threads = [upload_thread(client) for _ in range(THREADS)]
                time.sleep(3)  # let the workers finish starting (they import the app, connect, listen)
                assert all(p.poll() is None for p in procs)
                started = time.monotonic()
                for k in range(turns):
                    queue(client, threads[k % THREADS], f"turn {k}")
                while cluster.sql("SELECT 1 FROM turns WHERE status IN ('queued', 'running')"):
                    time.sleep(0.05)
                elapsed = time.monotonic() - started
                done = cluster.sql("SELECT count(*) FROM turns WHERE status = 'succeeded' AND kind = 'edit'")[0][0]
                assert done == turns, done
            return turns / elapsed * 60
        finally:
            cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds each backend run sleeps")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3], help="worker process counts to try")
    parser.add_argument("--concurrency", type=int, default=1, help="turns each worker process runs at once")
    parser.add_argument("--turns-per-worker", type=int, default=12)
    args = parser.parse_args()
    results = {}
    for n in args.workers:
        turns = args.turns_per_worker * n * args.concurrency
        results[n] = measure(n, args.concurrency, args.sleep, turns)
        ideal = 60 / args.sleep * n * args.concurrency
        print(f"{n} worker process(es) x concurrency {args.concurrency}: {turns} turns, "
              f"{results[n]:.1f} turns/minute (ideal {ideal:.0f})", flush=True)
    if len(results) > 1:
        low, high = min(results), max(results)
        print(f"scale-up {high} vs {low} workers: {results[high] / results[low]:.2f}x")


if __name__ == "__main__":
    main()
