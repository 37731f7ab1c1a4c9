"""Per-provider routing rules from the configuration, request checks and idempotency.

`ProviderRules` contains what one call needs to know about a provider: its role, weight,
per-try timeout, retry policy and ejection settings, converted from `tpir.config` to the
value objects of `actors.policy`.

Idempotency decides whether a failed request may be sent again (see
`actors.policy.retry`). A request with an idempotency key is always idempotent, because
the provider deduplicates it by the key, which is sent unchanged on every attempt.
Without a key:

- openai and anthropic chat requests count as idempotent. They are POSTs, but a chat
  completion creates no resource and changes no state at the provider: sending one
  twice costs tokens and nothing else, so failing over after a timeout is the right
  trade for an LLM call. (This is a deliberate choice; an integration whose requests
  must never be repeated uses the http kind or sends an idempotency key.)
- an http request is non-idempotent when its method is POST or PATCH, and idempotent
  for GET, HEAD, PUT, DELETE and OPTIONS (RFC 9110, section 9.2.2).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from actors.adapters import create_adapter
from actors.adapters.base import Adapter, validate_idempotency_key
from actors.policy.backoff import Backoff
from actors.policy.ejection import EjectionSettings
from actors.policy.retry import ErrorKind, RetryPolicy
from tpir.config import FailoverConfig, Provider, RetryConfig

__all__ = [
    "MAX_DEADLINE",
    "NON_IDEMPOTENT_METHODS",
    "ProviderRules",
    "RequestCheck",
    "build_validators",
    "check_call",
    "ejection_settings",
    "is_idempotent",
    "retry_policy",
    "rules_for",
]

logger = logging.getLogger(__name__)

MAX_DEADLINE: Final = 3600.0
"""Largest accepted `IntegrationCall.deadline` in seconds, the bound of integration timeouts."""

NON_IDEMPOTENT_METHODS: Final = frozenset({"POST", "PATCH"})

_CHAT_KINDS: Final = frozenset({"openai", "anthropic"})


def retry_policy(config: RetryConfig) -> RetryPolicy:
    """Convert a provider's ``retry`` section to the policy that `decide` applies."""
    backoff = Backoff(
        kind=str(config.backoff),
        initial_delay=config.initial_delay,
        max_delay=config.max_delay,
        multiplier=config.multiplier,
        jitter=config.jitter if isinstance(config.jitter, float) else str(config.jitter),
    )
    return RetryPolicy(
        max_retries=config.max_retries,
        backoff=backoff,
        retryable=frozenset(ErrorKind(str(kind)) for kind in config.retryable_kinds),
        retryable_statuses=config.retryable_statuses,
    )


def ejection_settings(config: FailoverConfig) -> EjectionSettings:
    """Convert a provider's ``failover`` section to outlier ejection settings."""
    return EjectionSettings(
        consecutive_failures=config.consecutive_failures,
        base_ejection_time=config.base_ejection_time,
        max_ejection_time=config.max_ejection_time,
    )


@dataclass(frozen=True)
class ProviderRules:
    """Routing settings of one provider, in the value objects of `actors.policy`.

    ``timeout`` is the per-try timeout in seconds. ``weight`` is None when the weight
    should not reorder the role (see `from_provider`). ``half_open_permitted_calls`` is
    the number of concurrent probes the router lets through a half-open breaker.
    """

    name: str
    kind: str
    role: str
    timeout: float
    retry: RetryPolicy
    ejection: EjectionSettings
    half_open_permitted_calls: int = 1
    weight: float | None = None

    @classmethod
    def from_provider(cls, provider: Provider, *, weighted: bool) -> ProviderRules:
        """Build the rules of ``provider``.

        ``weighted`` tells whether weights reorder the provider's role. Pass False when
        every provider of the role has the default weight 1, so that the role keeps
        configuration order ("the first healthy primary").
        """
        return cls(
            name=provider.name,
            kind=str(provider.kind),
            role=str(provider.role),
            timeout=provider.timeout,
            retry=retry_policy(provider.retry),
            ejection=ejection_settings(provider.failover),
            half_open_permitted_calls=provider.circuit_breaker.half_open_permitted_calls,
            weight=provider.weight if weighted else None,
        )

    @property
    def retry_budget(self) -> int:
        """Retries of this provider allowed within one call, after its first try."""
        return self.retry.max_retries


