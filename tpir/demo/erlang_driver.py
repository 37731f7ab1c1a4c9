"""`ErlangPortDriver`: the demo's node runs as a port of a real Erlang VM.

The driver compiles ``erlang/tpir_port.erl`` and ``tpir/demo/tpir_demo_driver.erl``
with ``erlc`` into a work folder and starts ``erl -noshell``, which runs tpir_port under
a supervisor and the node under tpir_port. This process talks to the VM through the
line commands of ``tpir_demo_driver.erl``: requests go in as ``CALL`` lines, replies and
events come back as ``REPLY`` and ``EVENT`` lines, each payload MessagePack in hex.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import msgpack

from tpir.demo.drivers import PORT_EXITED, DriverError, NodeDriver, Outcome

__all__ = [
    "DRIVER_SOURCE",
    "ErlangPortDriver",
    "erlang_missing_reason",
    "tpir_port_source",
]

logger = logging.getLogger(__name__)

DRIVER_SOURCE: Final = Path(__file__).with_name("tpir_demo_driver.erl")
_DRIVER_MODULE: Final = "tpir_demo_driver"
_COMPILE_TIMEOUT_SECONDS: Final = 120.0
_READY_TIMEOUT_SECONDS: Final = 30.0
# tpir_port returns ``timeout`` itself, so the sweeper only covers a VM that stopped replying.
_SLACK_SECONDS: Final = 5.0


def tpir_port_source() -> Path | None:
    """Return ``erlang/tpir_port.erl`` of this source tree, or None when it is not there.

    The Erlang client is not Python package data, so it exists only in a checkout or an
    editable install, beside the ``tpir`` package.
    """
    candidate = Path(__file__).resolve().parents[2] / "erlang" / "tpir_port.erl"
    return candidate if candidate.is_file() else None


def erlang_missing_reason() -> str | None:
    """Return why the Erlang driver cannot run here, or None when it can."""
    missing = [tool for tool in ("erl", "erlc") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found on PATH"
    if tpir_port_source() is None:
        return "erlang/tpir_port.erl not found beside the tpir package"
    if not DRIVER_SOURCE.is_file():
        return f"{DRIVER_SOURCE.name} not found in the tpir.demo package"
    return None


class ErlangPortDriver(NodeDriver):
    """Drives the node from ``erl -noshell`` through tpir_port (module docstring).

    ``work_dir`` receives the compiled ``.beam`` files; the other options are those of
    `NodeDriver`.
    """

    def __init__(
        self,
        node_command: Sequence[str],
        env: Mapping[str, str],
        log_stream: IO[bytes],
        work_dir: Path,
    ) -> None:
        super().__init__(node_command, env, log_stream)
        self._work_dir = work_dir
        self._process: subprocess.Popen[str] | None = None
        self._write_lock = threading.Lock()
        self._ready = threading.Event()
        self._ready_line = ""
        self._node_pid: int | None = None

    def _launch(self) -> None:
        reason = erlang_missing_reason()
        if reason is not None:
            raise DriverError(f"the Erlang driver cannot run: {reason}")
        beam_dir = self._compile()
        command = [
            "erl",
            "-noshell",
            "-pa",
            str(beam_dir),
            "-run",
            _DRIVER_MODULE,
            "main",
            "-extra",
            *self._node_command,
        ]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log_stream,
            env=self._env,
            text=True,
            encoding="ascii",
            errors="replace",
        )
        self._spawn_thread("erlang-reader", self._read_lines)
        if not self._ready.wait(_READY_TIMEOUT_SECONDS) or not self._ready_line.startswith("READY"):
            raise DriverError(
                f"the Erlang VM did not start the node: {self._ready_line or 'no output'}"
            )
        release = self._ready_line.partition(" ")[2] or "?"
        self.description = (
            f"a real Erlang VM (erl, OTP {release}) running erlang/tpir_port.erl under a supervisor"
        )

    def _compile(self) -> Path:
        source = tpir_port_source()
        assert source is not None
        beam_dir = self._work_dir / "beam"
        beam_dir.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                ["erlc", "-o", str(beam_dir), str(source), str(DRIVER_SOURCE)],
                check=True,
                capture_output=True,
                text=True,
                timeout=_COMPILE_TIMEOUT_SECONDS,
            )
        except subprocess.CalledProcessError as exc:
            raise DriverError(f"erlc failed with status {exc.returncode}: {exc.stderr}") from exc
        except subprocess.TimeoutExpired as exc:
            raise DriverError(f"erlc did not finish within {exc.timeout:g} s") from exc
        return beam_dir

    def start(self) -> None:
        super().start()
        pid = self._control("OSPID")
        if not (pid.ok and isinstance(pid.value, int)):
            raise DriverError(f"tpir_port did not report the node's pid: {pid.message}")
        self._node_pid = pid.value

    def _send(self, ref: int, op: str, args: Mapping[str, Any], timeout: float) -> None:
        payload = msgpack.packb({"op": op, "args": dict(args)}, use_bin_type=True)
        self._write_line(f"CALL {ref} {max(0, round(timeout * 1000))} {payload.hex()}")

    def _control(self, verb: str, timeout: float = 10.0) -> Outcome:
        """Send a driver command other than CALL (OSPID, SUBSCRIBE) and wait for its reply."""
        ref, future = self._pending.open(timeout)
        try:
            self._write_line(f"{verb} {ref}")
        except OSError as exc:
            self._pending.resolve(ref, Outcome(False, code=PORT_EXITED, message=str(exc)))
        result: Outcome = future.result(timeout + 1.0)
        return result

    def _write_line(self, line: str) -> None:
        process = self._process
        if process is None or process.stdin is None:
            raise OSError("the Erlang VM is not running")
        with self._write_lock:
            try:
                process.stdin.write(line + "\n")
                process.stdin.flush()
            except ValueError as exc:
                raise OSError(str(exc)) from exc

    def subscribe(self) -> Outcome:
        # tpir_port sends the node one subscribe request, for every event, and forwards
        # the events to the driver's subscribed process.
        return self._control("SUBSCRIBE")

    def _timeout_slack(self) -> float:
        return _SLACK_SECONDS

    def _read_lines(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            if line.startswith(("READY", "FAILED")):
                self._ready_line = line
                self._ready.set()
            elif line.startswith("REPLY "):
                self._on_reply(line)
            elif line.startswith("EVENT "):
                event = _decode_hex(line.partition(" ")[2])
                if isinstance(event, dict):
                    self._deliver_event(event)
            elif line:
                logger.info("Erlang driver: %s", line[:200])
        self._ready.set()
        self._pending.fail_all(Outcome(False, code=PORT_EXITED, message="the Erlang VM exited"))

    def _on_reply(self, line: str) -> None:
        parts = line.split(" ")
        if len(parts) != 4 or not parts[1].isdigit():
            logger.warning("Erlang driver: malformed reply line %r", line[:200])
            return
        payload = _decode_hex(parts[3])
        if parts[2] == "ok":
            outcome = Outcome(True, value=payload)
        else:
            outcome = Outcome.from_error_map(payload)
        self._pending.resolve(int(parts[1]), outcome)

    def _finish(self, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            with self._write_lock:
                try:
                    process.stdin.write("QUIT\n")
                    process.stdin.close()
                except (OSError, ValueError):
                    pass
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("the Erlang VM (pid %d) did not halt; killing it", process.pid)
            process.kill()
            process.wait(timeout)

    def node_pid(self) -> int:
        if self._node_pid is None:
            raise DriverError("the node's pid is not known before start")
        return self._node_pid

    def process_ids(self) -> set[int]:
        return {self._process.pid} if self._process is not None else set()


def _decode_hex(text: str) -> Any:
    try:
        return msgpack.unpackb(bytes.fromhex(text), raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        logger.warning("Erlang driver: dropped a payload that is not MessagePack hex: %s", exc)
        return None
