"""The ``durability`` setting: ledger moves and results writes that wait for a replica.

Redis replicates asynchronously: a write the primary acknowledged is lost if the primary
dies before a replica has it and the replica is promoted.  With ``durability =
"replica"``, each batch of ledger writes (a launch's submission, a tracker pass's moves)
and each results write is followed by ``WAIT 1 <durability_timeout_ms>`` on the same
connection (WAIT counts the replicas that have the writes *of that connection*), so
it returns only once a replica holds them or the timeout passed.  A submission no
replica confirmed stays in the journal, to be recorded again by a later command; a
tracker move no replica confirmed is redone by the next pass if a failover lost it;
a results write no replica confirmed is counted and logged (see docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.cluster import RedisCluster

from jobledger.config import Settings
from jobledger.connection import retrying
from jobledger.errors import RedisUnavailable

__all__ = ["PRIMARY", "Durability", "NotConfirmed"]


class NotConfirmed(RedisUnavailable):
    """Writes the primary took but no replica confirmed within the timeout."""


@dataclass(frozen=True)
class Durability:
    """How many replicas must confirm a write (0: the primary's answer is enough)."""

    replicas: int = 0
    timeout_ms: int = 1000

    @classmethod
    def of(cls, settings: Settings) -> Durability:
        return cls(settings.replicas_to_wait, settings.wait_timeout_ms)

    def run(self, client: Any, key: str, queue: Callable[[Any], None]) -> tuple[list[Any], Any]:
        """The replies of the writes ``queue`` adds to a pipeline, and WAIT's reply (None
        when no replica is wanted).

        WAIT counts the replicas that have the writes of *its own connection*, so it
        goes on the pipeline's connection, after the writes.  On Redis Cluster that is
        the pipeline of the node that serves ``key``'s slot (all the keys of one tag are
        in that slot): a cluster pipeline could re-route a WAIT to another node, whose
        connection wrote nothing, and so "confirm" at once.  If the slot moved (MOVED)
        or the node died, the whole batch is sent again once the cluster answers
        (``retrying``; jobledger's write scripts are safe to re-run).
        """

        def once() -> tuple[list[Any], Any]:
            target = client
            if self.replicas and isinstance(client, RedisCluster):
                node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
                target = client.get_redis_connection(node)
            with target.pipeline(transaction=False) as pipe:
                queue(pipe)
                if self.replicas:
                    pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
                replies = list(pipe.execute())
            return replies, (replies.pop() if self.replicas else None)

        return retrying(client, once)

    def check(self, acknowledged: Any, what: str) -> None:
        """Raise NotConfirmed unless WAIT's reply counts enough replicas."""
        if int(acknowledged) < self.replicas:
            raise NotConfirmed(
                f"{what}: no replica confirmed it within {self.timeout_ms} ms "
                f"(durability = replica; {int(acknowledged)} of {self.replicas})"
            )


PRIMARY = Durability()
"""The default: a write counts once the primary answered."""
