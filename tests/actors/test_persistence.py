"""The checkpointer on real SQLite files in tmp_path, with a fake clock for the throttling."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.persistence import Checkpointer
from tests.actors.breaker_health_tree import point_rows
from tpir.config import NodeConfig, RetentionConfig
from tpir.store import InvalidStateError

pytestmark = pytest.mark.timeout(30)

KEY = "llm_provider/openai/breaker"
START = 1_700_000_000.0


class FakeClock:
    """Epoch seconds that move only when the test moves them."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "points.sqlite3"


def make_node(database: Path, *, count: int = 100, interval: float = 0.5) -> NodeConfig:
    return NodeConfig(
        data_dir=database.parent,
        database=str(database),
        checkpoint_interval=interval,
        recovery_point_retention=RetentionConfig(count=count),
    )


@pytest.fixture
def checkpointer(database: Path, clock: FakeClock) -> Iterator[Checkpointer]:
    saver = Checkpointer(make_node(database), "llm_provider", KEY, "breaker", clock=clock)
    yield saver
    saver.close()


def states(database: Path) -> list[dict[str, Any]]:
    """Return the stored states of KEY, newest first."""
    return [row["state"] for row in point_rows(database, KEY)]


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "actors.persistence" and record.levelno == logging.ERROR
    ]


def test_checkpointer_opens_store_lazily(database: Path, clock: FakeClock) -> None:
    saver = Checkpointer(make_node(database), "llm_provider", KEY, "breaker", clock=clock)
    assert not database.exists()
    saver.load()
    assert database.exists()
    saver.close()


def test_checkpointer_load_without_points_is_none(checkpointer: Checkpointer) -> None:
    assert checkpointer.load() is None


def test_checkpointer_first_save_writes_at_once(checkpointer: Checkpointer, database: Path) -> None:
    assert checkpointer.save({"failures": 1}) is True
    assert states(database) == [{"failures": 1}]


