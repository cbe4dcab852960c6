"""Pure functions that turn the text SLURM commands print into jobledger data.

Nothing here runs a command or touches a file: the SLURM backend runs ``sbatch``, ``sacct``,
``squeue`` and ``scontrol`` and passes their output in, so every quirk of that output can be
tested on literal strings.

Every parser raises :class:`~jobledger.errors.ParseError`, and nothing else, on text it does not
understand.  Times come back as naive :class:`~datetime.datetime` objects holding the local time
of the machine that ran the command, exactly as SLURM prints it; this assumes the default
``SLURM_TIME_FORMAT`` (``standard``), so the backend must not set another one.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from jobledger.errors import ParseError
from jobledger.schedulers.base import JobInfo
from jobledger.specs import expand_array_spec
from jobledger.states import State
from jobledger.usage import Usage, parse_cpu_time, parse_memory

T = TypeVar("T")

__all__ = [
    "SACCT_FIELDS",
    "SQUEUE_FORMAT",
    "USAGE_FIELDS",
    "is_accounting_unavailable",
    "parse_sacct",
    "parse_sacct_rows",
    "parse_sacct_usage",
    "parse_sbatch_error",
    "parse_sbatch_parsable",
    "parse_scontrol_show_job",
    "parse_squeue",
    "parse_squeue_rows",
    "parse_state",
    "sacct_format",
]

# No "Restarts": sacct 22.05 has no such field (only scontrol shows it), and sacct rejects the
# whole query ('Invalid field requested: "Restarts"') when asked for one it does not know.
SACCT_FIELDS: tuple[str, ...] = (
    "JobIDRaw",
    "JobID",
    "JobName",
    "State",
    "ExitCode",
    "Reason",
    "Start",
    "End",
    "NodeList",
)

USAGE_FIELDS: tuple[str, ...] = (
    "JobID",
    "ElapsedRaw",
    "TotalCPU",
    "MaxRSS",
    "ReqMem",
    "AllocCPUS",
    "NNodes",
)
"""What ``sacct -P -n -o`` (without -X: the steps have MaxRSS) gives :func:`parse_sacct_usage`."""

SQUEUE_FORMAT = "%i|%A|%j|%T|%r|%N|%S|%e"
"""The ``squeue -h -o`` format :func:`parse_squeue` reads."""

# Our names for the columns of SACCT_FIELDS and SQUEUE_FORMAT, in order; "id" is the job ID as
# printed (123, 123_4, 123_[5-10], 123+0), "raw_id" the plain number SLURM uses internally.
_SACCT_COLUMNS = ("raw_id", "id", "name", "state", "exit", "reason", "start", "end", "nodes")
_SQUEUE_COLUMNS = ("id", "raw_id", "name", "state", "reason", "nodes", "start", "end")
_SCONTROL_COLUMNS = (
    ("state", "JobState"),
    ("name", "JobName"),
    ("reason", "Reason"),
    ("exit", "ExitCode"),
    ("start", "StartTime"),
    ("end", "EndTime"),
    ("nodes", "NodeList"),
)

_ACTIVE = State.PENDING_AND_RUNNING

# One table for the long names (sacct, scontrol, squeue %T) and the compact codes (squeue %t).
_STATE_TABLE: tuple[tuple[str, str, State], ...] = (
    ("PENDING", "PD", _ACTIVE),
    ("RUNNING", "R", _ACTIVE),
    ("REQUEUED", "RQ", _ACTIVE),
    ("REQUEUE_FED", "RF", _ACTIVE),
    ("REQUEUE_HOLD", "RH", _ACTIVE),
    ("RESIZING", "RS", _ACTIVE),
    ("SUSPENDED", "S", _ACTIVE),
    ("COMPLETING", "CG", _ACTIVE),
    ("CONFIGURING", "CF", _ACTIVE),
    ("SIGNALING", "SI", _ACTIVE),
    ("STAGE_OUT", "SO", _ACTIVE),
    ("STOPPED", "ST", _ACTIVE),
    ("SPECIAL_EXIT", "SE", _ACTIVE),
    ("RESV_DEL_HOLD", "RD", _ACTIVE),
    ("COMPLETED", "CD", State.COMPLETED),
    ("FAILED", "F", State.FAILED),
    ("TIMEOUT", "TO", State.TIMEOUT),
    ("CANCELLED", "CA", State.CANCELLED),
    ("OUT_OF_MEMORY", "OOM", State.OUT_OF_MEMORY),
    ("NODE_FAIL", "NF", State.NODE_FAIL),
    ("PREEMPTED", "PR", State.PREEMPTED),
    ("BOOT_FAIL", "BF", State.BOOT_FAIL),
    ("DEADLINE", "DL", State.DEADLINE),
    # A federation revokes a sibling job once another cluster runs it: it will never run here.
    ("REVOKED", "RV", State.CANCELLED),
)
_STATES: dict[str, State] = {word: s for long, short, s in _STATE_TABLE for word in (long, short)}

# In these states the job has not (re)started yet, so a start time is the scheduler's forecast.
_WAITING = frozenset(
    {"PENDING", "PD", "REQUEUED", "RQ", "REQUEUE_FED", "RF", "REQUEUE_HOLD", "RH"}
    | {"RESV_DEL_HOLD", "RD", "SPECIAL_EXIT", "SE"}
)

# How SLURM spells "no value" in the columns read here (squeue prints "NONE" for no end time).
_ABSENT = frozenset({"", "None", "NONE", "(null)", "N/A", "Unknown", "None assigned"})

# ASCII digits only ("\d" would take other scripts' digits), and few enough for int() to be cheap.
_NUM = "[0-9]{1,10}"
_NUM_RE = re.compile(_NUM)
_JOB_ID_RE = re.compile(
    rf"(?P<job>{_NUM})(?:_(?P<task>{_NUM})|_\[(?P<spec>[^\]]*)\]|\+(?P<het>{_NUM}))?"
    r"(?P<step>\..+)?"
)
_EXIT_RE = re.compile(rf"({_NUM}):({_NUM})")
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_PARSABLE_RE = re.compile(rf"({_NUM})(?:;([^\s;]+))?")
# Keys such as "AllocNode:Sid" and "CPUs/Task" hold ":" and "/"; values may hold spaces.
_SCONTROL_SPLIT_RE = re.compile(r"\s+(?=[A-Za-z][\w:/]*=)")
_ERROR_PREFIX_RE = re.compile(r"^.*?\berror:\s*", re.IGNORECASE)

# scontrol's answer for IDs it no longer (or never) knew: not an error for a batched query.
_SCONTROL_NOTHING = ("slurm_load_jobs error: Invalid job id specified", "No jobs in the system")

_ACCOUNTING_DOWN = (
    "accounting storage is disabled",
    "problem talking to the database",
    "slurm_persist_conn_open",
    "persistent connection",
    "persistinit",
    "connection refused",
    "connection timed out",
    "socket timed out",
    "zero bytes were transmitted or received",
    "unable to connect to database",
    "slurmdbd",
)


def _quote(text: str, limit: int = 120) -> str:
    """Return ``text`` as a repr, cut to ``limit`` characters, for error messages."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_state(raw: str) -> State:
    """Map a SLURM job state as printed (``RUNNING``, ``CANCELLED by 0``, ``CD``) to a State."""
    words = raw.split()
    # sacct appends "by <uid>" to CANCELLED, and "+" when a fixed-width column was cut short.
    word = words[0].rstrip("+").upper() if words else ""
    try:
        return _STATES[word]
    except KeyError:
        raise ParseError(f"unknown SLURM job state {_quote(raw)}") from None


