"""Provider simulators in their own processes, and a node configuration that uses them.

The benchmarks run two `tpir.simulator` processes on 127.0.0.1: a primary in the
OpenAI dialect and a secondary in the Anthropic dialect.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import httpx

__all__ = [
    "ANTHROPIC_MODEL",
    "CHAT_REQUEST",
    "INTEGRATION",
    "LOAD_PER_TRY_SECONDS",
    "OPENAI_MODEL",
    "REPO_ROOT",
    "SimulatorProcess",
    "config_text",
    "write_config",
    "direct_body",
    "simulator_pair",
]

_START_SECONDS: Final = 60.0

INTEGRATION: Final = "llm_provider"
REPO_ROOT: Final = Path(__file__).resolve().parents[1]
CHAT_REQUEST: Final[dict[str, Any]] = {"messages": [{"role": "user", "content": "hello"}]}
OPENAI_MODEL: Final = "gpt-4o-mini"
ANTHROPIC_MODEL: Final = "claude-3-5-haiku-latest"
LOAD_PER_TRY_SECONDS: Final = 5.0
"""Per-try timeout for the load benchmarks. Under 64 calls in flight the simulator's own
p99 passes 0.5 s, and a shorter timeout would turn slow responses into failovers."""


def direct_body() -> dict[str, Any]:
    """Return the chat completions body that the OpenAI adapter sends for `CHAT_REQUEST`."""
    return {"model": OPENAI_MODEL, "messages": CHAT_REQUEST["messages"]}


# -- simulators ------------------------------------------------------------------------------


class SimulatorProcess:
    """One `tpir.simulator` in its own process on 127.0.0.1, controlled over HTTP.

    Its own process keeps the server's threads from competing for this process's GIL
    with the client being measured. Use it as a context manager: leaving it stops the
    process by its pid, with SIGTERM and then SIGKILL after 5 s.
    """

    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.log_path = folder / f"{name}.log"
        self._port_file = folder / f"{name}.port"
        self._control: httpx.Client | None = None
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tpir.simulator",
                    "--name",
                    name,
                    "--host",
                    "127.0.0.1",
                    "--port-file",
                    str(self._port_file),
                    "--log-level",
                    "WARNING",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=REPO_ROOT,
            )
        try:
            self.port = self._wait_for_port()
        except BaseException:
            self.stop()
            raise

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_path.read_text(encoding="utf-8", errors="replace").strip()
                raise RuntimeError(
                    f"simulator {self.name} exited with status {self.process.returncode} "
                    f"before listening; the end of its log: {log[-500:] or '(empty)'}"
                )
            text = self._port_file.read_text(encoding="ascii") if self._port_file.exists() else ""
            if text.endswith("\n"):
                return int(text)
            time.sleep(0.02)
        raise RuntimeError(f"simulator {self.name} did not listen within {_START_SECONDS} s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The ``/v1`` root that both LLM adapters take as ``base_url``."""
        return self.url + "/v1"

    def _client(self) -> httpx.Client:
        # Created on first use, after the actor system has forked its admin, so that no
        # actor process inherits its sockets.
        if self._control is None:
            self._control = httpx.Client(base_url=self.url, timeout=5.0, trust_env=False)
        return self._control

    def control(self, **body: Any) -> None:
        """POST ``body`` to ``/_control``, for example ``mode=503`` or ``reset=True``."""
        self._client().post("/_control", json=body).raise_for_status()

    def counts(self) -> dict[str, int]:
        """Return the request counts by path."""
        response = self._client().get("/_control")
        response.raise_for_status()
        return dict(response.json()["counts"])

    def stop(self) -> None:
        """End the process by its pid: SIGTERM, then SIGKILL after 5 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._control is not None:
            self._control.close()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def simulator_pair(folder: Path) -> Iterator[tuple[SimulatorProcess, SimulatorProcess]]:
    """Start the primary (OpenAI dialect) and secondary (Anthropic) simulators."""
    with SimulatorProcess("primary", folder) as primary:
        with SimulatorProcess("secondary", folder) as secondary:
            yield primary, secondary


# -- configuration ---------------------------------------------------------------------------


def config_text(
    data_dir: Path,
    primary_url: str,
    secondary_url: str,
    *,
    per_try: float = 0.5,
    call_timeout: float = 5.0,
    failure_threshold: int = 5,
    open_duration: float = 30.0,
    log_level: str = "INFO",
) -> str:
    """Return a node configuration with one integration on the two simulators.

    ``per_try`` is each provider's per-attempt timeout and ``call_timeout`` the deadline
    of a whole call, in seconds. The breaker opens after ``failure_threshold`` failures
    in a row, and it and the outlier ejection keep the provider out for
    ``open_duration`` seconds. Everything else keeps the defaults of
    ``config/README.md``, with health checks on ``/models`` every 10 s.
    """
    return f"""
[node]
data_dir = "{data_dir}"
log_level = "{log_level}"
checkpoint_interval = 0.5

[[integrations]]
name = "{INTEGRATION}"
tier = 1
timeout = {call_timeout}

[integrations.circuit_breaker]
failure_threshold = {failure_threshold}
open_duration = {open_duration}

[integrations.retry]
max_retries = 1
initial_delay = 0.05
max_delay = 0.2

[integrations.health_check]
path = "/models"

[integrations.failover]
consecutive_failures = {failure_threshold}
base_ejection_time = {open_duration}
max_ejection_time = {open_duration}

[[integrations.providers]]
name = "openai"
kind = "openai"
role = "primary"
base_url = "{primary_url}"
model = "{OPENAI_MODEL}"
timeout = {per_try}

[[integrations.providers]]
name = "anthropic"
kind = "anthropic"
role = "secondary"
base_url = "{secondary_url}"
model = "{ANTHROPIC_MODEL}"
timeout = {per_try}
"""


def write_config(folder: Path, primary_url: str, secondary_url: str, **options: Any) -> Path:
    """Write `config_text` to ``folder/node.toml`` with data under ``folder/data``.

    ``options`` are `config_text`'s keyword arguments. Returns the file's path.
    """
    path = folder / "node.toml"
    path.write_text(
        config_text(folder / "data", primary_url, secondary_url, **options), encoding="utf-8"
    )
    return path
