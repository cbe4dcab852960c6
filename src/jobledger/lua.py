"""Lua scripts that work the same on one Redis server and on Redis Cluster.

redis-py's ``Script`` runs ``EVALSHA`` and loads the script when the server answers
``NOSCRIPT``.  Inside a cluster pipeline it cannot: the pipeline's replies only come
back at ``execute()``, and a node that has never seen the script (any node at first,
a replica promoted by a failover later) fails every call of it.  There the script is
sent whole (``EVAL``): the server compiles it once and caches it by its SHA, so the
cost is the bytes of the script per call, not a compile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.cluster import ClusterPipeline
from redis.commands.core import Script as _RedisScript

__all__ = ["Script", "register"]


class Script(_RedisScript):
    """A registered script: ``script(keys=..., args=..., client=...)`` as redis-py's."""

    def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        if isinstance(client, ClusterPipeline):
            keys = list(keys or [])
            # ClusterPipeline.eval() is a stub that refuses; the command itself is routed
            # by its keys like any other.
            return client.execute_command("EVAL", self.script, len(keys), *keys, *(args or []))  # type: ignore[no-untyped-call]
        return super().__call__(keys, args, client)


def register(client: redis.Redis | Any, text: str) -> Script:
    """``client.register_script(text)``, cluster pipelines included."""
    return Script(client, text)
