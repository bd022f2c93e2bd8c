"""Every URL of a thread, in one place: its pages, its owner's actions and
its images. A thread is seen by its owner under ``/t/{id}`` (images under
``/api/v1/threads/{id}``) or by a share-link holder under ``/s/{token}``
(images under ``/api/v1/shared/{token}``); :class:`Urls` picks the prefix,
so templates, redirects and JSON never build these paths by hand."""
from __future__ import annotations

from urllib.parse import urlencode


class OwnerOnly(ValueError):
    """An owner's action URL asked of a share-link view (a template bug:
    those links must not reach link holders)."""


class Urls:
    """The URLs of one thread as one viewer sees it: the owner
    (``Urls.owned(thread_id)``) or a share-link holder
    (``Urls.shared(token)``). Paths only, no scheme or host."""

    def __init__(self, *, thread_id: str | None = None, share_token: str | None = None) -> None:
        if (thread_id is None) == (share_token is None):
            raise ValueError("give exactly one of thread_id and share_token")
        self.thread_id = thread_id
        self.share_token = share_token
        #: the thread page, which the other page URLs extend
        self.base = f"/t/{thread_id}" if share_token is None else f"/s/{share_token}"
        #: the JSON API's path for this thread, which the image URLs extend
        self.prefix = f"/api/v1/threads/{thread_id}" if share_token is None else f"/api/v1/shared/{share_token}"

    @classmethod
    def owned(cls, thread_id: str) -> Urls:
        """The owner's URLs of thread ``thread_id``."""
        return cls(thread_id=thread_id)

    @classmethod
    def shared(cls, token: str) -> Urls:
        """A link holder's URLs of the thread behind share token ``token``."""
        return cls(share_token=token)

    @classmethod
    def of(cls, thread_id: str, share_token: str | None = None) -> Urls:
        """The link holder's URLs when ``share_token`` is given, else the
        owner's URLs of thread ``thread_id``."""
        return cls.shared(share_token) if share_token else cls.owned(thread_id)

    @property
    def owner(self) -> bool:
        """True for the owner's view, False for a share-link view."""
        return self.share_token is None

    def _owner_path(self, tail: str) -> str:
        """``/t/{id}`` + ``tail``; raises OwnerOnly for a share-link view."""
        if not self.owner:
            raise OwnerOnly(f"{tail} is the owner's URL; a share link has none")
        return self.base + tail

    # ---------------------------------------------------------------- pages (owner and link holders)

    def page(self) -> str:
        """The thread page: ``/t/{id}`` or ``/s/{token}``."""
        return self.base

    def version_page(self, number: int) -> str:
        """Version ``number`` shown large: ``…/versions/{number}``."""
        return f"{self.base}/versions/{number}"

    def compare(self, before: int | None = None, after: int | None = None) -> str:
        """The before/after slider: ``…/compare``, with ``?before=&after=``
        for the versions given (none: the head and its parent)."""
        query = urlencode({k: v for k, v in (("before", before), ("after", after)) if v is not None})
        return f"{self.base}/compare" + (f"?{query}" if query else "")

    def turns_before(self, pk: int) -> str:
        """The turns before the turn whose ``pk`` is ``pk``: ``…/turns?before={pk}``."""
        return f"{self.base}/turns?before={pk}"

    def tree(self) -> str:
        """The whole version tree (the page shows a window of it): ``…/tree``."""
        return f"{self.base}/tree"

    def events(self) -> str:
        """The page's server-sent events: ``…/events``."""
        return f"{self.base}/events"

    # ---------------------------------------------------------------- the owner's actions

    def turn(self, turn_id: str, *, edit: bool = False) -> str:
        """One turn as a list item, ``/t/{id}/turns/{turn_id}``; with
        ``edit`` its edit form (``?edit=1``). Owner only."""
        return self._owner_path(f"/turns/{turn_id}") + ("?edit=1" if edit else "")

    def submit_turn(self) -> str:
        """POST a new turn (the composer): ``/t/{id}/turns``. Owner only."""
        return self._owner_path("/turns")

    def cancel(self, turn_id: str) -> str:
        """POST: stop a queued or running turn. Owner only."""
        return self._owner_path(f"/turns/{turn_id}/cancel")

    def retry(self, turn_id: str) -> str:
        """POST: send a failed, declined or cancelled turn again. Owner only."""
        return self._owner_path(f"/turns/{turn_id}/retry")

    def regenerate(self, turn_id: str) -> str:
        """POST: another take of the turn from its base version. Owner only."""
        return self._owner_path(f"/turns/{turn_id}/regenerate")

    def edit_turn(self, turn_id: str) -> str:
        """POST: the edited instruction, sent as a new turn. Owner only."""
        return self._owner_path(f"/turns/{turn_id}/edit")

    def revert(self) -> str:
        """POST ``version``: continue from that version. Owner only."""
        return self._owner_path("/revert")

    def rename(self) -> str:
        """POST ``title``: rename the thread. Owner only."""
        return self._owner_path("/title")

    def share(self) -> str:
        """POST: make (or show) the share link. Owner only."""
        return self._owner_path("/share")

    def revoke_share(self) -> str:
        """POST: revoke the share link. Owner only."""
        return self._owner_path("/share/revoke")

    def delete(self) -> str:
        """POST: delete the thread (Undo restores it for a while). Owner only."""
        return self._owner_path("/delete")

    def restore(self) -> str:
        """POST: undo the delete. Owner only."""
        return self._owner_path("/restore")

    def provenance(self) -> str:
        """POST ``include_instructions``: the credentials switch. Owner only."""
        return self._owner_path("/provenance")

    def export(self) -> str:
        """The thread as a zip: ``/api/v1/threads/{id}/export``. Owner only."""
        if not self.owner:
            raise OwnerOnly("export is the owner's URL; a share link has none")
        return f"{self.prefix}/export"

    def fork(self) -> str:
        """POST: copy the shared thread to the caller, ``/s/{token}/fork``. Link holders only."""
        if self.owner:
            raise ValueError("only a share link has a fork URL")
        return f"{self.base}/fork"

    # ---------------------------------------------------------------- images (JSON API)

    def image(self, number: int) -> str:
        """Version ``number``'s PNG: ``…/versions/{number}/image``."""
        return f"{self.prefix}/versions/{number}/image"

    def thumbnail(self, number: int) -> str:
        """Version ``number``'s WebP thumbnail (256 px on the long side)."""
        return f"{self.image(number)}?size=thumb"

    def preview(self, number: int, width: int = 512) -> str:
        """A WebP preview at most ``width`` (128, 512 or 1024; ``app.previews.PREVIEW_WIDTHS``)
        pixels on its long side."""
        return f"{self.image(number)}?size={width}"

    def attachment(self, turn_id: str, name: str) -> str:
        """A turn's ``mask``, ``markup`` or ``reference-N`` (N from 1)."""
        return f"{self.prefix}/turns/{turn_id}/attachments/{name}"

    def partial(self, turn_id: str, index: int) -> str:
        """A running turn's newest partial image (``index`` makes each frame's URL new)."""
        return f"{self.prefix}/turns/{turn_id}/partial?i={index}"

    def timeline(self) -> str:
        """The animated WebP of the head's lineage: ``…/timeline.webp``."""
        return f"{self.prefix}/timeline.webp"


def thread_page(thread_id: str) -> str:
    """The owner's page of thread ``thread_id`` (where creating, forking,
    importing and restoring a thread land)."""
    return Urls.owned(thread_id).page()


def share_link(base_url: str, token: str) -> str:
    """The absolute share link ``{base_url}/s/{token}``; ``base_url`` is the
    server's (``request.base_url``), with or without a closing ``/``."""
    return f"{base_url.rstrip('/')}{Urls.shared(token).page()}"
