"""Configuration errors: each names the field path, the bad value and the valid range."""

from __future__ import annotations

import pytest

from tpir.config import (
    CircuitBreakerConfig,
    ConfigError,
    ConfigIssue,
    HealthCheckConfig,
    Provider,
    RetryConfig,
    load_config,
    parse_config,
)

pytestmark = pytest.mark.timeout(30)

SECRET = "sk-test-7f3a9c0e2b5d4e1f"

TWO_PROVIDERS = """
[[integrations]]
name = "llm_provider"
tier = 1
timeout = 30

[[integrations.providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:18081/v1"

[[integrations.providers]]
name = "anthropic"
kind = "anthropic"
role = "secondary"
base_url = "http://127.0.0.1:18082/v1"
"""

INTEGRATION = "integrations.llm_provider"
OPENAI = f"{INTEGRATION}.providers.openai"
ANTHROPIC = f"{INTEGRATION}.providers.anthropic"


def config_error(text: str, source: str = "<string>") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source, environ={"HOME": "/home/tpir-test"})
    return info.value


def issue_at(error: ConfigError, path: str) -> ConfigIssue:
    matches = [issue for issue in error.issues if issue.path == path]
    assert matches, f"no issue at {path}; issues: {[str(issue) for issue in error.issues]}"
    return matches[0]


def with_integration_table(table: str) -> str:
    """Put a table of the llm_provider integration before its providers."""
    return TWO_PROVIDERS.replace("timeout = 30\n", f"timeout = 30\n{table}\n")


# Wrong type and out of range


def test_wrong_type_names_value_and_type():
    error = config_error(TWO_PROVIDERS.replace("timeout = 30", 'timeout = "fast"'))
    message = issue_at(error, f"{INTEGRATION}.timeout").message

    assert "'fast'" in message
    assert "number of seconds" in message
    assert "string" in message


def test_boolean_rejected_for_integer():
    error = config_error(TWO_PROVIDERS.replace("tier = 1", "tier = true"))
    message = issue_at(error, f"{INTEGRATION}.tier").message

    assert "expected an integer" in message
    assert "boolean" in message


def test_nan_rejected_for_seconds():
    error = config_error(TWO_PROVIDERS.replace("timeout = 30", "timeout = nan"))

    assert "finite" in issue_at(error, f"{INTEGRATION}.timeout").message


def test_out_of_range_names_value_and_range():
    error = config_error("[node]\nadmin_port = 70000\n" + TWO_PROVIDERS)
    message = issue_at(error, "node.admin_port").message

    assert "70000" in message
    assert "0 to 65535" in message


def test_checkpoint_interval_above_one_rejected():
    error = config_error("[node]\ncheckpoint_interval = 1.5\n" + TWO_PROVIDERS)
    message = issue_at(error, "node.checkpoint_interval").message

    assert "1.5" in message
    assert "at most 1 s" in message


def test_tier_out_of_range():
    error = config_error(TWO_PROVIDERS.replace("tier = 1", "tier = 4"))

    assert "1 to 3" in issue_at(error, f"{INTEGRATION}.tier").message


def test_provider_max_delay_below_initial_delay():
    text = TWO_PROVIDERS + "[integrations.providers.retry]\ninitial_delay = 0.5\nmax_delay = 0.1\n"
    message = issue_at(config_error(text), f"{ANTHROPIC}.retry.max_delay").message

    assert "0.1" in message
    assert "initial_delay (0.5 s)" in message


def test_inherited_conflict_points_at_integration_table():
    text = with_integration_table("[integrations.retry]\ninitial_delay = 5") + (
        "[integrations.providers.retry]\nmax_delay = 1\n"
    )
    message = issue_at(config_error(text), f"{ANTHROPIC}.retry.max_delay").message

    assert f"initial_delay is set at {INTEGRATION}.retry.initial_delay" in message


def test_conflict_with_default_names_default():
    text = TWO_PROVIDERS + "[integrations.providers.retry]\ninitial_delay = 60\n"
    message = issue_at(config_error(text), f"{ANTHROPIC}.retry.initial_delay").message

    assert "max_delay is the built-in default" in message


def test_inherited_bad_value_reported_once():
    error = config_error(with_integration_table("[integrations.retry]\nmax_retries = 500"))

    assert [str(issue.path) for issue in error.issues] == [f"{INTEGRATION}.retry.max_retries"]
    assert "0 to 100" in error.issues[0].message


