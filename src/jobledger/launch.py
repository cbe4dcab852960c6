"""Submit a job script and record it in the ledger, with a journal in between.

Order matters for "nothing is lost": the scheduler accepts the submission, the
submission (every job ID of it) is journaled on local disk (fsync), then recorded
in Redis, then the journal entry is dropped, and only then may the local
scheduler start the jobs.  A crash or a Redis outage after the submit leaves the
journal entry, which the next command that reaches Redis replays.  SIGINT and
SIGTERM are held off from the submit until the jobs are recorded or journaled.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import redis

from jobledger import embedded
from jobledger.config import Settings, mask_url
from jobledger.connection import connection_target
from jobledger.durability import Durability
from jobledger.errors import (
    Interrupted,
    JobledgerError,
    ParseError,
    RedisUnavailable,
    SchedulerError,
    UsageError,
)
from jobledger.ids import validate_name, validate_tag
from jobledger.journal import Journal, JournalEntry
from jobledger.keys import CLUSTER_LAYOUT, LAYOUT, layout_for
from jobledger.ledger import allocate_local_id, isoformat, skip_local_ids_to
from jobledger.logs import partial
from jobledger.schedulers import Scheduler, Submission, SubmitRequest
from jobledger.schedulers.local import JobIdInUse
from jobledger.specs import array_throttle, expand_array_spec, parse_time_limit

__all__ = [
    "LaunchResult",
    "job_environment",
    "launch",
    "offline_job_id",
    "validate_request",
]

_ALLOCATE_TRIES = 1000


@dataclass(frozen=True)
class LaunchResult:
    """What ``launch`` did: the job IDs, and whether Redis took them or the journal did.

    ``interrupted`` is the signal (SIGINT, SIGTERM) that arrived while the jobs were
    being submitted and recorded: the launch finished recording first.
    """

    job_ids: tuple[str, ...]
    scheduler: str
    recorded: bool
    journal_note: str | None = None
    warnings: tuple[str, ...] = ()
    interrupted: int | None = None


def _connection_path(settings: Settings) -> Path:
    """One file per target server, so launches against two servers never redirect each other."""
    target = connection_target(settings)
    digest = hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return settings.home_dir / ".jobledger" / f"job-connection-{digest}.toml"


def _connection_file(settings: Settings, url: str) -> Path:
    """A 0600 TOML file with the connection and its secret, for jobs to read.

    Written to a temporary file and renamed into place: a job starting meanwhile
    reads the old file or the new one, never half of one.
    """
    path = _connection_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    lines = [f"url = {_toml_str(url)}"]
    for name in ("username", "tls_ca_certs", "tls_certfile", "tls_keyfile"):
        value = getattr(settings, name)
        if value:
            lines.append(f"{name} = {_toml_str(value)}")
    password = settings.effective_password()
    if password is not None:
        lines.append(f"password = {_toml_str(password)}")
    lines += [f"{name} = {value}" for name, value in _connection_settings(settings).items()]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover temporary file may have a wider mode
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return path


def _connection_settings(settings: Settings) -> dict[str, str]:
    """What besides the URL decides how job code talks to Redis (as TOML values): the
    server kind and the durability, which a job must follow as ``launch`` does."""
    out: dict[str, str] = {}
    if settings.is_redis_cluster:
        out["redis_cluster"] = "true"
    if settings.durability:
        out["durability"] = _toml_str(settings.durability)
    if settings.durability_timeout_ms:
        out["durability_timeout_ms"] = str(int(settings.durability_timeout_ms))
    return out


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def job_environment(settings: Settings, tag: str, *, write: bool = True) -> dict[str, str]:
    """Variables a job needs to reach the ledger; secrets only by a 0600 file's path.

    ``write=False`` (dry runs) names the connection file without writing it.
    """
    layout = CLUSTER_LAYOUT if settings.is_redis_cluster else LAYOUT
    env = {
        "JOBLEDGER_TAG": tag,
        # What the seed's launcher gave its jobs (sbatch --export=job_tag=...), as it
        # appears in key names: {tag} on Redis Cluster (docs/data-model.md).
        "job_tag": layout.named(tag),
        "JOBLEDGER_HOME": str(settings.home_dir),
        # The interpreter that has jobledger installed, for job scripts to call.
        "JOBLEDGER_PYTHON": sys.executable,
    }
    if layout is not LAYOUT:
        env["JOBLEDGER_LAYOUT"] = layout.name
    if settings.embedded:
        paths = embedded.ensure_server if write else embedded.server_paths
        env["JOBLEDGER_URL"] = paths(settings.home_dir).url
        return env
    assert settings.url is not None
    has_secret = (
        settings.password is not None
        or settings.password_file is not None
        or mask_url(settings.url) != settings.url  # user:pass@ or ?password= in the URL
    )
    if has_secret:
        path = _connection_file(settings, settings.url) if write else _connection_path(settings)
        env["JOBLEDGER_CONFIG"] = str(path)
        # Blank (= unset for jobledger) so the file decides, not the submitter's variables.
        env["JOBLEDGER_URL"] = env["REDIS_URL"] = ""
    else:
        env["JOBLEDGER_URL"] = settings.url
        for name, value in _connection_settings(settings).items():
            env[f"JOBLEDGER_{name.upper()}"] = value.strip('"')
    if settings.namespace:
        env["JOBLEDGER_NAMESPACE"] = settings.namespace
    return env


def validate_request(*, time_limit: str | None, array: str | None, name: str | None = None) -> None:
    """Refuse a bad --time, --array or --name before anything reaches the scheduler."""
    if time_limit:
        parse_time_limit(time_limit)
    if array:
        try:
            expand_array_spec(array)
            array_throttle(array)
        except ParseError as exc:
            raise UsageError(f"invalid --array {array!r}: {exc}") from exc
    if name is not None:
        validate_name("job name", name)


def check_script(script: Path) -> Path:
    """The script's absolute path, if it is a readable file; else a UsageError."""
    script = script.expanduser().resolve()
    if not script.is_file():
        raise UsageError(f"job script {script} does not exist or is not a file")
    if not os.access(script, os.R_OK):
        raise UsageError(f"job script {script} is not readable")
    return script


