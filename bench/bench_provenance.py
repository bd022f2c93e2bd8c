"""Time C2PA signing per version and the export of a 50-version thread.

Run: ``.venv/bin/python bench/bench_provenance.py [--versions 50] [--side 1024]``.

Builds, in a temporary data folder (SQLite), a thread of one upload and
``--versions`` - 1 edits in a chain (each version a different photo-like
``--side`` x ``--side`` PNG), then reports:

- signing: ms per version, cold (each version signed once, its parent
  already signed: the real case, since a version's parent is signed
  before it), as the median and the maximum over the chain; and the size
  the manifest store adds to a file at the top of the chain;
- a cached download (the signed file is reused): ms;
- export: seconds for ``GET .../export``'s work (every version signed
  from cold, then again with the cache warm), and the zip's size;
- the timeline (the whole lineage as frames): seconds;
- the import of the exported zip (every image decoded under the upload
  rules and stored): seconds.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import archive, provenance  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker, migrate  # noqa: E402
from app.models import Thread, Turn, Version, new_id, utcnow  # noqa: E402
from app.services import Limits, store_image  # noqa: E402
from app.storage import BlobStore  # noqa: E402


def photo(side: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, side)[:, None, None]
    base = np.concatenate([70 + 110 * y, 130 + 80 * y, 235 - 40 * y], axis=2) * np.ones((side, side, 3))
    noise = rng.integers(-20, 21, (side, side, 3))
    return Image.fromarray((base + noise).clip(0, 255).astype(np.uint8))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--side", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = Settings(data_dir=data, database_url=f"sqlite:///{data / 'r.db'}", secret_key="x")
        migrate(settings.sqlalchemy_url)
        sessions = make_sessionmaker(make_engine(settings.sqlalchemy_url))
        store = BlobStore(settings.blob_dir)
        prov = provenance.for_settings(settings)
        with sessions() as session:
            thread = Thread(id=new_id(), owner_id="bench", title="bench", created_at=utcnow(), updated_at=utcnow())
            session.add(thread)
            for n in range(1, args.versions + 1):
                sha, w, h = store_image(store, photo(args.side, n))
                turn = Turn(id=new_id(), thread=thread, kind="upload" if n == 1 else "edit", status="succeeded",
                            instruction=f"edit number {n}", backend=None if n == 1 else "openai",
                            model=None if n == 1 else "gpt-image-2", created_at=utcnow())
                session.add(turn)
                session.add(Version(thread=thread, number=n, parent=n - 1 if n > 1 else None, sha256=sha,
                                    width=w, height=h, turn_id=turn.id, created_at=utcnow()))
                thread.head_version = n
            session.commit()
            thread_id = thread.id

        with sessions() as session:
            thread = session.get(Thread, thread_id)
            times, cpu = [], []
            for n in range(1, args.versions + 1):
                t, c = time.perf_counter(), time.process_time()
                path = prov.signed_path(store, thread, n)
                times.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
            plain = store.path(thread.version(args.versions).sha256).stat().st_size
            print(f"signing, {args.side}x{args.side} PNG, cold, parent signed: median {statistics.median(times):.1f} ms"
                  f" per version, max {max(times):.1f} ms (version 1: {times[0]:.1f} ms, version {args.versions}:"
                  f" {times[-1]:.1f} ms); CPU time median {statistics.median(cpu):.1f} ms")
            print(f"version {args.versions}: plain PNG {plain / 1e6:.2f} MB, signed {path.stat().st_size / 1e6:.2f} MB"
                  f" (+{(path.stat().st_size - plain) / 1e3:.0f} KB of manifests for the chain)")
            t = time.perf_counter()
            for _ in range(20):
                prov.signed_path(store, thread, args.versions)
            print(f"cached download lookup (head, {args.versions} deep): {(time.perf_counter() - t) / 20 * 1000:.1f} ms")
            t, c = time.perf_counter(), time.process_time()
            archive.timeline_webp(store, thread)
            print(f"timeline of {args.versions} frames: {time.perf_counter() - t:.2f} s "
                  f"({time.process_time() - c:.2f} s CPU)")

        for label in ("cold (nothing signed yet)", "warm (signed copies cached)"):
            if label.startswith("cold"):
                import shutil

                shutil.rmtree(prov.cache_root, ignore_errors=True)
            with sessions() as session:
                out = data / "export.zip"
                t, c = time.perf_counter(), time.process_time()
                with open(out, "wb") as fh:
                    archive.export_thread(session, store, prov, None, thread_id, fh)
                print(f"export of {args.versions} versions, {label}: {time.perf_counter() - t:.2f} s "
                      f"({time.process_time() - c:.2f} s CPU), zip {out.stat().st_size / 1e6:.1f} MB")
        with sessions() as session:
            limits = Limits(settings.max_upload_bytes, settings.max_upload_pixels, settings.max_upload_side)
            t, c = time.perf_counter(), time.process_time()
            archive.import_file(session, store, "bench-2", out, limits)
            print(f"import of that zip: {time.perf_counter() - t:.2f} s ({time.process_time() - c:.2f} s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
