"""Build the node's supervision tree from the configuration.

Strategies, and why (see ``docs/architecture.md`` for the whole picture):

* ``tpir`` (root, one_for_one): integrations and node services are
  independent of each other.
* ``integrations`` (one_for_one): one integration's trouble never restarts
  another's actors.
* ``<integration>`` (rest_for_one, children in the order breakers,
  providers, health, router): later children depend on earlier ones. If the
  breakers supervisor itself gives up, everything after it restarts with it,
  so no actor keeps routing on a breaker view that has vanished; a crash of
  the router restarts only the router, and a crashed provider actor never
  touches its breaker's state, which lives in another subtree.
* ``breakers``, ``providers``, ``health`` (one_for_one): one actor per
  provider, independent of its siblings.

The router and the provider actors, which every call passes through, keep a
standby process so that their restart skips the fork.
"""

from __future__ import annotations

from actors.breaker_actor import CircuitBreakerActor
from actors.health_actor import HealthCheckerActor
from actors.names import ROOT
from actors.provider_actor import ProviderActor
from actors.router_actor import RouterActor
from supervisors import ChildSpec, RestartBackoff, Supervisor, SupFlags
from tpir.config import Config, Integration, NodeConfig

__all__ = ["root_flags", "root_children", "integration_spec", "ROOT"]

# A crash-looping worker waits a little before its restart, so that it does
# not use up its supervisor's restart intensity within milliseconds.
_WORKER_BACKOFF = RestartBackoff(minimum=0.0, maximum=0.5, jitter=0.2)


def _worker(
    child_id: str, actor: type, *args: object, shutdown: int = 2000, standby: bool = False
) -> ChildSpec:
    return ChildSpec(
        child_id, actor, args=args, shutdown=shutdown, backoff=_WORKER_BACKOFF, standby=standby
    )


def _group(child_id: str, children: list[ChildSpec]) -> ChildSpec:
    flags = SupFlags("one_for_one", intensity=10, period=10)
    return ChildSpec(child_id, Supervisor, args=(flags, children), type="supervisor")


def integration_spec(integration: Integration, node: NodeConfig) -> ChildSpec:
    """Return the child spec of one integration's supervisor."""
    name = integration.name
    providers = integration.providers
    children = [
        _group(
            "breakers", [_worker(p.name, CircuitBreakerActor, name, p, node) for p in providers]
        ),
        _group(
            "providers",
            [_worker(p.name, ProviderActor, name, p, node, standby=True) for p in providers],
        ),
        _group("health", [_worker(p.name, HealthCheckerActor, name, p, node) for p in providers]),
        _worker("router", RouterActor, integration, node, standby=True),
    ]
    flags = SupFlags("rest_for_one", intensity=5, period=10)
    return ChildSpec(name, Supervisor, args=(flags, children), type="supervisor")


def root_flags() -> SupFlags:
    return SupFlags("one_for_one", intensity=3, period=10)


def root_children(config: Config) -> list[ChildSpec]:
    """Return the children of the root supervisor ``tpir``."""
    integrations = [integration_spec(item, config.node) for item in config.integrations]
    flags = SupFlags("one_for_one", intensity=10, period=10)
    return [ChildSpec("integrations", Supervisor, args=(flags, integrations), type="supervisor")]