def test_health_timeout_must_be_below_interval():
    text = TWO_PROVIDERS + "[integrations.providers.health_check]\ninterval = 1\ntimeout = 1\n"
    message = issue_at(config_error(text), f"{ANTHROPIC}.health_check.timeout").message

    assert "less than interval (1 s)" in message


def test_provider_timeout_above_integration_timeout():
    text = TWO_PROVIDERS + "timeout = 45\n"
    message = issue_at(config_error(text), f"{ANTHROPIC}.timeout").message

    assert "45" in message
    assert "integration timeout, 30 s" in message


def test_retryable_unknown_kind_lists_valid_kinds():
    text = TWO_PROVIDERS + '[integrations.providers.retry]\nretryable = ["timeout", 503]\n'
    message = issue_at(config_error(text), f"{ANTHROPIC}.retry.retryable[0]").message

    assert "'timeout'" in message
    assert "'read_timeout'" in message


def test_retryable_cancelled_rejected():
    text = TWO_PROVIDERS + '[integrations.providers.retry]\nretryable = [503, "cancelled"]\n'
    message = issue_at(config_error(text), f"{ANTHROPIC}.retry.retryable[1]").message

    assert "never retried" in message


def test_retryable_status_out_of_range():
    text = TWO_PROVIDERS + "[integrations.providers.retry]\nretryable = [200]\n"
    message = issue_at(config_error(text), f"{ANTHROPIC}.retry.retryable[0]").message

    assert "400 to 599" in message


def test_jitter_fraction_above_one_rejected():
    text = TWO_PROVIDERS + "[integrations.providers.retry]\njitter = 1.5\n"
    message = issue_at(config_error(text), f"{ANTHROPIC}.retry.jitter").message

    assert "1.5" in message
    assert "fraction from 0 to 1" in message


# Unknown keys


def test_unknown_key_lists_allowed_keys():
    text = with_integration_table("[integrations.retry]\nmax_retry = 3")
    message = issue_at(config_error(text), f"{INTEGRATION}.retry.max_retry").message

    assert "unknown key 'max_retry'" in message
    assert "max_delay, max_retries, multiplier" in message
    assert "Did you mean 'max_retries'?" in message


def test_unknown_table_suggests_integrations():
    text = TWO_PROVIDERS.replace("[[integrations]]", "[[integration]]", 1)
    message = issue_at(config_error(text), "integration").message

    assert "Did you mean 'integrations'?" in message


def test_unknown_key_in_nested_table():
    text = TWO_PROVIDERS + "[integrations.providers.recovery.probe_backoff]\nbase = 2\n"
    message = issue_at(config_error(text), f"{ANTHROPIC}.recovery.probe_backoff.base").message

    assert "allowed keys: initial_delay, jitter, max_delay, multiplier" in message


def test_integrations_as_single_table_rejected():
    error = config_error('[integrations]\nname = "x"\n')

    assert "array of tables" in issue_at(error, "integrations").message


# Duplicate names


def test_duplicate_integration_name():
    text = TWO_PROVIDERS + TWO_PROVIDERS
    message = issue_at(config_error(text), "integrations[1].name").message

    assert "duplicate integration name 'llm_provider'" in message
    assert "integrations[0]" in message


def test_duplicate_provider_name():
    text = TWO_PROVIDERS.replace('name = "anthropic"', 'name = "openai"')
    message = issue_at(config_error(text), f"{INTEGRATION}.providers[1].name").message

    assert "duplicate provider name 'openai'" in message
    assert "providers[0]" in message


# Forbidden combinations


def test_both_failure_rules_in_one_table_rejected():
    text = TWO_PROVIDERS + (
        "[integrations.providers.circuit_breaker]\nfailure_threshold = 3\n"
        "failure_rate_threshold = 50\n"
    )
    issue = issue_at(config_error(text), f"{ANTHROPIC}.circuit_breaker.failure_rate_threshold")

    assert "failure_threshold and failure_rate_threshold cannot both be set" in issue.message
    assert issue.related == (f"{ANTHROPIC}.circuit_breaker.failure_threshold",)


