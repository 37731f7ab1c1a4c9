"""Tests of the recovery-point store on real SQLite files in tmp_path."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import multiprocessing
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import SQLAlchemyError

from tpir.store import (
    AsyncRecoveryStore,
    InvalidStateError,
    RecoveryPoint,
    RecoveryStore,
    StoreError,
    canonical_encoding,
    compute_checksum,
)
from tpir.store.engine import create_sync_engine, resolve_url

pytestmark = pytest.mark.timeout(60)

BASE_TIME = 1_700_000_000.0
BREAKER_KEY = "llm_provider/openai/breaker"
STATUS_KEY = "llm_provider/openai/provider_status"


class FakeClock:
    """Clock returning a settable number of epoch seconds."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "points.db"


@pytest.fixture
def store(db_path: Path) -> Any:
    recovery_store = RecoveryStore(db_path)
    yield recovery_store
    recovery_store.close()


def tamper_state(db_path: Path, seq: int, state_text: str) -> None:
    """Overwrite a stored state with plain SQL, leaving its checksum as it was."""
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        connection.execute("UPDATE recovery_points SET state = ? WHERE seq = ?", (state_text, seq))
        connection.commit()


def count_rows(db_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        return connection.execute("SELECT count(*) FROM recovery_points").fetchone()[0]


def integrity_check(db_path: Path) -> str:
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.levelno == logging.WARNING and record.name.startswith("tpir.store")
    ]


# Checksum and canonical encoding


def test_canonical_encoding_matches_documented_example() -> None:
    encoded = canonical_encoding(
        "llm_provider", BREAKER_KEY, "breaker", 1700000000.5, {"state": "open", "failures": 3}
    )
    expected = (
        b'["llm_provider","llm_provider/openai/breaker","breaker",1700000000.5,'
        b'{"failures":3,"state":"open"}]'
    )
    assert encoded == expected


def test_checksum_is_sha256_of_canonical_encoding() -> None:
    state = {"state": "open", "failures": 3}
    checksum = compute_checksum("llm_provider", BREAKER_KEY, "breaker", 1700000000.5, state)
    assert checksum == "22213d6f4aa8a305c03be71a4d9695479859f12e0188afaa6382858cab516357"
    payload = canonical_encoding("llm_provider", BREAKER_KEY, "breaker", 1700000000.5, state)
    assert checksum == hashlib.sha256(payload).hexdigest()


def test_canonical_encoding_writes_floats_as_repr() -> None:
    state = {"small": 1e-05, "large": 1e16, "whole": 5.0, "negative_zero": -0.0}
    encoded = canonical_encoding("i", "a", "k", 5, state).decode("utf-8")
    assert encoded == (
        '["i","a","k",5.0,{"large":1e+16,"negative_zero":-0.0,"small":1e-05,"whole":5.0}]'
    )


def test_canonical_encoding_escapes_only_controls() -> None:
    encoded = canonical_encoding("i", "a", "k", 1.0, {"é": 'ü\n\x01"\\'})
    assert encoded == '["i","a","k",1.0,{"é":"ü\\n\\u0001\\"\\\\"}]'.encode()


def test_canonical_encoding_sorts_nested_keys() -> None:
    encoded = canonical_encoding("i", "a", "k", 1.0, {"b": {"z": 1, "a": [{"y": 2, "x": 3}]}})
    assert encoded == b'["i","a","k",1.0,{"b":{"a":[{"x":3,"y":2}],"z":1}}]'


# Save and read back


def test_save_returns_stored_point(store: RecoveryStore) -> None:
    point = store.save("llm_provider", BREAKER_KEY, "breaker", {"state": "closed"}, at=BASE_TIME)
    assert point.seq == 1
    assert point.created_at == BASE_TIME
    assert point.state == {"state": "closed"}
    assert point.checksum_matches()


def test_save_uses_clock_without_at(db_path: Path) -> None:
    with RecoveryStore(db_path, clock=FakeClock(BASE_TIME + 42)) as store:
        point = store.save("llm_provider", BREAKER_KEY, "breaker", {})
    assert point.created_at == BASE_TIME + 42