def _keys_for(job_id: str, line: str) -> list[str] | None:
    """Return the ledger keys a sacct/squeue JobID stands for, or None for a job step."""
    match = _JOB_ID_RE.fullmatch(job_id)
    if match is None:
        raise ParseError(f"bad job ID {_quote(job_id)} in line {_quote(line)}")
    if match["step"] is not None:
        return None  # a step's state is the step's, not the job's; the allocation row has that
    job = match["job"]
    if match["task"] is not None:
        return [f"{job}_{match['task']}"]
    if match["spec"] is not None:
        # Tasks of an array that have not started yet share one row, e.g. 123_[5-10%2].
        return [f"{job}_{task}" for task in expand_array_spec(match["spec"])]
    if match["het"] is not None:
        return [f"{job}+{match['het']}"]
    return [job]


def _optional(value: str) -> str | None:
    """Return ``value`` stripped, or None if it is one of SLURM's spellings of nothing."""
    value = value.strip()
    return None if value in _ABSENT else value


def _parse_time(value: str, line: str) -> datetime | None:
    """Parse a SLURM timestamp (``2024-05-01T12:00:03``, naive local time) or a no-value word."""
    text = _optional(value)
    if text is None:
        return None
    if _TIME_RE.fullmatch(text):
        try:
            return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            pass  # shaped right but not a date (month 13): report it below
    raise ParseError(f"bad time {_quote(value)} in {_quote(line)}")


