"""One provider of an integration: an outside HTTP API and its resolved policies.

Options (``[[integrations.providers]]`` in the file):

- ``name``: unique within the integration, 1 to 64 characters of ``a-z``, ``0-9`` and
  ``_``. Required.
- ``kind``: ``"openai"`` (OpenAI-compatible chat completions), ``"anthropic"``
  (Anthropic-compatible messages) or ``"http"`` (any other HTTP API). Required.
- ``base_url``: ``http://`` or ``https://`` URL that request paths are appended to,
  without user name, password, query or fragment. A trailing ``/`` is removed. Required.
- ``role``: ``"primary"``, ``"secondary"`` or ``"fallback"``. Calls go to primaries
  first, then secondaries, then fallbacks. Default primary.
- ``weight``: share of calls among available providers of the same role, greater than
  0 and at most 1000. Default 1.
- ``api_key_env``: name of the environment variable that contains the API key. The key is
  read when the configuration is loaded. A variable that is unset or empty leaves
  `Provider.api_key` as None, which suits a local test server. API keys are never
  written in the file. Default unset.
- ``model``: model name sent to the provider, for kinds openai and anthropic only.
  Default unset.
- ``timeout``: seconds one attempt may take, greater than 0 and at most the
  integration's ``timeout``. Default: the integration's ``timeout``.
- ``headers``: a table of extra static HTTP headers. Headers that carry credentials
  (``Authorization``, ``X-Api-Key``, cookies, tokens) are rejected, and so are headers
  the HTTP client manages (``Host``, ``Content-Length``, ``Transfer-Encoding``,
  ``Connection``). Default none.
- ``circuit_breaker``, ``retry``, ``health_check``, ``failover``, ``recovery``: tables
  merged key by key over the integration's tables of the same name, which are merged
  over the built-in defaults.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from tpir.config._checks import (
    NAME_PATTERN,
    Bounds,
    FieldChecker,
    describe_value,
    toml_type_name,
)
from tpir.config.breaker import CircuitBreakerConfig
from tpir.config.failover import FailoverConfig
from tpir.config.health import HealthCheckConfig
from tpir.config.recovery import RecoveryConfig
from tpir.config.retry import RetryConfig
from tpir.config.secret import SecretStr

__all__ = ["ENV_VAR_PATTERN", "Provider", "ProviderKind", "ProviderRole"]

ENV_VAR_PATTERN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""Valid values of ``api_key_env``: a portable environment variable name."""

# RFC 9110 field-name: a token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[^\r\n\x00]*")
_CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"}
)
_CREDENTIAL_WORDS: Final = ("auth", "token", "secret", "apikey", "api-key", "password")
_CLIENT_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_USE_API_KEY_ENV: Final = "Put the key in an environment variable and set api_key_env to its name."


