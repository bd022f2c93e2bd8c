"""The version tree layout: lanes, columns and branch points."""
from __future__ import annotations

from dataclasses import dataclass

from app.version_tree import lanes


@dataclass
class V:
    number: int
    parent: int | None


def shape(versions):
    return [(lane.column, lane.branches_from, [v.number for v in lane.versions]) for lane in lanes(versions)]


def test_a_straight_line_is_one_lane():
    assert shape([V(1, None), V(2, 1), V(3, 2)]) == [(0, None, [1, 2, 3])]


def test_no_versions_no_lanes():
    assert lanes([]) == []


def test_branches_start_one_column_right_of_their_parent_depth_first():
    # 1-2-3-4 main line; 5 branches from 2; 6 from 5 continues it; 7 from 5 branches again; 8 from 1.
    versions = [V(1, None), V(2, 1), V(3, 2), V(4, 3), V(5, 2), V(6, 5), V(7, 5), V(8, 1)]
    assert shape(versions) == [
        (0, None, [1, 2, 3, 4]),
        (1, 1, [8]),
        (2, 2, [5, 6]),
        (3, 5, [7]),
    ]


def test_input_order_does_not_matter_and_every_version_appears_once():
    versions = [V(4, 2), V(3, 1), V(1, None), V(2, 1)]
    result = shape(versions)
    assert result == [(0, None, [1, 2, 4]), (1, 1, [3])]
    assert sorted(n for _, _, ns in result for n in ns) == [1, 2, 3, 4]


def test_a_version_whose_parent_is_missing_starts_its_own_lane():
    assert shape([V(2, 1), V(3, 2)]) == [(0, None, [2, 3])]