def _parse_exit(value: str, line: str) -> tuple[int | None, int | None]:
    """Parse an ExitCode ``<code>:<signal>`` (``3:0``, ``0:9``) into its two numbers."""
    text = _optional(value)
    if text is None:
        return None, None
    match = _EXIT_RE.fullmatch(text)
    if match is None:
        raise ParseError(f"bad exit code {_quote(value)} in {_quote(line)}")
    return int(match[1]), int(match[2])


def _job_info(line: str, row: Mapping[str, str], restarts: int | None = None) -> JobInfo:
    """Build the JobInfo of one output row (columns by our names); job_id is set per key later."""
    raw_state = row["state"].strip()
    state = parse_state(raw_state)
    code, signal = _parse_exit(row.get("exit", ""), line)
    started_at = _parse_time(row.get("start", ""), line)
    ended_at = _parse_time(row.get("end", ""), line)
    # squeue and scontrol print forecasts: the expected start of a waiting job and the time
    # limit's end for a running one.  Only times that already happened are kept.
    if raw_state.split()[0].rstrip("+").upper() in _WAITING:
        started_at = None
    if not state.is_terminal:
        ended_at = None
    return JobInfo(
        job_id="",
        state=state,
        raw_state=raw_state,
        exit_code=code,
        signal=signal,
        reason=_optional(row.get("reason", "")),
        started_at=started_at,
        ended_at=ended_at,
        nodes=_optional(row.get("nodes", "")),
        name=row.get("name") or None,
        restarts=restarts,
        raw_id=row.get("raw_id", "").strip() or None,
    )


def _store(jobs: dict[str, JobInfo], keys: list[str], info: JobInfo) -> None:
    """File ``info`` under each key; a later row for the same job replaces an earlier one."""
    if len(keys) == 1:
        jobs[keys[0]] = replace(info, job_id=keys[0])
        return
    # One row of a pending array stands for all its tasks: dataclasses.replace costs 7 µs
    # a copy (70 ms for 10,000 tasks), a shallow copy of the frozen instance 1 µs.
    for key in keys:
        task = copy.copy(info)
        object.__setattr__(task, "job_id", key)
        jobs[key] = task


Problems = list[tuple[str, str]]
"""Rows a lenient parse skipped: (the job ID the row names, or "" if none can be read; why)."""


def _row_job_id(line: str, columns: tuple[str, ...]) -> str:
    """The ledger job ID a row names, read without trusting the rest of the row; else ""."""
    fields = line.split("|")
    if len(fields) <= columns.index("id"):
        return ""
    job_id = fields[columns.index("id")].strip()
    match = _JOB_ID_RE.fullmatch(job_id)
    if match is None or match["spec"] is not None or match["step"] is not None:
        return ""
    return job_id