def test_save_returns_copy_of_state(store: RecoveryStore) -> None:
    state: dict[str, Any] = {"failures": [1, 2]}
    point = store.save("llm_provider", BREAKER_KEY, "breaker", state, at=BASE_TIME)
    state["failures"].append(3)
    assert point.state == {"failures": [1, 2]}


def test_latest_returns_newest_point(store: RecoveryStore) -> None:
    store.save("llm_provider", BREAKER_KEY, "breaker", {"state": "closed"}, at=BASE_TIME)
    newest = store.save("llm_provider", BREAKER_KEY, "breaker", {"state": "open"}, at=BASE_TIME + 5)
    store.save("llm_provider", STATUS_KEY, "provider_status", {"up": True}, at=BASE_TIME + 9)
    assert store.latest(BREAKER_KEY) == newest


def test_latest_orders_by_time_not_seq(store: RecoveryStore) -> None:
    newer = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME + 10)
    store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 2}, at=BASE_TIME)
    assert store.latest(BREAKER_KEY) == newer


def test_latest_returns_none_for_unknown_actor(store: RecoveryStore) -> None:
    store.save("llm_provider", BREAKER_KEY, "breaker", {}, at=BASE_TIME)
    assert store.latest("payments/stripe/breaker") is None


def test_latest_round_trips_json_values(store: RecoveryStore) -> None:
    state = {
        "text": "Grüße, 世界 🎉",
        "numbers": [0, -1, 2**70, 0.1, -2.5e-300, 1.7976931348623157e308],
        "flags": [True, False, None],
        "nested": {"empty_list": [], "empty_dict": {}},
    }
    store.save("llm_provider", BREAKER_KEY, "breaker", state, at=BASE_TIME + 0.123456789)
    point = store.latest(BREAKER_KEY)
    assert point is not None
    assert point.state == state
    assert point.created_at == BASE_TIME + 0.123456789
    assert point.checksum_matches()


def test_latest_at_picks_point_at_or_before(store: RecoveryStore) -> None:
    first = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME)
    second = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 2}, at=BASE_TIME + 10)
    store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 3}, at=BASE_TIME + 20)
    assert store.latest_at(BREAKER_KEY, BASE_TIME + 15) == second
    assert store.latest_at(BREAKER_KEY, BASE_TIME + 10) == second
    assert store.latest_at(BREAKER_KEY, BASE_TIME + 9.5) == first
    assert store.latest_at(BREAKER_KEY, BASE_TIME - 1) is None


# Tampered rows


def test_latest_skips_tampered_point(
    store: RecoveryStore, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = store.save("llm_provider", BREAKER_KEY, "breaker", {"state": "closed"}, at=BASE_TIME)
    bad = store.save("llm_provider", BREAKER_KEY, "breaker", {"state": "open"}, at=BASE_TIME + 60)
    tamper_state(db_path, bad.seq, '{"state":"closed"}')
    caplog.set_level(logging.WARNING, logger="tpir.store")

    assert store.latest(BREAKER_KEY) == good

    warnings = store_warnings(caplog)
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert BREAKER_KEY in message
    assert f"seq={bad.seq}" in message
    assert "2023-11-14T22:14:20+00:00" in message
    assert "checksum does not match" in message


def test_latest_skips_row_with_invalid_json(
    store: RecoveryStore, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME)
    bad = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 2}, at=BASE_TIME + 1)
    tamper_state(db_path, bad.seq, '{"n": NaN')
    caplog.set_level(logging.WARNING, logger="tpir.store")

    assert store.latest(BREAKER_KEY) == good
    assert len(store_warnings(caplog)) == 1


def test_latest_pages_past_tampered_points(
    store: RecoveryStore, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": -1}, at=BASE_TIME)
    for n in range(40):
        bad = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": n}, at=BASE_TIME + 1)
        tamper_state(db_path, bad.seq, '{"n":"changed"}')
    caplog.set_level(logging.WARNING, logger="tpir.store")

    assert store.latest(BREAKER_KEY) == good
    assert len(store_warnings(caplog)) == 40


def test_latest_none_when_all_tampered(store: RecoveryStore, db_path: Path) -> None:
    bad = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME)
    tamper_state(db_path, bad.seq, '{"n":2}')
    assert store.latest(BREAKER_KEY) is None


