"""The demo's pure parts: the provider timeline, the verdict, the configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tpir.config import CircuitBreakerConfig, WindowType, load_config
from tpir.demo.availability import ProviderTimeline
from tpir.demo.config_file import DEMO_INTEGRATION, config_to_toml, demo_config, write_config
from tpir.demo.drivers import Outcome
from tpir.demo.processes import find_child, tree_pids
from tpir.demo.report import summarize
from tpir.demo.traffic import CallRecord

pytestmark = pytest.mark.timeout(30)

PROVIDERS = ["openai", "anthropic"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answered(number: int, sent: float, answered_at: float, outcome: Outcome) -> CallRecord:
    return CallRecord(number, 0, sent, answered_at=answered_at, outcome=outcome)


def ok(provider: str, first_try: str | None = None) -> Outcome:
    attempts = [{"provider": first_try or provider}, {"provider": provider}]
    return Outcome(True, value={"provider": provider, "attempts": attempts})


FAILED = Outcome(False, code="all_providers_failed", message="every provider failed")


def test_timeline_outage_needs_every_provider_down() -> None:
    clock = FakeClock()
    timeline = ProviderTimeline(PROVIDERS, clock)

    timeline.set_healthy("openai", False)

    assert timeline.outages == []
    assert timeline.healthy_now() == ["anthropic"]


def test_timeline_outage_spans_until_first_recovery() -> None:
    clock = FakeClock()
    timeline = ProviderTimeline(PROVIDERS, clock)
    timeline.set_healthy("openai", False)
    clock.now = 110.0
    timeline.set_healthy("anthropic", False)
    clock.now = 115.0
    timeline.set_healthy("anthropic", True)

    assert [(o.start, o.end) for o in timeline.outages] == [(110.0, 115.0)]
    assert timeline.overlaps_outage(109.0, 110.0)
    assert timeline.overlaps_outage(114.0, 120.0)
    assert not timeline.overlaps_outage(115.5, 120.0)
    assert not timeline.overlaps_outage(100.0, 109.9)


def test_timeline_open_outage_overlaps_later_calls() -> None:
    clock = FakeClock()
    timeline = ProviderTimeline(PROVIDERS, clock)
    for name in PROVIDERS:
        timeline.set_healthy(name, False)

    assert timeline.overlaps_outage(150.0, 151.0)
    assert not timeline.overlaps_outage(90.0, 99.0)


def test_timeline_rejects_unknown_provider() -> None:
    timeline = ProviderTimeline(PROVIDERS, FakeClock())

    with pytest.raises(KeyError, match="unknown provider 'mistral'"):
        timeline.set_healthy("mistral", False)


def test_summary_failure_outside_outage_fails_demo() -> None:
    clock = FakeClock()
    timeline = ProviderTimeline(PROVIDERS, clock)
    records = [answered(1, 100.0, 100.2, ok("openai")), answered(2, 101.0, 101.5, FAILED)]

    summary = summarize(records, ["steady"], timeline, PROVIDERS)

    assert summary.passed is False
    assert summary.unexcused == 1
    assert any("call 2 failed while a healthy provider existed" in line for line in summary.lines)


def test_summary_failure_during_outage_is_excused() -> None:
    clock = FakeClock()
    timeline = ProviderTimeline(PROVIDERS, clock)
    clock.now = 101.2
    for name in PROVIDERS:
        timeline.set_healthy(name, False)
    records = [answered(1, 100.0, 100.2, ok("openai")), answered(2, 101.0, 101.5, FAILED)]

    summary = summarize(records, ["steady"], timeline, PROVIDERS)

    assert summary.passed is True
    assert summary.failed == 1
    assert summary.unexcused == 0


def test_summary_unanswered_call_fails_demo() -> None:
    timeline = ProviderTimeline(PROVIDERS, FakeClock())
    records = [CallRecord(1, 0, 100.0)]

    summary = summarize(records, ["steady"], timeline, PROVIDERS)

    assert summary.passed is False
    assert summary.unanswered == 1


def test_summary_counts_failovers_and_resends() -> None:
    timeline = ProviderTimeline(PROVIDERS, FakeClock())
    resent = answered(2, 100.0, 100.4, ok("anthropic"))
    resent.resent_after = "actor_crashed"
    records = [answered(1, 100.0, 100.3, ok("anthropic", first_try="openai")), resent]

    summary = summarize(records, ["steady"], timeline, PROVIDERS)

    assert summary.failovers == 1
    assert summary.resent == 1
    assert summary.answered == 2


def test_demo_config_points_providers_at_urls(tmp_path: Path) -> None:
    config = demo_config("http://127.0.0.1:1111/v1", "http://127.0.0.1:2222/v1", tmp_path)

    integration = config.integration(DEMO_INTEGRATION)
    assert integration.provider("openai").base_url == "http://127.0.0.1:1111/v1"
    assert integration.provider("anthropic").base_url == "http://127.0.0.1:2222/v1"
    assert config.node.data_dir == tmp_path
    assert config.node.database == str(tmp_path / "recovery.sqlite3")


def test_write_config_loads_back_equal(tmp_path: Path) -> None:
    config = demo_config("http://127.0.0.1:1111/v1", "http://127.0.0.1:2222/v1", tmp_path)

    path = write_config(config, tmp_path / "node.toml")

    assert load_config(path) == config


def test_write_config_never_writes_api_key(tmp_path: Path) -> None:
    environ = {"TPIR_DEMO_OPENAI_API_KEY": "sk-demo-secret-value"}
    config = load_config(environ=environ)

    text = config_to_toml(config)

    assert config.integration(DEMO_INTEGRATION).provider("openai").api_key is not None
    assert "sk-demo-secret-value" not in text
    assert 'api_key_env = "TPIR_DEMO_OPENAI_API_KEY"' in text


def test_write_config_time_window_round_trips(tmp_path: Path) -> None:
    config = demo_config("http://127.0.0.1:1111/v1", "http://127.0.0.1:2222/v1", tmp_path)
    breaker = CircuitBreakerConfig(
        failure_rate_threshold=50.0, window_type=WindowType.TIME, window_seconds=5.0
    )
    config = config.with_provider(DEMO_INTEGRATION, "openai", circuit_breaker=breaker)

    path = write_config(config, tmp_path / "node.toml")

    assert load_config(path) == config
    assert "window_size" not in path.read_text().split("[[integrations.providers]]")[1]


def test_write_config_headers_round_trip(tmp_path: Path) -> None:
    config = demo_config("http://127.0.0.1:1111/v1", "http://127.0.0.1:2222/v1", tmp_path)
    config = config.with_provider(DEMO_INTEGRATION, "openai", headers=(("X-Team", "demo"),))

    path = write_config(config, tmp_path / "node.toml")

    assert load_config(path) == config


def test_outcome_from_error_map_keeps_code() -> None:
    outcome = Outcome.from_error_map({"code": "lost", "message": "gone", "details": {"a": 1}})

    assert outcome == Outcome(False, code="lost", message="gone", details={"a": 1})


def test_outcome_from_non_map_error_is_invalid_reply() -> None:
    outcome = Outcome.from_error_map("boom")

    assert outcome.code == "invalid_reply"


TREE = {
    "id": "tpir",
    "pid": 10,
    "children": [
        {
            "id": "integrations",
            "pid": 11,
            "supervisor": {
                "id": "integrations",
                "pid": 11,
                "children": [{"id": "router", "pid": 12}],
            },
        },
        {"id": "bridge", "pid": 13},
    ],
}


def test_find_child_walks_nested_supervisors() -> None:
    assert find_child(TREE, "tpir/integrations/router") == {"id": "router", "pid": 12}
    assert find_child(TREE, "tpir/bridge") == {"id": "bridge", "pid": 13}


def test_find_child_missing_part_returns_none() -> None:
    assert find_child(TREE, "tpir/integrations/health") is None
    assert find_child(TREE, "other/bridge") is None
    assert find_child(TREE, "tpir/bridge/deeper") is None


def test_tree_pids_collects_every_level() -> None:
    assert tree_pids(TREE) == {10, 11, 12, 13}


def test_call_record_without_attempts_is_no_failover() -> None:
    record = answered(1, 0.0, 0.1, Outcome(True, value={"provider": "openai"}))

    assert record.provider == "openai"
    assert record.failed_over is False
