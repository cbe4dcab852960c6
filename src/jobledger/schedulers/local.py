"""The local scheduler: jobs run as processes on this machine, queued like a scheduler's.

Each submission (one job, or every task of an array) gets a directory
``<home>/.jobledger/local/<jobid>/`` and one detached supervisor process
(``jobledger.schedulers.local_supervisor``) that runs its tasks in order, at most
``max_running`` at once on this machine (and at most the array's ``%N``), and
writes each task's outcome atomically, the way sacct remembers SLURM jobs::

    meta.json              what to run: script, environment, task IDs, limits
    supervisor.json        the supervisor's identity (PID, start time, boot)
    tasks/<jobid>.json     a task's state once it started or ended
    cancel/<jobid>         a cancel request for a task

The ledger allocates the job IDs (one ``INCR`` on its server), so they are unique
among all the jobs it holds; each job's record keeps ``local_dir``, and every
reader finds the job's state through it, never through the current directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jobledger.errors import ParseError, SchedulerError, UsageError
from jobledger.logs import escape, find_options, sbatch_directives
from jobledger.process import ProcessId, alive
from jobledger.schedulers.base import (
    JobInfo,
    QueryResult,
    Records,
    Submission,
    SubmitRequest,
)
from jobledger.specs import array_throttle, expand_array_spec, parse_time_limit, read_head
from jobledger.states import State
from jobledger.usage import parse_memory, usage_from_record

__all__ = [
    "OUTCOMES",
    "JobIdInUse",
    "LocalScheduler",
    "default_max_running",
    "pool_dir",
    "read_json",
    "sbatch_time_directive",
    "task_state_path",
    "write_job_files",
    "write_json",
]

OUTCOMES = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"})
_DETACHED: list[subprocess.Popen[bytes]] = []
_TIME_OPTION = {"time": ("--time", "-t")}


class JobIdInUse(SchedulerError):
    """The job ID the ledger allocated already names a local job here (a reset server).

    ``highest`` is the highest job ID in use here, for the allocator to skip past.
    """

    def __init__(self, message: str, highest: int) -> None:
        super().__init__(message)
        self.highest = highest


def default_max_running() -> int:
    """How many local jobs run at once when nothing says: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def pool_dir() -> Path:
    """The run queue and job slots shared by every local job of this user on this machine."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "jobledger" / f"local-{socket.gethostname()}"


def sbatch_time_directive(script_head: str) -> str | None:
    """The ``#SBATCH --time``/``-t`` value of a script's header, as sbatch reads it."""
    return find_options(sbatch_directives(script_head), _TIME_OPTION).get("time")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def task_state_path(local_dir: Path, job_id: str) -> Path:
    return local_dir / "tasks" / f"{job_id}.json"


def supervisor_of(local_dir: Path) -> ProcessId | None:
    return ProcessId.from_dict(read_json(local_dir / "supervisor.json"))


_START_GRACE_S = 60.0


def _starting(local_dir: Path) -> bool:
    """A submission whose supervisor has not announced itself yet, recently submitted."""
    meta = read_json(local_dir / "meta.json") or {}
    submitted = meta.get("submitted_ns")
    if not isinstance(submitted, int):
        return False
    return (time.time_ns() - submitted) / 1e9 < _START_GRACE_S


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _info(job_id: str, state: dict[str, Any], ledger_state: State, where: Path) -> JobInfo:
    reason = state.get("reason")
    node = state.get("node")
    return JobInfo(
        job_id=job_id,
        state=ledger_state,
        raw_state=str(state.get("state", "PENDING")),
        exit_code=_int_or_none(state.get("exit_code")),
        signal=_int_or_none(state.get("signal")),
        reason=reason if isinstance(reason, str) else None,
        started_at=_parse_time(state.get("started_at")),
        ended_at=_parse_time(state.get("ended_at")),
        nodes=node if isinstance(node, str) else None,
        location=str(where),
        usage=usage_from_record(usage) if isinstance(usage := state.get("usage"), dict) else None,
    )


def _legacy_info(job_dir: Path, job_id: str) -> JobInfo | None:
    """A job of the layout before issue 7 (one ``state.json`` per job), still running or
    ended when jobledger was upgraded: read as that version's supervisor wrote it."""
    state = read_json(job_dir / "state.json")
    if state is None:
        return None
    if state.get("state") in OUTCOMES:
        return _info(job_id, state, State(state["state"]), job_dir)
    pid = state.get("supervisor_pid")
    if state.get("state") == "RUNNING" and isinstance(pid, int) and alive(pid):
        return _info(job_id, state, State.PENDING_AND_RUNNING, job_dir)
    return None


_REQUEST_OPTIONS = {"cpus": ("--cpus-per-task", "-c"), "mem": ("--mem", "")}


