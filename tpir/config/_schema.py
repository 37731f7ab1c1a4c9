"""Mapping between the TOML tables and the configuration dataclasses.

Most keys are the dataclass field names. This module lists the exceptions: nested
tables, alternative key names, keys that replace each other across levels, and keys
that apply only under a given mode.
"""

from __future__ import annotations

import dataclasses
import re
from enum import StrEnum
from typing import Any, Final

from tpir.config.backoff import BackoffKind
from tpir.config.breaker import CircuitBreakerConfig, WindowType
from tpir.config.failover import FailoverConfig
from tpir.config.health import HealthCheckConfig
from tpir.config.node import NodeConfig, RetentionConfig
from tpir.config.provider import Provider
from tpir.config.recovery import ProbeBackoff, RecoveryConfig
from tpir.config.retry import RetryConfig

__all__ = [
    "ALIASES",
    "APPLIES_ONLY_WHEN",
    "INTEGRATION_KEYS",
    "NESTED_TABLES",
    "NODE_KEYS",
    "PROVIDER_KEYS",
    "REPLACES",
    "RETENTION_KEYS",
    "SECTIONS",
    "TOP_LEVEL_KEYS",
    "field_names",
    "looks_like_secret",
]


def field_names(cls: type[Any]) -> frozenset[str]:
    """Return the init field names of a dataclass."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


SECTIONS: Final[dict[str, type[Any]]] = {
    "circuit_breaker": CircuitBreakerConfig,
    "retry": RetryConfig,
    "health_check": HealthCheckConfig,
    "failover": FailoverConfig,
    "recovery": RecoveryConfig,
}
"""Policy sections: set per integration, overridable per provider."""

NESTED_TABLES: Final[dict[tuple[str, str], type[Any]]] = {
    ("recovery", "probe_backoff"): ProbeBackoff,
}
"""Keys of a section whose value is a table built into its own dataclass."""

ALIASES: Final[dict[tuple[str, str], str]] = {
    ("health_check", "unhealthy_threshold"): "retries",
}
"""Other names accepted for a key. Setting both names in one table is an error."""

REPLACES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("circuit_breaker", "failure_threshold"): ("failure_rate_threshold",),
    ("circuit_breaker", "failure_rate_threshold"): ("failure_threshold",),
}
"""Keys that state one choice: setting one removes the others inherited from below."""

APPLIES_ONLY_WHEN: Final[dict[tuple[str, str], tuple[str, type[StrEnum], frozenset[str]]]] = {
    ("circuit_breaker", "window_size"): ("window_type", WindowType, frozenset({"count"})),
    ("circuit_breaker", "window_seconds"): ("window_type", WindowType, frozenset({"time"})),
    ("retry", "multiplier"): ("backoff", BackoffKind, frozenset({"exponential"})),
}
"""Keys that are ignored unless another key (the mode, of the given enum type) of the
same table has one of these values.

Both keys set in one table with a mismatch is an error, because the first key would
have no effect. A mode inherited from another table is not checked.
"""

TOP_LEVEL_KEYS: Final = frozenset({"node", "integrations"})
NODE_KEYS: Final = field_names(NodeConfig)
RETENTION_KEYS: Final = field_names(RetentionConfig)
INTEGRATION_KEYS: Final = frozenset({"name", "tier", "timeout", "providers"}) | frozenset(SECTIONS)
# api_key contains the key read from api_key_env and is never read from the file.
PROVIDER_KEYS: Final = field_names(Provider) - {"api_key"}

_SECRET_KEY = re.compile(
    r"(^|_)(api_?key|apikey|key|token|secret|password|passwd|credentials?|bearer)(_|$)"
)


def looks_like_secret(key: str) -> bool:
    """Return whether an unknown key looks like it contains a credential (``api_key``,
    ``token``, ``client_secret``). Names ending in ``_env`` name a variable instead."""
    lowered = key.lower()
    return not lowered.endswith("_env") and _SECRET_KEY.search(lowered) is not None
