"""Echo node for the bridge tests: the port protocol on stdin and stdout, no actors.

Usage: python port_echo.py [--max-frame-bytes N]

Operations, on top of the built-in subscribe:
    ping        replies "pong".
    call        replies with its "request" argument after ``request["sleep"]`` seconds
                (default 0) on a separate thread, so replies can overtake each other.
                ``request["reply_count"]`` (default 1) sends that many replies, to check
                that the server drops all but the first.
    crash       the handler raises RuntimeError. With ``reply_first`` true it replies
                "replied" before raising.
    print       calls print("stray") and replies "printed", to check that stdout is protected.
    emit        publishes the event named by ``event`` with the map ``fields`` and replies
                whether it was sent.
    bad_result  replies with a Python set, which MessagePack cannot encode.

The program exits with status 0 when stdin ends.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import Any

from tpir.bridge.framing import DEFAULT_MAX_FRAME_BYTES
from tpir.bridge.protocol import (
    OPERATIONS,
    ArgSpec,
    ArgType,
    OperationSpec,
    ProtocolError,
    Request,
)
from tpir.bridge.server import PortServer, Reply
from tpir.bridge.stdio import claim_stdout

logger = logging.getLogger("port_echo")

ECHO_OPERATIONS = {
    **OPERATIONS,
    "crash": OperationSpec(
        "crash", "Raise in the handler.", (ArgSpec("reply_first", ArgType.BOOL),)
    ),
    "print": OperationSpec("print", "Print to stdout, which must not reach the port."),
    "emit": OperationSpec(
        "emit",
        "Publish an event.",
        (
            ArgSpec("event", ArgType.STR, required=True, min_length=1),
            ArgSpec("fields", ArgType.MAP),
        ),
    ),
    "bad_result": OperationSpec("bad_result", "Reply with a value MessagePack cannot encode."),
}


def handle_ping(request: Request, reply: Reply) -> None:
    reply("pong")


def handle_call(request: Request, reply: Reply) -> None:
    payload: dict[Any, Any] = request.args["request"]
    sleep = payload.get("sleep", 0)
    reply_count = payload.get("reply_count", 1)
    if not isinstance(sleep, int | float) or isinstance(sleep, bool) or sleep < 0:
        reply(
            ProtocolError("invalid_argument", f"request.sleep must be a number >= 0, got {sleep!r}")
        )
        return

    def send() -> None:
        for _ in range(reply_count):
            reply(payload)

    if sleep == 0:
        send()
        return
    timer = threading.Timer(sleep, send)
    timer.daemon = True
    timer.start()


def handle_crash(request: Request, reply: Reply) -> None:
    if request.args.get("reply_first", False):
        reply("replied")
    raise RuntimeError("crash requested by the test")


def handle_print(request: Request, reply: Reply) -> None:
    print("stray")
    sys.stdout.flush()
    reply("printed")


def make_emit_handler(server_ref: list[PortServer]) -> Any:
    def handle_emit(request: Request, reply: Reply) -> None:
        sent = server_ref[0].publish(request.args["event"], request.args.get("fields"))
        reply({"sent": sent})

    return handle_emit


def handle_bad_result(request: Request, reply: Reply) -> None:
    reply({1, 2, 3})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        default=DEFAULT_MAX_FRAME_BYTES,
        help="maximum request frame size in bytes (default %(default)s)",
    )
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="port_echo %(levelname)s %(name)s: %(message)s",
    )

    frame_fd = claim_stdout()
    server_ref: list[PortServer] = []
    server = PortServer(
        {
            "ping": handle_ping,
            "call": handle_call,
            "crash": handle_crash,
            "print": handle_print,
            "emit": make_emit_handler(server_ref),
            "bad_result": handle_bad_result,
        },
        max_frame_bytes=options.max_frame_bytes,
        in_fd=0,
        out_fd=frame_fd,
        operations=ECHO_OPERATIONS,
    )
    server_ref.append(server)
    server.serve_forever()
    logger.info("stdin ended, exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main())