def _parse_rows(
    text: str, columns: tuple[str, ...], header: str = "", problems: Problems | None = None
) -> dict[str, JobInfo]:
    """Parse ``|``-separated rows whose fields are named by ``columns`` (shared by sacct/squeue).

    With ``problems``, a row that does not parse is noted there and skipped instead of
    failing the whole text (the tracker files every other job of the pass).
    """
    jobs: dict[str, JobInfo] = {}
    for line in text.splitlines():
        if not line.strip() or line.strip() == header or line.startswith("CLUSTER: "):
            continue  # squeue -M heads each cluster's rows with "CLUSTER: <name>"
        try:
            _parse_row(line, columns, jobs)
        except ParseError as exc:
            if problems is None:
                raise
            problems.append((_row_job_id(line, columns), str(exc)))
    return jobs


def _parse_row(line: str, columns: tuple[str, ...], jobs: dict[str, JobInfo]) -> None:
    name_at = columns.index("name")
    fields = line.split("|")
    extra = len(fields) - len(columns)
    if extra < 0:
        raise ParseError(f"expected {len(columns)} '|'-separated fields: {_quote(line)}")
    # The job name is the only free-text column, so surplus separators belong to it; if that
    # guess is wrong, a non-state word lands in the state column and parsing fails anyway.
    fields[name_at : name_at + extra + 1] = ["|".join(fields[name_at : name_at + extra + 1])]
    row = dict(zip(columns, fields, strict=True))
    keys = _keys_for(row["id"].strip(), line)
    if keys is None:
        return
    if not _NUM_RE.fullmatch(row["raw_id"].strip()):
        raise ParseError(f"bad raw job ID {_quote(row['raw_id'])} in line {_quote(line)}")
    info = _job_info(line, row)
    if len(keys) > 1:  # tasks not started yet share their array's row (and its number)
        info = replace(info, raw_id=None)
    _store(jobs, keys, info)


def parse_sbatch_parsable(text: str) -> tuple[str, str | None]:
    """Return ``(job_id, cluster)`` from the stdout of ``sbatch --parsable``.

    sbatch prints ``12345`` or, on a multi-cluster setup, ``12345;clustername``.  Blank lines
    and ``sbatch: ...`` warning lines (should the streams have been merged) are skipped.
    """
    lines = [line.strip() for line in text.splitlines()]
    payload = [line for line in lines if line and not line.startswith("sbatch: ")]
    match = _PARSABLE_RE.fullmatch(payload[0]) if len(payload) == 1 else None
    if match is None:
        raise ParseError(f"unexpected sbatch --parsable output: {_quote(text)}")
    return match[1], match[2]


def sacct_format() -> str:
    """Return the value for ``sacct -o`` that :func:`parse_sacct` expects."""
    return ",".join(SACCT_FIELDS)


def parse_sacct(text: str) -> dict[str, JobInfo]:
    """Parse ``sacct -X -P -n -o <sacct_format()>`` output into JobInfo keyed by ledger job ID.

    Keys are the ``JobID`` column: ``123`` for a plain job, ``123_4`` for an array task (its
    ``JobIDRaw`` is another number), ``123+1`` for a heterogeneous job component; a row for
    not-yet-started array tasks (``123_[5-10%2]``) yields one entry per task.  Job step rows
    (``123.batch``, present without ``-X``) are skipped, and when a job has several rows (``-D``)
    the last one wins.  A header line equal to the field names is tolerated.
    """
    return _parse_rows(text, _SACCT_COLUMNS, header="|".join(SACCT_FIELDS))


def parse_sacct_rows(text: str) -> tuple[dict[str, JobInfo], Problems]:
    """:func:`parse_sacct`, skipping (and returning) the rows it cannot read."""
    problems: Problems = []
    return _parse_rows(text, _SACCT_COLUMNS, "|".join(SACCT_FIELDS), problems), problems


