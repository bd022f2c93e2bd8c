"""Export a thread as a zip, import one back, and the timeline animation.

The export format (``thread.json`` schema version 1) is documented in the
README ("Export format"). A zip holds:

- ``thread.json``: the thread, its versions (the tree) and finished turns
  (instructions, outcomes, options, usage), described by :class:`ThreadFile`;
- ``versions/vNNN.png``: every version, signed with its C2PA manifest
  (:mod:`app.provenance`);
- ``attachments/turn-NNN-mask.png``, ``-markup.png``, ``-reference-K.png``:
  what each turn was sent with (NNN is the turn's position, from 1);
- ``timeline.webp``: the head's lineage as an animation (:func:`timeline_webp`).

An import is defended like an upload (OWASP File Upload Cheat Sheet, and its
"zip" advice: limit the size, the number of entries and the expansion, and
never trust an entry's name): everything is checked, and every image decoded
under the upload rules (:func:`app.imaging.decode_image`), before anything is
stored. A bad zip raises :class:`app.services.InvalidInput` (413 for sizes,
415 for a file that is not a zip, 422 for the rest) naming the problem.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import tempfile
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from app import provenance, services
from app.imaging import ImageRejected, decode_image, decode_markup, decode_mask, encode_png, encode_thumbnail
from app.models import TURN_KINDS, Thread, Turn, Version, new_id, utcnow
from app.services import InvalidInput, Limits
from app.storage import BlobStore, Store
from app.usage import thread_usage

FORMAT = "retouch-thread"
SCHEMA_VERSION = 1
#: Entries an imported zip may hold (an export has 2 + versions + attachments).
MAX_ENTRIES = 2000
#: Versions and turns an imported thread may have.
MAX_VERSIONS = 1000
MAX_TURNS = 2000
#: Largest ``thread.json``, bytes.
MAX_JSON_BYTES = 8 * 1024 * 1024
#: Most bytes all entries may expand to together.
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
#: Largest expansion (uncompressed / compressed) of an entry over
#: ``RATIO_FLOOR_BYTES``: PNGs barely compress in a zip (about 1:1) and JSON
#: about 1:10; a zip bomb is 1:1000 and more.
MAX_RATIO = 100
RATIO_FLOOR_BYTES = 1024 * 1024
#: Files per request on top of which the archive cap is computed.
ARCHIVE_FILES = 6
#: Frames of the timeline: the newest versions of the lineage past this are
#: left out (memory: each frame is held until the WebP is written).
MAX_TIMELINE_FRAMES = 120
TIMELINE_SIDE = 384
CAPTION_HEIGHT = 64
FRAME_MS, LAST_FRAME_MS = 1400, 3000

_VERSION_NAME = re.compile(r"versions/v([0-9]{3,5})\.png")
_ATTACHMENT_NAME = re.compile(r"attachments/turn-[0-9]{3,5}-(mask|markup|reference-[1-4])\.png")
_ALLOWED_EXTRA = {"thread.json", "timeline.webp"}


def max_archive_bytes(limits: Limits) -> int:
    """The largest zip :func:`import_thread` takes, bytes: the largest
    multipart request (``RETOUCH_MAX_UPLOAD_BYTES`` x 6)."""
    return limits.max_bytes * ARCHIVE_FILES


# ---------------------------------------------------------------- schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThreadInfo(_Strict):
    id: str | None = Field(default=None, max_length=64)
    title: str = Field(min_length=1, max_length=services.MAX_TITLE_CHARS)
    head_version: int | None = Field(default=None, ge=1)
    model: str | None = Field(default=None, max_length=64)
    backend: str | None = Field(default=None, max_length=32)
    created_at: datetime.datetime
    c2pa_instructions: bool = False


class VersionEntry(_Strict):
    number: int = Field(ge=1, le=100_000)
    parent: int | None = Field(default=None, ge=1)
    turn: int | None = Field(default=None, ge=1, description="position of the turn that made it, from 1")
    file: str = Field(max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the stored PNG, before signing")
    width: int = Field(ge=1, le=100_000)
    height: int = Field(ge=1, le=100_000)
    created_at: datetime.datetime


class TurnEntry(_Strict):
    position: int = Field(ge=1)
    id: str | None = Field(default=None, max_length=64)
    kind: Literal["generate", "edit", "upload", "revert"]
    instruction: str = Field(default="", max_length=services.MAX_INSTRUCTION_CHARS + 400)
    status: Literal["succeeded", "answered", "declined", "failed", "cancelled"]
    message: str | None = Field(default=None, max_length=20_000)
    error: str | None = Field(default=None, max_length=20_000)
    base_version: int | None = Field(default=None, ge=1)
    result_version: int | None = Field(default=None, ge=1)
    backend: str | None = Field(default=None, max_length=32)
    size: str | None = Field(default=None, max_length=20)
    quality: str | None = Field(default=None, max_length=10)
    model: str | None = Field(default=None, max_length=64)
    background: str | None = Field(default=None, max_length=16)
    mask: str | None = Field(default=None, max_length=64)
    markup: str | None = Field(default=None, max_length=64)
    references: list[str] = Field(default_factory=list, max_length=services.MAX_REFERENCES)
    usage: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    reply: str | None = Field(default=None, max_length=20_000)
    revised_prompt: str | None = Field(default=None, max_length=40_000)
    created_at: datetime.datetime
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None


class UsageEntry(_Strict):
    total_tokens: int = Field(ge=0)


class ThreadFile(_Strict):
    """``thread.json``, schema version 1 (README, "Export format")."""

    format: Literal["retouch-thread"]
    schema_version: Literal[1]
    exported_at: datetime.datetime | None = None
    exported_by: str | None = Field(default=None, max_length=100)
    thread: ThreadInfo
    versions: list[VersionEntry] = Field(max_length=MAX_VERSIONS)
    turns: list[TurnEntry] = Field(max_length=MAX_TURNS)
    usage: UsageEntry
    timeline: str | None = Field(default=None, max_length=64)


# ---------------------------------------------------------------- export


def _iso(dt: datetime.datetime | None) -> str | None:
    from app.schemas import utc

    return utc(dt).isoformat() if dt is not None else None


def thread_document(thread: Thread) -> dict:
    """``thread.json`` of ``thread`` as a dict (schema version 1). Turns
    still queued or running are left out, like a fork leaves them."""
    turns = [t for t in thread.turns if not t.pending]
    position = {t.id: i for i, t in enumerate(turns, 1)}

    def attachment(i: int, name: str) -> str:
        return f"attachments/turn-{i:03d}-{name}.png"

    doc_turns = []
    for i, t in enumerate(turns, 1):
        doc_turns.append({
            "position": i, "id": t.id, "kind": t.kind, "instruction": t.instruction, "status": t.status,
            "message": t.message, "error": t.error, "base_version": t.base_version,
            "result_version": t.result_version, "backend": t.backend, "size": t.size, "quality": t.quality,
            "model": t.model, "background": t.background,
            "mask": attachment(i, "mask") if t.mask_sha256 else None,
            "markup": attachment(i, "markup") if t.markup_sha256 else None,
            "references": [attachment(i, f"reference-{k}") for k, _ in enumerate(t.reference_sha256s or [], 1)],
            "usage": t.usage, "output": t.output, "reply": t.reply, "revised_prompt": t.revised_prompt,
            "created_at": _iso(t.created_at), "started_at": _iso(t.started_at), "finished_at": _iso(t.finished_at),
        })
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "exported_at": _iso(utcnow()),
        "exported_by": f"Retouch {provenance.retouch_version()}",
        "thread": {"id": thread.id, "title": thread.title, "head_version": thread.head_version,
                   "model": thread.model, "backend": thread.backend, "created_at": _iso(thread.created_at),
                   "c2pa_instructions": bool(thread.c2pa_instructions)},
        "versions": [{"number": v.number, "parent": v.parent, "turn": position.get(v.turn_id or ""),
                      "file": f"versions/v{v.number:03d}.png", "sha256": v.sha256, "width": v.width,
                      "height": v.height, "created_at": _iso(v.created_at)} for v in thread.versions],
        "turns": doc_turns,
        "usage": {"total_tokens": thread_usage(turns, {}).tokens},
        "timeline": "timeline.webp" if thread.head_version is not None else None,
    }


def export_thread(session: Session, store: BlobStore, prov: provenance.Provenance, owner_id: str | None,
                  thread_id: str, target) -> Thread:
    """Write the export zip of thread ``thread_id`` to ``target`` (a path or
    a binary file object). ``owner_id`` None skips the owner check (the
    command line). Every version is signed (:mod:`app.provenance`, cached).
    PNG and WebP entries are stored, ``thread.json`` deflated. Raises
    NotFound; FileNotFoundError when a stored image is missing."""
    if owner_id is None:
        thread = session.get(Thread, thread_id)
        if thread is None:
            raise services.NotFound("There is no such thread.")
    else:
        thread = services.get_thread(session, owner_id, thread_id)
    doc = thread_document(thread)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("thread.json", json.dumps(doc, indent=2, ensure_ascii=False), compress_type=zipfile.ZIP_DEFLATED)
        for v in thread.versions:
            zf.writestr(f"versions/v{v.number:03d}.png", prov.signed_bytes(store, thread, v.number))
        turns = [t for t in thread.turns if not t.pending]
        for entry, t in zip(doc["turns"], turns):
            for name, sha in ((entry["mask"], t.mask_sha256), (entry["markup"], t.markup_sha256),
                              *zip(entry["references"], t.reference_sha256s or [])):
                if name and sha:
                    zf.writestr(name, store.read(sha))
        if doc["timeline"]:
            zf.writestr("timeline.webp", timeline_webp(store, thread, cached=True))
    return thread


def export_to_tempfile(session: Session, store: BlobStore, prov: provenance.Provenance, owner_id: str | None,
                       thread_id: str) -> tuple[str, Thread]:
    """:func:`export_thread` into a new temporary file; returns (its path,
    the thread). The caller deletes the file. Raises as export_thread."""
    fd, path = tempfile.mkstemp(prefix="retouch-export-", suffix=".zip")
    try:
        with os.fdopen(fd, "wb") as fh:
            thread = export_thread(session, store, prov, owner_id, thread_id, fh)
    except BaseException:
        os.unlink(path)
        raise
    return path, thread


def export_filename(thread: Thread, suffix: str = ".zip") -> str:
    """``<title>-retouch.zip`` in ASCII letters, digits, ``-`` and ``_``."""
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in thread.title).strip("-")[:60]
    return f"{clean or 'thread'}-retouch{suffix}"


# ---------------------------------------------------------------- timeline


def _labels(thread: Thread) -> dict[int, str]:
    from app.pages import version_labels

    return version_labels(thread)


def timeline_webp(store: Store, thread: Thread, *, side: int = TIMELINE_SIDE, cached: bool = False) -> bytes:
    """An animated WebP of the head's lineage, the root first: one frame per
    version (at most ``MAX_TIMELINE_FRAMES``, the newest kept), each the
    version fitted in ``side`` x ``side`` pixels over a caption strip of
    ``CAPTION_HEIGHT`` pixels with "vN" and the instruction that made it.
    Each frame shows ``FRAME_MS`` ms, the last ``LAST_FRAME_MS`` ms; it loops.
    Lossy WebP (quality 80, encoder method 1; WebP container spec, "Animation").
    With ``cached``, the result is kept, named by the sha256 of
    the frames' images and captions, and reused (about 50 ms a frame to
    make), in the store's cache (``Store.cache_get``). Raises NotFound for a thread with no version yet;
    FileNotFoundError for a missing blob."""
    if thread.head_version is None:
        raise services.NotFound("This thread has no image yet, so there is no timeline.")
    chain = provenance.lineage(thread, thread.head_version)[-MAX_TIMELINE_FRAMES:]
    labels = _labels(thread)
    name = None
    if cached:
        key = hashlib.sha256(json.dumps([side, FRAME_MS, LAST_FRAME_MS, CAPTION_HEIGHT] + [
            [v.number, v.sha256, labels.get(v.number, "")] for v in chain]).encode()).hexdigest()
        name = f"timelines/{key}.webp"
        data = store.cache_get(name)
        if data is not None:
            return data
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    frames = []
    for v in chain:
        with Image.open(io.BytesIO(store.read(v.sha256)), formats=["PNG"]) as im:
            im.thumbnail((side, side), Image.Resampling.BILINEAR, reducing_gap=2.0)
            im = im.convert("RGBA")
        frame = Image.new("RGB", (side, side + CAPTION_HEIGHT), (24, 24, 28))
        frame.paste(im, ((side - im.width) // 2, (side - im.height) // 2), im)
        draw = ImageDraw.Draw(frame)
        draw.rectangle((0, side, side, side + CAPTION_HEIGHT), fill=(0, 0, 0))
        draw.text((10, side + 8), f"v{v.number}", font=font, fill=(255, 210, 90))
        lines = textwrap.wrap(" ".join(labels.get(v.number, "").split()), width=44)[:3]
        if len(lines) == 3 and len(labels.get(v.number, "")) > sum(len(x) for x in lines) + 3:
            lines[2] = lines[2][:41] + "…"
        for k, line in enumerate(lines):
            draw.text((52, side + 8 + k * 17), line, font=small, fill=(240, 240, 240))
        frames.append(frame)
    buf = io.BytesIO()
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   quality=80, method=1, minimize_size=False)
    if name is not None:
        store.cache_put(name, buf.getvalue())
    return buf.getvalue()


# ---------------------------------------------------------------- import


@dataclass
class _Image:
    data: bytes
    thumbnail: bytes
    width: int
    height: int


def _bad(message: str, status: int = 422) -> InvalidInput:
    return InvalidInput(f"This export cannot be imported: {message}", status)


def _safe_name(name: str) -> bool:
    if not name or len(name) > 200 or "\\" in name or "\x00" in name or name.startswith("/") or ":" in name:
        return False
    parts = name.split("/")
    return all(p not in ("", ".", "..") for p in parts[:-1]) and parts[-1] not in (".", "..") and \
        not any(ord(c) < 32 for c in name)


def read_archive(data: bytes, limits: Limits) -> tuple[ThreadFile, dict[str, bytes]]:
    """Open and check an export zip: its size, entry count, names, sizes and
    expansion; read ``thread.json`` and validate it against
    :class:`ThreadFile`. Returns (the document, entry name -> bytes). Raises
    InvalidInput: 413 too large (the zip, an entry, the total, or a zip
    bomb), 415 not a zip, 422 anything else."""
    cap = max_archive_bytes(limits)
    if not data:
        raise _bad("the file is empty.")
    if len(data) > cap:
        raise _bad(f"the file is {len(data) / 1e6:.1f} MB; the limit is {cap / 1e6:.1f} MB.", 413)
    if not data.startswith(b"PK"):
        raise _bad("it is not a zip file (a Retouch export is a .zip).", 415)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _bad(f"the zip is damaged ({exc}).") from None
    if len(infos) > MAX_ENTRIES:
        raise _bad(f"the zip has {len(infos)} entries; the limit is {MAX_ENTRIES}.", 413)
    seen: set[str] = set()
    total = 0
    files: list[zipfile.ZipInfo] = []
    for info in infos:
        name = info.filename
        if not _safe_name(name):
            raise _bad(f"the entry name {name[:100]!r} is not allowed (absolute paths, '..', backslashes, "
                       "drive letters and control characters are refused).")
        if name in seen:
            raise _bad(f"the entry {name!r} appears twice.")
        seen.add(name)
        if info.is_dir():
            continue
        if not (name in _ALLOWED_EXTRA or _VERSION_NAME.fullmatch(name) or _ATTACHMENT_NAME.fullmatch(name)):
            raise _bad(f"the entry {name[:100]!r} is not part of a Retouch export.")
        if info.flag_bits & 0x1:
            raise _bad(f"the entry {name!r} is encrypted.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad(f"the entry {name!r} uses a compression method other than stored or deflate.")
        limit = MAX_JSON_BYTES if name == "thread.json" else limits.max_bytes
        if info.file_size > limit:
            raise _bad(f"the entry {name!r} expands to {info.file_size / 1e6:.1f} MB; the limit is "
                       f"{limit / 1e6:.1f} MB.", 413)
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise _bad(f"the entry {name!r} expands {info.file_size // max(info.compress_size, 1)} times "
                       f"(at most {MAX_RATIO} is accepted): it looks like a zip bomb.", 413)
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise _bad(f"the entries expand to more than {MAX_TOTAL_BYTES / 1e9:.1f} GB.", 413)
        files.append(info)
    entries: dict[str, bytes] = {}
    for info in files:
        limit = MAX_JSON_BYTES if info.filename == "thread.json" else limits.max_bytes
        try:
            with zf.open(info) as fh:
                content = fh.read(limit + 1)  # the header may lie about the size
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
            raise _bad(f"the entry {info.filename!r} is damaged ({exc}).") from None
        if len(content) > limit:
            raise _bad(f"the entry {info.filename!r} is larger than its header says, and over the limit.", 413)
        entries[info.filename] = content
    if "thread.json" not in entries:
        raise _bad("it has no thread.json (is it a Retouch export?).")
    try:
        raw = json.loads(entries.pop("thread.json"))
    except (ValueError, RecursionError):
        raise _bad("thread.json is not valid JSON.") from None
    try:
        doc = ThreadFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(x) for x in err.get("loc", ()))
        raise _bad(f"thread.json does not match schema version {SCHEMA_VERSION}: {where}: {err.get('msg')} "
                   f"({len(exc.errors())} problem{'s' if len(exc.errors()) != 1 else ''} in all).") from None
    return doc, entries


def _check_document(doc: ThreadFile, entries: dict[str, bytes]) -> None:
    numbers = [v.number for v in doc.versions]
    if len(set(numbers)) != len(numbers):
        raise _bad("thread.json lists a version number twice.")
    known = set(numbers)
    positions = [t.position for t in doc.turns]
    if positions != list(range(1, len(doc.turns) + 1)):
        raise _bad("thread.json: the turns' positions must be 1, 2, 3 ... in order.")
    for v in doc.versions:
        if v.parent is not None and (v.parent not in known or v.parent >= v.number):
            raise _bad(f"thread.json: version {v.number} names parent {v.parent}, which is not an earlier version.")
        if v.turn is not None and v.turn > len(doc.turns):
            raise _bad(f"thread.json: version {v.number} names turn {v.turn}, which does not exist.")
        if v.file != f"versions/v{v.number:03d}.png":
            raise _bad(f"thread.json: version {v.number} should be the file versions/v{v.number:03d}.png, "
                       f"not {v.file[:80]!r}.")
        if v.file not in entries:
            raise _bad(f"the zip has no {v.file} for version {v.number}.")
    if doc.thread.head_version is not None and doc.thread.head_version not in known:
        raise _bad(f"thread.json: the head version {doc.thread.head_version} does not exist.")
    if doc.thread.head_version is None and doc.versions:
        raise _bad("thread.json: the thread has versions but no head_version.")
    referenced = {v.file for v in doc.versions}
    for t in doc.turns:
        for field, value in (("base_version", t.base_version), ("result_version", t.result_version)):
            if value is not None and value not in known:
                raise _bad(f"thread.json: turn {t.position} has {field} {value}, which does not exist.")
        if t.mask and t.markup:
            raise _bad(f"thread.json: turn {t.position} has both a mask and a drawing.")
        for name in [t.mask, t.markup, *t.references]:
            if name is None:
                continue
            if not _ATTACHMENT_NAME.fullmatch(name) or not name.startswith(f"attachments/turn-{t.position:03d}-"):
                raise _bad(f"thread.json: turn {t.position} names the attachment {name[:80]!r}, which is not "
                           "one of its own.")
            if name not in entries:
                raise _bad(f"the zip has no {name}, which turn {t.position} names.")
            if name in referenced:
                raise _bad(f"thread.json names {name} twice.")
            referenced.add(name)
        if (t.mask or t.markup) and t.base_version is None:
            raise _bad(f"thread.json: turn {t.position} has a mask or drawing but no base_version.")
        for text, what in ((t.instruction, "instruction"), (t.message, "message"), (t.error, "error"),
                           (t.reply, "reply"), (t.revised_prompt, "revised prompt")):
            if text:
                try:
                    services.check_text(text, f"{what} of turn {t.position}")
                except InvalidInput as exc:
                    raise _bad(exc.message) from None
    services.check_text(doc.thread.title, "title")
    stray = set(entries) - referenced - {"timeline.webp"}
    if stray:
        raise _bad(f"the zip holds {sorted(stray)[0]!r}, which thread.json does not name.")


#: PNG chunks a version may hold to be stored as it is (less its C2PA
#: ``caBX`` chunk) rather than re-encoded: what ``app.imaging.encode_png``
#: writes, and nothing that could carry metadata.
_CORE_CHUNKS = {b"IHDR", b"IDAT", b"IEND"}


def _core_png(data: bytes) -> bytes | None:
    """``data`` without its ``caBX`` (C2PA manifest) chunks when it is an
    8-bit RGB or RGBA PNG made only of IHDR, IDAT and IEND besides them,
    as Retouch's own versions are; else None. Call it on a file that
    :func:`app.imaging.decode_image` accepted (chunks and CRCs checked)."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    if data[24] != 8 or data[25] not in (2, 6) or data[26:29] != b"\0\0\0":  # depth, colour type, no interlace
        return None
    out, pos = [data[:8]], 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind, end = data[pos + 4:pos + 8], pos + 12 + length
        if kind != b"caBX":
            if kind not in _CORE_CHUNKS:
                return None
            out.append(data[pos:end])
        pos = end
        if kind == b"IEND":
            return b"".join(out)
    return None


