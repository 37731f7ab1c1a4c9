"""``HealthCheckerActor``: active health checks and the health status of one provider.

The actor is a thin shell around `actors.policy.ProviderStatus`. It sends one health
request at a time to ``<base_url><health_check.path>`` with the configured method and
counts it as passed when the response status is one of ``expected_status``. A check never
takes longer than ``health_check.timeout`` in total, because the request runs under one
asyncio deadline. The actor blocks while a check runs, which is acceptable since it does
nothing else and the timeout is shorter than ``health_check.interval``.

Schedule of the checks, by status:

- healthy: one check every ``health_check.interval`` seconds, counted from the start of the
  previous check. The first check runs as soon as the actor has started.
- failed: one recovery probe at the policy's ``next_probe_at``, which follows
  ``recovery.probe_backoff``.
- testing: one check after ``probe_backoff.delay(failed_probes)``, so a provider that just
  came back is not checked harder than it was probed.
- permanently failed: no checks until an operator sends `ResetProvider`.

A `BreakerUpdate` with state ``open`` marks the provider failed
(``record_breaker_opened``). Every status change is saved at once as a recovery point,
and counter changes within ``checkpoint_interval``, through `actors.persistence`. Every
status change is sent to the router as a `StatusUpdate`. A restarted actor resumes its
status, counters and next probe time from the newest valid point.

``recovery.max_attempts = 0`` means probing never stops. The policy needs a finite count,
so the actor passes it 1000000 and moves the provider back to testing if it ever reaches
that count.

With ``health_check.enabled = false`` the actor sends no requests and ignores breaker
updates, so the provider stays healthy. Otherwise a provider marked failed by its breaker
could never be probed back into service.

Calls it handles: `StateRequest` (the current `StatusUpdate`), `Describe` (a dict of the
status, counters, last check and next check time), `Restore` (reload the newest point at
or before ``at``, reply its time or None) and `ResetProvider` (reply True, or the error
``invalid_state`` unless the provider is permanently failed).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from actors.adapters import ANTHROPIC_VERSION
from actors.messages import (
    BreakerUpdate,
    Describe,
    ResetProvider,
    Restore,
    StateRequest,
    StatusUpdate,
)
from actors.names import actor_key, router_path
from actors.persistence import Checkpointer, CheckpointFlush
from actors.policy import Backoff, HealthStatus, ProviderStatus, ProviderStatusSettings
from supervisors import NOREPLY, Caller, GenActor
from tpir.config import HealthCheckConfig, NodeConfig, Provider, ProviderKind, RecoveryConfig

__all__ = [
    "CHECKPOINT_KIND",
    "CheckResult",
    "HealthCheckerActor",
    "UNLIMITED_ATTEMPTS",
    "health_request_headers",
    "run_check",
    "status_settings",
]

logger = logging.getLogger(__name__)

CHECKPOINT_KIND = "provider_status"
"""The ``kind`` of the status's recovery points, whose actor key is
``<integration>/<provider>/provider_status``."""

UNLIMITED_ATTEMPTS = 1_000_000
"""``max_attempts`` passed to the policy for ``recovery.max_attempts = 0``: its maximum."""

_CHECK = "health-check"


def status_settings(health: HealthCheckConfig, recovery: RecoveryConfig) -> ProviderStatusSettings:
    """Build the policy's settings from a provider's ``health_check`` and ``recovery``."""
    backoff = recovery.probe_backoff
    return ProviderStatusSettings(
        unhealthy_threshold=health.retries,
        recovery_threshold=recovery.recovery_threshold,
        max_attempts=recovery.max_attempts or UNLIMITED_ATTEMPTS,
        probe_backoff=Backoff(
            "exponential",
            initial_delay=backoff.initial_delay,
            max_delay=backoff.max_delay,
            multiplier=backoff.multiplier,
            jitter=backoff.jitter,
        ),
    )


@dataclass(frozen=True)
class CheckResult:
    """Result of one health request: passed or not, the HTTP status, the error, seconds taken."""

    passed: bool
    status: int | None
    error: str | None
    duration: float
    at: float


def health_request_headers(provider: Provider) -> dict[str, str]:
    """Return the headers of a health request: static headers plus the provider's credentials.

    The credentials are those its adapter sends, because health endpoints such as
    OpenAI's ``/models`` need them.
    """
    headers = provider.header_dict
    if provider.api_key is None:
        return headers
    key = provider.api_key.get_secret_value()
    if provider.kind is ProviderKind.ANTHROPIC:
        headers["x-api-key"] = key
        headers["anthropic-version"] = ANTHROPIC_VERSION
    else:
        headers["Authorization"] = f"Bearer {key}"
    return headers


async def run_check(client: httpx.AsyncClient, provider: Provider) -> CheckResult:
    """Send one health request and judge it. Network errors become a failed result."""
    config = provider.health_check
    url = provider.base_url + config.path
    started_at = time.time()
    started = time.monotonic()
    status: int | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(config.timeout):
            response = await client.request(
                config.method.value, url, headers=health_request_headers(provider)
            )
        status = response.status_code
        if not config.is_expected(status):
            error = f"HTTP status {status}"
    except TimeoutError:
        error = f"timed out after {config.timeout} s"
    except (httpx.HTTPError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return CheckResult(
        passed=error is None,
        status=status,
        error=error,
        duration=time.monotonic() - started,
        at=started_at,
    )


class HealthCheckerActor(CheckpointFlush, GenActor):
    """Health checker of one provider. The module docstring describes its protocol.

    ``init(integration, provider, node)`` takes the integration's name, the `Provider`
    (its ``base_url``, ``health_check`` and ``recovery`` sections) and the `NodeConfig`
    (the recovery-point store and checkpoint interval).
    """

    def init(self, integration: str, provider: Provider, node: NodeConfig) -> None:
        self.integration = integration
        self.provider = provider
        self.root = self.path.split("/")[0]
        self.enabled = provider.health_check.enabled
        self.unlimited = provider.recovery.probes_forever
        self.settings = status_settings(provider.health_check, provider.recovery)
        self.rng = random.Random()
        key = actor_key(integration, CHECKPOINT_KIND, provider.name)
        self.checkpointer = Checkpointer(node, integration, key, CHECKPOINT_KIND)
        self.breaker_state: str | None = None
        self.last_change: dict[str, Any] | None = None
        self.last_check: CheckResult | None = None
        self.checks = 0
        self.next_check_at: float | None = None
        self._check_timer: int | None = None
        self._flush_timer: int | None = None
        self._runner: asyncio.Runner | None = None
        self._client: httpx.AsyncClient | None = None

        saved = self.checkpointer.load()
        resumed = self._status_from(saved) if saved is not None else None
        if resumed is None:
            self.status = ProviderStatus(
                provider.name, provider.role.value, self.settings, rng=self.rng
            )
        else:
            self.status = resumed
            logger.info("health checker %s resumed status %s", self.path, resumed.status.value)
        self.reported = self.status.status
        self._after_change()
        if self.enabled:
            healthy = self.status.status is HealthStatus.HEALTHY
            self._schedule(0.0 if healthy else self._recovery_delay())

    # -- messages ------------------------------------------------------------

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, BreakerUpdate):
            self._on_breaker(message)
        else:
            super().handle_cast(message, sender)

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if isinstance(body, StateRequest):
            return self._update()
        if isinstance(body, Describe):
            return self._describe()
        if isinstance(body, ResetProvider):
            return self._reset(body.provider, caller)
        if isinstance(body, Restore):
            return self._restore(body.at, caller)
        return super().handle_call(body, caller)

    def handle_timeout(self, payload: Any) -> None:
        if self.flush_due(payload):
            return
        if payload == _CHECK:
            self._check_timer = None
            self._run_due_check()

    def terminate(self, reason: str) -> None:
        try:
            if self._runner is not None:
                if self._client is not None:
                    self._runner.run(self._client.aclose())
                self._runner.close()
        finally:
            self.checkpointer.close()

    # -- checks --------------------------------------------------------------

    def _run_due_check(self) -> None:
        status = self.status.status
        waiting = self.status.next_probe_at is not None and not self.status.probe_due()
        if status is HealthStatus.FAILED and waiting:
            # The timer fired before the probe time, or a restore moved that time.
            self._schedule(self._recovery_delay())
            return
        if status is HealthStatus.PERMANENTLY_FAILED:
            return

        result = self._check()
        self.checks += 1
        previous = self.last_check
        self.last_check = result
        self._log_result(result, previous)
        self.status.record_check(result.passed)
        self._after_change()

        if self.status.status is HealthStatus.HEALTHY:
            elapsed = time.time() - result.at
            self._schedule(max(0.0, self.provider.health_check.interval - elapsed))
        else:
            self._schedule(self._recovery_delay())

    def _check(self) -> CheckResult:
        if self._runner is None:
            self._runner = asyncio.Runner()
        if self._client is None:
            self._client = self._runner.run(_open_client(self.provider.health_check.timeout))
        return self._runner.run(run_check(self._client, self.provider))

    def _log_result(self, result: CheckResult, previous: CheckResult | None) -> None:
        if result.passed:
            logger.debug("health check of %s passed in %.3f s", self.path, result.duration)
        elif previous is None or previous.passed:
            # Only the first failure of a streak is logged at INFO, so an outage that lasts
            # hours does not write a line per check.
            logger.info("health check of %s failed: %s", self.path, result.error)
        else:
            logger.debug("health check of %s failed again: %s", self.path, result.error)

    def _recovery_delay(self) -> float | None:
        """Return seconds until the next check outside the healthy interval, or None."""
        status = self.status.status
        if status is HealthStatus.HEALTHY:
            return self.provider.health_check.interval
        if status is HealthStatus.FAILED:
            next_probe_at = self.status.next_probe_at
            if next_probe_at is None:
                return self.settings.probe_backoff.delay(self.status.failed_probes, self.rng)
            return max(0.0, next_probe_at - time.time())
        if status is HealthStatus.TESTING:
            return self.settings.probe_backoff.delay(self.status.failed_probes, self.rng)
        return None

    def _schedule(self, delay: float | None) -> None:
        self.cancel_timer(self._check_timer)
        self._check_timer = None
        self.next_check_at = None
        if delay is None or not self.enabled:
            return
        self.next_check_at = time.time() + delay
        self._check_timer = self.send_after(delay, _CHECK)

    # -- status --------------------------------------------------------------

    def _on_breaker(self, update: BreakerUpdate) -> None:
        if update.provider != self.provider.name:
            logger.warning(
                "health checker %s dropped a breaker update for provider %r (expected %r)",
                self.path,
                update.provider,
                self.provider.name,
            )
            return
        self.breaker_state = update.state
        if update.state != "open" or not self.enabled:
            return
        before = self.status.status
        self.status.record_breaker_opened()
        self._after_change()
        if self.status.status is not before:
            self._schedule(self._recovery_delay())

    def _after_change(self) -> None:
        """Save the status, and send it to the router when it changed."""
        if self.unlimited and self.status.status is HealthStatus.PERMANENTLY_FAILED:
            logger.warning(
                "health checker %s reached %d failed probes; probing goes on because "
                "recovery.max_attempts is 0",
                self.path,
                UNLIMITED_ATTEMPTS,
            )
            self.status.reset()
        events = self.status.drain_events()
        if events:
            last = events[-1]
            self.last_change = {
                "from": last.from_status.value,
                "to": last.to_status.value,
                "cause": last.cause.value,
                "at": last.at,
            }
        self.checkpointer.save(self.status.to_state(), urgent=bool(events))
        self.arm_flush()
        if self.status.status is not self.reported:
            self.reported = self.status.status
            self.send_named(router_path(self.integration, root=self.root), self._update())

    def _reset(self, provider: str, caller: Caller) -> Any:
        if provider != self.provider.name:
            self.reply_error(
                caller,
                "not_found",
                f"health checker {self.path} checks provider {self.provider.name!r}, "
                f"not {provider!r}",
            )
            return NOREPLY
        if self.status.status is not HealthStatus.PERMANENTLY_FAILED:
            self.reply_error(
                caller,
                "invalid_state",
                f"provider {provider!r} is {self.status.status.value}; only a "
                "permanently_failed provider can be reset",
            )
            return NOREPLY
        self.status.reset()
        self._after_change()
        self._schedule(self._recovery_delay())
        return True

    def _restore(self, at: float, caller: Caller) -> Any:
        found = self.checkpointer.load_at(at)
        if found is None:
            return None
        state, created_at = found
        restored = self._status_from(state)
        if restored is None:
            self.reply_error(
                caller,
                "invalid_state",
                f"the recovery point of health checker {self.path} created at {created_at} "
                "is not a valid provider status, so the status is unchanged",
            )
            return NOREPLY
        logger.warning(
            "health checker %s restored the point created at %.3f: %s -> %s",
            self.path,
            created_at,
            self.status.status.value,
            restored.status.value,
        )
        self.status = restored
        self.checkpointer.save(self.status.to_state(), urgent=True)
        self._after_change()
        self._schedule(self._recovery_delay())
        return created_at

    def _status_from(self, state: dict[str, Any]) -> ProviderStatus | None:
        # The configured name and role win over saved ones, which may predate a change.
        current = {**state, "name": self.provider.name, "role": self.provider.role.value}
        try:
            return ProviderStatus.from_state(current, self.settings, rng=self.rng)
        except ValueError as exc:
            logger.error("health checker %s cannot use a saved status: %s", self.path, exc)
            return None

    # -- replies -------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        return {
            "status": self.status.status.value,
            "enabled": self.enabled,
            "failed_probes": self.status.failed_probes,
            "consecutive_check_failures": self.status.consecutive_check_failures,
            "consecutive_check_successes": self.status.consecutive_check_successes,
            "next_probe_at": self.status.next_probe_at,
            "next_check_at": self.next_check_at,
            "last_check": None if self.last_check is None else asdict(self.last_check),
            "last_change": self.last_change,
            "breaker_state": self.breaker_state,
            "checks": self.checks,
        }

    def _update(self) -> StatusUpdate:
        return StatusUpdate(
            provider=self.provider.name,
            status=self.status.status.value,
            snapshot=self._snapshot(),
            at=time.time(),
        )

    def _describe(self) -> dict[str, Any]:
        described = self._snapshot()
        described.update(
            integration=self.integration,
            provider=self.provider.name,
            role=self.provider.role.value,
            checkpoint=self.checkpointer.describe(),
        )
        return described


async def _open_client(timeout: float) -> httpx.AsyncClient:
    # No keep-alive: every check opens a new connection, so a refused listener or a dead
    # host shows up at once instead of as a stale pooled connection.
    return httpx.AsyncClient(
        trust_env=False,
        timeout=timeout,
        follow_redirects=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
