"""Names and paths of the actors of one integration in the supervision tree.

The tree of the node::

    tpir                                one_for_one
    └── integrations                    one_for_one
        └── <integration>               rest_for_one
            ├── breakers                one_for_one
            │   └── <provider>          CircuitBreakerActor
            ├── providers               one_for_one
            │   └── <provider>          ProviderActor
            ├── health                  one_for_one
            │   └── <provider>          HealthCheckerActor
            └── router                  RouterActor

Actors reach each other by path (``GenActor.send_named``), so a message finds
the current instance of its target across restarts.
"""

from __future__ import annotations

__all__ = [
    "ROOT",
    "integration_path",
    "breaker_path",
    "provider_path",
    "health_path",
    "router_path",
    "actor_key",
]

ROOT = "tpir"


def integration_path(integration: str, root: str = ROOT) -> str:
    return f"{root}/integrations/{integration}"


def breaker_path(integration: str, provider: str, root: str = ROOT) -> str:
    return f"{integration_path(integration, root)}/breakers/{provider}"


def provider_path(integration: str, provider: str, root: str = ROOT) -> str:
    return f"{integration_path(integration, root)}/providers/{provider}"


def health_path(integration: str, provider: str, root: str = ROOT) -> str:
    return f"{integration_path(integration, root)}/health/{provider}"


def router_path(integration: str, root: str = ROOT) -> str:
    return f"{integration_path(integration, root)}/router"


def actor_key(integration: str, kind: str, provider: str | None = None) -> str:
    """Return the recovery-point key of an actor, stable across restarts.

    For example ``llm_provider/openai/breaker`` or ``llm_provider/router``.
    """
    return f"{integration}/{provider}/{kind}" if provider else f"{integration}/{kind}"
