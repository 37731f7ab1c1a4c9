"""``RouterActor``: routes one integration's calls to its providers, with retries and failover.

One router runs per integration, at ``<root>/integrations/<integration>/router``. It is a
thin shell around the pure logic of `actors.router`: a `CallPlan` per call decides which
provider to try, when, and when to stop, and a shared `Replica` contains the router's view
of every provider. The actor only turns plan actions into messages and timers, so it
never blocks and serves any number of calls at once.

One call:

1. ``Call(IntegrationCall)`` arrives. The request is checked against every provider's
   adapter; a request that fits none is answered with ``invalid_request``.
2. For each ``SendAttempt``, the router sends ``Call(Attempt)`` by name to the provider
   actor, and sets a timer at the per-try timeout plus `ATTEMPT_GRACE`. The
   ``AttemptResult`` comes back as a ``Reply``. When the timer fires first (the provider
   actor was killed, or its reply was lost) the attempt counts as a ``no_reply`` timeout
   and is cancelled at the provider.
3. A timer at the call's deadline (``IntegrationCall.deadline``, else the integration's
   ``timeout``) ends the call with ``deadline_exceeded`` and cancels the attempt in
   flight with ``CancelAttempt``.
4. The caller gets ``{"result", "provider", "attempts"}``, or one error:
   ``all_providers_failed``, ``provider_error``, ``deadline_exceeded``,
   ``no_provider_available``, ``not_retried``, ``invalid_request`` or ``cancelled``.
   `actors.router.plan` states the rules behind each of them.

Other messages:

- ``BreakerUpdate`` and ``StatusUpdate`` update the replica. At start the router asks
  every breaker and health checker for its state (``Call(StateRequest())``) and treats a
  provider as closed and healthy until the answer arrives.
- ``Call(SubscribeEvents(address))`` (or one-way) adds a subscriber: the address, or
  the caller. Subscribers get an ``IntegrationEvent`` for ``failover``,
  ``circuit_opened``, ``circuit_half_open``, ``circuit_closed``, ``provider_failed``,
  ``provider_recovered`` and ``no_provider_available``.
- ``CancelCall(call_ref)`` (one-way or in a ``Call``) ends the calls whose ``Call`` had
  that reference, with the error ``cancelled``.
- ``Call(Describe())`` returns a dict: the integration's name, tier and timeout, calls
  in flight, totals, and per provider its role, weight, health status, breaker state,
  cooldown and ejection ends and totals.
- ``Call(Restore(at))`` reloads cooldowns, ejection state and totals from the newest
  recovery point at or before ``at``, and returns that point's time, or None.

Cooldowns, ejection state and totals are saved through `actors.persistence` (kind
``integration``, key ``<integration>/router``); a new cooldown or ejection at once, the
rest within ``checkpoint_interval``. A restarted router resumes from its newest point.
Calls in flight are not saved. When the router stops or crashes, it replies to each of
them with the error ``not_running``. A router killed with SIGKILL cannot reply, so its
callers see their own timeouts.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from actors.messages import (
    Attempt,
    AttemptResult,
    BreakerUpdate,
    CancelAttempt,
    CancelCall,
    Describe,
    IntegrationCall,
    IntegrationEvent,
    Restore,
    StateRequest,
    StatusUpdate,
    SubscribeEvents,
)
from actors.names import actor_key, breaker_path, health_path, provider_path
from actors.persistence import Checkpointer, CheckpointFlush
from actors.router import (
    Action,
    CallPlan,
    Finish,
    Replica,
    SendAttempt,
    WaitUntil,
    build_validators,
    check_call,
    is_idempotent,
    rules_for,
)
from supervisors import NOREPLY, Call, Caller, GenActor, Reply
from tpir.config import Integration, NodeConfig

__all__ = ["ATTEMPT_GRACE", "CHECKPOINT_KIND", "RouterActor"]

logger = logging.getLogger(__name__)

ATTEMPT_GRACE: Final = 0.25
"""Seconds the router waits past an attempt's per-try timeout before it counts the
attempt as ``no_reply``. The provider actor reports its own timeout at the per-try
timeout, so this only bounds attempts whose reply is lost.

NOTE: an estimate that leaves room for a loaded machine. It is spent only when a
provider actor dies or loses a reply."""

CHECKPOINT_KIND: Final = "integration"
"""The ``kind`` of the router's recovery points, whose actor key is ``<integration>/router``."""

_TOTAL_KEYS: Final = ("calls", "succeeded", "failed", "failovers")


@dataclass
class _CallEntry:
    """One call in flight: its plan, caller, request and timers by purpose."""

    plan: CallPlan
    caller: Caller
    call: IntegrationCall
    timers: dict[str, int] = field(default_factory=dict)