def test_list_points_includes_tampered_point(store: RecoveryStore, db_path: Path) -> None:
    bad = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME)
    tamper_state(db_path, bad.seq, '{"n":2}')
    [listed] = store.list_points()
    assert listed.state == {"n": 2}
    assert not listed.checksum_matches()


# Listing and restore plans


def test_list_points_filters_newest_first(store: RecoveryStore) -> None:
    oldest = store.save("llm_provider", BREAKER_KEY, "breaker", {}, at=BASE_TIME)
    status = store.save("llm_provider", STATUS_KEY, "provider_status", {}, at=BASE_TIME + 1)
    newest = store.save("llm_provider", BREAKER_KEY, "breaker", {}, at=BASE_TIME + 2)
    payment = store.save("payments", "payments/stripe/breaker", "breaker", {}, at=BASE_TIME + 3)

    assert store.list_points() == [payment, newest, status, oldest]
    assert store.list_points(integration="llm_provider") == [newest, status, oldest]
    assert store.list_points(actor_key=BREAKER_KEY) == [newest, oldest]
    assert store.list_points(integration="payments", actor_key=BREAKER_KEY) == []
    assert store.list_points(limit=2) == [payment, newest]


def test_restore_plan_picks_latest_at_or_before(store: RecoveryStore) -> None:
    store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME)
    breaker_at_20 = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 2}, at=BASE_TIME + 20)
    store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 3}, at=BASE_TIME + 40)
    status_at_5 = store.save("llm_provider", STATUS_KEY, "provider_status", {}, at=BASE_TIME + 5)
    store.save("llm_provider", "llm_provider/integration", "integration", {}, at=BASE_TIME + 31)
    store.save("payments", "payments/stripe/breaker", "breaker", {}, at=BASE_TIME + 10)

    plan = store.restore_plan("llm_provider", BASE_TIME + 30)

    assert plan == {BREAKER_KEY: breaker_at_20, STATUS_KEY: status_at_5}


def test_restore_plan_skips_tampered_point(store: RecoveryStore, db_path: Path) -> None:
    good = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME)
    bad = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 2}, at=BASE_TIME + 10)
    tamper_state(db_path, bad.seq, '{"n":3}')
    assert store.restore_plan("llm_provider", BASE_TIME + 20) == {BREAKER_KEY: good}


def test_restore_plan_empty_for_unknown_integration(store: RecoveryStore) -> None:
    store.save("llm_provider", BREAKER_KEY, "breaker", {}, at=BASE_TIME)
    assert store.restore_plan("identity", BASE_TIME + 10) == {}


# Retention


def test_prune_keeps_newest_by_count(db_path: Path) -> None:
    with RecoveryStore(db_path, retention_count=3) as store:
        breaker_points = [
            store.save("llm_provider", BREAKER_KEY, "breaker", {"n": n}, at=BASE_TIME + n)
            for n in range(10)
        ]
        status = store.save("llm_provider", STATUS_KEY, "provider_status", {}, at=BASE_TIME)

        assert store.prune() == 7
        assert store.list_points(actor_key=BREAKER_KEY) == breaker_points[:-4:-1]
        assert store.list_points(actor_key=STATUS_KEY) == [status]
        assert store.prune() == 0


def test_prune_by_age_keeps_newest(db_path: Path) -> None:
    clock = FakeClock(BASE_TIME + 1000)
    with RecoveryStore(db_path, retention_seconds=100, clock=clock) as store:
        store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME)
        recent = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 2}, at=BASE_TIME + 950)
        store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 3}, at=BASE_TIME + 800)
        store.save("llm_provider", STATUS_KEY, "provider_status", {"n": 4}, at=BASE_TIME)
        only_status = store.save(
            "llm_provider", STATUS_KEY, "provider_status", {"n": 5}, at=BASE_TIME + 10
        )

        assert store.prune() == 3
        assert store.list_points(actor_key=BREAKER_KEY) == [recent]
        assert store.list_points(actor_key=STATUS_KEY) == [only_status]


