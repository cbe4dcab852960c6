"""Plain ``<namespace>:<key>`` keys, as the seed's notebook reads and writes them."""

from __future__ import annotations

import redis

from jobledger.ids import validate_namespace, validate_result_key
from jobledger.keys import KeyLayout, layout_for

__all__ = ["Namespace"]


class Namespace:
    """Key/value work inside one namespace; SCAN (never KEYS) for listing."""

    def __init__(
        self, client: redis.Redis, namespace: str, *, layout: KeyLayout | None = None
    ) -> None:
        self.client = client
        self.namespace = validate_namespace(namespace)
        self.layout = layout_for(client, layout)

    def _key(self, key: str) -> str:
        return self.layout.namespace_key(self.namespace, validate_result_key(key))

    def keys(self, pattern: str = "*") -> list[str]:
        """Key names (without the namespace) matching a glob ``pattern``, sorted."""
        match = self.layout.namespace_pattern(self.namespace, pattern)
        found = self.client.scan_iter(match=match, count=1000)
        return sorted(self.layout.parse_namespace_key(self.namespace, str(k)) for k in found)

    def get(self, key: str) -> str | None:
        value = self.client.get(self._key(key))
        return None if value is None else str(value)

    def get_many(self, names: list[str]) -> dict[str, str | None]:
        if not names:
            return {}
        values = self.client.mget([self._key(n) for n in names])
        return dict(zip(names, (None if v is None else str(v) for v in values), strict=True))

    def set(self, key: str, value: str) -> None:
        self.client.set(self._key(key), value)

    def delete(self, names: list[str]) -> int:
        return int(self.client.delete(*(self._key(n) for n in names)))