class RouterActor(CheckpointFlush, GenActor):
    """The router of one integration; the module docstring describes its protocol.

    ``init(integration, node)`` takes the `Integration` (its providers, in configuration
    order, and its ``timeout``) and the `NodeConfig` (the recovery-point store and
    checkpoint interval).
    """

    def init(self, integration: Integration, node: NodeConfig) -> None:
        self.integration = integration
        self.node = node
        self.root = self.path.split("/")[0]
        # The provider path of each attempt waiting for its answer, to learn or
        # forget the provider's address; bounded because some never get one.
        self._attempt_paths: dict[Any, str] = {}
        self.rng = random.Random()
        self.replica = Replica(rules_for(integration.providers), clock=time.time)
        self.validators = build_validators(integration.providers)
        self.kinds = {provider.name: str(provider.kind) for provider in integration.providers}
        self.calls: dict[str, _CallEntry] = {}
        self.subscribers: list[Any] = []
        self.totals: dict[str, int] = dict.fromkeys(_TOTAL_KEYS, 0)
        self.errors: dict[str, int] = {}
        self._dirty = False
        self._flush_timer: int | None = None

        key = actor_key(integration.name, "router")
        self.checkpointer = Checkpointer(node, integration.name, key, CHECKPOINT_KIND)
        saved = self.checkpointer.load()
        if saved is not None:
            self._load(saved)
        self._request_states()
        self._locate_providers()
        logger.info(
            "router %s started with providers %s",
            self.path,
            ", ".join(f"{p.name} ({p.role})" for p in integration.providers),
        )

    # -- messages ------------------------------------------------------------------------

    def handle_call(self, body: Any, caller: Caller) -> Any:
        if isinstance(body, IntegrationCall):
            self._start_call(body, caller)
            return NOREPLY
        if isinstance(body, Describe):
            return self.describe()
        if isinstance(body, SubscribeEvents):
            self._subscribe(body.address if body.address is not None else caller.address)
            return True
        if isinstance(body, CancelCall):
            return self._cancel_calls(body.call_ref)
        if isinstance(body, Restore):
            return self._restore(body.at, caller)
        return super().handle_call(body, caller)

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, Reply):
            self._track_address(message, sender)
            self._on_reply(message)
        elif isinstance(message, BreakerUpdate):
            self._on_breaker(message)
        elif isinstance(message, StatusUpdate):
            self._on_status(message)
        elif isinstance(message, CancelCall):
            self._cancel_calls(message.call_ref)
        elif isinstance(message, SubscribeEvents):
            self._subscribe(message.address if message.address is not None else sender)
        else:
            super().handle_cast(message, sender)

    def handle_timeout(self, payload: Any) -> None:
        if self.flush_due(payload):
            return
        purpose, call_id, *rest = payload
        entry = self.calls.get(call_id)
        if entry is None:
            return
        entry.timers.pop(purpose, None)
        if purpose == "deadline":
            self._act(entry, entry.plan.on_deadline())
        elif purpose == "attempt":
            path = self._attempt_paths.pop(("attempt", call_id, rest[0]), None)
            if path is not None:
                self.forget_address(path)
            self._act(entry, entry.plan.on_no_reply(rest[0]))
        elif purpose == "wait":
            self._act(entry, entry.plan.on_wait_elapsed())

    def terminate(self, reason: str) -> None:
        calls = getattr(self, "calls", {})
        for call_id, entry in list(calls.items()):
            in_flight = entry.plan.in_flight
            if in_flight is not None:
                self._send_cancel(in_flight[0], call_id)
            self.reply_error(
                entry.caller,
                "not_running",
                f"router {self.path} stopped ({reason}) before the call finished",
                {"attempts": entry.plan.attempts},
            )
        calls.clear()
        checkpointer = getattr(self, "checkpointer", None)
        if checkpointer is not None:
            if self._dirty:
                checkpointer.save(self._state(), urgent=True)
            checkpointer.close()

    # -- calls ---------------------------------------------------------------------------

    def _start_call(self, call: IntegrationCall, caller: Caller) -> None:
        self.totals["calls"] += 1
        self._dirty = True
        check = check_call(call.request, call.deadline, call.idempotency_key, self.validators)
        if check.error is not None:
            self._count_error("invalid_request")
            logger.info("router %s rejected an invalid request: %s", self.path, check.error)
            self.reply_error(caller, "invalid_request", check.error)
            self._save()
            return

        call_id = uuid.uuid4().hex
        deadline = call.deadline if call.deadline is not None else self.integration.timeout
        kinds = [self.kinds[name] for name in check.eligible]
        plan = CallPlan(
            call_id,
            self.replica,
            eligible=check.eligible,
            rejected=check.rejected,
            idempotent=is_idempotent(call.request, kinds, call.idempotency_key),
            deadline=deadline,
            clock=time.time,
            rng=self.rng,
            integration=self.integration.name,
        )
        entry = _CallEntry(plan, caller, call)
        self.calls[call_id] = entry
        entry.timers["deadline"] = self.send_after(deadline, ("deadline", call_id))
        self._act(entry, plan.start())

    def _act(self, entry: _CallEntry, action: Action | None) -> None:
        if action is None:
            return
        call_id = entry.plan.call_id
        if action.cancel is not None:
            self._send_cancel(action.cancel, call_id)
        self.cancel_timer(entry.timers.pop("attempt", None))
        if isinstance(action, SendAttempt):
            self._send_attempt(entry, action)
        elif isinstance(action, WaitUntil):
            delay = max(0.0, action.at - time.time())
            entry.timers["wait"] = self.send_after(delay, ("wait", call_id))
        else:
            self._finish(entry, action)
        self._save()

    def _send_attempt(self, entry: _CallEntry, action: SendAttempt) -> None:
        call_id = entry.plan.call_id
        attempt = Attempt(
            call_id=call_id,
            attempt_no=action.attempt_no,
            request=dict(entry.call.request),
            timeout=action.timeout,
            idempotency_key=entry.call.idempotency_key,
            idempotent=entry.plan.idempotent,
        )
        ref = ("attempt", call_id, action.attempt_no)
        target = provider_path(self.integration.name, action.provider, root=self.root)
        self._attempt_paths[ref] = target
        if len(self._attempt_paths) > 4096:
            del self._attempt_paths[next(iter(self._attempt_paths))]
        self.send_cached(target, Call(ref, attempt, self.myAddress))
        entry.timers["attempt"] = self.send_after(
            action.timeout + ATTEMPT_GRACE, ("attempt", call_id, action.attempt_no)
        )

    def _finish(self, entry: _CallEntry, finish: Finish) -> None:
        call_id = entry.plan.call_id
        for token in entry.timers.values():
            self.cancel_timer(token)
        entry.timers.clear()
        self.calls.pop(call_id, None)
        self._dirty = True

        if finish.ok:
            self.totals["succeeded"] += 1
            self.reply(entry.caller, finish.value)
            if finish.failover:
                self.totals["failovers"] += 1
                logger.info(
                    "router %s: call %s failed over from %s to %s",
                    self.path,
                    call_id,
                    finish.first_provider,
                    finish.provider,
                )
                self._emit(
                    "failover",
                    finish.provider,
                    {
                        "call_id": call_id,
                        "from": finish.first_provider,
                        "to": finish.provider,
                        "attempts": len(entry.plan.attempts),
                    },
                )
            return

        code = finish.code or "internal_error"
        self._count_error(code)
        logger.warning(
            "router %s: call %s failed with %s: %s", self.path, call_id, code, finish.message
        )
        self.reply_error(entry.caller, code, finish.message, finish.details)
        if code == "no_provider_available":
            self._emit(
                "no_provider_available",
                None,
                {"call_id": call_id, "providers": finish.details.get("providers", {})},
            )

    def _cancel_calls(self, call_ref: Any) -> int:
        matching = [entry for entry in self.calls.values() if entry.caller.ref == call_ref]
        for entry in matching:
            logger.info("router %s: call %s cancelled by its caller", self.path, entry.plan.call_id)
            self._act(entry, entry.plan.cancel())
        return len(matching)

    def _track_address(self, reply: Reply, sender: Any) -> None:
        """Learn a provider's address from its answer, or forget it after an error."""
        path = self._attempt_paths.pop(reply.ref, None)
        if path is None:
            return
        if reply.error is None:
            self.learn_address(path, sender)
        else:
            self.forget_address(path)

    def _send_cancel(self, provider: str, call_id: str) -> None:
        target = provider_path(self.integration.name, provider, root=self.root)
        self.send_named(target, CancelAttempt(call_id))

    # -- replies and updates -------------------------------------------------------------

    def _on_reply(self, reply: Reply) -> None:
        ref = reply.ref
        if not isinstance(ref, tuple) or not ref:
            logger.warning("router %s ignored a reply with unknown reference %r", self.path, ref)
            return
        if ref[0] == "state":
            self._on_state_reply(ref, reply)
            return
        if ref[0] == "locate":
            return  # `_track_address` has learned the provider's address
        if ref[0] != "attempt" or len(ref) != 3:
            logger.warning("router %s ignored a reply with unknown reference %r", self.path, ref)
            return

        _, call_id, attempt_no = ref
        entry = self.calls.get(call_id)
        if entry is None:
            logger.debug("router %s: late reply for finished call %s", self.path, call_id)
            return
        plan = entry.plan
        if reply.error is not None:
            action = plan.on_error_reply(attempt_no, reply.error.code, reply.error.message)
        elif isinstance(reply.value, AttemptResult):
            result = reply.value
            action = plan.on_result(
                attempt_no,
                ok=result.ok,
                duration=result.duration,
                value=result.value,
                failure=result.failure,
            )
        else:
            action = plan.on_error_reply(
                attempt_no,
                "invalid_reply",
                f"expected an AttemptResult, got {type(reply.value).__name__}",
            )
        self._act(entry, action)

    def _on_state_reply(self, ref: tuple[Any, ...], reply: Reply) -> None:
        if reply.error is not None:
            logger.info(
                "router %s: no %s state for %s yet (%s); assuming closed and healthy",
                self.path,
                ref[1],
                ref[2],
                reply.error.code,
            )
        elif isinstance(reply.value, BreakerUpdate):
            self._on_breaker(reply.value)
        elif isinstance(reply.value, StatusUpdate):
            self._on_status(reply.value)

    def _on_breaker(self, update: BreakerUpdate) -> None:
        kind = self.replica.apply_breaker(update)
        if kind is None:
            return
        logger.info("router %s: breaker of %s is %s", self.path, update.provider, update.state)
        self._emit(kind, update.provider, {"state": update.state, "retry_at": update.retry_at})

    def _on_status(self, update: StatusUpdate) -> None:
        kind = self.replica.apply_status(update)
        if kind is None:
            return
        logger.info("router %s: provider %s is %s", self.path, update.provider, update.status)
        self._emit(kind, update.provider, {"status": update.status})

    def _request_states(self) -> None:
        name = self.integration.name
        for provider in self.integration.providers:
            for kind, path in (
                ("breaker", breaker_path(name, provider.name, root=self.root)),
                ("health", health_path(name, provider.name, root=self.root)),
            ):
                self.send_named(
                    path, Call(("state", kind, provider.name), StateRequest(), self.myAddress)
                )

    def _locate_providers(self) -> None:
        """Learn every provider actor's address now, not at its first attempt.

        A provider that has served no call yet (a secondary, before the first
        failover) would otherwise get its first attempts by name through two
        supervisors, just when the primary has started failing.
        """
        for provider in self.integration.providers:
            path = provider_path(self.integration.name, provider.name, root=self.root)
            ref = ("locate", path)
            self._attempt_paths[ref] = path
            self.send_named(path, Call(ref, Describe(), self.myAddress))

    # -- events ----------------------------------------------------------------------------

    def _subscribe(self, address: Any) -> None:
        if address is not None and address not in self.subscribers:
            self.subscribers.append(address)

    def _emit(self, kind: str, provider: str | None, details: dict[str, Any]) -> None:
        event = IntegrationEvent(kind, self.integration.name, provider, time.time(), details)
        for address in self.subscribers:
            self.send(address, event)

    # -- state -----------------------------------------------------------------------------

    def _count_error(self, code: str) -> None:
        self.totals["failed"] += 1
        self.errors[code] = self.errors.get(code, 0) + 1

    def _state(self) -> dict[str, Any]:
        return {
            **self.replica.to_state(),
            "router_totals": dict(self.totals),
            "errors": dict(self.errors),
        }

    def _load(self, state: dict[str, Any]) -> bool:
        try:
            self.replica.load_state(state)
            totals = state.get("router_totals") or {}
            errors = state.get("errors") or {}
            self.totals = {key: int(totals.get(key, 0)) for key in _TOTAL_KEYS}
            self.errors = {str(code): int(count) for code, count in errors.items()}
        except (ValueError, TypeError, AttributeError) as exc:
            logger.error(
                "router %s: ignoring an invalid recovery point, starting fresh: %s", self.path, exc
            )
            return False
        logger.info("router %s resumed cooldowns, ejections and totals", self.path)
        return True

    def _save(self) -> None:
        changed, urgent = self.replica.pop_changes()
        if not (changed or self._dirty):
            return
        self._dirty = False
        self.checkpointer.save(self._state(), urgent=urgent)
        self.arm_flush()

    def _restore(self, at: float, caller: Caller) -> Any:
        found = self.checkpointer.load_at(at)
        if found is None:
            return None
        state, created_at = found
        if not self._load(state):
            self.reply_error(
                caller, "invalid_state", f"the recovery point of {created_at:.3f} is invalid"
            )
            return NOREPLY
        self.checkpointer.save(self._state(), urgent=True)
        self.arm_flush()
        return created_at

    def describe(self) -> dict[str, Any]:
        """Return the integration's routing state; the module docstring lists the keys."""
        return {
            "integration": self.integration.name,
            "tier": self.integration.tier,
            "timeout": self.integration.timeout,
            "calls_in_flight": len(self.calls),
            "subscribers": len(self.subscribers),
            "totals": dict(self.totals),
            "errors": dict(self.errors),
            "providers": {name: self.replica.describe(name) for name in self.replica.names},
            "checkpoint": self.checkpointer.describe(),
        }