def _decode_entry(data: bytes, name: str, limits: Limits, *, kind: str,
                  size: tuple[int, int] | None = None) -> _Image:
    from app.imaging import REFERENCE_SIDE

    common = {"max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels, "max_side": limits.max_side}
    try:
        if kind == "mask":
            im = decode_mask(data, size, **common)
        elif kind == "markup":
            im = decode_markup(data, size, **common)
        else:
            im = decode_image(data, **common, what=name,
                              working_side=REFERENCE_SIDE if kind == "reference" else None)
    except ImageRejected as exc:
        raise _bad(f"{name}: {exc.message}", exc.status) from None
    # A version Retouch wrote decodes to exactly its pixels: keep its bytes (the same sha256
    # as the original blob, and no PNG re-encoding, the slow part of an import).
    core = _core_png(data) if kind == "version" and im.mode in ("RGB", "RGBA") else None
    return _Image(core or encode_png(im), encode_thumbnail(im), im.width, im.height)


def _aware(dt: datetime.datetime | None) -> datetime.datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=datetime.timezone.utc)


def import_thread(session: Session, store: BlobStore, owner_id: str, data: bytes, limits: Limits) -> Thread:
    """Make a new thread owned by ``owner_id`` from the bytes of an export
    zip: the same title, version tree, head, finished turns (instructions,
    outcomes, options, usage) and attachments, with new ids. Every image is
    decoded under the upload rules (limits in bytes and pixels, formats,
    decoder time and memory) and stored without its C2PA manifest (it is
    signed again when it leaves): re-encoded, or, for a plain 8-bit RGB(A)
    PNG with no chunks but IHDR, IDAT and IEND (what Retouch writes), as
    it is less the ``caBX`` chunk (:func:`_core_png`). Raises InvalidInput (see
    :func:`read_archive`; 422 for a ``thread.json`` that contradicts
    itself or the zip, an image whose size differs from what thread.json
    says; 413/415/422/503 from the image rules; 507 past the owner's
    quota) before anything is stored."""
    doc, entries = read_archive(data, limits)
    _check_document(doc, entries)
    services.check_owner_limits(session, store, owner_id, limits, queues_turn=False, stores_images=True)
    versions: dict[int, _Image] = {}
    for v in doc.versions:
        img = _decode_entry(entries[v.file], v.file, limits, kind="version")
        if (img.width, img.height) != (v.width, v.height):
            raise _bad(f"{v.file} is {img.width}x{img.height} pixels, but thread.json says "
                       f"{v.width}x{v.height}.")
        versions[v.number] = img
    attachments: dict[str, _Image] = {}
    sizes = {n: (img.width, img.height) for n, img in versions.items()}
    for t in doc.turns:
        base = sizes.get(t.base_version) if t.base_version is not None else None
        if t.mask:
            attachments[t.mask] = _decode_entry(entries[t.mask], t.mask, limits, kind="mask", size=base)
        if t.markup:
            attachments[t.markup] = _decode_entry(entries[t.markup], t.markup, limits, kind="markup", size=base)
        for name in t.references:
            attachments[name] = _decode_entry(entries[name], name, limits, kind="reference")

    def put(img: _Image) -> str:
        sha = store.put(img.data)
        store.put_thumbnail(sha, img.thumbnail)
        return sha

    shas = {n: put(img) for n, img in versions.items()}
    attachment_shas = {name: put(img) for name, img in attachments.items()}
    now = utcnow()
    thread = Thread(id=new_id(), owner_id=owner_id, title=" ".join(doc.thread.title.split()) or "Imported thread",
                    head_version=doc.thread.head_version, model=doc.thread.model, backend=doc.thread.backend,
                    c2pa_instructions=doc.thread.c2pa_instructions,
                    created_at=_aware(doc.thread.created_at), updated_at=now)
    session.add(thread)
    turn_ids = {}
    for t in doc.turns:
        turn_ids[t.position] = new_id()
        session.add(Turn(
            id=turn_ids[t.position], thread=thread, kind=t.kind if t.kind in TURN_KINDS else "edit",
            instruction=t.instruction, status=t.status, message=t.message, error=t.error,
            base_version=t.base_version, result_version=t.result_version, backend=t.backend, size=t.size,
            quality=t.quality, model=t.model, background=t.background,
            mask_sha256=attachment_shas.get(t.mask) if t.mask else None,
            markup_sha256=attachment_shas.get(t.markup) if t.markup else None,
            reference_sha256s=[attachment_shas[r] for r in t.references], usage=t.usage,
            # never a vendor file's digest: the zip brings no such file, and an imported digest must not
            # make this thread's credentials carry a file kept for someone else's thread
            output={k: v for k, v in t.output.items() if k != "source_sha256"} if t.output else t.output,
            reply=t.reply, revised_prompt=t.revised_prompt, attempts=1 if t.started_at else 0,
            created_at=_aware(t.created_at), started_at=_aware(t.started_at), finished_at=_aware(t.finished_at)))
    for v in doc.versions:
        session.add(Version(thread=thread, number=v.number, parent=v.parent, sha256=shas[v.number],
                            width=v.width, height=v.height,
                            turn_id=turn_ids.get(v.turn) if v.turn is not None else None,
                            created_at=_aware(v.created_at)))
    session.commit()
    return thread


def read_limited(fileobj, limit: int) -> bytes:
    """Read at most ``limit`` + 1 bytes of ``fileobj`` from its start (one
    more than allowed, so :func:`read_archive` can tell it is too large)."""
    fileobj.seek(0)
    return fileobj.read(limit + 1)


def import_file(session: Session, store: BlobStore, owner_id: str, path: Path, limits: Limits) -> Thread:
    """:func:`import_thread` of the file at ``path`` (the command line).
    Raises InvalidInput as import_thread; OSError when it cannot be read."""
    with open(path, "rb") as fh:
        return import_thread(session, store, owner_id, read_limited(fh, max_archive_bytes(limits)), limits)