def parse_sacct_usage(text: str) -> tuple[dict[str, Usage], Problems]:
    """Parse ``sacct -P -n -o USAGE_FIELDS`` (job and step rows) into each job's Usage;
    a value it cannot read is None (not measured), a line it cannot split a problem.

    As seff does: elapsed time, requested memory and allocated CPUs from the job's own
    row; CPU time from it too (sacct sums the steps there), else the sum of the steps;
    peak memory is the largest MaxRSS of any step (batch, extern, srun steps).
    """
    rows: dict[str, dict[str, str]] = {}
    steps: dict[str, list[dict[str, str]]] = {}
    problems: Problems = []
    for line in text.splitlines():
        if not line.strip() or line.strip() == "|".join(USAGE_FIELDS):
            continue
        fields = line.split("|")
        if len(fields) != len(USAGE_FIELDS):
            problems.append(("", f"expected {len(USAGE_FIELDS)} fields: {_quote(line)}"))
            continue
        row = dict(zip(USAGE_FIELDS, fields, strict=True))
        match = _JOB_ID_RE.fullmatch(row["JobID"].strip())
        if match is None or match["spec"] is not None:
            continue  # not started (123_[5-10]): it used nothing yet
        job = match["job"] + (
            f"_{match['task']}" if match["task"] else f"+{match['het']}" if match["het"] else ""
        )
        if match["step"] is None:
            rows[job] = row
        else:
            steps.setdefault(job, []).append(row)
    return {job: _usage(row, steps.get(job, [])) for job, row in rows.items()}, problems


def _lenient(parse: Callable[..., T], text: str, **kwargs: Any) -> T | None:
    """A usage value, or None when sacct printed something unreadable: what a job used
    is a bonus, never a reason to leave the job unfiled."""
    try:
        return parse(text, **kwargs)
    except (ParseError, ValueError):
        return None


