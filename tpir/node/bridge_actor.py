"""``BridgeActor``: the port protocol served from inside the actor system, without threads.

The bridge is a worker child of the root supervisor ``tpir``, started after
``integrations``. It reads requests from stdin (descriptor 0, inherited through fork)
and from connections on the control socket ``<data_dir>/tpir.sock``, and ThespianWatch
reports when each of them is readable. Replies and events to the port go to the private
frames descriptor that `tpir.bridge.stdio.claim_stdout` returned in the node's main
process, and those to a connection go back on that connection. `tpir.bridge.protocol`
validates each request and `tpir.node.plans` turns it into calls. The bridge replies when
every call has replied or the plan's timeout has passed. Many requests can be in flight
at once, and replies go out in any order.

Every accepted request gets exactly one reply: ``timeout`` when its timer fires first,
``actor_crashed`` when the router handling it terminates, ``node_stopping`` when the
node stops first, ``internal_error`` when the bridge itself crashes. A reply that
arrives after that is dropped.

NOTE: a bridge killed with SIGKILL sends no reply, and its restarted instance starts
with an empty frame decoder. When the kill fell between the bytes of one frame, the
new instance reads the rest of that frame as a length prefix and loses the stream.

End of input: the bridge stops reading, replies ``node_stopping`` to what is still in
flight and exits with reason ``normal``. Its child spec is ``transient``,
so the root does not restart it and reports ``terminated`` with reason ``normal`` to
its subscribers. The node's main process subscribes when it starts the root
(``notify_starter``) and shuts the node down on that event.

``init(config, frames_fd, input_fd=0)``:
    config: the node's `tpir.config.Config`; the bridge uses its integrations and
        ``node.max_frame_bytes``, ``node.data_dir`` and ``node.database``.
    frames_fd: descriptor that replies and events to the port are written to.
    input_fd: descriptor that port requests are read from. Default 0.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from actors.messages import (
    EVENT_KINDS,
    CancelCall,
    IntegrationCall,
    IntegrationEvent,
    SubscribeEvents,
)
from actors.names import ROOT, router_path
from supervisors import api
from supervisors.actor import GenActor
from supervisors.messages import Call, ChildEvent, ErrorInfo, Reply
from tpir.bridge.framing import FrameTooLargeError
from tpir.bridge.protocol import (
    ErrorCode,
    ProtocolError,
    Request,
    decode_request,
    encode_message,
    error_reply,
    event_message,
    frame_too_large_error,
    ok_reply,
)
from tpir.config import Config
from tpir.node.control import ControlListener
from tpir.node.paths import control_socket_path
from tpir.node.peers import Peer, PortPeer, SocketPeer
from tpir.node.pending import Gather, PendingTable
from tpir.node.plans import Target, build_plan, find_integration
from tpir.node.recovery import RecoveryPointReader
from tpir.node.wire import to_wire

__all__ = ["BridgeActor", "NODE_STOPPING"]

logger = logging.getLogger(__name__)

NODE_STOPPING: Final = "node_stopping"
_PORT_PEER_ID: Final = 0
# Reads per readiness report and peer; the cap keeps one busy peer from starving the
# actor's other messages (replies, timers).
_MAX_READS_PER_WAKEUP: Final = 16


class BridgeActor(GenActor):
    """The port and control-socket server inside the actor system (module docstring)."""

    def init(self, config: Config, frames_fd: int, input_fd: int = 0) -> None:
        self._config = config
        self._root = self.path.split("/")[0] or ROOT
        self._pending = PendingTable()
        self._peers: dict[int, Peer] = {}
        self._next_peer_id = _PORT_PEER_ID + 1
        self._routers: dict[str, Any] = {}
        self._started_paths: set[str] = set()
        self._terminated_paths: set[str] = set()
        self._router_events = False
        self._rejected = 0
        self._points = RecoveryPointReader(config.node)
        self._background: dict[int, str] = {}

        max_frame = config.node.max_frame_bytes
        self._port = PortPeer(_PORT_PEER_ID, input_fd, frames_fd, max_frame)
        self._add_peer(self._port)

        self._listener: ControlListener | None = ControlListener(
            control_socket_path(config.node.data_dir)
        )
        try:
            self._listener.open()
        except (OSError, ValueError) as exc:
            # The port matters more than the CLI: serve it without the socket.
            logger.error("control socket not available, serving the port only: %s", exc)
            self._listener = None
        else:
            self.watch(self._listener.fileno())

        self._call_in_background(self._root, api.Subscribe(self.myAddress))
        logger.info(
            "bridge started: port requests on descriptor %d, frames on descriptor %d, "
            "control socket %s",
            input_fd,
            frames_fd,
            self._listener.path if self._listener is not None else "disabled",
        )

    # -- input -------------------------------------------------------------------

    def handle_watch(self, ready: list[int]) -> None:
        for fd in ready:
            if self._listener is not None and fd == self._listener.fileno():
                self._accept()
                continue
            for peer in list(self._peers.values()):
                if peer.read_fd == fd and not peer.closed:
                    self._read_peer(peer)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            connections = self._listener.accept_all()
        except OSError as exc:
            logger.error("accepting control connections failed: %s", exc)
            return
        for connection in connections:
            peer = SocketPeer(self._next_peer_id, connection, self._config.node.max_frame_bytes)
            self._next_peer_id += 1
            self._add_peer(peer)
            logger.debug("accepted %s", peer.name)

    def _add_peer(self, peer: Peer) -> None:
        self._peers[peer.id] = peer
        self.watch(peer.read_fd)

    def _read_peer(self, peer: Peer) -> None:
        for _ in range(_MAX_READS_PER_WAKEUP):
            try:
                data = peer.read()
            except ConnectionError as exc:
                logger.debug("%s was reset: %s", peer.name, exc)
                data = b""
            except OSError as exc:
                logger.error("reading from %s failed, closing it: %s", peer.name, exc)
                data = b""
            if data is None:
                return
            if not data:
                self._end_of_input(peer)
                return
            for item in peer.decoder.feed(data):
                if isinstance(item, FrameTooLargeError):
                    error = frame_too_large_error(item.length, item.max_frame_bytes)
                    self._reject_frame(peer, error)
                else:
                    self._handle_frame(peer, item)
                if peer.closed:
                    return

    def _end_of_input(self, peer: Peer) -> None:
        truncated = peer.decoder.finish()
        if truncated is not None:
            logger.warning("input from %s ended inside a frame: %s", peer.name, truncated)
        if peer is self._port:
            logger.info("port input ended; stopping the node")
            self._stop_serving()
            return
        self._drop_peer(peer)

    def _drop_peer(self, peer: Peer) -> None:
        for gather in self._pending.of_peer(peer.id):
            self.cancel_timer(gather.timer)
            self._cancel_integration_calls(gather)
            self._pending.close(gather)
        self.unwatch(peer.read_fd)
        peer.close()
        self._peers.pop(peer.id, None)
        logger.debug("closed %s", peer.name)

    def _stop_serving(self) -> None:
        """Reply ``node_stopping`` to every request in flight, then exit normally."""
        self.unwatch(self._port.read_fd)
        self._answer_in_flight(NODE_STOPPING, "the node is stopping because its port input ended")
        self.stop("normal")

    def _answer_in_flight(self, code: str, message: str) -> None:
        for gather in self._pending:
            self.cancel_timer(gather.timer)
            self._pending.close(gather)
            peer = self._peers.get(gather.peer_id)
            if peer is not None and not peer.closed:
                self._send_reply(peer, gather.request_id, gather.op, ProtocolError(code, message))

    # -- requests ------------------------------------------------------------------

    def _handle_frame(self, peer: Peer, frame: bytes) -> None:
        decoded = decode_request(frame)
        if isinstance(decoded, ProtocolError):
            self._reject_frame(peer, decoded)
            return
        try:
            self._serve_request(peer, decoded)
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the bridge
            logger.exception("handling request %r (operation %r) failed", decoded.id, decoded.op)
            error = ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                f"handling operation '{decoded.op}' failed with {type(exc).__name__}",
                {"op": decoded.op, "exception": type(exc).__name__},
            )
            self._send_reply(peer, decoded.id, decoded.op, error)

    def _serve_request(self, peer: Peer, request: Request) -> None:
        if request.op == "ping":
            self._send_reply(peer, request.id, request.op, "pong")
            return
        if request.op == "subscribe":
            self._send_reply(peer, request.id, request.op, self._subscribe(peer, request))
            return
        if request.op == "recovery_points":
            self._send_reply(peer, request.id, request.op, self._recovery_points(request))
            return
        plan = build_plan(request, self._config, self._root)
        if isinstance(plan, ProtocolError):
            self._send_reply(peer, request.id, request.op, plan)
            return
        gather = self._pending.open(peer.id, request.id, request.op, plan)
        for ref, target in list(gather.outstanding.items()):
            address = self._send_call(ref, target)
            if address is not None:
                gather.direct[ref] = address
        gather.timer = self.send_after(plan.timeout, ("request-timeout", gather.id))

    def _send_call(self, ref: int, target: Target, *, by_name: bool = False) -> Any:
        """Send one target's call; return the cached router address it went to, or None."""
        call = Call(ref, target.body, self.myAddress)
        if target.path == self._root:
            self.send(self.parent, call)
            return None
        address = self._routers.get(target.path) if target.integration else None
        if address is not None and not by_name:
            self.send(address, call)
            return address
        self.send_named(target.path, call)
        return None

    def _subscribe(self, peer: Peer, request: Request) -> Any:
        events = request.args.get("events")
        if events is not None:
            unknown = sorted(set(events) - set(EVENT_KINDS))
            if unknown:
                return ProtocolError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"argument 'events' of operation 'subscribe' names unknown events "
                    f"{', '.join(name[:40] for name in unknown[:5])}. Known events: "
                    f"{', '.join(EVENT_KINDS)}",
                    {"op": "subscribe", "argument": "events", "known_events": list(EVENT_KINDS)},
                    request.id,
                )
        peer.subscribed = True
        peer.events = None if events is None else frozenset(events)
        if not self._router_events:
            self._router_events = True
            for integration in self._config.integrations:
                self._subscribe_router(integration.name)
        logger.info("%s subscribed to %s", peer.name, "all events" if events is None else events)
        return {"events": None if events is None else sorted(set(events))}

    def _subscribe_router(self, integration: str) -> None:
        self._call_in_background(
            router_path(integration, self._root), SubscribeEvents(self.myAddress)
        )

    def _recovery_points(self, request: Request) -> Any:
        found = find_integration(self._config, request.args["integration"], request.id)
        if isinstance(found, ProtocolError):
            return found
        return self._points.list_points(found.name, request.args.get("limit"))

    def _call_in_background(self, path: str, body: Any) -> None:
        """Send a call whose reply no request needs; an error reply is logged."""
        ref = self._pending.new_ref()
        self._background[ref] = f"{type(body).__name__} to {path}"
        if path == self._root:
            self.send(self.parent, Call(ref, body, self.myAddress))
        else:
            self.send_named(path, Call(ref, body, self.myAddress))

    # -- replies ---------------------------------------------------------------------

    def handle_cast(self, message: Any, sender: Any) -> None:
        if isinstance(message, Reply):
            self._on_reply(message, sender)
        elif isinstance(message, ChildEvent):
            self._on_child_event(message)
        elif isinstance(message, IntegrationEvent):
            self._on_integration_event(message)
        else:
            super().handle_cast(message, sender)

    def _on_reply(self, reply: Reply, sender: Any) -> None:
        found = self._pending.take(reply.ref)
        if found is None:
            self._on_other_reply(reply)
            return
        gather, target, direct_address = found
        if target.integration is not None:
            if reply.ok:
                self._routers[target.path] = sender
            elif reply.error is not None and reply.error.code in ("not_running", "actor_crashed"):
                self._routers.pop(target.path, None)
        if (
            direct_address is not None
            and sender != direct_address
            and reply.error is not None
            and reply.error.code == "not_running"
        ):
            # A supervisor, not the router, reports that the cached router had exited
            # before the call reached it, so the call was never handled: send it again
            # by name, to the router's next instance.
            self._send_call(self._pending.add_ref(gather, target), target, by_name=True)
            return
        gather.record(target, reply)
        if gather.complete:
            self._finish(gather)

    def _on_other_reply(self, reply: Reply) -> None:
        description = self._background.pop(reply.ref, None) if isinstance(reply.ref, int) else None
        if description is None:
            logger.debug("dropped a late reply with reference %r", reply.ref)
        elif reply.error is not None:
            logger.warning("%s failed: %s: %s", description, reply.error.code, reply.error.message)

    def handle_timeout(self, payload: Any) -> None:
        if not (isinstance(payload, tuple) and payload[0] == "request-timeout"):
            return
        gather = self._pending.get(payload[1])
        if gather is None:
            return
        timeout = gather.plan.timeout

        def timed_out(target: Target) -> ErrorInfo:
            return ErrorInfo("timeout", f"{target.path} did not reply within {timeout:g} s")

        self._cancel_integration_calls(gather)
        self._pending.expire(gather, timed_out)
        logger.warning(
            "request %r (operation %r) timed out after %g s", gather.request_id, gather.op, timeout
        )
        self._finish(gather)

    def _cancel_integration_calls(self, gather: Gather) -> None:
        """Tell routers to stop the calls of ``gather``, whose replies nobody reads any more."""
        for ref, target in gather.outstanding.items():
            if not isinstance(target.body, IntegrationCall):
                continue
            address = gather.direct.get(ref) or self._routers.get(target.path)
            if address is not None:
                self.send(address, CancelCall(ref))
            else:
                self.send_named(target.path, CancelCall(ref))

    def _finish(self, gather: Gather) -> None:
        self._pending.close(gather)
        self.cancel_timer(gather.timer)
        peer = self._peers.get(gather.peer_id)
        if peer is None or peer.closed:
            return
        try:
            outcome = gather.plan.finish(gather.replies)
        except Exception as exc:  # noqa: BLE001 - the request still gets its one reply
            logger.exception("building the reply to request %r failed", gather.request_id)
            outcome = ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                f"building the reply of operation '{gather.op}' failed with {type(exc).__name__}",
                {"op": gather.op, "exception": type(exc).__name__},
            )
        self._send_reply(peer, gather.request_id, gather.op, outcome)

    # -- events ----------------------------------------------------------------------

    def _on_child_event(self, event: ChildEvent) -> None:
        path = event.path
        if event.event == "terminated":
            self._terminated_paths.add(path)
            self._router_down(path, event.reason or "unknown reason")
            return
        if event.event != "started":
            return
        restarted = path in self._terminated_paths or path in self._started_paths
        self._started_paths.add(path)
        self._terminated_paths.discard(path)
        if not restarted:
            return
        if self._router_events:
            for integration in self._config.integrations:
                if router_path(integration.name, self._root) == path:
                    self._subscribe_router(integration.name)
        self._publish(
            "child_restarted",
            {
                "path": path,
                "supervisor": event.supervisor,
                "child": event.child,
                "pid": event.pid,
                "child_type": event.child_type,
                "at": time.time(),
            },
        )

    def _router_down(self, path: str, reason: str) -> None:
        """Forget routers at or below ``path`` and fail the calls they were handling."""
        prefix = path + "/"
        for cached in list(self._routers):
            if cached == path or cached.startswith(prefix):
                del self._routers[cached]

        def under(target: Target) -> bool:
            return target.integration is not None and (
                target.path == path or target.path.startswith(prefix)
            )

        error = ErrorInfo(
            "actor_crashed",
            f"{path} terminated ({reason}) while the request was in flight",
            {"path": path, "reason": reason},
        )
        for gather in self._pending.fail_where(under, error):
            self._finish(gather)

    def _on_integration_event(self, event: IntegrationEvent) -> None:
        self._publish(
            event.kind,
            {
                "integration": event.integration,
                "provider": event.provider,
                "at": event.at,
                "details": to_wire(event.details),
            },
        )

    def _publish(self, kind: str, fields: dict[str, Any]) -> None:
        payload: bytes | None = None
        for peer in list(self._peers.values()):
            if peer.closed or not peer.wants(kind):
                continue
            if payload is None:
                payload = encode_message(event_message(kind, to_wire(fields)))
            if not peer.send_frame(payload) and isinstance(peer, SocketPeer):
                self._drop_peer(peer)

    # -- output ----------------------------------------------------------------------

    def _reject_frame(self, peer: Peer, error: ProtocolError) -> None:
        self._rejected += 1
        # Log the details and not the message: the message quotes received values,
        # which could be secrets sent in the wrong field.
        logger.warning(
            "rejected request %r from %s with %s (%d rejected so far): %r",
            error.request_id,
            peer.name,
            error.code,
            self._rejected,
            error.details,
        )
        self._write(peer, encode_message(error_reply(error.request_id, error)))

    def _send_reply(self, peer: Peer, request_id: Any, op: str, outcome: Any) -> None:
        if isinstance(outcome, ProtocolError):
            message = error_reply(request_id, outcome)
        else:
            message = ok_reply(request_id, outcome)
        try:
            payload = encode_message(message)
        except (TypeError, ValueError, OverflowError) as exc:
            logger.error(
                "the reply to request %r (operation %r) cannot be encoded: %s", request_id, op, exc
            )
            fallback = ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                f"the reply of operation '{op}' could not be encoded as MessagePack",
                {"op": op, "exception": type(exc).__name__},
            )
            payload = encode_message(error_reply(request_id, fallback))
        self._write(peer, payload)

    def _write(self, peer: Peer, payload: bytes) -> None:
        if not peer.send_frame(payload) and isinstance(peer, SocketPeer):
            self._drop_peer(peer)

    # -- exit ------------------------------------------------------------------------

    def terminate(self, reason: str) -> None:
        # getattr: terminate also runs when init failed before setting these.
        if len(getattr(self, "_pending", ())):
            if reason in ("normal", "shutdown"):
                self._answer_in_flight(NODE_STOPPING, f"the node is stopping ({reason})")
            else:
                self._answer_in_flight(
                    ErrorCode.INTERNAL_ERROR,
                    f"the bridge stopped ({reason}) before the request finished; "
                    "its outcome is unknown",
                )
        listener = getattr(self, "_listener", None)
        if listener is not None:
            listener.close()
        for peer in list(getattr(self, "_peers", {}).values()):
            if isinstance(peer, SocketPeer):
                peer.close()
        points = getattr(self, "_points", None)
        if points is not None:
            points.close()
        logger.info("bridge stopped (%s)", reason)