def rules_for(providers: tuple[Provider, ...]) -> dict[str, ProviderRules]:
    """Return the rules of every provider, keyed by name, in configuration order.

    NOTE: the configuration cannot tell a weight of 1 that was set from the default, so
    a role whose providers all have weight 1 keeps configuration order instead of
    sharing calls at random.
    """
    weighted_roles = {
        str(provider.role) for provider in providers if not math.isclose(provider.weight, 1.0)
    }
    return {
        provider.name: ProviderRules.from_provider(
            provider, weighted=str(provider.role) in weighted_roles
        )
        for provider in providers
    }


def is_idempotent(
    request: Mapping[str, Any], kinds: Iterable[str], idempotency_key: str | None
) -> bool:
    """Return whether ``request`` may be sent again after it may have reached a provider.

    ``kinds`` are the provider kinds that may serve the request. The module docstring
    states the rule.
    """
    if idempotency_key is not None:
        return True
    if any(kind in _CHAT_KINDS for kind in kinds):
        return True
    method = request.get("method")
    return not (isinstance(method, str) and method.upper() in NON_IDEMPOTENT_METHODS)


@dataclass(frozen=True)
class RequestCheck:
    """The result of `check_call`.

    ``error`` is the reason the whole call is invalid, or None. ``eligible`` lists the
    providers whose adapter accepts the request, in configuration order, and
    ``rejected`` maps each other provider to its adapter's reason.
    """

    error: str | None
    eligible: tuple[str, ...] = ()
    rejected: Mapping[str, str] | None = None


def build_validators(providers: tuple[Provider, ...]) -> dict[str, Adapter]:
    """Build one adapter per provider to validate requests with, without its API key.

    The adapters never send anything: the router only calls their `build_request`.
    """
    return {
        provider.name: create_adapter(
            str(provider.kind),
            base_url=provider.base_url,
            name=provider.name,
            model=provider.model,
            headers=provider.header_dict,
        )
        for provider in providers
    }


def check_call(
    request: Any,
    deadline: Any,
    idempotency_key: Any,
    validators: Mapping[str, Adapter],
) -> RequestCheck:
    """Check one `IntegrationCall`'s fields against the integration's providers.

    The call is invalid when the request is not a mapping, the deadline is not a number
    of seconds in (0, `MAX_DEADLINE`], the idempotency key cannot be sent as a header, or
    no provider's adapter accepts the request.
    """
    if not isinstance(request, Mapping):
        return RequestCheck(f"request: expected a mapping, got {type(request).__name__}")
    if deadline is not None and (
        isinstance(deadline, bool)
        or not isinstance(deadline, int | float)
        or not math.isfinite(deadline)
        or not 0 < deadline <= MAX_DEADLINE
    ):
        return RequestCheck(
            f"deadline: invalid value {deadline!r}; expected seconds greater than 0 and at "
            f"most {MAX_DEADLINE:g}, or None for the integration's timeout"
        )
    try:
        validate_idempotency_key(idempotency_key)
    except ValueError as exc:
        return RequestCheck(str(exc))

    eligible: list[str] = []
    rejected: dict[str, str] = {}
    for name, adapter in validators.items():
        try:
            adapter.build_request(request, idempotency_key=idempotency_key)
        except (ValueError, TypeError) as exc:
            rejected[name] = f"{adapter.kind} request rejected: {exc}"
        else:
            eligible.append(name)
    if not eligible:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in rejected.items())
        return RequestCheck(f"the request fits no provider of this integration ({reasons})")
    return RequestCheck(None, tuple(eligible), rejected)
