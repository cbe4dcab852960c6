"""The local scheduler: each job is a detached supervisor process on this machine.

State lives in files under ``<home>/.jobledger/local/<jobid>/`` so it survives
the launching command: a supervisor (``python -m jobledger.schedulers.local``)
starts the script in its own process group, enforces the time limit, and writes
the outcome to ``state.json`` atomically, the way sacct remembers SLURM jobs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jobledger.errors import SchedulerError, UsageError
from jobledger.schedulers.base import (
    JobInfo,
    QueryResult,
    Submission,
    SubmitRequest,
    parse_time_limit,
)
from jobledger.schedulers.slurm_parsers import expand_array_spec
from jobledger.states import State

__all__ = ["LocalScheduler", "sbatch_time_directive"]

_KILL_GRACE_S = 5.0
_DETACHED: list[subprocess.Popen[bytes]] = []
_OUTCOMES = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"}


_TIME_DIRECTIVE = re.compile(r"#SBATCH\s+(?:--time(?:=|\s+)|-t\s*)(\S+)")


def sbatch_time_directive(script_head: str) -> str | None:
    """The ``#SBATCH --time``/``-t`` value of a script's header, as sbatch would read it."""
    for line in script_head.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break  # sbatch stops reading directives at the first command
        match = _TIME_DIRECTIVE.match(stripped)
        if match:
            return match.group(1)
    return None


def _read_head(script: Path) -> str:
    try:
        with script.open(encoding="utf-8", errors="replace") as fh:
            return fh.read(64 * 1024)
    except OSError:
        return ""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (temp file + rename) so readers never see half a file."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    return True