def test_prune_keeps_newest_valid_point(db_path: Path) -> None:
    clock = FakeClock(BASE_TIME + 1000)
    with RecoveryStore(db_path, retention_count=1, retention_seconds=10, clock=clock) as store:
        store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME)
        good = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 2}, at=BASE_TIME + 1)
        bad = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 3}, at=BASE_TIME + 2)
        tamper_state(db_path, bad.seq, '{"n":4}')

        assert store.prune() == 2
        assert store.latest(BREAKER_KEY) == good
        assert count_rows(db_path) == 1


def test_store_rejects_invalid_retention(db_path: Path) -> None:
    with pytest.raises(ValueError, match="retention_count 0"):
        RecoveryStore(db_path, retention_count=0)
    with pytest.raises(ValueError, match="retention_count True"):
        RecoveryStore(db_path, retention_count=True)
    with pytest.raises(ValueError, match="retention_seconds -1"):
        RecoveryStore(db_path, retention_seconds=-1)
    with pytest.raises(ValueError, match="retention_seconds inf"):
        RecoveryStore(db_path, retention_seconds=float("inf"))
    with pytest.raises(ValueError, match="busy_timeout_seconds -0.5"):
        RecoveryStore(db_path, busy_timeout_seconds=-0.5)


# Validation


class Color(enum.Enum):
    RED = "red"


def _cycle() -> dict[str, Any]:
    state: dict[str, Any] = {"inner": {}}
    state["inner"]["loop"] = state
    return state


@pytest.mark.parametrize(
    ("state", "path"),
    [
        ({"limits": {"rpm": [1, object()]}}, "state['limits']['rpm'][1]"),
        ({"pair": (1, 2)}, "state['pair']"),
        ({"seen": {1, 2}}, "state['seen']"),
        ({"rate": float("nan")}, "state['rate']"),
        ({"rate": [float("-inf")]}, "state['rate'][0]"),
        ({"by_code": {429: "retry"}}, "state['by_code'][429]"),
        ({"color": Color.RED}, "state['color']"),
        ({"text": "bad \ud800 surrogate"}, "state['text']"),
        (_cycle(), "state['inner']['loop']"),
        (["not", "a", "dict"], "state"),
    ],
)
def test_save_error_names_key_path(
    store: RecoveryStore, db_path: Path, state: Any, path: str
) -> None:
    with pytest.raises(InvalidStateError) as raised:
        store.save("llm_provider", BREAKER_KEY, "breaker", state, at=BASE_TIME)
    assert raised.value.path == path
    assert path in str(raised.value)
    assert not db_path.exists()


def test_save_accepts_shared_subvalue(store: RecoveryStore) -> None:
    shared = {"limit": 5}
    point = store.save("llm_provider", BREAKER_KEY, "breaker", {"a": shared, "b": shared})
    assert point.state == {"a": {"limit": 5}, "b": {"limit": 5}}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        (("", BREAKER_KEY, "breaker", BASE_TIME), "integration"),
        (("llm_provider", "", "breaker", BASE_TIME), "actor_key"),
        (("llm_provider", "x" * 256, "breaker", BASE_TIME), "actor_key"),
        (("llm_provider", BREAKER_KEY, None, BASE_TIME), "kind"),
        (("llm_provider", BREAKER_KEY, "breaker", float("nan")), "at"),
        (("llm_provider", BREAKER_KEY, "breaker", "yesterday"), "at"),
    ],
)
def test_save_rejects_invalid_arguments(
    store: RecoveryStore, arguments: tuple[Any, ...], field: str
) -> None:
    integration, actor_key, kind, at = arguments
    with pytest.raises(ValueError, match=f"invalid {field} "):
        store.save(integration, actor_key, kind, {}, at=at)


def test_list_points_rejects_zero_limit(store: RecoveryStore) -> None:
    with pytest.raises(ValueError, match="invalid limit 0"):
        store.list_points(limit=0)


# Engine setup and errors


def test_construction_opens_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "later" / "points.db"
    store = RecoveryStore(db_path)
    store.close()
    assert not db_path.parent.exists()


def test_path_creates_parent_folders(tmp_path: Path) -> None:
    db_path = tmp_path / "a" / "b" / "points.db"
    with RecoveryStore(db_path) as store:
        store.save("llm_provider", BREAKER_KEY, "breaker", {})
    assert db_path.is_file()