def offline_job_id() -> str:
    """A local job ID for a launch while Redis is down: 18 digits, time then randomness.

    Server-allocated IDs count up from 1 and would need 10^17 launches to get here,
    and two offline launches collide only within the same millisecond and with the
    same 5 random digits.
    """
    return f"{time.time_ns() // 1_000_000:013d}{secrets.randbelow(100_000):05d}"


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM off (noting them) until the block ends."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def note(signum: int, frame: object) -> None:
        caught.append(signum)

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _not_interrupted(caught: list[int]) -> None:
    if caught:
        raise Interrupted("interrupted before anything was submitted", caught[0])


def _allocate(
    scheduler: Scheduler,
    request: SubmitRequest,
    connect: Callable[[], redis.Redis],
    caught: list[int],
) -> tuple[Submission, redis.Redis | None]:
    """Submit to a backend whose IDs the ledger allocates: (submission, the client that
    allocated the ID, or None when Redis could not be reached and the ID is offline)."""
    try:
        client: redis.Redis | None = connect()
    except (JobledgerError, redis.RedisError):
        client = None
    _not_interrupted(caught)
    for _ in range(_ALLOCATE_TRIES):
        try:
            job_id = allocate_local_id(client) if client is not None else offline_job_id()
            if client is not None and client.sismember(
                layout_for(client).all_set(request.tag), job_id
            ):
                continue  # a seed-written or imported job of this tag has that number
        except redis.RedisError:
            client = None
            continue
        try:
            return scheduler.submit(replace(request, job_id=job_id)), client
        except JobIdInUse as exc:
            # A server that was reset hands out numbers used here before: skip them all.
            if client is not None:
                with contextlib.suppress(redis.RedisError):
                    skip_local_ids_to(client, exc.highest)
    raise SchedulerError(f"no free local job ID after {_ALLOCATE_TRIES} tries")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return str(os.getuid())


def submission_fields(
    request: SubmitRequest, scheduler: Scheduler, job_ids: tuple[str, ...]
) -> dict[str, str]:
    """What every job of a submission records: how it was submitted (so it can be
    resubmitted alike) and where its output goes (patterns, with what is common to
    the submission filled in: the name, the user, the job or array number)."""
    user = _user()
    base = job_ids[0].split("_")[0]
    known = {"x": request.name, "u": user, "A": base}
    if not request.array:
        known["j"] = base
    stdout, stderr = (partial(p, known) for p in scheduler.log_patterns(request))
    fields = {
        "scheduler": scheduler.name,
        "script": str(request.script),
        "work_dir": str(request.work_dir),
        "name": request.name,
        "output_dir": str(request.output_dir),
        "stdout": stdout,
        "stderr": stderr,
        "user": user,
    }
    if request.time_limit:
        fields["time_limit"] = request.time_limit
    if request.array:
        fields["array"] = request.array
    if request.extra_args:
        fields["sbatch_args"] = json.dumps(list(request.extra_args))
    if request.max_running:
        fields["max_running"] = str(request.max_running)
    return fields