def test_window_seconds_with_count_window_rejected():
    text = TWO_PROVIDERS + (
        '[integrations.providers.circuit_breaker]\nwindow_type = "count"\nwindow_seconds = 30\n'
    )
    message = issue_at(config_error(text), f"{ANTHROPIC}.circuit_breaker.window_seconds").message

    assert "window_type is 'time'" in message
    assert "'count'" in message


def test_multiplier_with_constant_backoff_rejected():
    text = TWO_PROVIDERS + (
        '[integrations.providers.retry]\nbackoff = "constant"\nmultiplier = 3\n'
    )
    message = issue_at(config_error(text), f"{ANTHROPIC}.retry.multiplier").message

    assert "backoff is 'exponential'" in message


def test_retries_and_alias_both_set_rejected():
    text = TWO_PROVIDERS + (
        "[integrations.providers.health_check]\nretries = 2\nunhealthy_threshold = 3\n"
    )
    message = issue_at(config_error(text), f"{ANTHROPIC}.health_check.unhealthy_threshold").message

    assert "set retries or unhealthy_threshold" in message


def test_model_with_http_kind_rejected():
    text = TWO_PROVIDERS.replace('kind = "anthropic"', 'kind = "http"\nmodel = "m"')
    issue = issue_at(config_error(text), f"{ANTHROPIC}.model")

    assert "not to kind 'http'" in issue.message
    assert issue.related == (f"{ANTHROPIC}.kind",)


def test_minimum_calls_above_window_size_rejected():
    text = TWO_PROVIDERS + "[integrations.providers.circuit_breaker]\nwindow_size = 5\n"
    message = issue_at(config_error(text), f"{ANTHROPIC}.circuit_breaker.window_size").message

    assert "minimum_calls (10) must be at most window_size (5)" in message
    assert "minimum_calls is the built-in default" in message


def test_integration_without_primary_rejected():
    text = TWO_PROVIDERS.replace('kind = "openai"', 'kind = "openai"\nrole = "fallback"')
    message = issue_at(config_error(text), f"{INTEGRATION}.providers").message

    assert "role 'primary'" in message
    assert "openai=fallback" in message


# Credentials in the file


def test_api_key_in_file_rejected_without_echo():
    text = TWO_PROVIDERS + f'api_key = "{SECRET}"\n'
    error = config_error(text)
    message = issue_at(error, f"{ANTHROPIC}.api_key").message

    assert "api_key_env" in message
    assert SECRET not in str(error)


def test_token_key_in_integration_rejected():
    text = TWO_PROVIDERS.replace("tier = 1", f'tier = 1\nauth_token = "{SECRET}"')
    error = config_error(text)

    assert "api_key_env" in issue_at(error, f"{INTEGRATION}.auth_token").message
    assert SECRET not in str(error)


def test_authorization_header_rejected_without_echo():
    text = TWO_PROVIDERS + f'headers = {{ Authorization = "Bearer {SECRET}" }}\n'
    error = config_error(text)
    message = issue_at(error, f"{ANTHROPIC}.headers.Authorization").message

    assert "api_key_env" in message
    assert SECRET not in str(error)


def test_x_api_key_header_rejected():
    text = TWO_PROVIDERS + f'headers = {{ "x-api-key" = "{SECRET}" }}\n'
    error = config_error(text)

    assert "api_key_env" in issue_at(error, f"{ANTHROPIC}.headers.x-api-key").message
    assert SECRET not in str(error)


def test_client_managed_header_rejected():
    text = TWO_PROVIDERS + 'headers = { Host = "example.com" }\n'
    message = issue_at(config_error(text), f"{ANTHROPIC}.headers.Host").message

    assert "set by the HTTP client" in message


def test_base_url_password_masked():
    text = TWO_PROVIDERS.replace(
        "http://127.0.0.1:18082/v1", f"https://user:{SECRET}@api.anthropic.com/v1"
    )
    error = config_error(text)
    message = issue_at(error, f"{ANTHROPIC}.base_url").message

    assert "https://***@api.anthropic.com/v1" in message
    assert SECRET not in str(error)


def test_api_key_env_invalid_name_not_echoed():
    text = TWO_PROVIDERS + f'api_key_env = "{SECRET}"\n'
    error = config_error(text)
    message = issue_at(error, f"{ANTHROPIC}.api_key_env").message

    assert "environment variable name" in message
    assert SECRET not in str(error)