def test_sqlalchemy_url_is_used_as_given(tmp_path: Path) -> None:
    db_path = tmp_path / "by_url.db"
    with RecoveryStore(f"sqlite:///{db_path}") as store:
        store.save("llm_provider", BREAKER_KEY, "breaker", {})
    assert count_rows(db_path) == 1


def test_store_url_hides_password() -> None:
    store = RecoveryStore("postgresql://tpir:s3cret@127.0.0.1:5432/tpir")
    assert store.url == "postgresql://tpir:***@127.0.0.1:5432/tpir"


def test_resolve_url_switches_sqlite_driver(tmp_path: Path) -> None:
    db_path = tmp_path / "points.db"
    assert resolve_url(db_path, asynchronous=False).drivername == "sqlite"
    assert resolve_url(db_path, asynchronous=True).drivername == "sqlite+aiosqlite"
    async_url = f"sqlite+aiosqlite:///{db_path}"
    assert resolve_url(async_url, asynchronous=False).drivername == "sqlite"


def test_sqlite_connection_pragmas(db_path: Path) -> None:
    engine = create_sync_engine(resolve_url(db_path, asynchronous=False), busy_timeout_ms=1234)
    try:
        with engine.connect() as connection:
            journal_mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
            busy_timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    finally:
        engine.dispose()
    assert journal_mode == "wal"
    assert synchronous == 1  # NORMAL
    assert busy_timeout == 1234


def test_store_error_wraps_database_failure(tmp_path: Path) -> None:
    with RecoveryStore(tmp_path) as store:
        with pytest.raises(StoreError, match="save failed") as raised:
            store.save("llm_provider", BREAKER_KEY, "breaker", {})
    assert isinstance(raised.value.__cause__, SQLAlchemyError)


def test_closed_store_raises_store_error(db_path: Path) -> None:
    store = RecoveryStore(db_path)
    store.save("llm_provider", BREAKER_KEY, "breaker", {})
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.latest(BREAKER_KEY)


# Several threads and processes


def test_store_saves_from_several_threads(store: RecoveryStore) -> None:
    errors: list[BaseException] = []

    def save_points(worker: int) -> None:
        try:
            for n in range(50):
                store.save("llm_provider", f"llm_provider/worker{worker}", "breaker", {"n": n})
        except BaseException as exc:  # reported through the assert below
            errors.append(exc)

    threads = [threading.Thread(target=save_points, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert len(store.list_points(limit=1000)) == 200


def _write_points(path: str, worker: int, count: int, barrier: Any) -> None:
    barrier.wait(30)
    store = RecoveryStore(path)
    try:
        for n in range(count):
            store.save(
                "load", f"load/worker{worker}/breaker", "breaker", {"worker": worker, "n": n}
            )
    finally:
        store.close()


def _join_all(processes: list[Any]) -> None:
    for process in processes:
        process.join(timeout=60)
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_four_processes_write_concurrently(db_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers, per_worker = 4, 500
    # The barrier makes all four start on the new file at once, which also races
    # the schema creation.
    barrier = context.Barrier(workers)
    processes = [
        context.Process(target=_write_points, args=(str(db_path), worker, per_worker, barrier))
        for worker in range(workers)
    ]
    try:
        for process in processes:
            process.start()
    finally:
        _join_all(processes)

    assert [process.exitcode for process in processes] == [0] * workers
    with RecoveryStore(db_path) as store:
        points = store.list_points(limit=workers * per_worker + 1)
    assert len(points) == workers * per_worker
    assert len({point.seq for point in points}) == workers * per_worker
    saved = {(point.state["worker"], point.state["n"]) for point in points}
    assert saved == {(w, n) for w in range(workers) for n in range(per_worker)}
    assert all(point.checksum_matches() for point in points)
    assert integrity_check(db_path) == "ok"


def _save_with_inherited_store(store: RecoveryStore) -> None:
    store.save("llm_provider", BREAKER_KEY, "breaker", {"from": "child"})
    store.close()


def test_inherited_store_works_after_fork(db_path: Path) -> None:
    store = RecoveryStore(db_path, clock=FakeClock(BASE_TIME))
    try:
        store.save("llm_provider", BREAKER_KEY, "breaker", {"from": "parent"}, at=BASE_TIME - 1)
        process = multiprocessing.get_context("fork").Process(
            target=_save_with_inherited_store, args=(store,)
        )
        process.start()
        _join_all([process])
        assert process.exitcode == 0

        latest_parent = store.save(
            "llm_provider", BREAKER_KEY, "breaker", {"from": "parent again"}, at=BASE_TIME + 1
        )
        states = [point.state["from"] for point in store.list_points()]
        assert states == ["parent again", "child", "parent"]
        assert store.latest(BREAKER_KEY) == latest_parent
    finally:
        store.close()
    assert integrity_check(db_path) == "ok"


def _close_inherited_store(store: RecoveryStore) -> None:
    store.close()


def test_child_closing_inherited_store_keeps_parent_working(db_path: Path) -> None:
    store = RecoveryStore(db_path)
    try:
        store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1}, at=BASE_TIME)
        process = multiprocessing.get_context("fork").Process(
            target=_close_inherited_store, args=(store,)
        )
        process.start()
        _join_all([process])
        assert process.exitcode == 0

        latest = store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 2}, at=BASE_TIME + 1)
        assert store.latest(BREAKER_KEY) == latest
    finally:
        store.close()
    assert integrity_check(db_path) == "ok"


