"""Every Redis key name jobledger reads or writes, built here and nowhere else.

The seed scripts' names are a contract: ``<tag>_ALL``, ``<tag>_<STATE>`` and the
results ``<tag>-<jobid>:<key>``.  Everything jobledger adds lives under
``jobledger:<tag>:...``; a results key's first ``:`` comes right after a job ID
(digits), so no results key can ever start with ``jobledger:``.
"""

from __future__ import annotations

from jobledger.states import State

__all__ = [
    "PREFIX",
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


# --- the seed's names -------------------------------------------------------


def all_set(tag: str) -> str:
    return f"{tag}_ALL"


def state_set(tag: str, state: State) -> str:
    return f"{tag}_{state.value}"


def result_prefix(tag: str, job_id: str) -> str:
    """The seed's ``JOB_SPECIFIC_PREFIX``."""
    return f"{tag}-{job_id}"


def result_key(tag: str, job_id: str, key: str) -> str:
    return f"{tag}-{job_id}:{key}"


def result_pattern(tag: str, job_id: str) -> str:
    """SCAN MATCH pattern for one job's results (for keys written without the index)."""
    return glob_escape(result_prefix(tag, job_id)) + ":*"


def tag_results_pattern(tag: str) -> str:
    """SCAN MATCH pattern for every job's results under ``tag``."""
    return glob_escape(tag) + "-*:*"


# --- jobledger's own names --------------------------------------------------


def job_record(tag: str, job_id: str) -> str:
    return f"{PREFIX}:{tag}:job:{job_id}"


def job_history(tag: str, job_id: str) -> str:
    return f"{PREFIX}:{tag}:history:{job_id}"


def events(tag: str) -> str:
    return f"{PREFIX}:{tag}:events"


def result_index(tag: str, job_id: str) -> str:
    return f"{PREFIX}:{tag}:index:{job_id}"


def indexed_jobs(tag: str) -> str:
    return f"{PREFIX}:{tag}:indexed"


def job_numeric(tag: str, job_id: str) -> str:
    return f"{PREFIX}:{tag}:numeric:{job_id}"


def tag_numeric(tag: str) -> str:
    return f"{PREFIX}:{tag}:numeric"


def tag_numeric_member(job_id: str, key: str) -> str:
    """Member of the per-tag numeric sorted set; split on the first ``:``."""
    return f"{job_id}:{key}"


def retired_jobs(tag: str) -> str:
    """Jobs a ``cleanup`` removed from the ledger while keeping their results, on purpose."""
    return f"{PREFIX}:{tag}:retired"


def quarantine(tag: str) -> str:
    """Set members that are not job IDs, moved aside by ``fsck --repair`` as ``<set>:<member>``."""
    return f"{PREFIX}:{tag}:quarantine"


def tags_registry() -> str:
    return f"{PREFIX}:tags"


def local_job_ids() -> str:
    """The counter local job IDs are allocated from (``INCR``), one per server.

    Like ``jobledger:tags`` it has nothing after its name, so no tag's keys (all
    ``jobledger:<tag>:...``) can be it, and no tag's cleanup deletes it.
    """
    return f"{PREFIX}:local-ids"


def tracker_status(tag: str) -> str:
    return f"{PREFIX}:{tag}:tracker"


def tracker_lease(tag: str) -> str:
    return f"{PREFIX}:{tag}:lease"


def tracker_fence(tag: str) -> str:
    return f"{PREFIX}:{tag}:fence"


def own_key_kind(tag: str, name: str) -> tuple[str, str | None]:
    """(kind, job ID or None) of one of jobledger's own keys of ``tag``: ``job``, ``history``,
    ``index``, ``numeric`` (with a job ID), ``events``, ``lease``, ... (without); ("", None) for
    a name that is not one of them."""
    head = f"{PREFIX}:{tag}:"
    if not name.startswith(head):
        return "", None
    kind, sep, job_id = name[len(head) :].partition(":")
    return kind, (job_id if sep else None)


def namespace_key(namespace: str, key: str) -> str:
    """The seed notebook's plain ``<namespace>:<key>``."""
    return f"{namespace}:{key}"


def namespace_pattern(namespace: str, pattern: str = "*") -> str:
    return glob_escape(namespace) + ":" + pattern
