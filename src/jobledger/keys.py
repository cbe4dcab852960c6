"""Every Redis key name jobledger reads or writes, built and parsed here and nowhere else.

One :class:`KeyLayout` object knows every name; ``Ledger``, ``Results``, ``Namespace``,
the tracker and ``fsck`` take one (default: :func:`layout_for` their client), and
nothing else composes a key name.

The seed scripts' names are a contract: ``<tag>_ALL``, ``<tag>_<STATE>`` and the
results ``<tag>-<jobid>:<key>``.  Everything jobledger adds lives under
``jobledger:<tag>:...``; a results key's first ``:`` comes right after a job ID
(digits), so no results key can ever start with ``jobledger:``.

Two layouts: :data:`LAYOUT` (the seed's names, on a single server) and
:data:`CLUSTER_LAYOUT` for Redis Cluster, where every name of one tag carries the
tag as a hash tag (``{rlmol_exp}_ALL``, ``{rlmol_exp}-42:reward``,
``jobledger:{rlmol_exp}:job:42``), so all of a tag's keys share one hash slot and
every script and MULTI of a tag touches one slot.  Those are exactly the seed's
names with ``job_tag={rlmol_exp}``, so the seed scripts work against a cluster
with that one change (and ``redis-cli -c``).  The keys of no tag (the tags
registry, the local job ID counter, the trackers) are in slots of their own, and
nothing writes them in the same script or MULTI as a tag's keys.
"""

from __future__ import annotations

from jobledger.states import State

__all__ = [
    "CLUSTER_LAYOUT",
    "LAYOUT",
    "LAYOUTS",
    "PREFIX",
    "ClusterKeyLayout",
    "KeyLayout",
    "glob_escape",
    "layout_for",
    "other_layout",
]

