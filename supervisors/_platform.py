"""Process-level guarantees that thespian does not give, applied once per process.

thespian 4.0.1's ``multiprocTCPBase`` has three behaviours that an OTP-style
tree cannot live with. Each is corrected here by wrapping one thespian
function; the wrappers are installed at import time of :mod:`supervisors`, so
every process that creates an actor system, and every actor process forked
from it, carries them.

1. *Wide listening sockets.* The transport binds the admin and every actor
   socket to ``0.0.0.0`` even when ``THESPIAN_BASE_IPADDR`` is ``127.0.0.1``,
   and it unpickles whatever reaches those sockets. While the listen address
   is loopback (the default, see :func:`set_listen_address`), every socket is
   bound to the address it advertises instead of the wildcard.
2. *Orphans after SIGKILL.* An actor whose process is killed leaves its
   children running. Each actor process asks the kernel for SIGKILL when its
   parent process dies (``prctl(PR_SET_PDEATHSIG)``), so the death of any
   supervisor's process takes its whole subtree with it within milliseconds.
3. *An admin that outlives its creator.* The admin double-forks and detaches
   by design. Here it watches its creator's process through a pidfd and, when
   the creator is gone, kills its own process group (the admin, the logger and
   every actor), so neither a crashed node nor a test run leaves a system
   behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import select
import signal
import threading
from typing import Any

__all__ = ["install", "set_listen_address", "listen_address", "LOOPBACK"]

LOOPBACK = "127.0.0.1"

_PR_SET_PDEATHSIG = 1
_installed = False


def listen_address() -> str:
    """Return the address actor sockets listen on in this process tree."""
    return os.environ.get("TPIR_LISTEN_ADDRESS", LOOPBACK)


def set_listen_address(address: str) -> None:
    """Choose the listen address for actor systems started after this call.

    Anything but ``127.0.0.1`` exposes a transport that unpickles what it
    receives, so only a trusted network may reach it.
    """
    os.environ["TPIR_LISTEN_ADDRESS"] = address
    os.environ["THESPIAN_BASE_IPADDR"] = address


def _set_parent_death_signal() -> None:
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _patch_bind_address() -> None:
    from thespian.system.transport import IPBase

    original_init = IPBase.IPActorAddress.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if listen_address() == LOOPBACK and self.sockname[0] == LOOPBACK:
            # thespian binds ('', port) for "external" addresses; the address it
            # advertises is loopback, so binding loopback loses nothing.
            self.bindname = self.sockname

    IPBase.IPActorAddress.__init__ = init


def _patch_child_start() -> None:
    from thespian.system import multiprocCommon

    original_start_child = multiprocCommon.startChild

    def start_child(*args: Any, **kwargs: Any) -> Any:
        _set_parent_death_signal()
        parent = multiprocessing.parent_process()
        # The parent may have died between fork and prctl; the kernel would then
        # never send the signal, so check once by hand.
        if parent is not None and os.getppid() != parent.pid:
            os._exit(1)
        return original_start_child(*args, **kwargs)

    multiprocCommon.startChild = start_child

    # thespian's logger process is started with another function; it needs the
    # same guarantee, or it outlives a killed admin holding the node's pipes.
    original_start_logger = multiprocCommon.startupASLogger

    def start_logger(*args: Any, **kwargs: Any) -> Any:
        _set_parent_death_signal()
        parent = multiprocessing.parent_process()
        if parent is not None and os.getppid() != parent.pid:
            os._exit(1)
        return original_start_logger(*args, **kwargs)

    multiprocCommon.startupASLogger = start_logger


def _watch_creator(creator_pid: int) -> None:
    try:
        pidfd = os.pidfd_open(creator_pid)
    except ProcessLookupError:
        os.killpg(os.getpgrp(), signal.SIGKILL)
        return
    select.select([pidfd], [], [])
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _patch_admin_start() -> None:
    from thespian.system import multiprocCommon

    original_start_admin = multiprocCommon.startAdmin

    def start_admin(admin_class: Any, *args: Any, **kwargs: Any) -> Any:
        creator_pid = os.getppid()

        def make_admin(*admin_args: Any, **admin_kwargs: Any) -> Any:
            # Runs in the detached admin process, after thespian's setsid and
            # second fork, so the process group killed later is the admin's own.
            watcher = threading.Thread(
                target=_watch_creator, args=(creator_pid,), name="tpir-creator-watch", daemon=True
            )
            watcher.start()
            return admin_class(*admin_args, **admin_kwargs)

        make_admin.__name__ = admin_class.__name__
        return original_start_admin(make_admin, *args, **kwargs)

    multiprocCommon.startAdmin = start_admin


def install() -> None:
    """Install the wrappers once; later calls do nothing."""
    global _installed
    if _installed:
        return
    _installed = True
    os.environ.setdefault("THESPIAN_BASE_IPADDR", listen_address())
    _patch_bind_address()
    _patch_child_start()
    _patch_admin_start()