def _requested(script_head: str) -> dict[str, int]:
    """The CPUs and memory a script's ``#SBATCH`` lines ask for (what its usage is
    measured against): CPUs default to 1, memory to nothing (no memory efficiency)."""
    found = find_options(sbatch_directives(script_head), _REQUEST_OPTIONS)
    out = {"req_cpus": 1}
    cpus = found.get("cpus", "")
    if cpus.isdigit() and int(cpus) > 0:
        out["req_cpus"] = int(cpus)
    try:
        mem = parse_memory(found.get("mem", ""))
    except ParseError:
        mem = None
    if mem:
        # sbatch reads a bare --mem number as megabytes.
        out["req_mem_bytes"] = mem * 1024**2 if found["mem"].isdigit() else mem
    return out


class LocalScheduler:
    """Run job scripts as queued processes on this machine; state files per submission."""

    name = "local"
    allocates_ids = False
    remote_nodes = False

    def __init__(self, home: Path, *, pool: Path | None = None) -> None:
        self.root = home / ".jobledger" / "local"
        self.pool = pool

    # --- submit ---------------------------------------------------------------

    def describe(self, request: SubmitRequest) -> list[str]:
        return []

    def log_patterns(self, request: SubmitRequest) -> tuple[str, str]:
        """The files the supervisor opens: ``<output_dir>/<name>-<job ID>.out``/``.err``."""
        pattern = escape(str(request.output_dir)) + ("/%x-%A_%a" if request.array else "/%x-%j")
        return pattern + ".out", pattern + ".err"

    def submit(self, request: SubmitRequest) -> Submission:
        """Write the submission's directory; nothing runs until :meth:`start`."""
        if request.extra_args:
            raise UsageError(
                "arguments after -- are for sbatch; the local scheduler takes none "
                f"(got {' '.join(request.extra_args)})"
            )
        if request.job_id is None:
            raise SchedulerError("the local scheduler needs a job ID allocated by the ledger")
        head = read_head(request.script)
        time_limit = request.time_limit or sbatch_time_directive(head)
        requested = _requested(head)
        limit_s = parse_time_limit(time_limit) if time_limit else None
        base = request.job_id
        tasks = expand_array_spec(request.array) if request.array else None
        job_ids = [base] if tasks is None else [f"{base}_{t}" for t in tasks]
        local_dir = self.root / base
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            local_dir.mkdir()
        except FileExistsError:
            highest = max(int(d.name) for d in self._submission_dirs() if d.name.isdigit())
            raise JobIdInUse(f"local job {base} already exists in {self.root}", highest) from None
        meta = {
            "base": base,
            "job_ids": job_ids,
            "tasks": tasks,
            "tag": request.tag,
            "name": request.name,
            "script": str(request.script),
            "work_dir": str(request.work_dir),
            "output_dir": str(request.output_dir),
            "time_limit_s": limit_s,
            **requested,
            "throttle": array_throttle(request.array) if request.array else None,
            "max_running": request.max_running or default_max_running(),
            "pool": str(self.pool or pool_dir()),
            "submitted_ns": time.time_ns(),
            "submitted_at": now_iso(),
            "env": dict(request.env),
        }
        (local_dir / "tasks").mkdir()
        write_json(local_dir / "meta.json", meta)
        return Submission(tuple(job_ids), fields={"local_dir": str(local_dir)})

    def start(self, submission: Submission) -> None:
        """Start the submission's supervisor, detached (it outlives this command)."""
        local_dir = Path(submission.fields["local_dir"])
        try:
            meta = read_json(local_dir / "meta.json") or {}
            # The job's own variables win in the supervisor too: a secret the launcher
            # had in JOBLEDGER_URL / REDIS_URL (blanked for jobs) stays out of its environ.
            env = {**os.environ, **(meta.get("env") or {})}
            with (local_dir / "supervisor.log").open("ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "jobledger.schedulers.local_supervisor", str(local_dir)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,  # survives the launching terminal and its signals
                    close_fds=True,
                )
        except OSError as exc:
            reason = f"the local supervisor could not start: {exc}"
            for job_id in submission.job_ids:
                state = {"state": "FAILED", "ended_at": now_iso(), "reason": reason}
                write_json(task_state_path(local_dir, job_id), state)
            return
        # supervisor.json is written by the supervisor itself once its signal handlers
        # are in place: a cancel that finds it can signal it without killing it.
        # We never wait for it; keeping the object stops a ResourceWarning in
        # long-lived callers (tests, the demo) while the supervisor still runs.
        _DETACHED[:] = [p for p in _DETACHED if p.poll() is None]  # poll() reaps the ended
        _DETACHED.append(proc)

    # --- query ----------------------------------------------------------------

    def _dir_of(self, job_id: str, record: Mapping[str, str]) -> Path | None:
        """Where the job's state lives: its record says (older records: in its work dir)."""
        if record.get("local_dir"):
            return Path(record["local_dir"])
        if record.get("work_dir"):
            return Path(record["work_dir"]) / ".jobledger" / "local" / job_id.split("_")[0]
        return None  # nothing says where: unknown, never looked up by the current directory

    def query(self, jobs: Records) -> QueryResult:
        found: dict[str, JobInfo] = {}
        supervisors: dict[Path, bool] = {}
        members: dict[Path, frozenset[str]] = {}
        legacy: set[Path] = set()
        for job_id, record in jobs.items():
            local_dir = self._dir_of(job_id, record)
            if local_dir is None:
                continue
            if local_dir not in members:
                meta = read_json(local_dir / "meta.json") or {}
                ids = meta.get("job_ids")
                if not isinstance(ids, list) and isinstance(meta.get("job_id"), str):
                    legacy.add(local_dir)  # written by jobledger 0.1 before issue 7
                    ids = [meta["job_id"]]
                members[local_dir] = frozenset(ids) if isinstance(ids, list) else frozenset()
            if job_id not in members[local_dir]:
                continue  # unknown here: the tracker's grace period decides
            if local_dir in legacy:
                info = _legacy_info(local_dir, job_id)
            else:
                info = self._task_info(local_dir, job_id, supervisors)
            if info is not None:
                found[job_id] = info
        return QueryResult(found)

    def _task_info(
        self, local_dir: Path, job_id: str, supervisors: dict[Path, bool]
    ) -> JobInfo | None:
        path = task_state_path(local_dir, job_id)
        state = read_json(path)
        if state is not None and state.get("state") in OUTCOMES:
            return _info(job_id, state, State(state["state"]), local_dir)
        if local_dir not in supervisors:
            sup = supervisor_of(local_dir)
            supervisors[local_dir] = alive(sup) if sup is not None else _starting(local_dir)
        if not supervisors[local_dir]:
            # Gone (SIGKILL, OOM, reboot) or never started: the outcome is unknown, unless
            # it wrote the outcome just before it exited.
            state = read_json(path)
            if state is not None and state.get("state") in OUTCOMES:
                return _info(job_id, state, State(state["state"]), local_dir)
            return None
        return _info(job_id, state or {"state": "PENDING"}, State.PENDING_AND_RUNNING, local_dir)

    # --- cancel / find --------------------------------------------------------

    def cancel(self, jobs: Records) -> list[str]:
        ended: list[str] = []
        wake: dict[Path, ProcessId] = {}
        for job_id, record in jobs.items():
            local_dir = self._dir_of(job_id, record)
            if local_dir is None or not (local_dir / "meta.json").is_file():
                raise SchedulerError(f"local job {job_id}: no scheduler state in {local_dir}")
            state = read_json(task_state_path(local_dir, job_id)) or {}
            sup = supervisor_of(local_dir)
            if state.get("state") in OUTCOMES or (sup is not None and not alive(sup)):
                ended.append(job_id)  # nothing runs it: a signal could hit another process
                continue
            if sup is None and not _starting(local_dir):
                ended.append(job_id)  # its supervisor never started
                continue
            (local_dir / "cancel").mkdir(exist_ok=True)
            (local_dir / "cancel" / job_id).touch()  # a starting supervisor reads it first
            if sup is not None:
                wake[local_dir] = sup
        for sup in wake.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(sup.pid, signal.SIGUSR1)  # look at the cancel requests now
        return ended

    def find_by_name(
        self, name: str, *, since: datetime | None = None, cluster: str | None = None
    ) -> list[JobInfo]:
        found = []
        for local_dir in self._submission_dirs():
            meta = read_json(local_dir / "meta.json") or {}
            if meta.get("name") != name:
                continue
            if since and datetime.fromtimestamp(local_dir.stat().st_mtime) < since:
                continue
            supervisors: dict[Path, bool] = {}
            for job_id in meta.get("job_ids") or []:
                info = self._task_info(local_dir, str(job_id), supervisors)
                if info is not None:
                    found.append(info)
        return found

    def _submission_dirs(self) -> Iterator[Path]:
        if self.root.is_dir():
            yield from (d for d in self.root.iterdir() if d.is_dir())


def write_job_files(
    home: Path,
    job_id: str,
    state: dict[str, Any],
    *,
    supervisor: ProcessId | None = None,
) -> dict[str, str]:
    """Write one job's files as launch and its supervisor leave them; its record fields.

    For tests and benchmarks that need thousands of local jobs in a given state
    without running them.  ``supervisor`` is the process that "runs" a job that has
    not ended (a dead one, or None, makes it unknown).
    """
    local_dir = home / ".jobledger" / "local" / job_id
    (local_dir / "tasks").mkdir(parents=True, exist_ok=True)
    meta = {"base": job_id, "job_ids": [job_id], "tasks": None, "name": "sim"}
    write_json(local_dir / "meta.json", meta)
    if supervisor is not None:
        write_json(local_dir / "supervisor.json", supervisor.as_dict())
    write_json(task_state_path(local_dir, job_id), state)
    return {"scheduler": "local", "local_dir": str(local_dir)}
