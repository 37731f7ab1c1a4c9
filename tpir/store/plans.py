"""Store operations written once for both the sync and the async store.

Each operation is a generator (a plan) that yields SQLAlchemy statements and is sent
each statement's ``Outcome``, and whose return value is the operation's result. The
plan does no I/O itself, so ``RecoveryStore`` runs it with a sync connection and
``AsyncRecoveryStore`` with an async one, and the query and verification logic
exists only here. A store runs a whole plan inside one transaction.

Arguments are checked when the plan is created, before any connection is opened.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Executable, and_, delete, func, insert, or_, select
from sqlalchemy.engine import CursorResult, Row

from tpir.store.checksum import compute_checksum, encode_state, validate_state
from tpir.store.point import RecoveryPoint
from tpir.store.schema import MAX_NAME_LENGTH, recovery_points
from tpir.store.settings import StoreSettings, finite_float

__all__ = [
    "Outcome",
    "Plan",
    "build_restore_plan",
    "collect_outcome",
    "find_latest",
    "list_points",
    "prune_points",
    "run_plan",
    "save_point",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """Result of one statement: its rows, its row count and, for an insert, the new key."""

    rows: Sequence[Row[Any]] = ()
    rowcount: int = -1
    inserted_primary_key: tuple[Any, ...] | None = None


Plan = Generator[Executable, Outcome, T]

_PAGE_SIZE = 16
"""Rows fetched per query while looking for the newest point whose checksum matches."""

_points = recovery_points.c
_NEWEST_FIRST = (_points.created_at.desc(), _points.seq.desc())


def collect_outcome(result: CursorResult[Any]) -> Outcome:
    """Read everything a plan may need from an executed statement's result."""
    if result.returns_rows:
        return Outcome(rows=result.all(), rowcount=result.rowcount)
    if result.is_insert:
        return Outcome(
            rowcount=result.rowcount,
            inserted_primary_key=tuple(result.inserted_primary_key),
        )
    return Outcome(rowcount=result.rowcount)


def run_plan(plan: Plan[T], execute: Callable[[Executable], CursorResult[Any]]) -> T:
    """Run a plan to its end with a sync ``execute`` callable and return its result."""
    try:
        statement = plan.send(None)  # type: ignore[arg-type]
    except StopIteration as stop:
        return stop.value
    while True:
        outcome = collect_outcome(execute(statement))
        try:
            statement = plan.send(outcome)
        except StopIteration as stop:
            return stop.value


def save_point(
    integration: str,
    actor_key: str,
    kind: str,
    state: dict[str, Any],
    created_at: float,
) -> Plan[RecoveryPoint]:
    """Check and encode a new point and return the plan that inserts it.

    Raises ValueError for an invalid name or time, and InvalidStateError naming the
    key path for a state value that is not JSON-safe.
    """
    _check_name("integration", integration)
    _check_name("actor_key", actor_key)
    _check_name("kind", kind)
    created_at = _check_time("at", created_at)
    validate_state(state)

    state_text = encode_state(state)
    checksum = compute_checksum(integration, actor_key, kind, created_at, state)
    statement = insert(recovery_points).values(
        integration=integration,
        actor_key=actor_key,
        kind=kind,
        created_at=created_at,
        state=state_text,
        checksum=checksum,
    )
    return _insert_point(statement, integration, actor_key, kind, state_text, created_at, checksum)


def _insert_point(
    statement: Executable,
    integration: str,
    actor_key: str,
    kind: str,
    state_text: str,
    created_at: float,
    checksum: str,
) -> Plan[RecoveryPoint]:
    outcome = yield statement
    if not outcome.inserted_primary_key:
        raise RuntimeError("the database returned no seq for the inserted recovery point")
    return RecoveryPoint(
        integration=integration,
        actor_key=actor_key,
        kind=kind,
        # Decoding the stored text gives the caller a copy that later changes to
        # the saved dict cannot reach.
        state=json.loads(state_text),
        created_at=created_at,
        checksum=checksum,
        seq=int(outcome.inserted_primary_key[0]),
    )


def find_latest(actor_key: str, at: float | None = None) -> Plan[RecoveryPoint | None]:
    """Return the plan that finds the newest valid point of an actor, at or before ``at``.

    With ``at`` None, any time counts. Points whose checksum does not match are
    skipped with a WARNING each.
    """
    _check_name("actor_key", actor_key)
    if at is not None:
        at = _check_time("at", at)
    return _newest_valid(actor_key, at, integration=None)


def _newest_valid(
    actor_key: str, at: float | None, integration: str | None
) -> Plan[RecoveryPoint | None]:
    last_checked: tuple[float, int] | None = None
    while True:
        statement = select(recovery_points).where(_points.actor_key == actor_key)
        if integration is not None:
            statement = statement.where(_points.integration == integration)
        if at is not None:
            statement = statement.where(_points.created_at <= at)
        if last_checked is not None:
            # Keyset paging continues below the last row checked, so a point
            # inserted meanwhile by another process cannot shift the pages.
            created_at, seq = last_checked
            statement = statement.where(
                or_(
                    _points.created_at < created_at,
                    and_(_points.created_at == created_at, _points.seq < seq),
                )
            )
        statement = statement.order_by(*_NEWEST_FIRST).limit(_PAGE_SIZE)

        outcome = yield statement
        for row in outcome.rows:
            point = _decode_row(row)
            if point is not None and point.checksum_matches():
                return point
            if point is None:
                reason = "its state is not a JSON object"
            else:
                reason = "its checksum does not match"
            logger.warning(
                "Skipped recovery point seq=%d of actor %s created at %s because %s, "
                "trying the next older point",
                row.seq,
                row.actor_key,
                _format_time(row.created_at),
                reason,
            )
        if len(outcome.rows) < _PAGE_SIZE:
            return None
        last_row = outcome.rows[-1]
        last_checked = (last_row.created_at, last_row.seq)


