"""TPIR configuration: TOML in, frozen and validated dataclasses out.

`load_config` reads a file, or the embedded default (``tpir/config/default.toml``) when
given no path, and returns a `Config`. Every dataclass validates its fields when it is
built, and loading raises one `ConfigError` that lists every problem with its field path,
bad value and valid range. ``config/README.md`` documents every key.

Example::

    from tpir.config import load_config

    config = load_config("config/example.toml")
    openai = config.integration("llm_provider").provider("openai")
    openai.retry.max_retries       # 3
    openai.api_key                 # SecretStr('**********') or None
"""

from __future__ import annotations

from tpir.config.backoff import BackoffKind, JitterMode
from tpir.config.breaker import DEFAULT_FAILURE_THRESHOLD, CircuitBreakerConfig, WindowType
from tpir.config.errors import ConfigError, ConfigIssue
from tpir.config.failover import FailoverConfig
from tpir.config.health import HealthCheckConfig, HttpMethod
from tpir.config.load import DEFAULT_SOURCE, default_config_text, load_config, parse_config
from tpir.config.model import Config, Integration
from tpir.config.node import LogFormat, NodeConfig, RetentionConfig, default_data_dir
from tpir.config.provider import Provider, ProviderKind, ProviderRole
from tpir.config.recovery import ProbeBackoff, RecoveryConfig
from tpir.config.retry import DEFAULT_RETRYABLE, ErrorKind, RetryConfig
from tpir.config.secret import SecretStr

__all__ = [
    "DEFAULT_FAILURE_THRESHOLD",
    "DEFAULT_RETRYABLE",
    "DEFAULT_SOURCE",
    "BackoffKind",
    "CircuitBreakerConfig",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "ErrorKind",
    "FailoverConfig",
    "HealthCheckConfig",
    "HttpMethod",
    "Integration",
    "JitterMode",
    "LogFormat",
    "NodeConfig",
    "ProbeBackoff",
    "Provider",
    "ProviderKind",
    "ProviderRole",
    "RecoveryConfig",
    "RetentionConfig",
    "RetryConfig",
    "SecretStr",
    "WindowType",
    "default_config_text",
    "default_data_dir",
    "load_config",
    "parse_config",
]
