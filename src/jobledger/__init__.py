"""jobledger: keep the books of batch jobs in Redis.

Job code writes its results with::

    import jobledger
    r = jobledger.results()
    r.set("reward", 0.52)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from jobledger.errors import (
    ConfigError,
    InvalidValue,
    JobledgerError,
    NotFound,
    RedisUnavailable,
    SchedulerError,
    UsageError,
)
from jobledger.ids import validate_job_id, validate_tag
from jobledger.states import State

if TYPE_CHECKING:
    from jobledger.config import Settings
    from jobledger.export import to_dataframe
    from jobledger.store import Results, TopEntry

__all__ = [
    "ConfigError",
    "InvalidValue",
    "JobledgerError",
    "NotFound",
    "RedisUnavailable",
    "Results",
    "SchedulerError",
    "Settings",
    "State",
    "TopEntry",
    "UsageError",
    "job_from_env",
    "results",
    "to_dataframe",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``Results`` and ``TopEntry`` load redis-py on first use: ``import jobledger`` stays
    light, so the command starts (and answers Ctrl-C) before any heavy import."""
    if name in ("Results", "TopEntry"):
        from jobledger import store

        return getattr(store, name)
    if name == "to_dataframe":
        from jobledger.export import to_dataframe

        return to_dataframe
    if name == "Settings":
        from jobledger.config import Settings

        return Settings
    raise AttributeError(f"module 'jobledger' has no attribute {name!r}")


def job_from_env(env: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(tag, job ID) of the running job, from jobledger's, SLURM's or the seed's variables."""
    env = os.environ if env is None else env
    tag = env.get("JOBLEDGER_TAG") or None
    job_id = env.get("JOBLEDGER_JOB_ID") or None
    if job_id is None and env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job_id = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if job_id is None:
        job_id = env.get("SLURM_JOB_ID") or None
    prefix = env.get("JOB_SPECIFIC_PREFIX")
    if prefix and (tag is None or job_id is None):
        seed_tag, sep, seed_job = prefix.rpartition("-")
        if seed_tag.startswith("{") and seed_tag.endswith("}"):  # the cluster layout's
            seed_tag = seed_tag[1:-1]
        if sep:
            tag, job_id = tag or seed_tag, job_id or seed_job
    return tag, job_id


def results(
    *,
    job_id: str | None = None,
    tag: str | None = None,
    settings: Settings | None = None,
    heartbeat_s: float | None = None,
) -> Results:
    """The results namespace of this job (found from the environment) or of the job named.

    ``heartbeat_s``: also heartbeat every so many seconds from a background thread, so
    the tracker can tell a hung job (no heartbeat for ``stall_after``) from a slow one.
    """
    from jobledger.config import resolve

    env_tag, env_job = job_from_env()
    settings = settings or resolve()
    tag = tag or settings.tag or env_tag
    job_id = job_id or env_job
    if job_id is None:
        raise UsageError(
            "no job ID: not inside a job (JOBLEDGER_JOB_ID / SLURM_JOB_ID unset); "
            "pass jobledger.results(job_id=..., tag=...)"
        )
    if tag is None:
        raise UsageError("no tag: set JOBLEDGER_TAG or pass jobledger.results(tag=...)")
    from jobledger.connection import JOB_RECONNECT_S, connect

    # Job code rides out a Redis restart instead of failing the job.
    client = connect(settings, reconnect_s=JOB_RECONNECT_S)
    from jobledger.durability import Durability
    from jobledger.store import Results

    durability = Durability.of(settings)
    res = Results(client, validate_tag(tag), validate_job_id(job_id), durability=durability)
    if heartbeat_s is not None:
        res.start_heartbeat(heartbeat_s)
    return res
