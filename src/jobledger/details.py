"""Everything known about one job, as data: ``show --json`` and the dashboard's job page."""

from __future__ import annotations

from typing import Any

from jobledger.errors import NotFound
from jobledger.ids import validate_job_id
from jobledger.ledger import JobView, Ledger
from jobledger.states import State
from jobledger.store import Results
from jobledger.usage import usage_from_record

__all__ = ["TAIL_SHOWN", "job_details", "job_logs_of", "log_tail"]

TAIL_SHOWN = 10


def job_logs_of(job_id: str, view: JobView) -> dict[str, Any]:
    """Paths of a job's output and, if it ended other than COMPLETED, its stderr's tail."""
    from jobledger.logs import job_logs, read_lines

    paths = job_logs(job_id, view.record)
    out = paths.stdout or paths.stdout_pattern
    err = paths.stderr or paths.stderr_pattern
    failed = bool(view.states) and all(
        s.is_terminal and s is not State.COMPLETED for s in view.states
    )
    tail = read_lines(paths.stderr, TAIL_SHOWN) if failed and paths.stderr else None
    return {"stdout": out, "stderr": err, "stderr_tail": tail}


def job_details(ledger: Ledger, job_id: str) -> dict[str, Any]:
    """The record, state sets, history, results, usage, log paths and stall of one job;
    NotFound when the tag knows nothing of it."""
    validate_job_id(job_id)
    view = ledger.job(job_id)
    items = Results(ledger.client, ledger.tag, job_id, layout=ledger.layout).items()
    if not (view.in_all or view.states or view.record or items):
        raise NotFound(f"job {job_id} is not in the ledger of tag {ledger.tag!r}")
    states = [s.value for s in view.states]
    used = usage_from_record(view.record)
    stalled = view.record.get("stalled_since") if states == ["PENDING_AND_RUNNING"] else None
    return {
        "tag": ledger.tag,
        "job_id": job_id,
        "in_all": view.in_all,
        "states": states,
        "record": view.record,
        "history": view.history,
        "results": items,
        "usage": None if used is None else used.as_dict(),
        "logs": job_logs_of(job_id, view),
        "stalled_since": stalled,
    }


def log_tail(
    ledger: Ledger, job_id: str, stream: str, lines: int, *, read: bool = True
) -> dict[str, Any]:
    """The last ``lines`` lines of a job's stdout or stderr, if this machine can read the
    file (``lines`` None and ``unreadable`` saying why when it cannot; ``read`` False:
    log tails are turned off); NotFound when the tag knows nothing of the job."""
    from jobledger.logs import job_logs, read_lines

    validate_job_id(job_id)
    view = ledger.job(job_id)
    if not (view.in_all or view.record):
        raise NotFound(f"job {job_id} is not in the ledger of tag {ledger.tag!r}")
    paths = job_logs(job_id, view.record)
    path = paths.path(stream) if read else None
    found = read_lines(path, lines) if path else None
    why = None if read else "log tails are off (--no-logs)"
    if found is None and read:
        pattern = paths.pattern(stream)
        why = (
            "no file recorded for this job"
            if pattern is None
            else f"{path or pattern} is not readable on this machine"
            if path
            else f"{pattern} is known once the job runs"
        )
    return {
        "tag": ledger.tag,
        "job_id": job_id,
        "stream": stream,
        "path": path,
        "lines": found,
        "unreadable": why,
    }
