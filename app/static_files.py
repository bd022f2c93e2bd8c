"""Static files under content-hashed names, cached for a year.

Templates link ``static("app.css")``, which gives ``/static/app.<hash>.css``
(the first 12 hex digits of the file's sha256). That name changes whenever
the file does, so browsers may keep it forever: it is served with
``Cache-Control: public, max-age=31536000, immutable`` (RFC 9111 §5.2.2.1,
RFC 8246). A plain name (``/static/app.css``) still works, with
``Cache-Control: no-cache``, so it is revalidated by its ETag. A hashed
name whose hash is not the file's current one is 404: it names content that
no longer exists.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_HASHED = re.compile(r"^(?P<dir>(?:.*/)?)(?P<stem>[^/]+?)\.(?P<hash>[0-9a-f]{12})(?P<ext>\.[^./]+)$")


class HashedStaticFiles(StaticFiles):
    """``StaticFiles`` for ``directory`` that also answers content-hashed names."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory=directory)
        self.root = Path(directory)
        self._hashes: dict[str, str] = {}

    def digest(self, name: str) -> str:
        """The 12-hex-digit content hash of ``name`` (relative to the
        directory), computed once. Raises FileNotFoundError."""
        if name not in self._hashes:
            self._hashes[name] = hashlib.sha256((self.root / name).read_bytes()).hexdigest()[:12]
        return self._hashes[name]

    def url(self, name: str) -> str:
        """``/static/<name with its hash before the extension>``."""
        stem, dot, ext = name.rpartition(".")
        return f"/static/{stem}.{self.digest(name)}.{ext}" if dot else f"/static/{name}"

    async def get_response(self, path: str, scope: Scope) -> Response:
        match = _HASHED.match(path)
        if match:
            plain = f"{match['dir']}{match['stem']}{match['ext']}"
            try:
                current = self.digest(plain)
            except (FileNotFoundError, IsADirectoryError, OSError):
                current = None
            if current != match["hash"]:
                raise HTTPException(404)
            response = await super().get_response(plain, scope)
            response.headers["Cache-Control"] = IMMUTABLE
            return response
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", REVALIDATE)
        return response
