"""The whole configuration: the node and its integrations, each with its providers.

An integration (``[[integrations]]`` in the file) is one outside service that erlmcp
calls, such as an LLM provider or a payment processor, reachable through one or more
providers. Options:

- ``name``: unique, 1 to 64 characters of ``a-z``, ``0-9`` and ``_``. Required.
- ``tier``: criticality, 1 (critical) to 3 (best effort). Required.
- ``timeout``: overall deadline of one request in seconds, across every attempt and
  failover, greater than 0 and at most 3600. Default 60.
- ``providers``: at least one, with unique names and at least one of role primary.
- ``circuit_breaker``, ``retry``, ``health_check``, ``failover``, ``recovery``: defaults
  for the integration's providers (see `tpir.config.provider`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from tpir.config._checks import NAME_PATTERN, Bounds, FieldChecker, format_number
from tpir.config.node import NodeConfig
from tpir.config.provider import Provider, ProviderRole

__all__ = ["DEFAULT_INTEGRATION_TIMEOUT", "INTEGRATION_TIMEOUT_BOUNDS", "Config", "Integration"]

DEFAULT_INTEGRATION_TIMEOUT: Final = 60.0
INTEGRATION_TIMEOUT_BOUNDS: Final = Bounds(0, 3600, min_exclusive=True, unit="s")


def _check_sequence(check: FieldChecker, field_name: str, cls: type[Any]) -> tuple[Any, ...] | None:
    value = check.get(field_name)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        check.issue(
            field_name, f"expected a sequence of {cls.__name__}, got {type(value).__name__}"
        )
        return None
    items = tuple(value)
    for index, item in enumerate(items):
        if not isinstance(item, cls):
            check.issue(
                f"{field_name}[{index}]", f"expected a {cls.__name__}, got {type(item).__name__}"
            )
            return None
    check.store(field_name, items)
    return items


@dataclass(frozen=True)
class Integration:
    """One outside service and its providers. The module docstring lists each option."""

    name: str
    tier: int
    providers: tuple[Provider, ...]
    timeout: float = DEFAULT_INTEGRATION_TIMEOUT

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        check.text("name", pattern=NAME_PATTERN, rule="expected 1 to 64 of a-z, 0-9 and _")
        check.integer("tier", Bounds(1, 3))
        timeout = check.seconds("timeout", INTEGRATION_TIMEOUT_BOUNDS)
        providers = _check_sequence(check, "providers", Provider)

        if providers is not None:
            _check_providers(check, providers, timeout)
        check.raise_if_issues()

    def provider(self, name: str) -> Provider:
        """Return the provider called ``name``, or raise KeyError naming the known ones."""
        for provider in self.providers:
            if provider.name == name:
                return provider
        known = ", ".join(provider.name for provider in self.providers)
        raise KeyError(f"integration {self.name!r} has no provider {name!r} (known: {known})")

    def providers_with_role(self, role: ProviderRole | str) -> tuple[Provider, ...]:
        """Return the providers of one role, in file order."""
        selected = ProviderRole(role)
        return tuple(provider for provider in self.providers if provider.role is selected)


def _check_providers(
    check: FieldChecker, providers: tuple[Provider, ...], timeout: float | None
) -> None:
    if not providers:
        check.issue("providers", "at least one provider is required")
        return

    first_index: dict[str, int] = {}
    for index, provider in enumerate(providers):
        if provider.name in first_index:
            check.issue(
                f"providers[{index}].name",
                f"duplicate provider name {provider.name!r} (also used by "
                f"providers[{first_index[provider.name]}])",
            )
            continue
        first_index[provider.name] = index
        if timeout is not None and provider.timeout > timeout:
            check.issue(
                f"providers.{provider.name}.timeout",
                f"{format_number(provider.timeout)} s is out of range (valid range: greater "
                f"than 0 s and at most the integration timeout, {format_number(timeout)} s)",
                related=("timeout",),
            )

    if not any(provider.role is ProviderRole.PRIMARY for provider in providers):
        roles = ", ".join(f"{provider.name}={provider.role.value}" for provider in providers)
        check.issue("providers", f"at least one provider needs role 'primary' (found {roles})")


@dataclass(frozen=True)
class Config:
    """The validated configuration of one node.

    `source` names where it was loaded from and is left out of equality.
    """

    node: NodeConfig = field(default_factory=NodeConfig)
    integrations: tuple[Integration, ...] = ()
    source: str = field(default="<string>", compare=False)

    def __post_init__(self) -> None:
        check = FieldChecker(self)
        check.instance("node", NodeConfig)
        integrations = _check_sequence(check, "integrations", Integration)

        if integrations is not None:
            first_index: dict[str, int] = {}
            for index, integration in enumerate(integrations):
                if integration.name in first_index:
                    check.issue(
                        f"integrations[{index}].name",
                        f"duplicate integration name {integration.name!r} (also used by "
                        f"integrations[{first_index[integration.name]}])",
                    )
                else:
                    first_index[integration.name] = index
        check.raise_if_issues()

    def integration(self, name: str) -> Integration:
        """Return the integration called ``name``, or raise KeyError naming the known ones."""
        for integration in self.integrations:
            if integration.name == name:
                return integration
        known = ", ".join(integration.name for integration in self.integrations) or "none"
        raise KeyError(f"no integration {name!r} in {self.source} (known: {known})")

    def with_provider(self, integration: str, provider: str, **changes: Any) -> Config:
        """Return a copy with fields of one provider replaced, validated again.

        Use it to point ``base_url`` at a server whose port is known only at run time,
        such as a local test server. Raises KeyError for an unknown integration or
        provider, and `ConfigError` if the changed provider is invalid.
        """
        old_integration = self.integration(integration)
        old_provider = old_integration.provider(provider)
        new_provider = dataclasses.replace(old_provider, **changes)
        providers = tuple(
            new_provider if candidate is old_provider else candidate
            for candidate in old_integration.providers
        )
        new_integration = dataclasses.replace(old_integration, providers=providers)
        integrations = tuple(
            new_integration if candidate is old_integration else candidate
            for candidate in self.integrations
        )
        return dataclasses.replace(self, integrations=integrations)
