"""Diffing the output lines of the two scenario runners."""

from __future__ import annotations

import pytest

from supervisors.scenario.compare import canonical_json, compare

pytestmark = pytest.mark.timeout(10)


def test_compare_equal_lines_returns_none() -> None:
    lines = [{"event": "started", "id": "w"}, {"step": 0, "alive": ["w"]}]

    assert compare(lines, [dict(line) for line in lines]) is None


def test_compare_ignores_key_order() -> None:
    ours = [{"event": "terminated", "id": "w", "reason": "crash"}]
    otp = [{"reason": "crash", "id": "w", "event": "terminated"}]

    assert compare(ours, otp) is None


def test_compare_diff_labels_sides() -> None:
    diff = compare([{"step": 0, "alive": ["a"]}], [{"step": 0, "alive": []}])

    assert diff is not None
    assert diff.splitlines()[:2] == ["--- ours", "+++ otp"]


def test_compare_diff_shows_changed_lines() -> None:
    ours = [{"event": "started", "id": "a"}, {"event": "terminated", "id": "a", "reason": "crash"}]
    otp = [{"event": "started", "id": "a"}, {"event": "terminated", "id": "a", "reason": "killed"}]

    diff = compare(ours, otp)

    assert diff is not None
    assert "-" + canonical_json(ours[1]) in diff.splitlines()
    assert "+" + canonical_json(otp[1]) in diff.splitlines()


def test_compare_missing_line_is_a_difference() -> None:
    lines = [{"event": "started", "id": "a"}]

    assert compare(lines, []) is not None


def test_canonical_json_sorts_keys() -> None:
    assert canonical_json({"id": "a", "event": "started"}) == '{"event": "started", "id": "a"}'