class LocalScheduler:
    """Run job scripts as detached processes; one directory of state files per job."""

    name = "local"

    def __init__(self, home: Path) -> None:
        self.root = home / ".jobledger" / "local"

    # --- submit ---------------------------------------------------------------

    def _next_id(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        counter = self.root / "next_id"
        with (self.root / "next_id.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                value = int(counter.read_text() or "1") if counter.exists() else 1
            except ValueError as exc:
                raise SchedulerError(
                    f"{counter} is corrupt; remove it to restart numbering"
                ) from exc
            counter.write_text(str(value + 1))
            return value

    def submit(self, request: SubmitRequest) -> Submission:
        if request.extra_args:
            raise UsageError(
                "arguments after -- are for sbatch; the local scheduler takes none "
                f"(got {' '.join(request.extra_args)})"
            )
        time_limit = request.time_limit or sbatch_time_directive(_read_head(request.script))
        limit_s = parse_time_limit(time_limit) if time_limit else None
        base = str(self._next_id())
        tasks = expand_array_spec(request.array) if request.array else [None]
        ids = []
        for task in tasks:
            job_id = base if task is None else f"{base}_{task}"
            self._start(job_id, request, limit_s, task)
            ids.append(job_id)
        return Submission(tuple(ids))

    def _start(
        self, job_id: str, request: SubmitRequest, limit_s: int | None, task: str | None
    ) -> None:
        job_dir = self.root / job_id
        job_dir.mkdir(parents=True, exist_ok=False)
        out_name = f"{request.name}-{job_id}"
        meta = {
            "job_id": job_id,
            "name": request.name,
            "script": str(request.script),
            "work_dir": str(request.work_dir),
            "stdout": str(request.output_dir / f"{out_name}.out"),
            "stderr": str(request.output_dir / f"{out_name}.err"),
            "time_limit_s": limit_s,
            "env": {
                **request.env,
                "JOBLEDGER_JOB_ID": job_id,
                "JOB_SPECIFIC_PREFIX": f"{request.tag}-{job_id}",
                **({"JOBLEDGER_ARRAY_TASK_ID": task} if task is not None else {}),
            },
        }
        _write_json(job_dir / "meta.json", meta)
        _write_json(job_dir / "state.json", {"state": "PENDING", "submitted_at": _now()})
        with (job_dir / "supervisor.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "jobledger.schedulers.local", str(job_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # survives the launching terminal and its signals
                close_fds=True,
            )
        # We never wait for it; keeping the object stops a ResourceWarning in
        # long-lived callers (tests, the demo) while the supervisor still runs.
        _DETACHED[:] = [p for p in _DETACHED if p.poll() is None]  # poll() reaps the ended
        _DETACHED.append(proc)

    # --- query ----------------------------------------------------------------

    def query(self, job_ids: Iterable[str]) -> QueryResult:
        jobs: dict[str, JobInfo] = {}
        for job_id in job_ids:
            info = self._info(job_id)
            if info is not None:
                jobs[job_id] = info
        return QueryResult(jobs)

    def _info(self, job_id: str) -> JobInfo | None:
        job_dir = self.root / job_id
        state = _read_json(job_dir / "state.json")
        if state is None:
            return None  # unknown here: the tracker's grace period decides
        raw = str(state.get("state"))
        if raw in ("PENDING", "RUNNING"):
            pid = state.get("supervisor_pid")
            if raw == "RUNNING" and isinstance(pid, int) and not _alive(pid):
                return None  # supervisor died (reboot, kill -9): outcome unknown
            ledger_state = State.PENDING_AND_RUNNING
        elif raw in _OUTCOMES:
            ledger_state = State(raw)
        else:
            return None
        return JobInfo(
            job_id=job_id,
            state=ledger_state,
            raw_state=raw,
            exit_code=state.get("exit_code"),
            signal=state.get("signal"),
            reason=state.get("reason"),
            started_at=_parse_time(state.get("started_at")),
            ended_at=_parse_time(state.get("ended_at")),
            nodes=state.get("node"),
        )

    # --- cancel / find --------------------------------------------------------

    def cancel(self, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            job_dir = self.root / job_id
            if not job_dir.is_dir():
                raise SchedulerError(f"local job {job_id} does not exist")
            (job_dir / "cancel").touch()
            state = _read_json(job_dir / "state.json") or {}
            pid = state.get("supervisor_pid")
            if isinstance(pid, int):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    def find_by_name(self, name: str, *, since: datetime | None = None) -> list[JobInfo]:
        found = []
        for job_dir in self._job_dirs():
            meta = _read_json(job_dir / "meta.json") or {}
            if meta.get("name") != name:
                continue
            if since and datetime.fromtimestamp(job_dir.stat().st_mtime) < since:
                continue
            info = self._info(job_dir.name)
            if info is not None:
                found.append(info)
        return found

    def _job_dirs(self) -> Iterator[Path]:
        if self.root.is_dir():
            yield from (d for d in self.root.iterdir() if d.is_dir())


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- the supervisor process -----------------------------------------------------


def _command(script: Path) -> list[str]:
    if os.access(script, os.X_OK):
        return [str(script)]
    if script.suffix == ".py":
        return [sys.executable, str(script)]
    return ["/bin/bash", str(script)]


def supervise(job_dir: Path) -> int:
    """Run one job to its end and record the outcome; the body of the detached process."""
    meta = _read_json(job_dir / "meta.json")
    if meta is None:
        return 2
    state_file = job_dir / "state.json"
    state: dict[str, Any] = _read_json(state_file) or {}
    cancelled = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal cancelled
        cancelled = True

    signal.signal(signal.SIGTERM, on_term)
    if (job_dir / "cancel").exists():
        _write_json(state_file, {**state, "state": "CANCELLED", "ended_at": _now()})
        return 0
    stdout = Path(meta["stdout"])
    stdout.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **meta["env"]}
    with stdout.open("ab") as out, Path(meta["stderr"]).open("ab") as err:
        proc = subprocess.Popen(
            _command(Path(meta["script"])),
            cwd=meta["work_dir"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    state.update(
        state="RUNNING",
        started_at=_now(),
        supervisor_pid=os.getpid(),
        pid=proc.pid,
        node=os.uname().nodename,
    )
    _write_json(state_file, state)
    limit = meta.get("time_limit_s")
    started = time.monotonic()
    deadline = started + limit if limit else None
    outcome = None
    while proc.poll() is None:
        if cancelled or (job_dir / "cancel").exists():
            outcome = "CANCELLED"
        elif deadline is not None and time.monotonic() > deadline:
            outcome = "TIMEOUT"
        if outcome:
            _kill_group(proc)
            break
        # Quick at first (short jobs, prompt cancel), then cheap: 200 idle
        # supervisors polling every 50 ms cost most of a 2-core machine.
        time.sleep(0.05 if time.monotonic() - started < 2 else 0.5)
    code = proc.wait()
    if outcome is None:
        outcome = "COMPLETED" if code == 0 else "FAILED"
    state.update(
        state=outcome,
        ended_at=_now(),
        exit_code=code if code >= 0 else 0,
        signal=-code if code < 0 else 0,
    )
    _write_json(state_file, state)
    return 0


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1])))
