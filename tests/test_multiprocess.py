"""Several real processes on one PostgreSQL database (issue 12, "Scale out").

Each test gets a fresh database and runs ``retouch serve`` and ``retouch
worker`` processes on it with the slow test backend (``tests/slow_backend.py``),
whose log file records ``start <instruction>`` and ``done <instruction>`` for
every run, so the test can tell which turns ran, how often and in what order.
Blobs go to one shared data folder (the file store).

- ``test_two_servers_run_every_turn_once_in_order``: two ``retouch serve``
  processes, each running turns, share the queue: every turn runs exactly
  once and each thread's turns run one at a time, in order.
- ``test_three_web_two_workers_survive_a_sigkill``: three web-only
  ``retouch serve --workers 0`` and two ``retouch worker`` processes; 60
  turns over 6 threads sent through all three web processes; one worker is
  SIGKILLed in the middle of a turn. Every turn still completes exactly once
  (the killed run shows as a ``start`` without ``done``), in order per
  thread, no blob is missing, and the killed turn was taken over by the
  other worker once the dead worker's heartbeat and lease had run out.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import fresh_postgres_database, png_bytes
from tests.test_crash import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
RUN = "import tests.slow_backend; from app.cli import main; raise SystemExit(main({args!r}))"
#: Short leases keep the takeover quick: heartbeat every second, takeover after 3 s.
LEASE_SECONDS = 3.0


class Cluster:
    """Processes sharing one database, one data folder and one slow-backend log."""

    def __init__(self, tmp: Path, database_url: str, slow_seconds: float, **env: str) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.slow_log = tmp / "slow.log"
        self.database_url = database_url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RETOUCH_") and k != "OPENAI_API_KEY"}
        self.env.update({
            "RETOUCH_DATA_DIR": str(self.data), "RETOUCH_DATABASE_URL": database_url,
            "RETOUCH_BACKEND": "slow-test", "RETOUCH_SECRET_KEY": "multiprocess-test",
            "RETOUCH_TEST_SLOW_LOG": str(self.slow_log), "RETOUCH_TEST_SLOW_SECONDS": str(slow_seconds),
            "RETOUCH_LEASE_SECONDS": str(LEASE_SECONDS), "RETOUCH_TURN_RATE_LIMIT": "0",
            "RETOUCH_ANONYMOUS_RATE_LIMIT": "0", "RETOUCH_MAX_QUEUED_TURNS": "0", **env,
        })
        self.procs: list[subprocess.Popen] = []
        self.engine = create_engine(database_url)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", RUN.format(args=list(args))], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        out = (self.tmp / f"{name}.out").open("ab")
        proc = subprocess.Popen([sys.executable, "-c", RUN.format(args=list(args))], env=self.env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
        proc.name = name
        self.procs.append(proc)
        return proc

    def serve(self, name: str, workers: int) -> tuple[subprocess.Popen, str]:
        port = free_port()
        return self.spawn(name, "serve", "--port", str(port), "--workers", str(workers), "--no-migrate"), \
            f"http://127.0.0.1:{port}"

    def wait_ready(self, base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, self.output(proc.name)
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{proc.name} did not start"
            time.sleep(0.1)

    def output(self, name: str) -> str:
        path = self.tmp / f"{name}.out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def events(self) -> list[tuple[str, str]]:
        if not self.slow_log.exists():
            return []
        return [tuple(line.split(" ", 1)) for line in self.slow_log.read_text().splitlines() if line]

    def sql(self, query: str, **params) -> list:
        with self.engine.connect() as conn:
            return conn.execute(text(query), params).all()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.engine.dispose()


@pytest.fixture
def cluster_factory(tmp_path):
    made: list[Cluster] = []

    @contextmanager
    def make(slow_seconds: float, **env: str):
        with fresh_postgres_database("retouch_mp_") as url:
            cluster = Cluster(tmp_path, url, slow_seconds, **env)
            made.append(cluster)
            upgrade = cluster.run("db", "upgrade")
            assert upgrade.returncode == 0, upgrade.stderr[-3000:]
            try:
                yield cluster
            finally:
                cluster.close()

    return make


def upload_thread(client: httpx.Client) -> str:
    r = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes((32, 24)), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def queue(client: httpx.Client, tid: str, instruction: str) -> str:
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": instruction})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def drained(cluster: Cluster, timeout: float) -> None:
    wait_until(lambda: not cluster.sql("SELECT 1 FROM turns WHERE status IN ('queued', 'running')"),
               timeout, "the queue to drain", step=0.1)


def check_runs(events: list[tuple[str, str]], instructions: dict[str, list[str]]) -> Counter:
    """Every instruction completed exactly once, and each thread's
    instructions (in queue order) ran one at a time, in order: a turn's
    first start comes after the previous turn's completion. Returns the
    starts per instruction."""
    dones = Counter(i for e, i in events if e == "done")
    starts = Counter(i for e, i in events if e == "start")
    everything = [i for seq in instructions.values() for i in seq]
    assert dones == Counter(everything), "a turn completed more or less than once"
    position = {}
    for n, (event, instruction) in enumerate(events):
        position.setdefault((event, instruction), n)  # first start, only done
    for seq in instructions.values():
        for earlier, later in zip(seq, seq[1:]):
            assert position[("done", earlier)] < position[("start", later)], (earlier, later)
    return starts


def check_blobs(cluster: Cluster, client: httpx.Client, thread_ids: list[str], read_blob=None) -> int:
    """Every version's image is in the shared store, whole, and served.
    ``read_blob(sha256) -> bytes`` reads the store (default: the shared data
    folder). Returns the count."""
    count = 0
    for tid in thread_ids:
        thread = client.get(f"/api/v1/threads/{tid}").json()
        for v in thread["versions"]:
            if read_blob is not None:
                data = read_blob(v["sha256"])
            else:
                data = (cluster.data / "blobs" / v["sha256"][:2] / f"{v['sha256']}.png").read_bytes()
            assert hashlib.sha256(data).hexdigest() == v["sha256"]
            r = client.get(v["image_url"])
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == v["sha256"]
            count += 1
    return count


def test_two_servers_run_every_turn_once_in_order(cluster_factory):
    """Two ``retouch serve`` processes with two workers each; 4 threads x 5
    turns, sent alternately through both. Every turn runs exactly once (no
    second start anywhere), in order per thread, and both processes ran turns."""
    with cluster_factory(slow_seconds=0.3) as cluster:
        (a, base_a), (b, base_b) = cluster.serve("serve-a", 2), cluster.serve("serve-b", 2)
        cluster.wait_ready(base_a, a)
        cluster.wait_ready(base_b, b)
        with httpx.Client(base_url=base_a, timeout=30) as ca:
            threads = [upload_thread(ca) for _ in range(4)]
            with httpx.Client(base_url=base_b, cookies=ca.cookies, timeout=30) as cb:
                instructions: dict[str, list[str]] = {tid: [] for tid in threads}
                for k in range(5):
                    for n, tid in enumerate(threads):
                        instruction = f"thread {n} edit {k}"
                        queue((ca, cb)[(n + k) % 2], tid, instruction)
                        instructions[tid].append(instruction)
                drained(cluster, 60)
                starts = check_runs(cluster.events(), instructions)
                assert set(starts.values()) == {1}  # nothing ran twice, not even partly
                statuses = Counter(s for (s,) in cluster.sql("SELECT status FROM turns WHERE kind = 'edit'"))
                assert statuses == {"succeeded": 20}
                pids = Counter(h.split(":")[1] for (h,) in cluster.sql(
                    "SELECT claimed_by FROM turns WHERE kind = 'edit'"))
                assert set(pids) == {str(a.pid), str(b.pid)}, pids  # both processes ran turns
                assert check_blobs(cluster, ca, threads) == 4 + 20
        for name in ("serve-a", "serve-b"):
            assert "Traceback" not in cluster.output(name)


#: Records, in an open thread page, when each turn first shows as succeeded
#: (``Date.now()``, ms), without reloading: what a person watching sees.
WATCH_TURNS = """() => {
  window.__seen = {};
  setInterval(() => {
    for (const li of document.querySelectorAll('li.turn.status-succeeded')) {
      if (!(li.id in window.__seen)) window.__seen[li.id] = Date.now();
    }
  }, 20);
}"""


@contextmanager
def watching_browser(base: str, thread_id: str, cookies: httpx.Cookies):
    """Real Chromium with the owner's cookie, showing ``base``'s page of
    ``thread_id``; yields the page (see :data:`WATCH_TURNS`)."""
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS  # skips (or fails in CI) without Chromium
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([{"name": c.name, "value": c.value, "url": base} for c in cookies.jar])
            page = context.new_page()
            page.goto(f"{base}/t/{thread_id}")
            page.wait_for_selector("#live")
            page.evaluate(WATCH_TURNS)
            yield page
        finally:
            browser.close()


def test_three_web_two_workers_survive_a_sigkill(cluster_factory, s3_server):
    """3 x ``serve --workers 0`` + 2 x ``worker --concurrency 2`` on one
    PostgreSQL database, one SeaweedFS bucket and Redis; 60 turns over 6
    threads through all three web processes; SIGKILL one worker in the
    middle of a turn (mid-sleep, before its result is written). A real
    browser on web process 0 watches one thread: every turn of it, run by
    the worker processes, shows up there live (its turns are sent from that
    page's composer, so the page listens to the thread's events while they
    are pending)."""
    slow = 0.5
    bucket = s3_server.new_bucket()
    s3 = s3_server.client()
    env = {**s3_server.serve_env(bucket, "retouch"), "RETOUCH_REDIS_URL": "redis://127.0.0.1:6379/0"}
    with cluster_factory(slow_seconds=slow, **env) as cluster:
        webs = [cluster.serve(f"web-{i}", 0) for i in range(3)]
        workers = [cluster.spawn(f"worker-{i}", "worker", "--concurrency", "2") for i in range(2)]
        for proc, base in webs:
            cluster.wait_ready(base, proc)
        clients = [httpx.Client(base_url=webs[0][1], timeout=30)]
        threads = [upload_thread(clients[0]) for _ in range(6)]
        clients += [httpx.Client(base_url=base, cookies=clients[0].cookies, timeout=30) for _, base in webs[1:]]
        watch = contextlib.ExitStack()
        page = watch.enter_context(watching_browser(webs[0][1], threads[0], clients[0].cookies))
        instructions: dict[str, list[str]] = {tid: [] for tid in threads}
        started = time.monotonic()
        for k in range(10):
            for n, tid in enumerate(threads):
                instruction = f"thread {n} edit {k}"
                if n == 0:  # the watched thread's turns are sent from the browser's composer, on web-0
                    sent = page.locator("li.turn").count()
                    page.fill("#instruction", instruction)
                    page.press("#instruction", "Enter")
                    page.wait_for_function(f"document.querySelectorAll('li.turn').length > {sent}")
                else:
                    queue(clients[(n + k) % 3], tid, instruction)
                instructions[tid].append(instruction)

        # Kill worker 0 while its turns are all mid-sleep (started less than half a sleep ago), so no
        # run has finished its backend work without committing it.
        victim = workers[0]
        seen: dict[tuple[str, int], float] = {}

        def mid_sleep():
            rows = cluster.sql("SELECT id, instruction, lease_expires_at FROM turns WHERE status = 'running' "
                               "AND claimed_by LIKE :holder", holder=f"%:{victim.pid}:%")
            events = cluster.events()
            now = time.monotonic()
            for event, instruction in events:
                if event == "start":
                    seen.setdefault((instruction, events.count(("start", instruction))), now)
            if not rows:
                return None
            for _, instruction, _ in rows:
                n = events.count(("start", instruction))
                if n == events.count(("done", instruction)) or now - seen[(instruction, n)] > slow / 2:
                    return None
            return rows

        running = wait_until(mid_sleep, 60, "worker 0's turns mid-sleep", step=0.005)
        victim.send_signal(signal.SIGKILL)
        killed_at = datetime.now(timezone.utc)
        victim.wait(timeout=10)
        killed_id, killed_instruction, lease_at_kill = running[0]
        interrupted = {instruction for _, instruction, _ in running}
        assert not any(cluster.events().count(("done", i)) for i in interrupted)  # they died mid-run

        drained(cluster, 90)
        total = time.monotonic() - started
        # The page on web process 0 showed every turn of its thread finish, without a reload.
        try:
            wait_until(lambda: len(page.evaluate("() => Object.keys(window.__seen)")) >= 11, 30,
                       "the watching page to show all of its thread's turns")
        finally:
            page.screenshot(path=str(ROOT / "tests" / "artifacts" / "browser" / "multiprocess-watch.png"))
        seen = page.evaluate("() => window.__seen")
        watch.close()
        finished = {f"turn-{tid}": at for tid, at in cluster.sql(
            "SELECT id, finished_at FROM turns WHERE thread_id = :t AND kind = 'edit'", t=threads[0])}
        assert len(finished) == 10 and set(finished) <= set(seen), (sorted(finished), sorted(seen))
        lags = sorted(seen[t] / 1000 - at.timestamp() for t, at in finished.items())
        starts = check_runs(cluster.events(), instructions)
        assert {i for i, n in starts.items() if n > 1} == interrupted  # only the killed runs ran again
        assert all(starts[i] == 2 for i in interrupted) and sum(starts.values()) == 60 + len(interrupted)

        (status, attempts, holder, restarted, message), = cluster.sql(
            "SELECT status, attempts, claimed_by, started_at, message FROM turns WHERE id = :id", id=killed_id)
        assert status == "succeeded" and attempts == 2 and "ran again from the start" in message
        assert holder.split(":")[1] == str(workers[1].pid)  # the other worker took it over
        takeover = (restarted - killed_at).total_seconds()
        # The job came back once the dead worker's heartbeat was older than 4/3 of the lease
        # (procrastinate's stalled jobs): after the killed turn's lease had expired.
        assert restarted >= lease_at_kill, (restarted, lease_at_kill)
        assert takeover <= LEASE_SECONDS * 4 / 3 + LEASE_SECONDS / 3 + 2, takeover
        statuses = Counter(s for (s,) in cluster.sql("SELECT status FROM turns WHERE kind = 'edit'"))
        assert statuses == {"succeeded": 60}
        assert check_blobs(cluster, clients[1], threads, read_blob=lambda sha: s3.get_object(
            Bucket=bucket, Key=f"retouch/blobs/{sha[:2]}/{sha}.png")["Body"].read()) == 6 + 60
        versions = cluster.sql("SELECT count(*), count(DISTINCT turn_id) FROM versions")
        assert tuple(versions[0]) == (66, 66)
        for c in clients:
            c.close()
        for name in ("web-0", "web-1", "web-2", "worker-1"):
            assert "Traceback" not in cluster.output(name), cluster.output(name)
        print(f"60 turns in {total:.1f} s with a SIGKILL; takeover {takeover:.2f} s after the kill "
              f"(lease {LEASE_SECONDS:g} s; lease had {(lease_at_kill - killed_at).total_seconds():.2f} s left); "
              f"a page on web-0 showed its thread's turns {lags[len(lags) // 2]:.2f} s (median), "
              f"{lags[-1]:.2f} s (max) after they finished on a worker")


def test_sqlite_web_and_worker_processes_share_the_queue(tmp_path):
    """On SQLite the same claim rules hold across processes: a web-only
    ``serve --workers 0`` and two ``retouch worker`` processes on one file;
    every turn runs once, in order per thread, by the worker processes."""
    url = f"sqlite:///{tmp_path / 'data' / 'retouch.db'}"
    cluster = Cluster(tmp_path, url, 0.2)
    try:
        assert cluster.run("db", "upgrade").returncode == 0
        web, base = cluster.serve("web", 0)
        workers = [cluster.spawn(f"worker-{i}", "worker", "--concurrency", "2") for i in range(2)]
        cluster.wait_ready(base, web)
        with httpx.Client(base_url=base, timeout=30) as client:
            threads = [upload_thread(client) for _ in range(3)]
            instructions: dict[str, list[str]] = {tid: [] for tid in threads}
            for k in range(4):
                for n, tid in enumerate(threads):
                    instructions[tid].append(f"thread {n} edit {k}")
                    queue(client, tid, instructions[tid][-1])
            drained(cluster, 60)
            starts = check_runs(cluster.events(), instructions)
            assert set(starts.values()) == {1}
            pids = {h.split(":")[1] for (h,) in cluster.sql("SELECT claimed_by FROM turns WHERE kind = 'edit'")}
            assert pids <= {str(w.pid) for w in workers} and pids  # the web process ran none
            assert check_blobs(cluster, client, threads) == 3 + 12
    finally:
        cluster.close()
    for name in ("web", "worker-0", "worker-1"):
        assert "Traceback" not in cluster.output(name), cluster.output(name)
