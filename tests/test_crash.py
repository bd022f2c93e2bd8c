"""Crashes of a real ``retouch serve`` process (SIGKILL) and restarts.

The server runs in a subprocess with a temporary data dir, SQLite and the
slow test backend (``tests/slow_backend.py``), which appends ``start <instruction>``
and ``done <instruction>`` lines to a log file, so the test knows which
turns ran, how often and when each run is safely in the middle of its sleep.

``test_sigkill_with_turns_in_flight`` proves the recovery rules: a turn
interrupted once runs again, a turn interrupted twice fails with the error
"interrupted", a finished turn never runs again, versions match succeeded
turns one to one, SQLite passes ``PRAGMA integrity_check``, every blob
matches its sha256, and after ``retouch gc --grace-seconds 0`` no blob is
left that nothing refers to.

``test_sigkill_while_writing_blobs`` kills the server while it writes large
result images (5 rounds, some killed the moment a ``.tmp-*`` file appears,
some after a random delay) and shows that no half-written file ever sits
under a blob's name or is served.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import httpx
from PIL import Image

from tests.conftest import png_bytes

ROOT = Path(__file__).resolve().parent.parent
SERVE = ("import tests.slow_backend; from app.cli import main; "
         "raise SystemExit(main(['serve', '--port', '{port}']))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One data dir served by successive ``retouch serve`` processes."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.data = tmp / "data"
        self.slow_log = tmp / "slow.log"
        self.out = tmp / "server.out"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("RETOUCH_DATABASE_URL", "RETOUCH_ACCESS_PASSWORD", "OPENAI_API_KEY")}
        self.env.update({
            "RETOUCH_DATA_DIR": str(self.data), "RETOUCH_BACKEND": "slow-test",
            "RETOUCH_TEST_SLOW_LOG": str(self.slow_log), "RETOUCH_WORKERS": "2",
            "RETOUCH_TURN_RATE_LIMIT": "0", **env,
        })
        self.proc: subprocess.Popen | None = None
        self.cookies = httpx.Cookies()
        self.starts = 0

    def start(self) -> httpx.Client:
        """Start a server and wait (at most 30 s) until it answers; returns
        a client that keeps the owner cookie across restarts."""
        port = free_port()
        with self.out.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-c", SERVE.format(port=port)], env=self.env,
                                         cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, self.out.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return httpx.Client(base_url=base, cookies=self.cookies, timeout=30)

    def kill(self, client: httpx.Client | None = None) -> None:
        """SIGKILL: no shutdown code runs."""
        if client is not None:
            self.cookies = client.cookies
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self, client: httpx.Client | None = None) -> None:
        if client is not None:
            self.cookies = client.cookies
            client.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def slow_events(self) -> list[tuple[str, str]]:
        """The slow backend's ``(event, instruction)`` lines so far."""
        if not self.slow_log.exists():
            return []
        return [tuple(line.split(" ", 1)) for line in self.slow_log.read_text().splitlines() if line]

    def gc(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app.cli", "gc", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    def db(self) -> closing[sqlite3.Connection]:
        """A connection to the server's SQLite file, closed on leaving ``with``."""
        return closing(sqlite3.connect(self.data / "retouch.db"))

    def blob(self, sha: str, suffix: str = ".png") -> Path:
        return self.data / "blobs" / sha[:2] / f"{sha}{suffix}"


def wait_until(condition, timeout: float, what: str, step: float = 0.02):
    """Poll ``condition()`` until it returns something truthy (returned)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def wait_for_drain(client: httpx.Client, thread_ids: list[str], timeout: float) -> dict[str, dict]:
    """Wait until no turn of these threads is queued or running; return the threads."""
    def drained():
        threads = {tid: client.get(f"/api/v1/threads/{tid}").json() for tid in thread_ids}
        busy = [t for th in threads.values() for t in th["turns"] if t["status"] in ("queued", "running")]
        return None if busy else threads
    return wait_until(drained, timeout, "the queue to drain", step=0.1)


def upload_thread(client: httpx.Client, size=(40, 30)) -> str:
    r = client.post("/api/v1/threads", files={"image": ("p.png", png_bytes(size), "image/png")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def queue(client: httpx.Client, tid: str, instruction: str) -> str:
    r = client.post(f"/api/v1/threads/{tid}/turns", data={"instruction": instruction})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def check_store(server: Server) -> dict:
    """Every blob named ``<sha>.png`` holds exactly the bytes of that sha and
    decodes fully; every thumbnail decodes fully. Returns counts, including
    leftover ``.tmp-*`` files."""
    counts = Counter()
    for path in (server.data / "blobs").rglob("*"):
        if not path.is_file():
            continue
        if path.name.startswith(".tmp-"):
            counts["tmp"] += 1
            continue
        data = path.read_bytes()
        im = Image.open(io.BytesIO(data))
        im.load()  # a truncated file fails here
        if path.name.endswith(".png"):
            assert hashlib.sha256(data).hexdigest() == path.name.removesuffix(".png"), path
            counts["png"] += 1
        else:
            counts["thumb"] += 1
    return counts


def check_database(server: Server) -> tuple[list, list]:
    """``PRAGMA integrity_check`` is ok; every version's blob exists and
    matches its sha256; every version belongs to its own succeeded turn.
    Returns (versions, turns) rows."""
    with server.db() as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        versions = db.execute("SELECT thread_id, number, sha256, turn_id FROM versions").fetchall()
        turns = db.execute("SELECT id, thread_id, kind, status, error, message, attempts, instruction, "
                           "mask_sha256, reference_sha256s FROM turns").fetchall()
    status = {t[0]: t[3] for t in turns}
    for t in turns:  # a turn that ran a second time says so
        if t[3] == "succeeded" and t[6] > 1:
            assert "ran again from the start" in t[5], t
    assert len({v[3] for v in versions}) == len(versions)  # one version per turn at most
    for _, _, sha, turn_id in versions:
        assert status[turn_id] == "succeeded"
        assert hashlib.sha256(server.blob(sha).read_bytes()).hexdigest() == sha
    return versions, turns


def referenced(turns: list, versions: list) -> set[str]:
    refs = {v[2] for v in versions} | {t[8] for t in turns if t[8]}
    for t in turns:
        refs.update(json.loads(t[9] or "[]"))
    return refs


def safe_to_kill(server: Server, client: httpx.Client, ids: dict[str, str], fresh: dict[str, float],
                 slow: float) -> bool:
    """True when every run in progress started less than half its sleep ago
    (so it is mid-sleep, far from writing) and every run that logged
    ``done`` has committed its turn: a kill now interrupts only sleeping
    runs."""
    events = server.slow_events()
    now = time.monotonic()
    starts, dones = Counter(), Counter()
    for event, instruction in events:
        (starts if event == "start" else dones)[instruction] += 1
        if event == "start":
            fresh.setdefault(f"{instruction}#{starts[instruction]}", now)
    running = [i for i in starts if starts[i] > dones[i]]
    if any(now - fresh[f"{i}#{starts[i]}"] > slow / 2 for i in running):
        return False
    for instruction in dones:
        if client.get(f"/api/v1/turns/{ids[instruction]}").json()["status"] != "succeeded":
            return False
    return server.slow_events() == events  # nothing moved while we looked


def test_sigkill_with_turns_in_flight(tmp_path):
    """Kill -9 with 10 turns queued or running over 4 threads, restart, kill
    again while two requeued turns run their second attempt, restart, drain.
    Every turn ends succeeded or failed "interrupted"; nothing completes
    twice; the database, blobs and gc agree."""
    slow = 1.5
    server = Server(tmp_path, RETOUCH_TEST_SLOW_SECONDS=str(slow))
    fresh: dict[str, float] = {}
    client = server.start()
    threads = [upload_thread(client) for _ in range(4)]
    ids: dict[str, str] = {}  # instruction -> turn id
    for n, tid in enumerate(threads):
        for k in range(3):
            instruction = f"edit {k} of thread {n}"
            ids[instruction] = queue(client, tid, instruction)

    # Round 1: two turns finished, two sleeping, eight queued.
    def two_done_two_sleeping() -> bool:
        events = server.slow_events()
        started = sum(e == "start" for e, _ in events)
        done = sum(e == "done" for e, _ in events)
        return done == 2 and started - done == 2  # both workers mid-run, not between two runs

    wait_until(lambda: two_done_two_sleeping() and safe_to_kill(server, client, ids, fresh, slow), 30,
               "a safe moment to kill (1)")
    events = server.slow_events()
    interrupted_once = [i for i in ids if events.count(("start", i)) > events.count(("done", i))]
    in_flight = sum(1 for tid in threads for t in client.get(f"/api/v1/threads/{tid}").json()["turns"]
                    if t["status"] in ("queued", "running"))
    server.kill(client)
    assert len(interrupted_once) == 2 and in_flight == 10

    # Round 2: the two requeued turns start again first; kill them mid-sleep.
    client = server.start()
    wait_until(lambda: all(server.slow_events().count(("start", i)) == 2 for i in interrupted_once)
               and safe_to_kill(server, client, ids, fresh, slow), 30, "a safe moment to kill (2)")
    server.kill(client)

    # Round 3: recovery fails the twice-interrupted turns; the rest drain.
    client = server.start()
    final = wait_for_drain(client, threads, timeout=40)
    turns = {t["id"]: t for th in final.values() for t in th["turns"]}
    for instruction, turn_id in ids.items():
        turn = turns[turn_id]
        if instruction in interrupted_once:
            assert turn["status"] == "failed" and turn["error"] == "interrupted", turn
        else:
            assert turn["status"] == "succeeded", turn
    for tid, thread in final.items():  # every version is served intact
        for v in thread["versions"]:
            r = client.get(v["image_url"])
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == v["sha256"]
            assert r.headers["etag"] == f'"{v["sha256"]}"'
    server.stop(client)

    events = server.slow_events()
    dones = Counter(i for e, i in events if e == "done")
    assert max(dones.values()) == 1  # no turn ran twice to completion
    assert set(dones) == {i for i in ids if i not in interrupted_once}
    for instruction in interrupted_once:
        assert events.count(("start", instruction)) == 2
    out = server.out.read_text()
    assert "Traceback" not in out
    assert "recovered interrupted turns: 2 requeued, 0 failed" in out
    assert "recovered interrupted turns: 0 requeued, 2 failed" in out

    versions, db_turns = check_database(server)
    succeeded_edits = sum(1 for t in db_turns if t[2] in ("edit", "generate") and t[3] == "succeeded")
    uploads = sum(1 for t in db_turns if t[2] == "upload")
    assert len(versions) == succeeded_edits + uploads == len(ids) - 2 + len(threads)
    assert all(t[3] == "succeeded" or (t[3] == "failed" and t[4] == "interrupted") for t in db_turns)

    # An orphan and a leftover temp file, as a crash between write and commit leaves them.
    orphan = server.blob(hashlib.sha256(b"orphan").hexdigest())
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")
    (orphan.parent / ".tmp-leftover").write_bytes(b"half")
    gc = server.gc("--grace-seconds", "0")
    assert gc.returncode == 0, gc.stderr
    assert re.search(r"removed 1 blobs, 0 thumbnails and 1 temporary files", gc.stdout), gc.stdout
    refs = referenced(db_turns, versions)
    for path in (server.data / "blobs").rglob("*"):
        if path.is_file():
            sha = path.name.split(".")[0]
            assert sha in refs, f"unreferenced blob left after gc: {path}"
    check_store(server)


def temp_files(blobs: Path) -> set[str]:
    """Paths of the ``.tmp-*`` files in the blob store right now."""
    found = set()
    for d in os.scandir(blobs):
        if d.is_dir():
            try:
                found.update(p.path for p in os.scandir(d.path) if p.name.startswith(".tmp-"))
            except FileNotFoundError:
                pass
    return found


def test_sigkill_while_writing_blobs(tmp_path):
    """Five kills while large (1200x1200 noise, ~4 MB PNG) results are being
    encoded and written: odd rounds kill the moment a ``.tmp-*`` file shows
    up, even rounds after a random delay. After every kill, each blob file
    under its final name hashes to that name and decodes fully; after the
    last restart every version is served whole, its bytes hashing to its
    sha256 and ETag, and gc clears the leftovers."""
    rng = random.Random(20240611)
    server = Server(tmp_path, RETOUCH_TEST_SLOW_SECONDS="0.05", RETOUCH_TEST_SLOW_SIZE="1200x1200")
    blobs = server.data / "blobs"
    threads: list[str] = []
    tmp_seen = 0
    for round_ in range(5):
        client = server.start()
        if not threads:
            threads = [upload_thread(client, (64, 64)) for _ in range(2)]
        done_before = sum(e == "done" for e, _ in server.slow_events())
        for tid in threads:
            for k in range(2):
                queue(client, tid, f"noise {k} round {round_} {tid}")
        wait_until(lambda: sum(e == "done" for e, _ in server.slow_events()) > done_before, 20,
                   "a result to be written")
        if round_ % 2 == 0:
            old_temps = temp_files(blobs)

            def temp_file():
                return temp_files(blobs) - old_temps
            try:
                wait_until(temp_file, 5, "a blob write", step=0.001)
                tmp_seen += 1
            except AssertionError:
                pass  # the writes were too quick to see; kill anyway
        else:
            time.sleep(rng.uniform(0, 0.5))
        server.kill(client)
        check_store(server)  # nothing half-written under a final name
        check_database(server)  # no version without its whole blob

    client = server.start()
    final = wait_for_drain(client, threads, timeout=60)
    served = 0
    for thread in final.values():
        for t in thread["turns"]:
            assert t["status"] == "succeeded" or (t["status"] == "failed" and t["error"] == "interrupted"), t
        for v in thread["versions"]:
            r = client.get(v["image_url"])
            assert r.status_code == 200
            assert hashlib.sha256(r.content).hexdigest() == v["sha256"]
            assert r.headers["etag"] == f'"{v["sha256"]}"'
            im = Image.open(io.BytesIO(r.content))
            im.load()
            assert im.size == (v["width"], v["height"])
            thumb = client.get(v["image_url"], params={"size": "thumb"})
            Image.open(io.BytesIO(thumb.content)).load()
            served += 1
    server.stop(client)
    versions, turns = check_database(server)
    assert served == len(versions) >= 2 + 1
    gc = server.gc("--grace-seconds", "0")
    assert gc.returncode == 0, gc.stderr
    counts = check_store(server)
    assert counts["tmp"] == 0
    refs = referenced(turns, versions)
    assert {p.name.split(".")[0] for p in blobs.rglob("*") if p.is_file()} <= refs
    print(f"kills=5 tmp_seen_at_kill={tmp_seen} versions={len(versions)} gc: {gc.stdout.splitlines()[-1]}")
