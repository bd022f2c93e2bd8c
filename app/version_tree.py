"""Lay out a thread's versions as a tree of lanes for the version tree view.

Versions form a tree through ``parent``: every edit's parent is the head it
started from, so reverting and editing again starts a branch. The view draws
each branch as one horizontal lane of thumbnails, indented so that a version
sits one column to the right of its parent, like a sideways ``git log
--graph``.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class VersionLike(Protocol):
    number: int
    parent: int | None


@dataclass
class Lane:
    """One branch: ``versions`` in order, each the parent of the next.
    ``column`` is the 0-based column of the first version (its depth in the
    tree); ``branches_from`` is the version the lane starts from (the first
    version's parent), or ``None`` for a lane that starts at a root."""

    column: int
    branches_from: int | None
    versions: list


def lanes(versions: Sequence[VersionLike]) -> list[Lane]:
    """Split ``versions`` into lanes: the first lane follows version 1 (or
    the lowest-numbered root) through each version's lowest-numbered child;
    every other child starts a new lane, listed after the lane it branches
    from, depth first. Every version appears in exactly one lane.

    Takes any objects with ``number`` and ``parent`` (a version whose parent
    is missing from ``versions`` counts as a root). Returns the lanes in
    display order; an empty input gives an empty list.
    """
    by_number = {v.number: v for v in versions}
    children: dict[int, list] = defaultdict(list)
    roots = []
    for v in sorted(versions, key=lambda v: v.number):
        if v.parent is not None and v.parent in by_number:
            children[v.parent].append(v)
        else:
            roots.append(v)

    depth: dict[int, int] = {}
    result: list[Lane] = []
    stack = list(reversed(roots))
    while stack:
        start = stack.pop()
        column = depth[start.parent] + 1 if start.parent in depth else 0
        lane = Lane(column=column, branches_from=start.parent if start.parent in by_number else None,
                    versions=[])
        branches = []
        v = start
        while True:
            depth[v.number] = column + len(lane.versions)
            lane.versions.append(v)
            kids = children.get(v.number, [])
            if not kids:
                break
            branches.extend(kids[1:])
            v = kids[0]
        result.append(lane)
        # Depth first: the branch nearest the lane's start is shown first.
        stack.extend(reversed(branches))
    return result
