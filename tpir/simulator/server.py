"""The provider simulator: a threaded HTTP/1.1 server whose failures tests can control.

One server speaks three dialects: OpenAI chat completions (`POST /v1/chat/completions`),
Anthropic messages (`POST /v1/messages`) and plain HTTP echo on every other path. It also
serves `/health` and the control endpoint `/_control`:

- `GET /_control` returns the current modes, scripts and request counts.
- `POST /_control` with `{"mode": <mode>, "target": <target>, ...parameters}` calls
  `set_mode`, with `{"script": [...], "target": <target>}` calls `script`, and with
  `{"reset": true}` calls `reset`. While the simulator refuses connections, the control
  endpoint is unreachable too, so give `refuse` a `duration` when using it remotely.

Control requests are never counted, recorded or affected by modes. Modes and their
parameters are described in `tpir.simulator.modes`.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tpir.simulator.engine import NORMAL, Engine, RecordedRequest
from tpir.simulator.handler import SimulatorHTTPServer
from tpir.simulator.modes import TARGETS, Behavior, parse_behavior, parse_step

__all__ = ["ProviderSimulator"]

logger = logging.getLogger(__name__)


class ProviderSimulator:
    """A controllable stand-in for OpenAI, Anthropic and plain HTTP providers.

    Options:
    - `name`: label used in logs and in the health response. Default "simulator".
    - `host`: address to listen on. Default "127.0.0.1". Any other address logs a
      warning, because tests and demos must stay on the loopback interface.
    - `port`: TCP port, 0 to 65535. Default 0, which picks a free port at `start`.
    - `api_key`: when set, OpenAI requests need `Authorization: Bearer <api_key>` and
      Anthropic requests need `x-api-key: <api_key>`, or they get 401. Default None.
    - `record_limit`: number of most recent requests kept in `requests`, 1 to 100,000.
      Default 100.
    - `request_queue_size`: listen backlog, 1 to 4096. Default 128.

    Use it as a context manager, or call `start` and `stop`.
    """

    def __init__(
        self,
        name: str = "simulator",
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        record_limit: int = 100,
        request_queue_size: int = 128,
    ) -> None:
        _check_int("port", port, 0, 65535)
        _check_int("record_limit", record_limit, 1, 100_000)
        _check_int("request_queue_size", request_queue_size, 1, 4096)
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise ValueError("api_key: expected a non-empty string or None")
        self.name = name
        self.host = host
        self.engine = Engine(name, api_key, record_limit)
        self._port = port
        self._queue_size = request_queue_size

        # The lifecycle lock serializes start, stop, refuse and reopen. It is reentrant
        # because a control request can trigger a refuse from a handler thread.
        self._lifecycle = threading.RLock()
        self._started = False
        self._stopped = False
        self._refusing = False
        self._server: SimulatorHTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._reopen_timer: threading.Timer | None = None

    def __repr__(self) -> str:
        return f"ProviderSimulator(name={self.name!r}, host={self.host!r}, port={self._port})"

    # Lifecycle

    def start(self) -> ProviderSimulator:
        """Start listening. Raises OSError if the port is taken, RuntimeError if started."""
        with self._lifecycle:
            if self._started:
                raise RuntimeError(f"simulator {self.name!r} was already started")
            if not _is_loopback(self.host):
                logger.warning("simulator %s listens on non-loopback host %s", self.name, self.host)
            self._listen()
            self._started = True
        logger.info("simulator %s listening on %s", self.name, self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening, close every connection (hanging ones included) and join threads.

        `timeout` is the maximum time in seconds to wait for handler threads. Calling
        `stop` again, or before `start`, does nothing.
        """
        with self._lifecycle:
            if not self._started or self._stopped:
                return
            self._stopped = True
            timer = self._reopen_timer
            self._cancel_reopen_timer()
            self.engine.set_closed(True)
            self._close_listener()
            threads = self.engine.close_connections()
        if timer is not None:
            # Joined outside the lifecycle lock, which the timer's callback may be waiting for.
            threads.append(timer)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = sum(1 for thread in threads if thread.is_alive())
        if alive:
            logger.warning(
                "simulator %s: %d handler threads still run after stop", self.name, alive
            )
        logger.info("simulator %s stopped", self.name)

    def __enter__(self) -> ProviderSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port, known after `start` when the simulator was created with port 0."""
        return self._port

    @property
    def url(self) -> str:
        """Root URL, for example "http://127.0.0.1:8123"."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def api_url(self) -> str:
        """URL of the /v1 API root, the `base_url` that both LLM adapters expect."""
        return self.url + "/v1"

    # Control

    def set_mode(self, mode: str | int, *, target: str = "api", **params: Any) -> None:
        """Set the persistent behavior of `target` (api, health or all) and clear its script.

        `refuse` applies to the whole server, so its target must be api or all. Any other
        mode reopens the listener when the simulator is refusing connections.
        """
        self._apply_behavior(parse_behavior(mode, params), _targets(target))

    def script(self, steps: Iterable[Any], *, target: str = "api") -> None:
        """Queue behaviors that the next requests to `target` consume, one each.

        A step is a status (`429`), a mode name (`"hang"`), `{"mode": ..., **params}` or
        `(mode, params)`. When the script runs out, the persistent behavior applies again.
        """
        behaviors = [parse_step(step) for step in steps]
        self.engine.set_script(behaviors, _targets(target))
        logger.info(
            "simulator %s: %s script set to %s",
            self.name,
            target,
            [b.describe() for b in behaviors],
        )

    def recover(self) -> None:
        """Respond normally on every target, clear scripts and reopen a refused listener."""
        self._apply_behavior(NORMAL, ("api", "health"))

    def reset(self) -> None:
        """Clear the request counts and records, then `recover`."""
        self.engine.clear_records()
        self.recover()

    def apply_control(self, data: Any) -> Callable[[], None] | None:
        """Apply the JSON object of a `POST /_control` request. Raises ValueError if invalid.

        Returns a callable that the caller must run after replying, or None. A refuse is
        deferred that way because it closes the connection that carries the reply.
        """
        if not isinstance(data, dict):
            raise ValueError("control body: expected a JSON object")
        actions = {"mode", "script", "reset"} & set(data)
        if len(actions) != 1:
            raise ValueError("control body: expected exactly one of mode, script, reset")
        target = data.get("target", "api")
        if "script" in data:
            if not isinstance(data["script"], list) or set(data) - {"script", "target"}:
                raise ValueError("script: expected a list of steps and an optional target")
            self.script(data["script"], target=target)
            return None
        if "reset" in data:
            if data["reset"] is not True or len(data) != 1:
                raise ValueError('reset: expected {"reset": true} and nothing else')
            self.reset()
            return None

        params = {k: v for k, v in data.items() if k not in ("mode", "target")}
        behavior = parse_behavior(data["mode"], params)
        targets = _targets(target)
        if behavior.mode == "refuse":
            _check_refuse_targets(targets)
            # Stop listening now, so that no new connection slips in after the reply, but
            # keep this connection open until the reply is sent.
            self._refuse(behavior.duration, close_connections=False)
            return self._close_connections_if_refusing
        self._apply_behavior(behavior, targets)
        return None

    def state(self) -> dict[str, Any]:
        """Return the modes, scripts and request counts as JSON-ready data."""
        return {"name": self.name, "url": self.url, "refusing": self._refusing} | (
            self.engine.state()
        )

    # Inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        """The most recent requests, oldest first (at most `record_limit`)."""
        return self.engine.requests()

    def count(self, path: str | None = None) -> int:
        """Return the number of requests received on `path`, or on every path for None."""
        return self.engine.count(path)

    def wait_for_count(self, count: int, path: str | None = None, timeout: float = 5.0) -> bool:
        """Wait until `count(path)` reaches `count`. Returns False if `timeout` seconds pass."""
        return self.engine.wait_for_count(count, path, timeout)

    # Internals

    def _apply_behavior(self, behavior: Behavior, targets: tuple[str, ...]) -> None:
        if behavior.mode == "refuse":
            _check_refuse_targets(targets)
            self._refuse(behavior.duration)
            return
        self.engine.set_behavior(behavior, targets)
        logger.info(
            "simulator %s: %s mode set to %s", self.name, "+".join(targets), behavior.describe()
        )
        self._reopen()

    def _listen(self) -> None:
        try:
            server = SimulatorHTTPServer((self.host, self._port), self, self._queue_size)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {self.host}:{self._port}: {exc.strerror}"
            ) from exc
        self._port = int(server.server_address[1])
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"simulator-{self.name}-{self._port}",
            daemon=True,
        )
        self._server = server
        self._serve_thread = thread
        thread.start()

    def _close_listener(self) -> None:
        server, thread = self._server, self._serve_thread
        self._server = self._serve_thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(5.0)

    def _cancel_reopen_timer(self) -> None:
        if self._reopen_timer is not None:
            self._reopen_timer.cancel()
            self._reopen_timer = None

    def _refuse(self, duration: float | None, *, close_connections: bool = True) -> None:
        """Close the listener and, if `close_connections` is True, every open connection."""
        with self._lifecycle:
            if not self._started or self._stopped:
                raise RuntimeError(f"simulator {self.name!r} is not running")
            self._cancel_reopen_timer()
            if not self._refusing:
                self._refusing = True
                self.engine.set_closed(True)
                self._close_listener()
                if close_connections:
                    self.engine.close_connections()
            if duration is not None:
                timer = threading.Timer(duration, self._reopen_after_timer)
                timer.daemon = True
                timer.name = f"simulator-{self.name}-reopen"
                self._reopen_timer = timer
                timer.start()
        logger.info(
            "simulator %s refuses connections on port %d%s",
            self.name,
            self._port,
            "" if duration is None else f" for {duration:g} s",
        )

    def _close_connections_if_refusing(self) -> None:
        with self._lifecycle:
            if self._refusing:
                self.engine.close_connections()

    def _reopen(self) -> None:
        with self._lifecycle:
            if not self._refusing or self._stopped:
                return
            self._cancel_reopen_timer()
            # NOTE: another process could take the port while it is closed. _listen then
            # raises OSError and the simulator keeps refusing.
            self._listen()
            self._refusing = False
            self.engine.set_closed(False)
        logger.info("simulator %s accepts connections again on port %d", self.name, self._port)

    def _reopen_after_timer(self) -> None:
        try:
            self._reopen()
        except OSError:
            logger.exception("simulator %s could not reopen port %d", self.name, self._port)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"{name}: invalid value {value!r}; expected an integer from {low} to {high}"
        )


def _targets(target: str) -> tuple[str, ...]:
    if target not in TARGETS:
        raise ValueError(f"target: invalid value {target!r}; expected one of {', '.join(TARGETS)}")
    return ("api", "health") if target == "all" else (target,)


def _check_refuse_targets(targets: tuple[str, ...]) -> None:
    if "api" not in targets:
        raise ValueError("target: 'refuse' closes the whole listener; use api or all")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
