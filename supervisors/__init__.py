"""OTP's supervisor behaviour on thespian actors, knowing nothing of integrations.

The public surface:

* :class:`ChildSpec`, :class:`SupFlags`, :class:`RestartBackoff`: what to supervise and how;
* :class:`GenActor`: the base class of supervised actors (OTP exit semantics);
* :class:`Supervisor`: the supervisor actor;
* :class:`SupervisionSystem`: start an actor system with a root supervisor and
  use the supervisor API from outside (``which_children``, ``count_children``,
  ``start_child``, ``terminate_child``, ``restart_child``, ``delete_child``,
  ``get_childspec``, ``snapshot``).

Importing this package installs the process-level guarantees of
:mod:`supervisors._platform` (loopback-only sockets, no orphan processes, no
admin outliving its creator).
"""

from supervisors import _platform

_platform.install()

from supervisors.actor import DEFER, IGNORE, NOREPLY, Caller, GenActor  # noqa: E402
from supervisors.messages import Call, ChildEvent, Deliver, ErrorInfo, Kill, Reply  # noqa: E402
from supervisors.reports import LogSettings  # noqa: E402
from supervisors.spec import ChildSpec, RestartBackoff, SpecError, SupFlags  # noqa: E402
from supervisors.supervisor import Supervisor  # noqa: E402
from supervisors.system import (  # noqa: E402
    CallTimeout,
    SupervisionError,
    SupervisionSystem,
    free_port,
)

__all__ = [
    "DEFER",
    "IGNORE",
    "NOREPLY",
    "Call",
    "CallTimeout",
    "Caller",
    "ChildEvent",
    "ChildSpec",
    "Deliver",
    "ErrorInfo",
    "GenActor",
    "Kill",
    "LogSettings",
    "Reply",
    "RestartBackoff",
    "SpecError",
    "SupFlags",
    "SupervisionError",
    "SupervisionSystem",
    "Supervisor",
    "free_port",
]
