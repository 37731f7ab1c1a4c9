"""The port server loop: frames in on stdin, requests to handlers, replies and events out.

`PortServer` contains no actor code. The node plugs in one handler per operation.
A handler is called as ``handler(request, reply)`` on the reader thread and must return
quickly, handing slow work to another thread or actor. It calls ``reply`` exactly once,
now or later and from any thread, with either a result (any MessagePack-encodable value)
or a `ProtocolError`. Many requests can be in flight at once, and replies go out in the
order they are made.

The server guarantees one reply per accepted request as long as each handler replies or
raises: a handler that raises gets an ``internal_error`` reply, a result that cannot be
encoded is replaced by an ``internal_error`` reply, and a second reply is dropped and logged.
A handler that returns without ever calling ``reply`` leaves its request unanswered.

The ``subscribe`` operation is built in. Events passed to `PortServer.publish` go out only
after the peer has subscribed, and only those it asked for.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from tpir.bridge.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameReader,
    FrameTooLargeError,
    FrameWriter,
    TruncatedFrameError,
)
from tpir.bridge.protocol import (
    OPERATIONS,
    ErrorCode,
    OperationSpec,
    ProtocolError,
    Request,
    decode_request,
    encode_message,
    error_reply,
    event_message,
    frame_too_large_error,
    ok_reply,
)
from tpir.bridge.stdio import claim_stdout

__all__ = ["Handler", "PortServer", "Reply"]

logger = logging.getLogger(__name__)

Reply = Callable[[Any], None]
Handler = Callable[[Request, Reply], None]

_SUBSCRIBE_OP = "subscribe"


class PortServer:
    """Serves the port protocol on a pair of file descriptors.

    Options:
        handlers: one handler per operation name. Every name must be in ``operations``,
            and "subscribe" is reserved because the server implements it. Operations
            without a handler are rejected as ``unknown_op``.
        max_frame_bytes: maximum request frame size in bytes. Default 16777216 (16 MiB),
            valid range 0 to 4294967295. Longer frames are discarded and get a
            ``frame_too_large`` reply with id nil.
        in_fd: descriptor to read request frames from. Default 0 (stdin). It is never closed.
        out_fd: descriptor to write replies and events to. Default None, which calls
            `claim_stdout` in `start` and writes to the descriptor it returns.
        operations: the operation table to validate against. Default `OPERATIONS`.
            Programs may pass an extended table, as the test echo program does.
        on_eof: called once, on the reader thread, when the input ends or fails.
            Default None.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        in_fd: int = 0,
        out_fd: int | None = None,
        operations: Mapping[str, OperationSpec] = OPERATIONS,
        on_eof: Callable[[], None] | None = None,
    ) -> None:
        for name in handlers:
            if name == _SUBSCRIBE_OP:
                raise ValueError("handlers must not include 'subscribe', the server implements it")
            if name not in operations:
                raise ValueError(
                    f"handler {name!r} names no operation in the table. "
                    f"Known operations: {', '.join(sorted(operations))}"
                )
        if _SUBSCRIBE_OP not in operations:
            raise ValueError("operations must include 'subscribe', which the server implements")

        self._handlers: dict[str, Handler] = dict(handlers)
        self._handlers[_SUBSCRIBE_OP] = self._handle_subscribe
        self._served_operations = {name: operations[name] for name in self._handlers}
        self._reader = FrameReader(in_fd, max_frame_bytes=max_frame_bytes)
        self._out_fd = out_fd
        self._owns_out_fd = False
        self._writer: FrameWriter | None = None
        self._on_eof = on_eof

        self._eof = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._subscribed = False
        self._subscribed_events: frozenset[str] | None = None
        self._rejected_count = 0
        self._write_failure_count = 0

    def start(self) -> None:
        """Start the reader thread. Raises RuntimeError when called twice."""
        if self._thread is not None:
            raise RuntimeError("PortServer.start was already called")
        if self._out_fd is None:
            self._out_fd = claim_stdout()
            self._owns_out_fd = True
        self._writer = FrameWriter(self._out_fd)
        # A daemon thread, because a blocking read on stdin cannot be interrupted and
        # must not keep the process alive after the node decides to exit.
        self._thread = threading.Thread(
            target=self._read_loop, name="tpir-port-reader", daemon=True
        )
        self._thread.start()
        logger.info("port server started, serving %s", ", ".join(sorted(self._handlers)))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the input ends or ``timeout`` seconds pass. Returns whether it ended."""
        return self._eof.wait(timeout)

    def serve_forever(self) -> None:
        """Start the server and block until the input ends."""
        self.start()
        self.wait()

    @property
    def subscribed_events(self) -> frozenset[str] | None:
        """Event names the peer subscribed to, or None for all events or no subscription."""
        with self._state_lock:
            return self._subscribed_events

    @property
    def is_subscribed(self) -> bool:
        with self._state_lock:
            return self._subscribed

    def publish(self, event: str, fields: Mapping[str, Any] | None = None) -> bool:
        """Send an event to the peer if it subscribed to it. Returns whether it was sent.

        Safe to call from any thread. Raises ValueError for an invalid event name or a
        reserved field, and TypeError or ValueError when a field cannot be encoded.
        """
        message = event_message(event, fields)
        with self._state_lock:
            should_send = self._subscribed and (
                self._subscribed_events is None or event in self._subscribed_events
            )
        if not should_send or self._writer is None:
            return False
        return self._write(encode_message(message), f"event {event!r}")

    def _read_loop(self) -> None:
        try:
            while True:
                try:
                    frame = self._reader.read_frame()
                except FrameTooLargeError as error:
                    self._reject(frame_too_large_error(error.length, error.max_frame_bytes))
                    continue
                except TruncatedFrameError as error:
                    logger.warning("port input ended inside a frame: %s", error)
                    continue
                if frame is None:
                    logger.info("port input ended")
                    break
                self._handle_frame(frame)
        except OSError:
            logger.exception("reading port input failed, treating it as the end of input")
        finally:
            self._finish()

    def _finish(self) -> None:
        self._reader.close()
        self._eof.set()
        if self._on_eof is None:
            return
        try:
            self._on_eof()
        except Exception:
            logger.exception("on_eof callback raised")

    def _handle_frame(self, frame: bytes) -> None:
        decoded = decode_request(frame, self._served_operations)
        if isinstance(decoded, ProtocolError):
            self._reject(decoded)
            return

        reply = _ReplyOnce(self, decoded)
        try:
            self._handlers[decoded.op](decoded, reply)
        except Exception as error:
            logger.exception(
                "handler for operation %r raised on request %r", decoded.op, decoded.id
            )
            reply(
                ProtocolError(
                    ErrorCode.INTERNAL_ERROR,
                    f"handler for operation '{decoded.op}' raised {type(error).__name__}",
                    {"op": decoded.op, "exception": type(error).__name__},
                )
            )

    def _handle_subscribe(self, request: Request, reply: Reply) -> None:
        events = request.args.get("events")
        with self._state_lock:
            self._subscribed = True
            self._subscribed_events = None if events is None else frozenset(events)
        logger.info("peer subscribed to %s", "all events" if events is None else events)
        reply({"events": None if events is None else sorted(set(events))})

    def _reject(self, error: ProtocolError) -> None:
        with self._state_lock:
            self._rejected_count += 1
            count = self._rejected_count
        # Log the details and not the message, because the message quotes received
        # values, which could be secrets sent in the wrong field.
        logger.warning(
            "rejected request %r with %s (%d rejected so far): %r",
            error.request_id,
            error.code,
            count,
            error.details,
        )
        self._write(encode_message(error_reply(error.request_id, error)), "error reply")

    def _send_reply(self, request: Request, outcome: Any) -> None:
        if isinstance(outcome, ProtocolError):
            message = error_reply(request.id, outcome)
        else:
            message = ok_reply(request.id, outcome)
        try:
            payload = encode_message(message)
        except (TypeError, ValueError, OverflowError) as error:
            logger.error(
                "reply to request %r (operation %r) cannot be encoded as MessagePack: %s",
                request.id,
                request.op,
                error,
            )
            fallback = ProtocolError(
                ErrorCode.INTERNAL_ERROR,
                f"the reply of operation '{request.op}' could not be encoded as MessagePack",
                {"op": request.op, "exception": type(error).__name__},
            )
            payload = encode_message(error_reply(request.id, fallback))
        self._write(payload, f"reply to request {request.id!r}")

    def _write(self, payload: bytes, description: str) -> bool:
        assert self._writer is not None
        try:
            self._writer.write_frame(payload)
        except (OSError, ValueError) as error:
            # ValueError is a frame over 4 GiB. OSError is usually a peer that exited, and
            # then every later write fails too, so only the first failure is logged in full.
            with self._state_lock:
                self._write_failure_count += 1
                count = self._write_failure_count
            if count == 1:
                logger.error("writing %s to the port failed: %s", description, error)
            else:
                logger.debug(
                    "writing %s failed (%d failures so far): %s", description, count, error
                )
            return False
        return True

    def close(self) -> None:
        """Close the output descriptor if `start` claimed it. The input is left open.

        Call it only after the last reply and event, because later writes fail.
        """
        if self._owns_out_fd and self._out_fd is not None:
            os.close(self._out_fd)
            self._out_fd = None


class _ReplyOnce:
    """The ``reply`` callable of one request. It sends the first call and drops the rest."""

    def __init__(self, server: PortServer, request: Request) -> None:
        self._server = server
        self._request = request
        self._lock = threading.Lock()
        self._sent = False

    def __call__(self, outcome: Any) -> None:
        with self._lock:
            already_sent = self._sent
            self._sent = True
        if already_sent:
            logger.warning(
                "dropped a second reply to request %r (operation %r)",
                self._request.id,
                self._request.op,
            )
            return
        self._server._send_reply(self._request, outcome)