def list_points(
    integration: str | None = None, actor_key: str | None = None, limit: int = 100
) -> Plan[list[RecoveryPoint]]:
    """Return the plan that lists stored points, newest first, without checking checksums.

    Callers check a point with ``RecoveryPoint.checksum_matches()``. A row whose state
    is not a JSON object cannot become a point and is skipped with a WARNING.
    """
    if integration is not None:
        _check_name("integration", integration)
    if actor_key is not None:
        _check_name("actor_key", actor_key)
    if type(limit) is not int or limit < 1:
        raise ValueError(f"invalid limit {limit!r}: expected an int of at least 1")
    return _list_points(integration, actor_key, limit)


def _list_points(
    integration: str | None, actor_key: str | None, limit: int
) -> Plan[list[RecoveryPoint]]:
    statement = select(recovery_points)
    if integration is not None:
        statement = statement.where(_points.integration == integration)
    if actor_key is not None:
        statement = statement.where(_points.actor_key == actor_key)
    statement = statement.order_by(*_NEWEST_FIRST).limit(limit)

    outcome = yield statement
    points = []
    for row in outcome.rows:
        point = _decode_row(row)
        if point is None:
            logger.warning(
                "Skipped recovery point seq=%d of actor %s created at %s "
                "because its state is not a JSON object",
                row.seq,
                row.actor_key,
                _format_time(row.created_at),
            )
            continue
        points.append(point)
    return points


def build_restore_plan(integration: str, at: float) -> Plan[dict[str, RecoveryPoint]]:
    """Return the plan that maps each actor key of an integration to its point to restore.

    The point is the actor's newest valid point of that integration at or before
    ``at``. An actor with no valid point by then is left out of the mapping.
    """
    _check_name("integration", integration)
    at = _check_time("at", at)
    return _build_restore_plan(integration, at)


def _build_restore_plan(integration: str, at: float) -> Plan[dict[str, RecoveryPoint]]:
    keys_outcome = yield (
        select(_points.actor_key)
        .where(_points.integration == integration, _points.created_at <= at)
        .distinct()
        .order_by(_points.actor_key)
    )
    restore: dict[str, RecoveryPoint] = {}
    for (actor_key,) in keys_outcome.rows:
        point = yield from _newest_valid(actor_key, at, integration)
        if point is not None:
            restore[actor_key] = point
    return restore


def prune_points(settings: StoreSettings, now: float) -> Plan[int]:
    """Return the plan that applies retention and returns the number of points deleted.

    Per actor key, only the newest ``retention_count`` points are kept, and when
    ``retention_seconds`` is set, points older than ``now - retention_seconds`` are
    deleted. The newest point whose checksum matches is never deleted by either
    rule, so an actor whose newest point was tampered with keeps a point to restore.
    """
    now = _check_time("now", now)
    return _prune_points(settings, now)


def _prune_points(settings: StoreSettings, now: float) -> Plan[int]:
    keys_outcome = yield select(_points.actor_key).distinct()
    protected_seqs = []
    for (actor_key,) in keys_outcome.rows:
        point = yield from _newest_valid(actor_key, None, integration=None)
        if point is not None:
            protected_seqs.append(point.seq)

    ranked = select(
        _points.seq,
        func.row_number()
        .over(partition_by=_points.actor_key, order_by=_NEWEST_FIRST)
        .label("newest_rank"),
    ).subquery()
    over_count = select(ranked.c.seq).where(ranked.c.newest_rank > settings.retention_count)
    by_count = delete(recovery_points).where(
        _points.seq.in_(over_count), _points.seq.not_in(protected_seqs)
    )
    outcome = yield by_count
    deleted = max(outcome.rowcount, 0)

    if settings.retention_seconds is not None:
        cutoff = now - settings.retention_seconds
        by_age = delete(recovery_points).where(
            _points.created_at < cutoff, _points.seq.not_in(protected_seqs)
        )
        outcome = yield by_age
        deleted += max(outcome.rowcount, 0)

    if deleted:
        logger.info("Pruned %d recovery points", deleted)
    return deleted


def _decode_row(row: Row[Any]) -> RecoveryPoint | None:
    """Build a point from a row, or return None when its state is not a JSON object."""
    try:
        state = json.loads(row.state, parse_constant=_reject_constant)
    except ValueError:
        return None
    if type(state) is not dict:
        return None
    return RecoveryPoint(
        integration=row.integration,
        actor_key=row.actor_key,
        kind=row.kind,
        state=state,
        created_at=float(row.created_at),
        checksum=row.checksum,
        seq=int(row.seq),
    )


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity by default, but the encoding never writes them.
    raise ValueError(f"{name} is not valid JSON")


def _check_name(field: str, value: object) -> None:
    if type(value) is not str or not value or len(value) > MAX_NAME_LENGTH:
        raise ValueError(
            f"invalid {field} {value!r}: expected a non-empty str of at most "
            f"{MAX_NAME_LENGTH} characters"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"invalid {field} {value!r}: expected valid UTF-8 text") from exc


def _check_time(field: str, value: object) -> float:
    seconds = finite_float(value)
    if seconds is None:
        raise ValueError(f"invalid {field} {value!r}: expected finite epoch seconds (int or float)")
    return seconds


def _format_time(epoch_seconds: float) -> str:
    try:
        iso = datetime.fromtimestamp(epoch_seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{epoch_seconds!r} epoch seconds"
    return f"{iso} ({epoch_seconds!r} epoch seconds)"