def test_checkpointer_keeps_change_pending_within_interval(
    checkpointer: Checkpointer, database: Path, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 0.1
    assert checkpointer.save({"failures": 2}) is False
    assert checkpointer.pending()
    assert checkpointer.flush_delay() == pytest.approx(0.4)
    assert states(database) == [{"failures": 1}]


def test_checkpointer_flush_writes_pending_state(
    checkpointer: Checkpointer, database: Path, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 0.1
    checkpointer.save({"failures": 2})
    assert checkpointer.flush() is True
    assert not checkpointer.pending()
    assert states(database) == [{"failures": 2}, {"failures": 1}]


def test_checkpointer_writes_after_interval(
    checkpointer: Checkpointer, database: Path, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 0.5
    assert checkpointer.save({"failures": 2}) is True
    assert states(database)[0] == {"failures": 2}


def test_checkpointer_urgent_save_writes_at_once(
    checkpointer: Checkpointer, database: Path, clock: FakeClock
) -> None:
    checkpointer.save({"state": "closed"})
    clock.now += 0.01
    assert checkpointer.save({"state": "open"}, urgent=True) is True
    assert states(database)[0] == {"state": "open"}


def test_checkpointer_skips_state_equal_to_last_written(
    checkpointer: Checkpointer, database: Path, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 5
    assert checkpointer.save({"failures": 1}, urgent=True) is True
    assert len(states(database)) == 1


def test_checkpointer_drops_pending_when_state_returns(
    checkpointer: Checkpointer, database: Path, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 0.1
    checkpointer.save({"failures": 2})
    checkpointer.save({"failures": 1})
    assert not checkpointer.pending()
    checkpointer.flush()
    assert len(states(database)) == 1


def test_checkpointer_point_time_is_save_time(
    checkpointer: Checkpointer, database: Path, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 0.1
    checkpointer.save({"failures": 2})
    clock.now += 0.3
    checkpointer.flush()
    assert point_rows(database, KEY)[0]["created_at"] == START + 0.1


def test_checkpointer_pending_state_is_a_copy(
    checkpointer: Checkpointer, database: Path, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 0.1
    state = {"failures": 2}
    checkpointer.save(state)
    state["failures"] = 99
    checkpointer.flush()
    assert states(database)[0] == {"failures": 2}


def test_checkpointer_load_returns_newest_state(
    database: Path, checkpointer: Checkpointer, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 1
    checkpointer.save({"failures": 2})
    other = Checkpointer(make_node(database), "llm_provider", KEY, "breaker", clock=clock)
    assert other.load() == {"failures": 2}
    other.close()


def test_checkpointer_load_skips_tampered_point(
    database: Path, checkpointer: Checkpointer, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 1
    checkpointer.save({"failures": 2})
    newest = point_rows(database, KEY)[0]
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute(
            "UPDATE recovery_points SET state = ? WHERE seq = ?",
            ('{"failures":0}', newest["seq"]),
        )
        connection.commit()

    other = Checkpointer(make_node(database), "llm_provider", KEY, "breaker", clock=clock)
    assert other.load() == {"failures": 1}
    other.close()


def test_checkpointer_load_at_returns_point_before_time(
    checkpointer: Checkpointer, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 10
    checkpointer.save({"failures": 2})
    assert checkpointer.load_at(START + 5) == ({"failures": 1}, START)


def test_checkpointer_load_at_before_first_point_is_none(
    checkpointer: Checkpointer,
) -> None:
    checkpointer.save({"failures": 1})
    assert checkpointer.load_at(START - 1) is None


def test_checkpointer_rejects_state_not_json_safe(checkpointer: Checkpointer) -> None:
    with pytest.raises(InvalidStateError, match="tuple"):
        checkpointer.save({"window": (1, 2)})


def test_checkpointer_store_failure_keeps_state_pending(
    database: Path, checkpointer: Checkpointer, caplog: pytest.LogCaptureFixture
) -> None:
    # SQLite cannot open a folder as a database file, so every write fails until it goes.
    database.mkdir()
    caplog.set_level(logging.INFO, logger="actors.persistence")
    assert checkpointer.save({"state": "open"}, urgent=True) is False
    assert checkpointer.pending()
    assert checkpointer.flush_delay() == 0.5


def test_checkpointer_logs_store_failure_once_per_streak(
    database: Path, checkpointer: Checkpointer, caplog: pytest.LogCaptureFixture
) -> None:
    database.mkdir()
    caplog.set_level(logging.INFO, logger="actors.persistence")
    checkpointer.save({"state": "open"}, urgent=True)
    checkpointer.flush()
    checkpointer.flush()
    assert len(error_records(caplog)) == 1


def test_checkpointer_retries_after_store_failure(
    database: Path, checkpointer: Checkpointer, caplog: pytest.LogCaptureFixture
) -> None:
    database.mkdir()
    caplog.set_level(logging.INFO, logger="actors.persistence")
    checkpointer.save({"state": "open"}, urgent=True)
    database.rmdir()
    assert checkpointer.flush() is True
    assert states(database) == [{"state": "open"}]
    assert any("written again" in record.getMessage() for record in caplog.records)


def test_checkpointer_load_failure_returns_none(
    database: Path, checkpointer: Checkpointer, caplog: pytest.LogCaptureFixture
) -> None:
    database.mkdir()
    caplog.set_level(logging.INFO, logger="actors.persistence")
    assert checkpointer.load() is None
    assert len(error_records(caplog)) == 1


def test_checkpointer_prunes_every_n_writes(database: Path, clock: FakeClock) -> None:
    node = make_node(database, count=3)
    saver = Checkpointer(node, "llm_provider", KEY, "breaker", clock=clock, prune_every=5)
    for failures in range(4):
        clock.now += 1
        saver.save({"failures": failures})
    assert len(states(database)) == 4
    clock.now += 1
    saver.save({"failures": 4})
    assert [state["failures"] for state in states(database)] == [4, 3, 2]
    saver.close()


def test_checkpointer_close_writes_pending_state(
    database: Path, checkpointer: Checkpointer, clock: FakeClock
) -> None:
    checkpointer.save({"failures": 1})
    clock.now += 0.1
    checkpointer.save({"failures": 2})
    checkpointer.close()
    assert states(database)[0] == {"failures": 2}


def test_checkpointer_rejects_invalid_prune_every(database: Path) -> None:
    with pytest.raises(ValueError, match="prune_every"):
        Checkpointer(make_node(database), "llm_provider", KEY, "breaker", prune_every=0)
