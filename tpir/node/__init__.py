"""The TPIR node: ``tpir run``, the bridge actor, the control socket and its client.

Modules, each imported on its own so that the CLI does not load the actor runtime:

- `tpir.node.main`: the main process of ``tpir run``.
- `tpir.node.bridge_actor`: `BridgeActor`, the port protocol inside the actor system.
- `tpir.node.plans`, `tpir.node.pending`, `tpir.node.views`: the actors each request
  calls, the requests in flight, and the replies built from the actors' replies.
- `tpir.node.peers`, `tpir.node.control`, `tpir.node.paths`: the port and control-socket
  connections.
- `tpir.node.client`, `tpir.node.render`: the CLI's side of the control socket.
"""

from __future__ import annotations

__all__: list[str] = []