# Other invalid values


def test_base_url_scheme_rejected():
    text = TWO_PROVIDERS.replace("http://127.0.0.1:18082/v1", "ftp://127.0.0.1/v1")
    message = issue_at(config_error(text), f"{ANTHROPIC}.base_url").message

    assert "'ftp://127.0.0.1/v1'" in message
    assert "http:// or https://" in message


def test_base_url_query_rejected():
    text = TWO_PROVIDERS.replace("18082/v1", "18082/v1?x=1")

    assert "query" in issue_at(config_error(text), f"{ANTHROPIC}.base_url").message


def test_in_memory_database_rejected():
    error = config_error('[node]\ndatabase = "sqlite://"\n' + TWO_PROVIDERS)

    assert "in-memory" in issue_at(error, "node.database").message


def test_non_sqlite_database_rejected():
    error = config_error('[node]\ndatabase = "postgresql://db.internal/tpir"\n' + TWO_PROVIDERS)
    message = issue_at(error, "node.database").message

    assert "'postgresql'" in message
    assert "sqlite+aiosqlite://" in message


def test_invalid_listen_address_rejected():
    error = config_error('[node]\nlisten_address = "not an address"\n' + TWO_PROVIDERS)

    assert "'not an address'" in issue_at(error, "node.listen_address").message


def test_invalid_enum_value_lists_choices():
    text = TWO_PROVIDERS.replace('kind = "anthropic"', 'kind = "claude"')
    message = issue_at(config_error(text), f"{ANTHROPIC}.kind").message

    assert "'claude'" in message
    assert "'openai', 'anthropic', 'http'" in message


def test_missing_required_keys_reported():
    text = TWO_PROVIDERS.replace('kind = "anthropic"\n', "").replace(
        'base_url = "http://127.0.0.1:18082/v1"\n', ""
    )
    error = config_error(text)

    assert issue_at(error, f"{ANTHROPIC}.kind").message == "missing required key"
    assert issue_at(error, f"{ANTHROPIC}.base_url").message == "missing required key"


def test_integration_without_providers_rejected():
    error = config_error('[[integrations]]\nname = "payments"\ntier = 2\n')

    assert "at least one provider" in issue_at(error, "integrations.payments.providers").message


def test_invalid_integration_name_uses_index_path():
    text = TWO_PROVIDERS.replace('name = "llm_provider"', 'name = "LLM Provider"')
    message = issue_at(config_error(text), "integrations[0].name").message

    assert "'LLM Provider'" in message
    assert "a-z, 0-9 and _" in message


# Reporting


def test_errors_collected_in_one_pass():
    text = "[node]\nadmin_port = -1\n" + TWO_PROVIDERS.replace("tier = 1", "tier = 0")
    text += "[integrations.providers.retry]\nmax_retries = -2\n"
    error = config_error(text, source="node.toml")
    paths = {issue.path for issue in error.issues}

    assert paths == {"node.admin_port", f"{INTEGRATION}.tier", f"{ANTHROPIC}.retry.max_retries"}
    assert str(error).startswith("invalid configuration in node.toml (3 errors):")


def test_invalid_toml_names_source_and_line():
    error = config_error("[node\n", source="broken.toml")

    assert str(error).startswith("invalid configuration in broken.toml: invalid TOML")
    assert "line 1" in str(error)


def test_missing_file_raises_config_error(tmp_path):
    missing = tmp_path / "absent.toml"

    with pytest.raises(ConfigError, match="failed to read the file") as info:
        load_config(missing)
    assert info.value.source == str(missing)


# Direct construction validates too


def test_direct_retry_config_validated():
    with pytest.raises(ConfigError) as info:
        RetryConfig(max_retries=-1, backoff="sideways")

    assert [issue.path for issue in info.value.issues] == ["max_retries", "backoff"]


def test_direct_breaker_both_rules_rejected():
    with pytest.raises(ConfigError, match="cannot both be set"):
        CircuitBreakerConfig(failure_threshold=3, failure_rate_threshold=50)


def test_direct_health_check_normalizes_method():
    assert HealthCheckConfig(method="post").method == "POST"


def test_direct_provider_requires_valid_base_url():
    with pytest.raises(ConfigError, match="base_url"):
        Provider(name="p", kind="http", base_url="127.0.0.1:80", timeout=1.0)
