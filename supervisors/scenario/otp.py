"""Run a scenario on a real Erlang/OTP supervisor tree through ``escript``.

:func:`run_otp` writes the scenario as Erlang terms to a temporary file and
runs ``otp_scenario.escript`` (next to this module) on it. It parses the raw
event lines the script prints and feeds them to the shared :class:`Observer`.
It yields the started lines of the initial tree, then for each step its event
lines and its ``{"step": N, "alive": [...]}`` line.

Options of :func:`run_otp`:

``escript``
    Name or path of the ``escript`` executable (default ``"escript"``, looked
    up on PATH).
``timeout``
    Seconds the whole run may take, start-up included, before the script is
    killed and :class:`OtpRunError` is raised (default: :func:`default_timeout`
    of the scenario, any value > 0).
``on_spawn``
    Optional callable, called with the pid of the escript process right after
    it started (default None).
"""

from __future__ import annotations

import logging
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from supervisors.scenario.model import (
    CrashStep,
    ExitStep,
    KillStep,
    Scenario,
    Step,
    StopStep,
    SupervisorNode,
    WaitStep,
    WorkerNode,
)
from supervisors.scenario.observer import OUTPUT_REASONS, Observer, RawEvent

__all__ = [
    "ESCRIPT_PATH",
    "Atom",
    "EscriptNotFoundError",
    "OtpRunError",
    "default_timeout",
    "encode_term",
    "run_otp",
    "scenario_terms",
]

logger = logging.getLogger(__name__)

ESCRIPT_PATH = Path(__file__).with_name("otp_scenario.escript")

# Lines of standard error kept for error messages.
_STDERR_TAIL_LINES = 20


class OtpRunError(RuntimeError):
    """The OTP side of a scenario failed, timed out or printed an unexpected line."""


class EscriptNotFoundError(OtpRunError):
    """The ``escript`` executable is not on PATH (or not at the given path)."""


class Atom(str):
    """A string that :func:`encode_term` writes as an Erlang atom, not a binary."""