PREFIX = "jobledger"


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself in SCAN MATCH."""
    return "".join("\\" + c if c in "*?[]\\^" else c for c in text)


class KeyLayout:
    """Builds and parses the name of every key jobledger uses (the seed's layout)."""

    prefix = PREFIX
    name = "seed"

    def named(self, tag: str) -> str:
        """How ``tag`` appears inside key names (as it is; hash-tagged on a cluster)."""
        return tag

    # --- the seed's names ---------------------------------------------------------

    def all_set(self, tag: str) -> str:
        return f"{self.named(tag)}_ALL"

    def state_set(self, tag: str, state: State) -> str:
        return f"{self.named(tag)}_{state.value}"

    def set_name(self, tag: str, name: str) -> str:
        """The set ``name`` names: ``ALL`` or a state's value (``COMPLETED``, ...)."""
        return self.all_set(tag) if name == "ALL" else self.state_set(tag, State(name))

    def result_prefix(self, tag: str, job_id: str) -> str:
        """The seed's ``JOB_SPECIFIC_PREFIX``."""
        return f"{self.named(tag)}-{job_id}"

    def result_key(self, tag: str, job_id: str, key: str) -> str:
        return f"{self.result_prefix(tag, job_id)}:{key}"

    def result_pattern(self, tag: str, job_id: str) -> str:
        """SCAN MATCH pattern for one job's results (for keys written without the index)."""
        return glob_escape(self.result_prefix(tag, job_id)) + ":*"

    def tag_results_pattern(self, tag: str) -> str:
        """SCAN MATCH pattern for every job's results under ``tag``."""
        return glob_escape(self.named(tag)) + "-*:*"

    def parse_result_key(self, tag: str, name: str) -> tuple[str, str]:
        """(job ID as written, result key) of a name matching :meth:`tag_results_pattern`."""
        job_id, _, key = name[len(self.named(tag)) + 1 :].partition(":")
        return job_id, key

    def namespace_key(self, namespace: str, key: str) -> str:
        """The seed notebook's plain ``<namespace>:<key>``."""
        return f"{self.named(namespace)}:{key}"

    def namespace_pattern(self, namespace: str, pattern: str = "*") -> str:
        return glob_escape(self.named(namespace)) + ":" + pattern

    def parse_namespace_key(self, namespace: str, name: str) -> str:
        """The key part of a ``<namespace>:<key>`` name."""
        return name[len(self.named(namespace)) + 1 :]

    # --- jobledger's own names --------------------------------------------------------

    def _own(self, tag: str, kind: str, job_id: str | None = None) -> str:
        name = f"{self.prefix}:{self.named(tag)}:{kind}"
        return name if job_id is None else f"{name}:{job_id}"

    def job_record(self, tag: str, job_id: str) -> str:
        return self._own(tag, "job", job_id)

    def job_history(self, tag: str, job_id: str) -> str:
        return self._own(tag, "history", job_id)

    def events(self, tag: str) -> str:
        return self._own(tag, "events")

    def result_index(self, tag: str, job_id: str) -> str:
        return self._own(tag, "index", job_id)

    def indexed_jobs(self, tag: str) -> str:
        return self._own(tag, "indexed")

    def job_numeric(self, tag: str, job_id: str) -> str:
        return self._own(tag, "numeric", job_id)

    def tag_numeric(self, tag: str) -> str:
        return self._own(tag, "numeric")

    def tag_numeric_member(self, job_id: str, key: str) -> str:
        """Member of the per-tag numeric sorted set; split on the first ``:``."""
        return f"{job_id}:{key}"

    def parse_numeric_member(self, member: str) -> tuple[str, str]:
        """(job ID, result key) of a :meth:`tag_numeric_member`."""
        job_id, _, key = member.partition(":")
        return job_id, key

    def retired_jobs(self, tag: str) -> str:
        """Jobs a ``cleanup`` removed from the ledger while keeping their results."""
        return self._own(tag, "retired")

    def quarantine(self, tag: str) -> str:
        """Set members that are not job IDs, moved aside by ``fsck --repair``."""
        return self._own(tag, "quarantine")

    def heartbeats(self, tag: str) -> str:
        """Sorted set: job ID -> unix time of its last heartbeat (every results write)."""
        return self._own(tag, "heartbeats")

    def stalled_jobs(self, tag: str) -> str:
        """Set: running jobs whose heartbeat is older than the tracker's stall_after."""
        return self._own(tag, "stalled")

    def tracker_status(self, tag: str) -> str:
        return self._own(tag, "tracker")

    def tracker_lease(self, tag: str) -> str:
        return self._own(tag, "lease")

    def tracker_fence(self, tag: str) -> str:
        return self._own(tag, "fence")

    def own_pattern(self, tag: str) -> str:
        """SCAN MATCH pattern for every ``jobledger:<tag>:...`` key."""
        return glob_escape(f"{self.prefix}:{self.named(tag)}:") + "*"

    def own_key_kind(self, tag: str, name: str) -> tuple[str, str | None]:
        """(kind, job ID or None) of one of jobledger's own keys of ``tag``: ``job``,
        ``history``, ``index``, ``numeric`` (with a job ID), ``events``, ``lease``, ...
        (without); ("", None) for a name that is not one of them."""
        head = f"{self.prefix}:{self.named(tag)}:"
        if not name.startswith(head):
            return "", None
        kind, sep, job_id = name[len(head) :].partition(":")
        return kind, (job_id if sep else None)

    # --- one per server -------------------------------------------------------------

    def tags_registry(self) -> str:
        return f"{self.prefix}:tags"

    def local_job_ids(self) -> str:
        """The counter local job IDs are allocated from (``INCR``), one per server.

        Like ``jobledger:tags`` it has nothing after its name, so no tag's keys (all
        ``jobledger:<tag>:...``) can be it, and no tag's cleanup deletes it.
        """
        return f"{self.prefix}:local-ids"

    def trackers(self) -> str:
        """Sorted set: tracker owner -> unix time (ms) until which it counts as alive;
        trackers share the tags out among the live ones (``track --all-tags``)."""
        return f"{self.prefix}:trackers"


class ClusterKeyLayout(KeyLayout):
    """Redis Cluster: every name of a tag carries ``{<tag>}``, so they share a slot.

    Tags (and namespaces) are names without braces (:func:`jobledger.ids.validate_tag`),
    so the braces added here are always the name's first ``{...}``: the hash tag.
    """

    name = "cluster"

    def named(self, tag: str) -> str:
        return "{" + tag + "}"


LAYOUT = KeyLayout()
"""The layout of a single Redis server: the seed's names and jobledger's."""

CLUSTER_LAYOUT = ClusterKeyLayout()
"""The layout of Redis Cluster: the seed's names with the tag as a hash tag."""

LAYOUTS = {layout.name: layout for layout in (LAYOUT, CLUSTER_LAYOUT)}


def other_layout(layout: KeyLayout) -> KeyLayout:
    """The layout a tag's data would be in if it was written on the other kind of server."""
    return LAYOUT if layout is CLUSTER_LAYOUT else CLUSTER_LAYOUT


def layout_for(client: object, layout: KeyLayout | None = None) -> KeyLayout:
    """``layout`` if given, else the layout ``client``'s server needs: the cluster layout
    on Redis Cluster (a cluster pipeline included), the seed layout on one server."""
    if layout is not None:
        return layout
    from redis.cluster import RedisCluster  # imported with redis already

    return CLUSTER_LAYOUT if isinstance(client, RedisCluster) else LAYOUT