# Async store


def test_async_store_reads_sync_points(db_path: Path) -> None:
    with RecoveryStore(db_path) as store:
        saved = store.save("llm_provider", BREAKER_KEY, "breaker", {"state": "open"}, at=BASE_TIME)

    async def read() -> tuple[RecoveryPoint | None, dict[str, RecoveryPoint]]:
        async with AsyncRecoveryStore(db_path) as async_store:
            latest = await async_store.latest(BREAKER_KEY)
            plan = await async_store.restore_plan("llm_provider", BASE_TIME)
            return latest, plan

    latest, plan = asyncio.run(read())
    assert latest == saved
    assert plan == {BREAKER_KEY: saved}


def test_sync_store_reads_async_points(db_path: Path) -> None:
    async def write() -> RecoveryPoint:
        async with AsyncRecoveryStore(db_path) as async_store:
            return await async_store.save(
                "llm_provider", BREAKER_KEY, "breaker", {"state": "half_open"}, at=BASE_TIME
            )

    saved = asyncio.run(write())
    with RecoveryStore(db_path) as store:
        assert store.latest(BREAKER_KEY) == saved
        assert store.latest_at(BREAKER_KEY, BASE_TIME) == saved


def test_async_store_skips_tampered_point(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tpir.store")

    async def run() -> tuple[RecoveryPoint, RecoveryPoint | None]:
        async with AsyncRecoveryStore(db_path) as async_store:
            good = await async_store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 1})
            bad = await async_store.save("llm_provider", BREAKER_KEY, "breaker", {"n": 2})
            tamper_state(db_path, bad.seq, '{"n":3}')
            return good, await async_store.latest(BREAKER_KEY)

    good, latest = asyncio.run(run())
    assert latest == good
    assert len(store_warnings(caplog)) == 1


def test_async_store_prunes_by_count(db_path: Path) -> None:
    async def run() -> tuple[list[RecoveryPoint], int, list[RecoveryPoint]]:
        async with AsyncRecoveryStore(db_path, retention_count=2) as async_store:
            saved = [
                await async_store.save("llm_provider", BREAKER_KEY, "breaker", {"n": n})
                for n in range(5)
            ]
            deleted = await async_store.prune()
            return saved, deleted, await async_store.list_points()

    saved, deleted, remaining = asyncio.run(run())
    assert deleted == 3
    assert remaining == [saved[4], saved[3]]


def test_async_store_wraps_database_failure(tmp_path: Path) -> None:
    async def save() -> None:
        async with AsyncRecoveryStore(tmp_path) as async_store:
            await async_store.save("llm_provider", BREAKER_KEY, "breaker", {})

    with pytest.raises(StoreError, match="save failed") as raised:
        asyncio.run(save())
    assert isinstance(raised.value.__cause__, SQLAlchemyError)
