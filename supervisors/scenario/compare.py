"""Compare the output lines of the two scenario runners."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["canonical_json", "compare"]


def canonical_json(line: dict[str, Any]) -> str:
    """Return ``line`` as JSON with sorted keys, the form both runners compare in."""
    return json.dumps(line, sort_keys=True)


def compare(ours: Sequence[dict[str, Any]], otp: Sequence[dict[str, Any]]) -> str | None:
    """Return a unified diff from ``ours`` to ``otp``, or None when the lines are equal.

    Each output line is compared as :func:`canonical_json`. The diff labels the
    two sides "ours" and "otp".
    """
    ours_text = [canonical_json(line) for line in ours]
    otp_text = [canonical_json(line) for line in otp]
    if ours_text == otp_text:
        return None
    diff = difflib.unified_diff(ours_text, otp_text, fromfile="ours", tofile="otp", lineterm="")
    return "\n".join(diff)
