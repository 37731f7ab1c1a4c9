"""A simple_one_for_one supervisor that starts the scenario's listed children itself."""

from __future__ import annotations

import time
from typing import Any

from supervisors.children import Child, Operation
from supervisors.supervisor import Supervisor

__all__ = ["ScenarioPool"]


class ScenarioPool(Supervisor):
    """Starts ``dynamic_ids`` as dynamic children right after its own start, also on a restart.

    The Erlang side does the same in the start function of a
    simple_one_for_one supervisor: it reports the supervisor started, then
    calls ``supervisor:start_child/2`` for each listed child before it
    returns to its parent. The start time reported is the moment before the
    first dynamic child starts, so the supervisor's started line comes first.
    """

    def init(self, *args: Any, dynamic_ids: tuple[str, ...] = (), **kwargs: Any) -> Any:
        self._dynamic_ids = dynamic_ids
        return super().init(*args, **kwargs)

    def _start_all(self) -> Operation:
        started_at = time.monotonic()
        assert self.template is not None
        for child_id in self._dynamic_ids:
            child = Child(self.template.with_id(child_id), dynamic=True)
            self.children.append(child)
            outcome, detail = yield from self._start_child(child)
            if outcome == "error":
                yield from self._stop_children()
                self.init_failed(f"failed to start child {child_id!r}: {detail}")
                return
            if outcome == "ignore":
                self.children.remove(child)
        self.init_done(at=started_at)
