"""Every Redis key name jobledger reads or writes, built and parsed here and nowhere else.

One :class:`KeyLayout` object knows every name; ``Ledger``, ``Results``, the tracker and
``fsck`` take one (default: :data:`LAYOUT`), and the module-level functions below are
that default layout's methods, for code that has no layout to pass.

The seed scripts' names are a contract: ``<tag>_ALL``, ``<tag>_<STATE>`` and the
results ``<tag>-<jobid>:<key>``.  Everything jobledger adds lives under
``jobledger:<tag>:...``; a results key's first ``:`` comes right after a job ID
(digits), so no results key can ever start with ``jobledger:``.  A layout for Redis
Cluster (hash-tagged names, so that a move's keys share a slot) would be another
``KeyLayout``; on a single server the layout stays exactly this one.
"""

from __future__ import annotations

from jobledger.states import State

__all__ = [
    "LAYOUT",
    "PREFIX",
    "KeyLayout",
    "all_set",
    "events",
    "glob_escape",
    "indexed_jobs",
    "job_history",
    "job_numeric",
    "job_record",
    "local_job_ids",
    "namespace_key",
    "namespace_pattern",
    "own_key_kind",
    "own_pattern",
    "parse_namespace_key",
    "parse_numeric_member",
    "parse_result_key",
    "quarantine",
    "result_index",
    "result_key",
    "result_pattern",
    "result_prefix",
    "retired_jobs",
    "state_set",
    "tag_numeric",
    "tag_numeric_member",
    "tag_results_pattern",
    "tags_registry",
    "tracker_fence",
    "tracker_lease",
    "tracker_status",
]

PREFIX = "jobledger"


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself in SCAN MATCH."""
    return "".join("\\" + c if c in "*?[]\\^" else c for c in text)


class KeyLayout:
    """Builds and parses the name of every key jobledger uses."""

    prefix = PREFIX

    # --- the seed's names ---------------------------------------------------------

    def all_set(self, tag: str) -> str:
        return f"{tag}_ALL"

    def state_set(self, tag: str, state: State) -> str:
        return f"{tag}_{state.value}"

    def result_prefix(self, tag: str, job_id: str) -> str:
        """The seed's ``JOB_SPECIFIC_PREFIX``."""
        return f"{tag}-{job_id}"

    def result_key(self, tag: str, job_id: str, key: str) -> str:
        return f"{self.result_prefix(tag, job_id)}:{key}"

    def result_pattern(self, tag: str, job_id: str) -> str:
        """SCAN MATCH pattern for one job's results (for keys written without the index)."""
        return glob_escape(self.result_prefix(tag, job_id)) + ":*"

    def tag_results_pattern(self, tag: str) -> str:
        """SCAN MATCH pattern for every job's results under ``tag``."""
        return glob_escape(tag) + "-*:*"

    def parse_result_key(self, tag: str, name: str) -> tuple[str, str]:
        """(job ID as written, result key) of a name matching :meth:`tag_results_pattern`."""
        job_id, _, key = name[len(tag) + 1 :].partition(":")
        return job_id, key

    def namespace_key(self, namespace: str, key: str) -> str:
        """The seed notebook's plain ``<namespace>:<key>``."""
        return f"{namespace}:{key}"

    def namespace_pattern(self, namespace: str, pattern: str = "*") -> str:
        return glob_escape(namespace) + ":" + pattern

    def parse_namespace_key(self, namespace: str, name: str) -> str:
        """The key part of a ``<namespace>:<key>`` name."""
        return name[len(namespace) + 1 :]

    # --- jobledger's own names --------------------------------------------------------

    def _own(self, tag: str, kind: str, job_id: str | None = None) -> str:
        name = f"{self.prefix}:{tag}:{kind}"
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
        return glob_escape(f"{self.prefix}:{tag}:") + "*"

    def own_key_kind(self, tag: str, name: str) -> tuple[str, str | None]:
        """(kind, job ID or None) of one of jobledger's own keys of ``tag``: ``job``,
        ``history``, ``index``, ``numeric`` (with a job ID), ``events``, ``lease``, ...
        (without); ("", None) for a name that is not one of them."""
        head = f"{self.prefix}:{tag}:"
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


LAYOUT = KeyLayout()
"""The layout of a single Redis server: the seed's names and jobledger's."""

all_set = LAYOUT.all_set
state_set = LAYOUT.state_set
result_prefix = LAYOUT.result_prefix
result_key = LAYOUT.result_key
result_pattern = LAYOUT.result_pattern
tag_results_pattern = LAYOUT.tag_results_pattern
parse_result_key = LAYOUT.parse_result_key
namespace_key = LAYOUT.namespace_key
namespace_pattern = LAYOUT.namespace_pattern
parse_namespace_key = LAYOUT.parse_namespace_key
job_record = LAYOUT.job_record
job_history = LAYOUT.job_history
events = LAYOUT.events
result_index = LAYOUT.result_index
indexed_jobs = LAYOUT.indexed_jobs
job_numeric = LAYOUT.job_numeric
tag_numeric = LAYOUT.tag_numeric
tag_numeric_member = LAYOUT.tag_numeric_member
parse_numeric_member = LAYOUT.parse_numeric_member
retired_jobs = LAYOUT.retired_jobs
quarantine = LAYOUT.quarantine
tracker_status = LAYOUT.tracker_status
tracker_lease = LAYOUT.tracker_lease
tracker_fence = LAYOUT.tracker_fence
own_pattern = LAYOUT.own_pattern
own_key_kind = LAYOUT.own_key_kind
tags_registry = LAYOUT.tags_registry
local_job_ids = LAYOUT.local_job_ids
