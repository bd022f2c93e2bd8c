"""What a thread page shows, read with a bounded number of queries whose
cost does not grow with the thread's history.

A thread page shows the newest :data:`TURN_PAGE` turns (older ones load on
scroll, :func:`older_turns`), the version tree drawn from a compact window
of the newest :data:`TREE_WINDOW` versions plus the head, and the totals
(version count, tokens). Nothing here touches ``Thread.turns`` or
``Thread.versions``, which would load the whole history.

Call :func:`app.db.read_snapshot` on the session first, so that all these
queries see one snapshot: no turn appears finished without its version.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.models import PENDING_STATUSES, Thread, Turn, Version
from app.render_cache import version_facts
from app.usage import UsageTotal, thread_usage

#: Turns a thread page shows at first; older ones load on scroll, this many at a time.
TURN_PAGE = 20
#: Newest versions the tree shows (plus the head); "All versions" shows the rest.
TREE_WINDOW = 60


@dataclass
class ThreadView:
    """One thread page's data.

    - ``turns``: the newest turns, oldest first; ``older_turns``: how many
      come before them;
    - ``tree``: the versions the tree draws (newest :data:`TREE_WINDOW` and
      the head), by number; ``version_count``: all of them;
    - ``head``: the head version or None; ``turn_versions``: turn id ->
      the version it made, for ``turns``;
    - ``labels``: version number -> what made it (for ``tree`` and
      ``turn_versions``);
    - ``pending``/``running``: a turn is queued or running / running;
    - ``usage``: the thread's token and cost totals.
    """

    turns: list[Turn]
    older_turns: int
    tree: list[Version]
    version_count: int
    head: Version | None
    turn_versions: dict[str, Version]
    labels: dict[int, str]
    pending: bool
    running: bool
    usage: UsageTotal = field(default_factory=UsageTotal)


def label(turn_kind: str | None, instruction: str | None, has_parent: bool) -> str:
    """What made a version, for captions and alt text."""
    if turn_kind is None:
        return "earlier version" if has_parent else "first version"
    if turn_kind == "upload":
        return f"uploaded photo ({instruction})" if instruction else "uploaded photo"
    return instruction or "generated image"


def thread_view(session: Session, thread: Thread, *, prices: dict | None = None,
                turn_limit: int = TURN_PAGE, window: int = TREE_WINDOW) -> ThreadView:
    """Read what ``thread``'s page shows in seven small indexed queries
    (turn page, older count, version count, tree window, labels, pending
    statuses, usage column), whatever the thread's length."""
    tid = thread.id
    turns = list(reversed(session.scalars(
        select(Turn).where(Turn.thread_id == tid).order_by(Turn.pk.desc()).limit(turn_limit)).all()))
    older = 0
    if turns:
        older = session.scalar(select(func.count(Turn.pk)).where(Turn.thread_id == tid,
                                                                 Turn.pk < turns[0].pk)) or 0
    count, newest = version_facts(session, None, [thread])[tid]
    shown_ids = [t.id for t in turns]
    conditions = [Version.number > (newest or 0) - window]
    if thread.head_version is not None:
        conditions.append(Version.number == thread.head_version)
    if shown_ids:
        conditions.append(Version.turn_id.in_(shown_ids))
    versions = session.scalars(select(Version).where(Version.thread_id == tid, or_(*conditions))
                               .order_by(Version.number)).all()
    by_turn = {v.turn_id: v for v in versions if v.turn_id}
    known = {t.id: (t.kind, t.instruction) for t in turns}
    missing = [v.turn_id for v in versions if v.turn_id and v.turn_id not in known]
    if missing:
        for tid_, kind, instruction in session.execute(
                select(Turn.id, Turn.kind, Turn.instruction).where(Turn.id.in_(missing))):
            known[tid_] = (kind, instruction)
    labels = {}
    for v in versions:
        kind, instruction = known.get(v.turn_id or "", (None, None))
        labels[v.number] = label(kind, instruction, v.parent is not None)
    statuses = session.scalars(select(Turn.status).where(Turn.thread_id == tid,
                                                          Turn.status.in_(PENDING_STATUSES))).all()
    usage_rows = session.execute(select(Turn.usage, Turn.output, Turn.model)
                                 .where(Turn.thread_id == tid, Turn.usage.is_not(None))).all()
    head = next((v for v in versions if v.number == thread.head_version), None)
    newest_window = [v for v in versions if v.number > (newest or 0) - window or v.number == thread.head_version]
    return ThreadView(
        turns=turns, older_turns=older, tree=newest_window, version_count=count or 0, head=head,
        turn_versions={t.id: by_turn[t.id] for t in turns if t.id in by_turn}, labels=labels,
        pending=bool(statuses), running="running" in statuses,
        usage=thread_usage(usage_rows, prices or {}),
    )


def turn_key(turn: Turn, version: Version | None, head_version: int | None) -> str:
    """What a settled turn shows, in a few characters: its status, the
    version it made and whether that is the head (``"succeeded.12.1"``).
    Nothing else of a turn changes once it has ended (every later action
    is a new turn), so two renderings with the same key are the same. ""
    for a queued or running turn, whose progress is never kept."""
    if turn.status in PENDING_STATUSES:
        return ""
    number = version.number if version is not None else 0
    return f"{turn.status}.{number}.{int(version is not None and number == head_version)}"


def tree_key(session: Session, thread: Thread, cache=None) -> str:
    """What the version tree shows, in a few characters: the head, the
    number of versions and the newest number (``"12-40-40"``). Versions are
    only ever added, each with a fixed parent and the turn that made it, so
    two readings with the same key draw the same tree. The counts come from
    ``app.render_cache.version_facts`` (``cache``: a ``RenderCache`` or None)."""
    count, newest = version_facts(session, cache, [thread])[thread.id]
    return f"{thread.head_version or 0}-{count}-{newest}"


def older_turns(session: Session, thread: Thread, before_pk: int, *, limit: int = TURN_PAGE) -> ThreadView:
    """The ``limit`` turns of ``thread`` before turn ``before_pk`` (its
    ``pk``), as a :class:`ThreadView` holding only those turns, their
    versions and labels (for the "earlier turns" fragment)."""
    turns = list(reversed(session.scalars(
        select(Turn).where(Turn.thread_id == thread.id, Turn.pk < before_pk)
        .order_by(Turn.pk.desc()).limit(limit)).all()))
    older = 0
    if turns:
        older = session.scalar(select(func.count(Turn.pk)).where(Turn.thread_id == thread.id,
                                                                 Turn.pk < turns[0].pk)) or 0
    ids = [t.id for t in turns]
    versions = session.scalars(select(Version).where(Version.thread_id == thread.id,
                                                     Version.turn_id.in_(ids))).all() if ids else []
    by_turn = {v.turn_id: v for v in versions}
    kinds = {t.id: t for t in turns}
    labels = {v.number: label(kinds[v.turn_id].kind, kinds[v.turn_id].instruction, v.parent is not None)
              for v in versions}
    running = session.scalar(select(func.count(Turn.pk)).where(Turn.thread_id == thread.id,
                                                               Turn.status == "running")) or 0
    return ThreadView(turns=turns, older_turns=older, tree=[], version_count=0, head=None,
                      turn_versions=by_turn, labels=labels, pending=False, running=bool(running))