def launch(
    script: Path,
    *,
    tag: str,
    settings: Settings,
    scheduler: Scheduler,
    connect: Callable[[], redis.Redis],
    name: str | None = None,
    time_limit: str | None = None,
    array: str | None = None,
    output_dir: Path | None = None,
    extra_args: tuple[str, ...] = (),
    max_running: int | None = None,
    extra_fields: Mapping[str, str] | None = None,
    work_dir: Path | None = None,
    cluster: str | None = None,
    now: datetime,
) -> LaunchResult:
    """Submit ``script`` and record its job IDs (journaled if Redis cannot take them)."""
    validate_tag(tag)
    validate_request(time_limit=time_limit, array=array, name=name)
    script = check_script(script)
    work_dir = work_dir or Path.cwd()
    out = (output_dir or work_dir / "outerr").resolve()
    out.mkdir(parents=True, exist_ok=True)
    request = SubmitRequest(
        script=script,
        tag=tag,
        name=name or tag,
        work_dir=work_dir,
        output_dir=out,
        env=job_environment(settings, tag),
        time_limit=time_limit,
        array=array,
        extra_args=extra_args,
        max_running=max_running,
        cluster=cluster,
    )
    warnings: tuple[str, ...] = ()
    if scheduler.remote_nodes and request.env.get("JOBLEDGER_URL", "").startswith("unix://"):
        warnings = (
            f"jobs reach Redis through {request.env['JOBLEDGER_URL']}, a socket on this "
            "machine: jobs on other nodes cannot; configure a redis:// URL for a cluster",
        )
    journal = Journal(settings.home_dir)
    target = connection_target(settings)
    with _signals_held() as caught:
        allocated: redis.Redis | None = None  # the connection that allocated the ID
        if scheduler.allocates_ids:
            _not_interrupted(caught)
            submission = scheduler.submit(request)
        else:
            submission, allocated = _allocate(scheduler, request, connect, caught)
        try:
            described = submission_fields(request, scheduler, submission.job_ids)
        except Exception as exc:  # noqa: BLE001 (the scheduler has the jobs: record them)
            warnings += (f"the jobs' output files could not be worked out ({exc!r})",)
            described = {
                "scheduler": scheduler.name,
                "script": str(script),
                "work_dir": str(work_dir),
                "name": request.name,
                "output_dir": str(out),
            }
        fields = {**described, **(extra_fields or {}), **submission.fields}
        if submission.cluster:
            fields["cluster"] = submission.cluster
        entry = JournalEntry(
            tag, submission.job_ids, isoformat(now), fields, target, uuid.uuid4().hex
        )
        try:
            held = journal.write(entry)  # fsync'ed: from here on, nothing is lost
        except OSError as exc:
            # Disk full, quota, permissions: Redis is the only place left for the IDs.
            _record_or_report(entry, allocated or _connect_quietly(connect), exc)
            scheduler.start(submission)
            return LaunchResult(
                submission.job_ids,
                scheduler.name,
                recorded=True,
                warnings=(*warnings, f"the journal could not be written ({exc})"),
                interrupted=caught[0] if caught else None,
            )
        note: str | None = None
        conflicts: list[str] = []
        client: redis.Redis | None = None
        try:
            if not scheduler.allocates_ids and allocated is None:
                # Redis was down a moment ago, when the ID was allocated: journal it.
                raise RedisUnavailable("Redis could not be reached to allocate the job ID")
            client = allocated or connect()
            _, conflicts = entry.record(client, by="launch", durability=Durability.of(settings))
        except (JobledgerError, redis.RedisError) as exc:
            held.keep()
            note = (
                f"Redis unavailable ({exc}); {_jobs(submission.job_ids)} journaled in "
                f"{journal.dir} and will be recorded by the next jobledger command that "
                "reaches Redis"
            )
            client = None
        else:
            if conflicts:
                held.keep_as_conflict()
            else:
                held.done()
        if not conflicts or scheduler.allocates_ids:
            scheduler.start(submission)  # a local job whose ID is another's never runs
    result = LaunchResult(
        submission.job_ids,
        scheduler.name,
        recorded=client is not None and not conflicts,
        journal_note=note,
        warnings=warnings,
        interrupted=caught[0] if caught else None,
    )
    if conflicts:
        raise SchedulerError(
            f"the scheduler accepted {_jobs(submission.job_ids)}, but the ledger of tag "
            f"{tag!r} already holds {_jobs(conflicts)} for a different job; nothing was "
            f"overwritten, and the submission is kept in {held.path}"
        )
    if client is not None:
        journal.replay(client, target, Durability.of(settings))  # launches Redis missed
    return result


def _connect_quietly(connect: Callable[[], redis.Redis]) -> redis.Redis | None:
    try:
        return connect()
    except (JobledgerError, redis.RedisError):
        return None


def _record_or_report(entry: JournalEntry, client: redis.Redis | None, why: OSError) -> None:
    """Record a submission that could not be journaled; if that fails too, name its IDs."""
    try:
        if client is None:
            raise RedisUnavailable("Redis could not be reached")
        _, conflicts = entry.record(client, by="launch")
    except (JobledgerError, redis.RedisError) as exc:
        raise SchedulerError(
            f"the scheduler accepted {_jobs(entry.job_ids)} ({' '.join(entry.job_ids[:20])}"
            f"{' ...' if len(entry.job_ids) > 20 else ''}), but neither the journal ({why}) "
            f"nor Redis ({exc}) took them: record them with jobledger adopt"
        ) from exc
    if conflicts:
        raise SchedulerError(
            f"the ledger of tag {entry.tag!r} already holds {_jobs(conflicts)} for a different "
            f"job, and the journal could not be written ({why})"
        )


def _jobs(job_ids: tuple[str, ...] | list[str]) -> str:
    if len(job_ids) == 1:
        return f"job {job_ids[0]}"
    return f"{len(job_ids)} jobs ({job_ids[0]} ... {job_ids[-1]})"