def encode_term(value: Any) -> str:
    """Write ``value`` as Erlang term text that ``file:consult/1`` reads back.

    Atom becomes a quoted atom, str a UTF-8 binary, bool the atom true or
    false, int an integer, tuple a tuple, list a list and dict a map. Any
    other type raises TypeError.
    """
    if isinstance(value, Atom):
        return _quote_atom(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _binary(value)
    if isinstance(value, tuple):
        return "{" + ", ".join(encode_term(item) for item in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(encode_term(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{encode_term(key)} => {encode_term(item)}" for key, item in value.items())
        return "#{" + ", ".join(pairs) + "}"
    raise TypeError(f"cannot write a {type(value).__name__} as an Erlang term: {value!r}")


def _is_printable_ascii(text: str) -> bool:
    return all(" " <= character <= "~" for character in text)


def _quote_atom(name: str) -> str:
    # Printable ASCII reads the same in every encoding file:consult/1 may assume.
    if not _is_printable_ascii(name):
        raise ValueError(f"atom {name!r}: expected printable ASCII characters only")
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _binary(text: str) -> str:
    if _is_printable_ascii(text):
        return '<<"' + text.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    return "<<" + ",".join(str(byte) for byte in text.encode("utf-8")) + ">>"


def _encode_terms(terms: list[Any]) -> str:
    return "".join(encode_term(term) + ".\n" for term in terms)


def default_timeout(scenario: Scenario) -> float:
    """Return a generous bound in seconds for one OTP run of ``scenario``.

    A scenario without steps or children ran in about 0.4 s on a 2-core
    machine (VM start-up, compiling the script, one quiet period), and the
    bound allows 10 s for that. It adds the sum of the waits. For each step
    and for the initial start, it adds 0.5 s plus the time every worker could
    spend stopping.
    """
    waits = sum(step.ms for step in scenario.steps if isinstance(step, WaitStep)) / 1000
    stop_ms = 0
    for node in scenario.nodes_in_start_order():
        if isinstance(node, WorkerNode):
            stop_ms += _longest_stop_ms(node)
    per_step = 0.5 + stop_ms / 1000
    return 10.0 + waits + (len(scenario.steps) + 1) * per_step


def _longest_stop_ms(worker: WorkerNode) -> int:
    if worker.shutdown == "brutal_kill":
        return 0
    if worker.shutdown == "infinity":
        return worker.stop_ms
    return min(worker.stop_ms, int(worker.shutdown))


def scenario_terms(scenario: Scenario) -> tuple[str, list[str]]:
    """Return the Erlang terms file for ``scenario`` and the ids by index.

    Nodes are numbered by their position in start order. The script prints
    these indexes, so ids need no escaping in its output.
    """
    ids = list(scenario.ids_in_start_order())
    index_of = {node_id: index for index, node_id in enumerate(ids)}
    nodes: list[dict[Atom, Any]] = []
    for node in scenario.nodes_in_start_order():
        term: dict[Atom, Any] = {
            Atom("index"): index_of[node.id],
            Atom("id"): node.id,
            Atom("restart"): Atom(node.restart),
            Atom("shutdown"): _shutdown_term(node.shutdown),
        }
        if isinstance(node, SupervisorNode):
            term[Atom("kind")] = Atom("supervisor")
            term[Atom("strategy")] = Atom(node.strategy)
            term[Atom("intensity")] = node.intensity
            term[Atom("period")] = node.period
            term[Atom("children")] = [index_of[child.id] for child in node.children]
        else:
            term[Atom("kind")] = Atom("worker")
            term[Atom("stop_ms")] = node.stop_ms
        nodes.append(term)
    text = _encode_terms(
        [
            (Atom("nodes"), nodes),
            (Atom("root"), index_of[scenario.root_id]),
            (Atom("steps"), [_step_term(step, index_of) for step in scenario.steps]),
        ]
    )
    return text, ids


def _shutdown_term(shutdown: int | str) -> int | Atom:
    return Atom(shutdown) if isinstance(shutdown, str) else shutdown


def _step_term(step: Step, index_of: dict[str, int]) -> tuple[Any, ...]:
    if isinstance(step, CrashStep):
        return (Atom("crash"), index_of[step.id])
    if isinstance(step, ExitStep):
        return (Atom("exit"), index_of[step.id], Atom(step.reason))
    if isinstance(step, KillStep):
        return (Atom("kill"), index_of[step.id])
    if isinstance(step, WaitStep):
        return (Atom("wait_ms"), step.ms)
    if isinstance(step, StopStep):
        return (Atom("stop"), index_of[step.id])
    raise TypeError(f"unknown step type {type(step).__name__}")


def run_otp(
    scenario: Scenario,
    *,
    escript: str = "escript",
    timeout: float | None = None,
    on_spawn: Callable[[int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Run ``scenario`` on OTP and return an iterator over its output lines.

    Raises EscriptNotFoundError at once when ``escript`` cannot be found.
    While iterating, raises OtpRunError when the script exits with an error,
    prints an unexpected line, misses a step or does not finish within
    ``timeout`` seconds. In that case, and when the iterator is closed early,
    the script is killed by its pid.
    """
    executable = shutil.which(escript)
    if executable is None:
        raise EscriptNotFoundError(
            f"escript executable {escript!r} not found on PATH; install Erlang/OTP "
            "(Debian: apt-get install erlang-base) or pass escript= the path of escript"
        )
    if timeout is None:
        timeout = default_timeout(scenario)
    if timeout <= 0:
        raise ValueError(f"timeout: invalid value {timeout!r}; expected seconds > 0")
    return _run(scenario, executable, timeout, on_spawn)


def _run(
    scenario: Scenario,
    executable: str,
    timeout: float,
    on_spawn: Callable[[int], None] | None,
) -> Iterator[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    terms, ids = scenario_terms(scenario)
    observer = Observer(scenario)
    with tempfile.TemporaryDirectory(prefix="tpir-otp-scenario-") as workdir:
        terms_path = Path(workdir, "scenario.terms")
        terms_path.write_text(terms, encoding="utf-8")
        stderr_path = Path(workdir, "stderr.txt")
        with open(stderr_path, "wb") as stderr_file:
            # A session of its own keeps the VM out of the caller's terminal
            # signals and lets callers find every process it started by session id.
            process = subprocess.Popen(
                [executable, str(ESCRIPT_PATH), str(terms_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr_file,
                start_new_session=True,
            )
        logger.debug(
            "started %s for scenario %r, pid %d", ESCRIPT_PATH.name, scenario.root_id, process.pid
        )
        try:
            if on_spawn is not None:
                on_spawn(process.pid)
            parser = _LineParser(ids, observer, len(scenario.steps))
            for line in _read_lines(process, deadline, timeout):
                yield from parser.feed(line)
            _wait_for_exit(process, deadline, timeout)
            if process.returncode != 0:
                raise OtpRunError(
                    f"{ESCRIPT_PATH.name} exited with status {process.returncode}"
                    f"{_stderr_tail(stderr_path)}"
                )
            parser.check_complete(_stderr_tail(stderr_path))
        finally:
            if process.poll() is None:
                logger.warning(
                    "killing %s, pid %d, which is still running", ESCRIPT_PATH.name, process.pid
                )
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _read_lines(process: subprocess.Popen[bytes], deadline: float, timeout: float) -> Iterator[str]:
    assert process.stdout is not None
    descriptor = process.stdout.fileno()
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(descriptor, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OtpRunError(
                    f"{ESCRIPT_PATH.name} (pid {process.pid}) timed out after {timeout:.1f} s; "
                    "it was killed. Pass a larger timeout= if the scenario needs more time"
                )
            if not selector.select(remaining):
                continue
            chunk = os.read(descriptor, 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", errors="replace")
    if buffer:
        yield buffer.decode("utf-8", errors="replace")


def _wait_for_exit(process: subprocess.Popen[bytes], deadline: float, timeout: float) -> None:
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise OtpRunError(
            f"{ESCRIPT_PATH.name} (pid {process.pid}) closed its output but did not exit "
            f"within {timeout:.1f} s; it was killed"
        ) from None


def _stderr_tail(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    lines = text.strip().splitlines()[-_STDERR_TAIL_LINES:]
    if not lines:
        return ""
    return "; standard error ends with:\n" + "\n".join(lines)


class _LineParser:
    """Turn the script's raw lines into observer events and output lines."""

    def __init__(self, ids: list[str], observer: Observer, step_count: int) -> None:
        self._ids = ids
        self._observer = observer
        self._step_count = step_count
        self._ready = False
        self._next_step = 0
        self._done = False

    def feed(self, line: str) -> list[dict[str, Any]]:
        fields = line.split()
        if not fields:
            return []
        word = fields[0]
        if word == "started" and len(fields) == 4:
            timestamp, node_id = self._timestamp_and_id(line, fields)
            self._observer.add(RawEvent.started(timestamp, node_id, fields[3]))
            return []
        if word == "terminated" and len(fields) == 5 and fields[4] in OUTPUT_REASONS:
            timestamp, node_id = self._timestamp_and_id(line, fields)
            self._observer.add(RawEvent.terminated(timestamp, node_id, fields[4], fields[3]))
            return []
        if word == "ready" and len(fields) == 1 and not self._ready:
            self._ready = True
            return self._observer.flush()
        if word == "quiet" and len(fields) == 2 and self._ready:
            return self._end_step(line, fields[1])
        if word == "done" and len(fields) == 1:
            self._done = True
            return self._observer.flush()
        raise OtpRunError(f"unexpected line from {ESCRIPT_PATH.name}: {line!r}")

    def check_complete(self, stderr_tail: str) -> None:
        if not self._done or self._next_step != self._step_count:
            raise OtpRunError(
                f"{ESCRIPT_PATH.name} ended after {self._next_step} of {self._step_count} steps "
                f"without its done line{stderr_tail}"
            )

    def _end_step(self, line: str, number_text: str) -> list[dict[str, Any]]:
        if number_text != str(self._next_step):
            raise OtpRunError(
                f"unexpected line from {ESCRIPT_PATH.name}: {line!r}; "
                f"expected the end of step {self._next_step}"
            )
        lines = self._observer.flush()
        lines.append(self._observer.step_line(self._next_step))
        self._next_step += 1
        return lines

    def _timestamp_and_id(self, line: str, fields: list[str]) -> tuple[int, str]:
        try:
            timestamp = int(fields[1])
            index = int(fields[2])
        except ValueError:
            raise OtpRunError(f"unexpected line from {ESCRIPT_PATH.name}: {line!r}") from None
        if not 0 <= index < len(self._ids):
            raise OtpRunError(
                f"unexpected line from {ESCRIPT_PATH.name}: {line!r}; node index {index} "
                f"is outside 0..{len(self._ids) - 1}"
            )
        return timestamp, self._ids[index]
