"""Loading the configuration: the shipped files, merging, API keys and node paths."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from tpir.config import (
    DEFAULT_SOURCE,
    BackoffKind,
    ConfigError,
    ErrorKind,
    HttpMethod,
    JitterMode,
    ProviderKind,
    ProviderRole,
    SecretStr,
    WindowType,
    default_config_text,
    load_config,
    parse_config,
)

pytestmark = pytest.mark.timeout(30)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config" / "example.toml"
SECRET = "sk-test-7f3a9c0e2b5d4e1f"

# A clean environment, so that the host's TPIR_DATA_DIR or API keys never leak in.
BASE_ENV = {"HOME": "/home/tpir-test"}

TWO_PROVIDERS = """
[[integrations]]
name = "llm_provider"
tier = 1
timeout = 30

[[integrations.providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:18081/v1"
api_key_env = "TEST_OPENAI_KEY"

[[integrations.providers]]
name = "anthropic"
kind = "anthropic"
role = "secondary"
base_url = "http://127.0.0.1:18082/v1"
"""


def parse(text: str, **env: str):
    return parse_config(text, environ={**BASE_ENV, **env})


def with_integration_table(table: str) -> str:
    """Put a table of the llm_provider integration before its providers."""
    return TWO_PROVIDERS.replace("timeout = 30\n", f"timeout = 30\n{table}\n")


# The embedded default and the example


def test_default_loads_llm_provider():
    config = load_config(environ=BASE_ENV)
    integration = config.integration("llm_provider")

    assert config.source == DEFAULT_SOURCE
    assert integration.tier == 1
    assert [p.name for p in integration.providers] == ["openai", "anthropic"]


def test_default_providers_are_openai_then_anthropic():
    integration = load_config(environ=BASE_ENV).integration("llm_provider")
    openai = integration.provider("openai")
    anthropic = integration.provider("anthropic")

    assert openai.kind is ProviderKind.OPENAI
    assert openai.role is ProviderRole.PRIMARY
    assert anthropic.kind is ProviderKind.ANTHROPIC
    assert anthropic.role is ProviderRole.SECONDARY


def test_default_uses_loopback_and_demo_timings():
    config = load_config(environ=BASE_ENV)
    integration = config.integration("llm_provider")

    assert config.node.listens_on_loopback
    for provider in integration.providers:
        assert provider.base_url.startswith("http://127.0.0.1:")
        assert provider.timeout == 0.5
        assert provider.health_check.interval == 0.5
        assert provider.circuit_breaker.failure_threshold == 3


def test_default_text_matches_load_config():
    from_text = parse_config(default_config_text(), environ=BASE_ENV)
    from_load = load_config(environ=BASE_ENV)

    assert from_text == from_load


def test_example_loads_both_integrations():
    config = load_config(EXAMPLE, environ=BASE_ENV)

    assert [i.name for i in config.integrations] == ["llm_provider", "payments"]
    assert config.source == str(EXAMPLE)


def test_example_payments_uses_http_kind():
    payments = load_config(EXAMPLE, environ=BASE_ENV).integration("payments")

    assert {p.kind for p in payments.providers} == {ProviderKind.HTTP}
    assert payments.providers_with_role("primary")[0].name == "primary_processor"
    assert payments.providers_with_role(ProviderRole.FALLBACK)[0].name == "backup_processor"


def test_example_payments_skips_read_timeout():
    payments = load_config(EXAMPLE, environ=BASE_ENV).integration("payments")
    retry = payments.provider("primary_processor").retry

    assert not retry.is_retryable(ErrorKind.READ_TIMEOUT)
    assert retry.is_retryable(503)


def test_example_anthropic_overrides_only_its_keys():
    integration = load_config(EXAMPLE, environ=BASE_ENV).integration("llm_provider")
    openai = integration.provider("openai")
    anthropic = integration.provider("anthropic")

    assert openai.retry.max_retries == 2
    assert anthropic.retry.max_retries == 3
    assert anthropic.retry.max_delay == openai.retry.max_delay
    assert anthropic.headers == (("anthropic-version", "2023-06-01"),)


# Merging provider sections over integration sections


def test_provider_section_merges_over_integration_section():
    text = with_integration_table("[integrations.retry]\nmax_retries = 5\ninitial_delay = 1")
    text = text.replace(
        'api_key_env = "TEST_OPENAI_KEY"',
        'api_key_env = "TEST_OPENAI_KEY"\n[integrations.providers.retry]\ninitial_delay = 2',
    )
    integration = parse(text).integration("llm_provider")
    openai = integration.provider("openai").retry
    anthropic = integration.provider("anthropic").retry

    assert openai.max_retries == 5
    assert openai.initial_delay == 2.0
    assert openai.max_delay == 30.0
    assert anthropic.max_retries == 5
    assert anthropic.initial_delay == 1.0


def test_probe_backoff_merges_key_by_key():
    text = with_integration_table("[integrations.recovery.probe_backoff]\nmax_delay = 600")
    text += "[integrations.providers.recovery.probe_backoff]\ninitial_delay = 3\n"
    integration = parse(text).integration("llm_provider")
    anthropic = integration.provider("anthropic").recovery.probe_backoff
    openai = integration.provider("openai").recovery.probe_backoff

    assert anthropic.initial_delay == 3.0
    assert anthropic.max_delay == 600.0
    assert openai.initial_delay == 1.0
    assert openai.max_delay == 600.0


def test_provider_failure_rate_replaces_integration_threshold():
    text = with_integration_table("[integrations.circuit_breaker]\nfailure_threshold = 7")
    text += "[integrations.providers.circuit_breaker]\nfailure_rate_threshold = 40\n"
    integration = parse(text).integration("llm_provider")
    anthropic = integration.provider("anthropic").circuit_breaker
    openai = integration.provider("openai").circuit_breaker

    assert anthropic.failure_rate_threshold == 40.0
    assert anthropic.failure_threshold is None
    assert anthropic.uses_failure_rate
    assert openai.failure_threshold == 7
    assert openai.failure_rate_threshold is None


def test_breaker_defaults_to_five_consecutive_failures():
    breaker = parse(TWO_PROVIDERS).integration("llm_provider").provider("openai").circuit_breaker

    assert breaker.failure_threshold == 5
    assert not breaker.uses_failure_rate
    assert breaker.window_type is WindowType.COUNT


def test_provider_timeout_defaults_to_integration_timeout():
    integration = parse(TWO_PROVIDERS).integration("llm_provider")

    assert integration.provider("openai").timeout == 30.0


# Values normalized while loading


def test_retry_values_are_normalized():
    text = TWO_PROVIDERS + (
        '[integrations.providers.retry]\nbackoff = "linear"\njitter = 0.25\n'
        'retryable = ["read_timeout", 503]\n'
    )
    retry = parse(text).integration("llm_provider").provider("anthropic").retry

    assert retry.backoff is BackoffKind.LINEAR
    assert retry.jitter == 0.25
    assert retry.retryable_kinds == {ErrorKind.READ_TIMEOUT}
    assert retry.retryable_statuses == {503}
    assert retry.is_retryable("read_timeout")
    assert not retry.is_retryable(500)


def test_default_retryable_failures():
    retry = parse(TWO_PROVIDERS).integration("llm_provider").provider("openai").retry

    assert retry.jitter is JitterMode.FULL
    assert retry.retryable_statuses == {429, 500, 502, 503, 504, 529}
    assert retry.retryable_kinds == {
        ErrorKind.CONNECT_ERROR,
        ErrorKind.CONNECT_TIMEOUT,
        ErrorKind.READ_TIMEOUT,
    }


def test_health_check_alias_and_single_status():
    text = TWO_PROVIDERS + (
        '[integrations.providers.health_check]\nmethod = "head"\nunhealthy_threshold = 4\n'
        "expected_status = 204\n"
    )
    health = parse(text).integration("llm_provider").provider("anthropic").health_check

    assert health.method is HttpMethod.HEAD
    assert health.retries == 4
    assert health.unhealthy_threshold == 4
    assert health.expected_status == (204,)


def test_headers_become_name_value_pairs():
    text = TWO_PROVIDERS + 'headers = { "anthropic-version" = "2023-06-01", "X-Team" = "ml" }\n'
    provider = parse(text).integration("llm_provider").provider("anthropic")

    assert provider.headers == (("anthropic-version", "2023-06-01"), ("X-Team", "ml"))
    assert provider.header_dict == {"anthropic-version": "2023-06-01", "X-Team": "ml"}


def test_base_url_trailing_slash_removed():
    text = TWO_PROVIDERS.replace("18082/v1", "18082/v1/")
    provider = parse(text).integration("llm_provider").provider("anthropic")

    assert provider.base_url == "http://127.0.0.1:18082/v1"


# API keys


def test_api_key_read_from_environment():
    config = parse(TWO_PROVIDERS, TEST_OPENAI_KEY=SECRET)
    provider = config.integration("llm_provider").provider("openai")

    assert isinstance(provider.api_key, SecretStr)
    assert provider.api_key.get_secret_value() == SECRET
    assert provider.api_key_env == "TEST_OPENAI_KEY"


def test_api_key_hidden_from_repr_and_str():
    config = parse(TWO_PROVIDERS, TEST_OPENAI_KEY=SECRET)
    provider = config.integration("llm_provider").provider("openai")

    assert SECRET not in repr(provider)
    assert SECRET not in str(provider)
    assert SECRET not in repr(config)
    assert SECRET not in f"{provider.api_key}"
    assert "**********" in repr(provider)


def test_api_key_never_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="tpir")
    parse(TWO_PROVIDERS, TEST_OPENAI_KEY=SECRET)

    assert SECRET not in caplog.text


def test_missing_api_key_variable_leaves_key_none():
    provider = parse(TWO_PROVIDERS).integration("llm_provider").provider("openai")

    assert provider.api_key is None
    assert provider.api_key_env == "TEST_OPENAI_KEY"


def test_empty_api_key_variable_leaves_key_none():
    config = parse(TWO_PROVIDERS, TEST_OPENAI_KEY="")
    provider = config.integration("llm_provider").provider("openai")

    assert provider.api_key is None


def test_config_survives_pickle_with_key():
    config = parse(TWO_PROVIDERS, TEST_OPENAI_KEY=SECRET)
    copy = pickle.loads(pickle.dumps(config))
    key = copy.integration("llm_provider").provider("openai").api_key

    assert copy == config
    assert key is not None
    assert key.get_secret_value() == SECRET


# Node paths and options


def test_node_defaults_under_home():
    node = parse(TWO_PROVIDERS).node

    assert node.data_dir == Path("/home/tpir-test/.local/state/tpir")
    assert node.database == "/home/tpir-test/.local/state/tpir/recovery.sqlite3"
    assert node.admin_port == 0
    assert node.max_frame_bytes == 16 * 1024 * 1024
    assert node.checkpoint_interval == 0.5
    assert node.recovery_point_retention.count == 100


def test_data_dir_from_tpir_data_dir(tmp_path):
    node = parse(TWO_PROVIDERS, TPIR_DATA_DIR=str(tmp_path / "state")).node

    assert node.data_dir == tmp_path / "state"
    assert node.database == str(tmp_path / "state" / "recovery.sqlite3")


def test_data_dir_from_xdg_state_home(tmp_path):
    node = parse(TWO_PROVIDERS, XDG_STATE_HOME=str(tmp_path)).node

    assert node.data_dir == tmp_path / "tpir"


def test_relative_paths_resolved_from_config_file(tmp_path):
    config_file = tmp_path / "etc" / "tpir.toml"
    config_file.parent.mkdir()
    config_file.write_text(
        '[node]\ndata_dir = "state"\ndatabase = "points/rp.sqlite3"\n' + TWO_PROVIDERS,
        encoding="utf-8",
    )
    node = load_config(config_file, environ=BASE_ENV).node

    assert node.data_dir == tmp_path / "etc" / "state"
    assert node.database == str(tmp_path / "etc" / "state" / "points" / "rp.sqlite3")


def test_sqlite_url_kept_as_given():
    text = '[node]\ndatabase = "sqlite+aiosqlite:////var/lib/tpir/rp.db"\n' + TWO_PROVIDERS
    node = parse(text).node

    assert node.database == "sqlite+aiosqlite:////var/lib/tpir/rp.db"
    assert node.database_is_url


def test_retention_integer_is_count():
    node = parse("[node]\nrecovery_point_retention = 20\n" + TWO_PROVIDERS).node

    assert node.recovery_point_retention.count == 20
    assert node.recovery_point_retention.max_age is None


def test_log_level_case_insensitive():
    node = parse('[node]\nlog_level = "debug"\n' + TWO_PROVIDERS).node

    assert node.log_level == "DEBUG"


def test_remote_listen_address_logs_warning(caplog):
    caplog.set_level(logging.WARNING, logger="tpir")
    node = parse('[node]\nlisten_address = "0.0.0.0"\n' + TWO_PROVIDERS).node

    assert not node.listens_on_loopback
    assert "unpickles" in caplog.text


def test_no_integrations_is_valid():
    config = parse("[node]\n")

    assert config.integrations == ()


# Lookups and copies


def test_unknown_integration_lookup_names_known_ones():
    config = parse(TWO_PROVIDERS)

    with pytest.raises(KeyError, match="llm_provider"):
        config.integration("payments")


def test_with_provider_replaces_base_url():
    config = parse(TWO_PROVIDERS)
    changed = config.with_provider("llm_provider", "openai", base_url="http://127.0.0.1:40001/v1")

    assert changed.integration("llm_provider").provider("openai").base_url.endswith(":40001/v1")
    assert config.integration("llm_provider").provider("openai").base_url.endswith(":18081/v1")
    assert changed.integration("llm_provider").provider("anthropic") == config.integration(
        "llm_provider"
    ).provider("anthropic")


def test_with_provider_validates_change():
    config = parse(TWO_PROVIDERS)

    with pytest.raises(ConfigError, match="base_url"):
        config.with_provider("llm_provider", "openai", base_url="ftp://127.0.0.1/")
