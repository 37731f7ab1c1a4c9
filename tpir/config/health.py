"""The ``health_check`` section: active checks that mark a provider failed or healthy.

Options (each can be set per integration and overridden per provider):

- ``enabled``: whether the provider is checked at all. Default true.
- ``method``: ``"GET"``, ``"HEAD"`` or ``"POST"``. Default GET.
- ``path``: appended to the provider's ``base_url`` as it is (so ``/models`` on
  ``https://api.openai.com/v1`` checks ``https://api.openai.com/v1/models``). It must
  start with ``/``. Default ``/health``.
- ``expected_status``: the status code, or list of codes, that counts as healthy, each
  100 to 599. Default 200.
- ``interval``: seconds between checks, greater than 0 and at most 86400. Default 10.
- ``timeout``: seconds one check may take, greater than 0 and less than ``interval``.
  Default 2.
- ``retries``: failed checks in a row before the provider is marked failed, 1 to 100.
  Default 3. ``unhealthy_threshold`` is accepted in the file as another name for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from tpir.config._checks import (
    Bounds,
    FieldChecker,
    describe_value,
    format_number,
    toml_type_name,
)

__all__ = ["HealthCheckConfig", "HttpMethod"]

# A path with a query is fine, but not whitespace, control characters or a fragment.
_PATH_PATTERN = re.compile(r"/[^\s#\x00-\x1f\x7f]*")
_STATUS_BOUNDS = Bounds(100, 599)


class HttpMethod(StrEnum):
    """HTTP methods a health check may use."""

    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"


@dataclass(frozen=True)
class HealthCheckConfig:
    """Health check settings of one provider. The module docstring lists each option."""

    enabled: bool = True
    method: HttpMethod = HttpMethod.GET
    path: str = "/health"
    expected_status: tuple[int, ...] = (200,)
    interval: float = 10.0
    timeout: float = 2.0
    retries: int = 3

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        check.boolean("enabled")
        if isinstance(self.method, str):
            check.store("method", self.method.upper())
        check.choice("method", HttpMethod)
        check.text(
            "path",
            pattern=_PATH_PATTERN,
            rule="expected a path starting with '/', without spaces or a '#' fragment",
            max_length=2048,
        )
        _check_statuses(check, "expected_status")
        interval = check.seconds("interval", Bounds(0, 86400, min_exclusive=True, unit="s"))
        timeout = check.seconds("timeout", Bounds(0, 86400, min_exclusive=True, unit="s"))
        check.integer("retries", Bounds(1, 100))

        if interval is not None and timeout is not None and timeout >= interval:
            check.issue(
                "timeout",
                f"timeout ({format_number(timeout)} s) must be less than interval "
                f"({format_number(interval)} s), so that one check ends before the next starts",
                related=("interval",),
            )
        check.raise_if_issues()

    @property
    def unhealthy_threshold(self) -> int:
        """Another name for `retries`: failed checks in a row that mark the provider failed."""
        return self.retries

    def is_expected(self, status: int) -> bool:
        """Return whether a response status counts as healthy."""
        return status in self.expected_status


def _check_statuses(check: FieldChecker, field: str) -> None:
    value = check.get(field)
    single = isinstance(value, int) and not isinstance(value, bool)
    if single:
        value = [value]
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        check.issue(
            field,
            f"expected a status code or an array of them, got {describe_value(value)} "
            f"({toml_type_name(value)})",
        )
        return

    statuses: list[int] = []
    for index, item in enumerate(value):
        item_field = field if single else f"{field}[{index}]"
        if isinstance(item, bool) or not isinstance(item, int):
            check.issue(
                item_field,
                f"expected an HTTP status code (integer), got {describe_value(item)} "
                f"({toml_type_name(item)})",
            )
            return
        if not _STATUS_BOUNDS.contains(item):
            check.issue(
                item_field, f"HTTP status {item} is out of range (valid range: {_STATUS_BOUNDS})"
            )
            return
        if item not in statuses:
            statuses.append(item)

    if not statuses:
        check.issue(field, "must list at least one status code")
        return
    check.store(field, tuple(statuses))
