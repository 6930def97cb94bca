"""A 3-master Redis Cluster with one replica per master, for failover tests.

The cluster of ``tests/support/redis_servers.py`` has no replicas (nothing can fail
over); this one has six nodes, a short node timeout so that a replica takes over a
dead master within a few seconds, and tells which replica serves a master's slots.
"""

from __future__ import annotations

import contextlib
import time

import redis

from tests.support.redis_servers import RedisCluster, RedisServer

#: Milliseconds before a silent master is failed: failover within about 2-4 s.
NODE_TIMEOUT_MS = 1000


class ReplicatedCluster(RedisCluster):
    """Three masters and three replicas on free loopback ports; ``start()``, ``stop()``."""

    def __init__(self) -> None:
        # A replica takes over however long ago it last heard its master.
        super().__init__("--cluster-replica-validity-factor", "0",
                         replicas=1, node_timeout_ms=NODE_TIMEOUT_MS)  # fmt: skip

    def wait_ready(self) -> None:
        self.wait_healthy(masters=3, replicas=3, seconds=30)

    def live_nodes(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def topology(self) -> list[dict[str, str]]:
        """``CLUSTER NODES`` as seen by a live node: id, port, flags, master id, slots."""
        node = self.live_nodes()[0]
        with node.client() as client:
            text = client.execute_command("CLUSTER", "NODES")
        text = text.decode() if isinstance(text, bytes) else str(text)
        rows = []
        for line in text.strip().splitlines():
            fields = line.split()
            rows.append({
                "id": fields[0],
                "port": fields[1].split("@")[0].rsplit(":", 1)[1],
                "flags": fields[2],
                "master": fields[3],
                "slots": " ".join(fields[8:]),
            })  # fmt: skip
        return rows

    def wait_healthy(self, *, masters: int, replicas: int, seconds: float) -> None:
        """Until every live node says ``cluster_state:ok`` and the live topology has
        ``masters`` masters holding slots and ``replicas`` connected replicas."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if all(self._ok(node) for node in self.live_nodes()):
                    rows = [r for r in self.topology() if "fail" not in r["flags"]]
                    live_masters = [r for r in rows if "master" in r["flags"] and r["slots"]]
                    live_replicas = [r for r in rows if "slave" in r["flags"]]
                    if len(live_masters) == masters and len(live_replicas) == replicas:
                        return
            time.sleep(0.05)
        raise RuntimeError("the cluster did not reach the expected healthy topology")

    def master_of_slot(self, slot: int) -> RedisServer:
        """The node that serves ``slot`` now."""
        for row in self.topology():
            if "master" not in row["flags"] or "fail" in row["flags"]:
                continue
            for part in row["slots"].split():
                low, _, high = part.partition("-")
                if not part.startswith("[") and int(low) <= slot <= int(high or low):
                    return next(n for n in self.nodes if str(n.port) == row["port"])
        raise LookupError(f"no master serves slot {slot}")