class ProviderKind(StrEnum):
    """API dialect a provider speaks."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    HTTP = "http"


class ProviderRole(StrEnum):
    """Place of a provider in the failover order: primaries first, fallbacks last."""

    PRIMARY = "primary"
    SECONDARY = "secondary"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class Provider:
    """A provider with its policies resolved. The module docstring lists each option.

    `api_key` contains the key read from `api_key_env`. Its ``repr()`` and ``str()`` show
    only asterisks, and `SecretStr.get_secret_value` returns the key. `headers` is a
    tuple of (name, value) pairs, which httpx accepts as it is.
    """

    name: str
    kind: ProviderKind
    base_url: str
    timeout: float
    role: ProviderRole = ProviderRole.PRIMARY
    weight: float = 1.0
    api_key_env: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    failover: FailoverConfig = field(default_factory=FailoverConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        check.text("name", pattern=NAME_PATTERN, rule="expected 1 to 64 of a-z, 0-9 and _")
        kind = check.choice("kind", ProviderKind)
        _check_base_url(check)
        check.seconds("timeout", Bounds(0, 3600, min_exclusive=True, unit="s"))
        check.choice("role", ProviderRole)
        check.number("weight", Bounds(0, 1000, min_exclusive=True))
        check.text(
            "api_key_env",
            pattern=ENV_VAR_PATTERN,
            rule="expected an environment variable name (letters, digits and _, not "
            "starting with a digit). The value is not shown because it may be an API key.",
            max_length=256,
            optional=True,
            hide_value=True,
        )
        _check_api_key(check)
        model = check.text("model", max_length=256, optional=True)
        _check_headers(check)
        check.instance("circuit_breaker", CircuitBreakerConfig)
        check.instance("retry", RetryConfig)
        check.instance("health_check", HealthCheckConfig)
        check.instance("failover", FailoverConfig)
        check.instance("recovery", RecoveryConfig)

        if model is not None and kind is ProviderKind.HTTP:
            check.issue(
                "model",
                "model applies only to kind 'openai' or 'anthropic', not to kind 'http'",
                related=("kind",),
            )
        check.raise_if_issues()

    @property
    def header_dict(self) -> dict[str, str]:
        """The extra headers as a new dict."""
        return dict(self.headers)


def _check_base_url(check: FieldChecker) -> None:
    url = check.text("base_url", max_length=2048)
    if url is None:
        return
    expected = "expected an http:// or https:// URL such as https://api.openai.com/v1"
    if any(char.isspace() or ord(char) < 0x20 for char in url):
        check.issue("base_url", f"{describe_value(url)} contains whitespace ({expected})")
        return

    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # Never echo credentials: show the URL with the user part removed.
        host = parts.netloc.rpartition("@")[2]
        check.issue(
            "base_url",
            f"'{parts.scheme}://***@{host}{parts.path}' contains a user name or password. "
            + _USE_API_KEY_ENV,
        )
        return
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        check.issue("base_url", f"{describe_value(url)} is invalid ({expected})")
        return
    try:
        parts.port  # noqa: B018 - reading the property validates the port
    except ValueError:
        check.issue(
            "base_url", f"{describe_value(url)} has an invalid port (valid range: 1 to 65535)"
        )
        return
    if parts.port == 0:
        check.issue("base_url", f"{describe_value(url)} has port 0 (valid range: 1 to 65535)")
        return
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        check.issue(
            "base_url",
            f"{describe_value(url)} has a query or fragment (expected a base URL that "
            "request paths are appended to)",
        )
        return
    check.store("base_url", url.rstrip("/"))


def _check_api_key(check: FieldChecker) -> None:
    value = check.get("api_key")
    if isinstance(value, str):
        value = SecretStr(value)
    if value is None or isinstance(value, SecretStr):
        check.store("api_key", value or None)
        return
    check.issue("api_key", f"expected a SecretStr, a str or None, got {type(value).__name__}")


def _header_pairs(value: Any) -> list[tuple[Any, Any]] | None:
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return None
    pairs = []
    for item in value:
        if not isinstance(item, tuple | list) or len(item) != 2:
            return None
        pairs.append((item[0], item[1]))
    return pairs


def _check_headers(check: FieldChecker) -> None:
    pairs = _header_pairs(check.get("headers"))
    if pairs is None:
        value = check.get("headers")
        check.issue(
            "headers",
            f"expected a table of header names and values, got {describe_value(value)} "
            f"({toml_type_name(value)})",
        )
        return

    seen: set[str] = set()
    valid = True
    for name, value in pairs:
        header_field = f"headers.{name}"
        if not isinstance(name, str) or _HEADER_NAME.fullmatch(name) is None:
            check.issue(header_field, f"{describe_value(name)} is not a valid HTTP header name")
            valid = False
            continue
        lowered = name.lower()
        if lowered in _CREDENTIAL_HEADERS or any(word in lowered for word in _CREDENTIAL_WORDS):
            check.issue(
                header_field,
                f"header {name!r} carries credentials, which must not be written in the "
                f"configuration file (value not shown). {_USE_API_KEY_ENV}",
            )
            valid = False
            continue
        if lowered in _CLIENT_HEADERS:
            check.issue(
                header_field, f"header {name!r} is set by the HTTP client and cannot be set here"
            )
            valid = False
            continue
        if lowered in seen:
            check.issue(header_field, f"header {name!r} is set twice (names are case-insensitive)")
            valid = False
            continue
        seen.add(lowered)
        if not isinstance(value, str) or _HEADER_VALUE.fullmatch(value) is None:
            check.issue(
                header_field,
                f"expected a header value string without line breaks, got "
                f"{describe_value(value)} ({toml_type_name(value)})",
            )
            valid = False

    if valid:
        check.store("headers", tuple((str(name), str(value)) for name, value in pairs))
