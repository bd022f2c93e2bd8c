"""``retouch edit`` and ``retouch serve`` as real subprocesses."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from PIL import Image

from tests.conftest import png_bytes

RETOUCH = [sys.executable, "-m", "app.cli"]
ROOT = Path(__file__).resolve().parent.parent


def run(*args, env=None, **kw):
    env = {**os.environ, "RETOUCH_BACKEND": "local", **(env or {})}
    return subprocess.run([*RETOUCH, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, **kw)


def test_edit_writes_output(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes((40, 30), (200, 30, 30)))
    out = tmp_path / "out.png"
    p = run("edit", "--instruction", "rotate it 90 degrees clockwise", "--input", str(src), "--output", str(out))
    assert p.returncode == 0, p.stderr
    assert Image.open(out).size == (30, 40)


def test_edit_decline_exits_3_and_writes_nothing(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes())
    out = tmp_path / "out.png"
    p = run("edit", "--instruction", "add a dragon flying over the castle", "--input", str(src), "--output", str(out))
    assert p.returncode == 3, p.stderr
    assert "declined" in p.stderr and not out.exists()


def test_edit_bad_usage_exits_2(tmp_path):
    out = tmp_path / "out.png"
    assert run("edit", "--output", str(out)).returncode == 2  # no instruction
    p = run("edit", "--instruction", "invert", "--input", str(tmp_path / "missing.png"), "--output", str(out))
    assert p.returncode == 2 and "cannot read" in p.stderr
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    p = run("edit", "--instruction", "invert", "--input", str(bad), "--output", str(out))
    assert p.returncode == 2 and "not an image" in p.stderr
    p = run("edit", "--instruction", "invert", "--input", str(bad), "--output", str(out), "--backend", "nope")
    assert p.returncode == 2
    assert not out.exists()


def test_edit_backend_failure_exits_1(tmp_path, fake_openai):
    fake_openai.fail_next("500")
    out = tmp_path / "out.png"
    p = run("edit", "--instruction", "a cat", "--output", str(out), "--backend", "openai",
            env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake_openai.base_url,
                 "RETOUCH_OPENAI_MAX_RETRIES": "0"})
    assert p.returncode == 1, p.stderr
    assert "failed" in p.stderr and "sk-test" not in p.stderr and not out.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_migrates_and_serves(tmp_path):
    port = free_port()
    env = {**os.environ, "RETOUCH_BACKEND": "local", "RETOUCH_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([*RETOUCH, "serve", "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base) as c:
            r = c.post("/api/v1/threads", files={"image": ("p.png", png_bytes((50, 40)), "image/png")},
                       data={"prompt": "flip it vertically"})
            assert r.status_code == 201
            tid = r.json()["id"]
            deadline = time.monotonic() + 30
            while c.get(f"/api/v1/threads/{tid}").json()["head_version"] != 2:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert (tmp_path / "data" / "retouch.db").is_file()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_edit_with_a_mask_changes_only_the_mask(tmp_path):
    from PIL import ImageChops

    src = tmp_path / "in.png"
    Image.linear_gradient("L").resize((64, 48)).convert("RGB").save(src)
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (0, 0, 32, 48))
    mask_path = tmp_path / "mask.png"
    mask.save(mask_path)
    out = tmp_path / "out.png"
    p = run("edit", "--instruction", "invert the colors", "--input", str(src), "--mask", str(mask_path),
            "--output", str(out))
    assert p.returncode == 0, p.stderr
    before, after = Image.open(src).convert("RGB"), Image.open(out).convert("RGB")
    diff = ImageChops.difference(before, after)
    assert diff.crop((32, 0, 64, 48)).getbbox() is None  # outside: bit-identical
    assert diff.crop((0, 0, 32, 48)).getbbox() is not None  # inside: changed


def test_edit_keeps_the_files_pixel_values(tmp_path):
    """An image with a non-sRGB ICC profile (Adobe RGB, from a shared eval
    photo): a flip is exactly a flip of the decoded pixels, with no colour
    conversion."""
    import pytest
    from PIL import ImageOps

    from tests.conftest import SHARED_EVAL

    rocket = SHARED_EVAL / "images" / "rocket.jpg"
    if not rocket.is_file():
        pytest.skip("the shared eval photos are not beside the repo")
    icc = Image.open(rocket).info["icc_profile"]
    im = Image.new("RGB", (40, 30), (40, 200, 90))
    im.paste((250, 30, 30), (0, 0, 20, 15))
    src = tmp_path / "in.png"
    im.save(src, icc_profile=icc)
    out = tmp_path / "out.png"
    p = run("edit", "--instruction", "flip it vertically", "--input", str(src), "--output", str(out))
    assert p.returncode == 0, p.stderr
    assert Image.open(out).convert("RGB").tobytes() == ImageOps.flip(im).tobytes()