def _count(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def _usage(row: Mapping[str, str], steps: list[dict[str, str]]) -> Usage:
    cpus, nodes = _count(row["AllocCPUS"]), _count(row["NNodes"])
    elapsed = _count(row["ElapsedRaw"])
    cpu = _lenient(parse_cpu_time, row["TotalCPU"])
    if not cpu and steps:
        step_cpu = [_lenient(parse_cpu_time, s["TotalCPU"]) for s in steps]
        cpu = sum(c for c in step_cpu if c is not None) if any(step_cpu) else cpu
    rss = [_lenient(parse_memory, s["MaxRSS"]) for s in steps]
    measured = [r for r in rss if r is not None]
    return Usage(
        elapsed_s=None if elapsed is None else float(elapsed),
        cpu_s=cpu,
        max_rss_bytes=max(measured) if measured else None,
        req_mem_bytes=_lenient(parse_memory, row["ReqMem"], cpus=cpus, nodes=nodes, unit="M"),
        req_cpus=cpus,
    )


def parse_squeue(text: str) -> dict[str, JobInfo]:
    """Parse ``squeue -h -o SQUEUE_FORMAT`` output into JobInfo, keyed like :func:`parse_sacct`.

    squeue has no exit code, so ``exit_code`` and ``signal`` are None.  Its start time of a
    waiting job and end time of a running one are forecasts and are dropped.
    """
    return _parse_rows(text, _SQUEUE_COLUMNS)


def parse_squeue_rows(text: str) -> tuple[dict[str, JobInfo], Problems]:
    """:func:`parse_squeue`, skipping (and returning) the rows it cannot read."""
    problems: Problems = []
    return _parse_rows(text, _SQUEUE_COLUMNS, problems=problems), problems


def _scontrol_records(text: str) -> list[str]:
    """Group ``scontrol show job`` output into one string per job.

    With ``-o`` each job is one line; without it a job starts at ``JobId=`` and continues on
    indented lines, so both layouts are accepted.
    """
    records: list[list[str]] = []
    in_record = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(_SCONTROL_NOTHING):
            in_record = False
        elif stripped.startswith("JobId="):
            records.append([stripped])
            in_record = True
        elif in_record and line[:1].isspace():
            records[-1].append(stripped)
        else:
            raise ParseError(f"unexpected line in scontrol output: {_quote(line)}")
    return [" ".join(parts) for parts in records]


def _scontrol_fields(record: str) -> dict[str, str]:
    """Split one scontrol record into ``Key=Value`` pairs; the first of a repeated key wins."""
    fields: dict[str, str] = {}
    for token in _SCONTROL_SPLIT_RE.split(record.strip()):
        key, _, value = token.partition("=")
        # Free text (Command, WorkDir, Comment, StdOut) is printed after the fields read here,
        # so keeping the first occurrence stops a value containing " Key=..." from faking them.
        fields.setdefault(key, value.strip())
    return fields


def parse_scontrol_show_job(text: str) -> dict[str, JobInfo]:
    """Parse ``scontrol show job -o`` output into JobInfo, keyed like :func:`parse_sacct`.

    Array tasks are keyed ``ArrayJobId_ArrayTaskId`` (a range such as ``5-10%2`` expands to one
    entry per task), heterogeneous components ``HetJobId+HetJobOffset``.  The
    ``slurm_load_jobs error: Invalid job id specified`` line is skipped, so an unknown ID gives
    an empty result; any other ``slurm_load_jobs error`` raises ParseError.
    """
    jobs: dict[str, JobInfo] = {}
    for record in _scontrol_records(text):
        fields = _scontrol_fields(record)
        job_id, raw_state = fields.get("JobId", ""), fields.get("JobState")
        if not _NUM_RE.fullmatch(job_id) or raw_state is None:
            raise ParseError(f"scontrol record without JobId/JobState: {_quote(record)}")
        array_job, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        het_job, offset = fields.get("HetJobId"), fields.get("HetJobOffset")
        if task is not None:
            if array_job is None or not _NUM_RE.fullmatch(array_job):
                raise ParseError(f"array task without ArrayJobId: {_quote(record)}")
            keys = [f"{array_job}_{index}" for index in expand_array_spec(task)]
        elif het_job is not None and offset is not None:
            if not (_NUM_RE.fullmatch(het_job) and _NUM_RE.fullmatch(offset)):
                raise ParseError(f"bad HetJobId/HetJobOffset in {_quote(record)}")
            keys = [f"{het_job}+{offset}"]
        else:
            keys = [job_id]
        restarts_text = fields.get("Restarts")
        restarts = None
        if restarts_text is not None:
            if not _NUM_RE.fullmatch(restarts_text):
                raise ParseError(f"bad Restarts {_quote(restarts_text)} in {_quote(record)}")
            restarts = int(restarts_text)
        row = {ours: fields.get(theirs, "") for ours, theirs in _SCONTROL_COLUMNS}
        _store(jobs, keys, _job_info(record, row, restarts))
    return jobs


def is_accounting_unavailable(stderr: str) -> bool:
    """Tell whether sacct's stderr says accounting (slurmdbd) is off or unreachable.

    The backend then falls back to squeue/scontrol instead of failing the query.
    """
    lowered = stderr.lower()
    return any(marker in lowered for marker in _ACCOUNTING_DOWN)


def parse_sbatch_error(stderr: str) -> str:
    """Return one clean line explaining why sbatch failed, taken from its stderr.

    The last ``error:`` line wins, without its ``sbatch: error:`` prefix; failing that, the last
    non-blank line.  Long messages are cut to 300 characters.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_PREFIX_RE.match(line)]
    if errors:
        message = _ERROR_PREFIX_RE.sub("", errors[-1], count=1)
    else:
        message = lines[-1].removeprefix("sbatch:").strip() if lines else ""
    if not message:
        return "sbatch failed with no message"
    return message if len(message) <= 300 else message[:297] + "..."
