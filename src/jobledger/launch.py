"""Submit a job script and record it in the ledger, with a journal in between.

Order matters for "nothing is lost": the scheduler accepts the job, the
submission is journaled on local disk (fsync), then recorded in Redis, then the
journal entry is dropped.  A crash or a Redis outage after the submit leaves
the journal entry, which the next command that reaches Redis replays.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import redis

from jobledger import embedded
from jobledger.config import Settings, mask_url
from jobledger.connection import connection_target
from jobledger.errors import JobledgerError, ParseError, UsageError
from jobledger.ids import validate_tag
from jobledger.journal import Journal, JournalEntry
from jobledger.ledger import Ledger, isoformat
from jobledger.schedulers import Scheduler, SubmitRequest
from jobledger.schedulers.base import parse_time_limit
from jobledger.schedulers.slurm_parsers import expand_array_spec

__all__ = ["LaunchResult", "job_environment", "launch"]


@dataclass(frozen=True)
class LaunchResult:
    """What ``launch`` did: the job IDs, and whether Redis took them or the journal did."""

    job_ids: tuple[str, ...]
    scheduler: str
    recorded: bool
    journal_note: str | None = None
    warnings: tuple[str, ...] = ()


def _connection_path(settings: Settings) -> Path:
    return settings.home_dir / ".jobledger" / "job-connection.toml"


def _connection_file(settings: Settings, url: str) -> Path:
    """A 0600 TOML file with the connection and its secret, for jobs to read."""
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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older file may have a wider mode: narrow it before writing
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def job_environment(settings: Settings, tag: str, *, write: bool = True) -> dict[str, str]:
    """Variables a job needs to reach the ledger; secrets only by a 0600 file's path.

    ``write=False`` (dry runs) names the connection file without writing it.
    """
    env = {
        "JOBLEDGER_TAG": tag,
        "JOBLEDGER_HOME": str(settings.home_dir),
        # The interpreter that has jobledger installed, for job scripts to call.
        "JOBLEDGER_PYTHON": sys.executable,
    }
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
    if settings.namespace:
        env["JOBLEDGER_NAMESPACE"] = settings.namespace
    return env


def validate_request(*, time_limit: str | None, array: str | None) -> None:
    """Refuse a bad --time or --array before anything reaches the scheduler."""
    if time_limit:
        parse_time_limit(time_limit)
    if array:
        try:
            expand_array_spec(array)
        except ParseError as exc:
            raise UsageError(f"invalid --array {array!r}: {exc}") from exc


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
    now: datetime,
) -> LaunchResult:
    """Submit ``script`` and record its job IDs (journaled if Redis cannot take them)."""
    validate_tag(tag)
    validate_request(time_limit=time_limit, array=array)
    script = script.expanduser().resolve()
    if not script.is_file():
        raise UsageError(f"job script {script} does not exist or is not a file")
    work_dir = Path.cwd()
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
    )
    warnings: tuple[str, ...] = ()
    if scheduler.name == "slurm" and request.env.get("JOBLEDGER_URL", "").startswith("unix://"):
        warnings = (
            f"jobs reach Redis through {request.env['JOBLEDGER_URL']}, a socket on this "
            "machine: jobs on other nodes cannot; configure a redis:// URL for a cluster",
        )
    submission = scheduler.submit(request)
    fields = {
        "scheduler": scheduler.name,
        "script": str(script),
        "work_dir": str(work_dir),
        "name": request.name,
        "output_dir": str(out),
    }
    if submission.cluster:
        fields["cluster"] = submission.cluster
    journal = Journal(settings.home_dir)
    target = connection_target(settings)
    held = [
        journal.write(JournalEntry(tag, job_id, isoformat(now), fields, target))
        for job_id in submission.job_ids
    ]
    try:
        client = connect()
        ledger = Ledger(client, tag)
        with client.pipeline(transaction=False) as pipe:
            for job_id in submission.job_ids:
                ledger.record_submission(job_id, now=now, fields=fields, pipeline=pipe)
            pipe.execute()
    except (JobledgerError, redis.RedisError) as exc:
        for entry in held:
            entry.keep()
        note = (
            f"Redis unavailable ({exc}); job(s) {', '.join(submission.job_ids)} journaled in "
            f"{journal.dir} and will be recorded by the next jobledger command that reaches Redis"
        )
        return LaunchResult(
            submission.job_ids, scheduler.name, recorded=False, journal_note=note, warnings=warnings
        )
    for entry in held:
        entry.done()
    journal.replay(client, target)  # earlier launches that Redis missed
    return LaunchResult(submission.job_ids, scheduler.name, recorded=True, warnings=warnings)
