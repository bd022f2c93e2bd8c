"""Concurrency against a real ``retouch serve`` process with the local
backend: the load test at a small size (``make bench`` runs it at full size:
50 clients x 10 turns), and two clients racing on one thread."""
from __future__ import annotations

import threading
import time

import httpx

from bench.load_test import photo_bytes, run_load, serve


def test_concurrent_clients_get_every_version_in_order(tmp_path):
    with serve(tmp_path / "data") as base:
        result = run_load(base, clients=6, turns=4, image_size=128, timeout=120)
        assert result.errors == []
        assert result.versions == 24
        assert httpx.get(f"{base}/healthz").status_code == 200


def test_two_clients_send_to_one_thread_at_the_same_moment(tmp_path):
    with serve(tmp_path / "data") as base:
        owner = httpx.Client(base_url=base)
        tid = owner.post("/api/v1/threads", files={"image": ("p.png", photo_bytes(128), "image/png")}).json()["id"]
        cookies = dict(owner.cookies)
        start = threading.Barrier(2)
        answers: dict[str, dict] = {}

        def send(name: str, instruction: str) -> None:
            with httpx.Client(base_url=base, cookies=cookies) as c:  # same owner, separate connections
                start.wait()
                answers[name] = c.post(f"/api/v1/threads/{tid}/turns", data={"instruction": instruction}).json()

        workers = [threading.Thread(target=send, args=("a", "flip it horizontally")),
                   threading.Thread(target=send, args=("b", "rotate it 180 degrees"))]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
        deadline = time.monotonic() + 60
        while True:
            thread = owner.get(f"/api/v1/threads/{tid}").json()
            if all(t["status"] not in ("queued", "running") for t in thread["turns"]):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        turns = {t["id"]: t for t in thread["turns"]}
        a, b = turns[answers["a"]["id"]], turns[answers["b"]["id"]]
        assert a["status"] == b["status"] == "succeeded"
        first, second = sorted([a, b], key=lambda t: t["result_version"])
        # processed one after the other, in the order the server queued them
        assert (first["base_version"], first["result_version"]) == (1, 2)
        assert (second["base_version"], second["result_version"]) == (2, 3)
        assert [v["number"] for v in thread["versions"]] == [1, 2, 3]
        owner.close()
