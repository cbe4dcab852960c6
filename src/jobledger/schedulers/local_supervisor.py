"""The local scheduler's supervisor: one detached process per submission.

It runs the submission's tasks in order, each in its own session and process group,
at most the array's ``%N`` at once, and only while it holds one of the machine's job
slots.  Slots and the run queue are shared by every local job of the user on this
machine (:func:`~jobledger.schedulers.local.pool_dir`):

* ``queue/<submitted_ns>-<jobid>.want`` exists while a submission waits for a slot
  (``.hold`` while it waits for nothing); the oldest waiting submission whose
  supervisor is alive takes the next free slot, so jobs start in submission order;
* ``slots/<k>`` (``k < max_running``) is taken with ``flock``; the lock is passed to the
  task, so it stays taken for as long as the task's processes live, and is released by
  the kernel when they (and a supervisor that dies) are gone.

Every outcome is written atomically to ``tasks/<jobid>.json``: COMPLETED (exit 0),
FAILED (any other status, or a script that cannot be executed, with the reason a shell
would give), TIMEOUT (SIGTERM to the group at the limit, SIGKILL 5 s later) and
CANCELLED (``jobledger cancel``, or SIGTERM to the supervisor).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from jobledger import keys
from jobledger.process import ProcessId, alive, identity
from jobledger.schedulers.local import OUTCOMES, now_iso, read_json, task_state_path, write_json

__all__ = ["Pool", "Supervisor", "exec_failure", "main"]

_KILL_GRACE_S = 5.0
_QUEUE_POLL_S = 0.2
_IDLE_POLL_S = 1.0


class Pool:
    """The machine's job slots and the run queue in front of them (see the module doc)."""

    def __init__(self, directory: Path, size: int, ticket: str, me: ProcessId) -> None:
        self.dir, self.size, self.me = directory, max(1, size), me
        self.queue, self.slots = directory / "queue", directory / "slots"
        self.ticket = ticket
        self.wanting: bool | None = None

    def _path(self, wanting: bool) -> Path:
        return self.queue / f"{self.ticket}.{'want' if wanting else 'hold'}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.dir / "lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def enter(self) -> None:
        self.queue.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.slots.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_json(self._path(False), {**self.me.as_dict(), "size": self.size})
        self.wanting = False

    def want(self, wanting: bool) -> None:
        """Say whether this submission waits for a slot now (it keeps its place in line)."""
        if wanting != self.wanting:
            with self._locked():  # take() never sees the ticket missing mid-rename
                self._path(not wanting).replace(self._path(wanting))
            self.wanting = wanting

    def _lock_slot(self, k: int) -> int | None:
        fd = os.open(self.slots / str(k), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _free_slot_for(self, size: int) -> bool:
        """Whether one of the slots 0..size-1 is free (probed under the pool lock)."""
        for k in range(size):
            fd = self._lock_slot(k)
            if fd is not None:
                os.close(fd)  # closing releases the probe's lock
                return True
        return False

    def take(self) -> int | None:
        """A locked slot's descriptor if it is this submission's turn and a slot is free.

        An older waiting submission goes first, but only if a slot it may use is free:
        one whose slots are all taken does not hold up a later one that can run.
        """
        with self._locked():
            for entry in sorted(self.queue.iterdir()):
                name = entry.name
                if name.startswith("."):
                    continue
                if name.rpartition(".")[0] == self.ticket:
                    break
                data = read_json(entry) or {}
                owner = ProcessId.from_dict(data)
                if owner is not None and alive(owner):
                    size = data.get("size")
                    size = size if isinstance(size, int) and size > 0 else self.size
                    if name.endswith(".want") and self._free_slot_for(size):
                        return None  # an older submission can run now: it goes first
                    continue
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()  # its supervisor died
            for k in range(self.size):
                fd = self._lock_slot(k)
                if fd is not None:
                    return fd
        return None

    def leave(self) -> None:
        for wanting in (False, True):
            with contextlib.suppress(FileNotFoundError):
                self._path(wanting).unlink()


def _command(script: Path) -> list[str]:
    if os.access(script, os.X_OK):
        return [str(script)]
    if script.suffix == ".py":
        return [sys.executable, str(script)]
    return ["/bin/bash", str(script)]


def _shebang(script: Path) -> str | None:
    try:
        with script.open("rb") as fh:
            head = fh.readline(4096)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].decode("utf-8", "replace").split()
    return words[0] if words else ""


def exec_failure(
    script: Path, command: list[str], exc: OSError, work_dir: str | None = None
) -> tuple[int, str]:
    """(exit status, reason) for a script that could not be executed, worded as bash does."""
    where = str(script)
    if work_dir is not None and exc.filename is not None and str(exc.filename) == work_dir:
        return 1, f"cannot change to the job's directory {work_dir}: {exc.strerror or exc}"
    if exc.errno == errno.ENOENT and not script.exists():
        return 127, f"{where}: No such file or directory"
    if exc.errno == errno.ENOENT and command[0] == str(script):
        interp = _shebang(script)
        if interp is not None:
            return 126, f"{where}: {interp}: bad interpreter: No such file or directory"
    if exc.errno == errno.ENOEXEC:
        hint = "" if _shebang(script) is not None else " (no #! line naming an interpreter)"
        return 126, f"{where}: cannot execute: Exec format error{hint}"
    if exc.errno == errno.EACCES:
        return 126, f"{where}: Permission denied"
    if exc.filename and str(exc.filename) != where and exc.errno == errno.ENOENT:
        return 1, f"{exc.filename}: No such file or directory"
    return 126, f"{where}: {exc.strerror or exc}"


@dataclass
class _Running:
    job_id: str
    proc: subprocess.Popen[bytes]
    slot: int
    state: dict[str, Any]
    deadline: float | None
    outcome: str | None = None
    term_at: float | None = None
    killed: bool = False
    files: list[IO[bytes]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs one submission's tasks to their ends; the body of the detached process."""

    def __init__(self, local_dir: Path, meta: dict[str, Any]) -> None:
        self.dir, self.meta = local_dir, meta
        self.me = identity(os.getpid())
        self.job_ids: list[str] = [str(j) for j in meta["job_ids"]]
        self.tasks: dict[str, str | None] = dict(
            zip(self.job_ids, meta.get("tasks") or [None] * len(self.job_ids), strict=True)
        )
        self.throttle: int | None = meta.get("throttle")
        ticket = f"{int(meta.get('submitted_ns') or time.time_ns()):020d}-{meta['base']}"
        self.pool = Pool(Path(meta["pool"]), int(meta.get("max_running") or 1), ticket, self.me)
        self.running: dict[str, _Running] = {}
        self.stopping = False
        self.node = os.uname().nodename

    # --- signals: SIGTERM cancels everything; SIGCHLD/SIGUSR1 wake the loop ------------

    def _install_signals(self) -> None:
        self._wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

        def stop(signum: int, frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGTERM, stop)
        for signum in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, lambda s, f: None)

    def _sleep(self, seconds: float) -> None:
        readable, _, _ = select.select([self._wake_r], [], [], max(0.0, seconds))
        if readable:
            os.read(self._wake_r, 4096)

    # --- tasks ------------------------------------------------------------------------

    def _write(self, job_id: str, state: dict[str, Any]) -> None:
        write_json(task_state_path(self.dir, job_id), state)

    def _ended(self, job_id: str) -> bool:
        state = read_json(task_state_path(self.dir, job_id))
        return state is not None and state.get("state") in OUTCOMES

    def _environment(self, job_id: str) -> dict[str, str]:
        meta, task = self.meta, self.tasks[job_id]
        env = {**os.environ, **meta["env"]}
        env.update(
            JOBLEDGER_JOB_ID=job_id,
            JOB_SPECIFIC_PREFIX=keys.LAYOUTS[
                meta["env"].get("JOBLEDGER_LAYOUT", "seed")
            ].result_prefix(meta["tag"], job_id),
            # What sbatch gives a job, for scripts written for SLURM (the seed's
            # "${job_tag}-${SLURM_JOB_ID}"): here the ledger's ID, array tasks included.
            SLURM_JOB_ID=job_id,
        )
        if task is not None:
            env.update(
                JOBLEDGER_ARRAY_TASK_ID=task,
                SLURM_ARRAY_JOB_ID=str(meta["base"]),
                SLURM_ARRAY_TASK_ID=task,
            )
        return env

    def _start(self, job_id: str, slot: int) -> None:
        meta = self.meta
        script = Path(meta["script"])
        out_dir = Path(meta["output_dir"])
        base = f"{meta['name']}-{job_id}"
        state: dict[str, Any] = {"state": "RUNNING", "started_at": now_iso(), "node": self.node}
        command = _command(script)
        files: list[IO[bytes]] = []
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            files = [(out_dir / f"{base}.out").open("ab"), (out_dir / f"{base}.err").open("ab")]
        except OSError as exc:
            for fh in files:
                fh.close()
            os.close(slot)
            reason = f"cannot write the job's output in {out_dir}: {exc.strerror or exc}"
            ended = {"ended_at": now_iso(), "exit_code": 1, "signal": 0, "reason": reason}
            self._write(job_id, {**state, "state": "FAILED", **ended})
            return
        try:
            proc = subprocess.Popen(
                command,
                cwd=meta["work_dir"],
                env=self._environment(job_id),
                stdin=subprocess.DEVNULL,
                stdout=files[0],
                stderr=files[1],
                start_new_session=True,
                pass_fds=(slot,),  # the slot stays taken while the job's processes live
            )
        except OSError as exc:
            code, reason = exec_failure(script, command, exc, str(meta["work_dir"]))
            files[1].write(f"jobledger: {reason}\n".encode())
            for fh in files:
                fh.close()
            os.close(slot)
            ended = {"ended_at": now_iso(), "exit_code": code, "signal": 0, "reason": reason}
            state.update(state="FAILED", **ended)
            self._write(job_id, state)
            return
        for fh in files:
            fh.close()  # the child has its own copies
        state["pid"] = proc.pid
        self._write(job_id, state)
        limit = self.meta.get("time_limit_s")
        deadline = time.monotonic() + limit if limit else None
        self.running[job_id] = _Running(job_id, proc, slot, state, deadline)

    def _signal(self, task: _Running, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(task.proc.pid, signum)

    def _kill(self, task: _Running, outcome: str) -> None:
        if task.outcome is None:
            task.outcome = outcome
            task.term_at = time.monotonic()
            self._signal(task, signal.SIGTERM)

    def _reap(self) -> None:
        for job_id, task in list(self.running.items()):
            if task.proc.returncode is None:
                flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
                if os.waitid(os.P_PID, task.proc.pid, flags) is None:
                    continue  # still running
                # As SLURM ends a job's processes with its batch script: what the script
                # left running goes too (the unreaped leader keeps the group ID ours).
                self._signal(task, signal.SIGKILL)
            code, rusage = self._wait(task)
            os.close(task.slot)
            outcome = task.outcome or ("COMPLETED" if code == 0 else "FAILED")
            task.state.update(
                state=outcome,
                ended_at=now_iso(),
                exit_code=code if code >= 0 else 0,
                signal=-code if code < 0 else 0,
                usage=self._usage(task, rusage),
            )
            self._write(job_id, task.state)
            del self.running[job_id]

    @staticmethod
    def _wait(task: _Running) -> tuple[int, Any]:
        """Reap the script: its exit code (negative: the signal) and resource usage."""
        if task.proc.returncode is not None:
            return task.proc.returncode, None
        try:
            _, status, rusage = os.wait4(task.proc.pid, 0)
        except ChildProcessError:  # reaped elsewhere: the code is all there is
            return task.proc.wait(), None
        task.proc.returncode = os.waitstatus_to_exitcode(status)
        return task.proc.returncode, rusage

    def _usage(self, task: _Running, rusage: Any) -> dict[str, float | int]:
        """What the script used (with the children it waited for), as the record keeps it."""
        usage: dict[str, float | int] = {
            "elapsed_s": round(time.monotonic() - task.started, 3),
            "req_cpus": int(self.meta.get("req_cpus") or 1),
        }
        if self.meta.get("req_mem_bytes"):
            usage["req_mem_bytes"] = int(self.meta["req_mem_bytes"])
        if rusage is not None:
            usage["cpu_s"] = round(rusage.ru_utime + rusage.ru_stime, 3)
            # ru_maxrss: kilobytes on Linux, bytes on macOS.
            scale = 1 if sys.platform == "darwin" else 1024
            usage["max_rss_bytes"] = int(rusage.ru_maxrss) * scale
        return usage

    def _cancel_requests(self) -> set[str]:
        try:
            return {p.name for p in (self.dir / "cancel").iterdir()}
        except FileNotFoundError:
            return set()

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        write_json(self.dir / "supervisor.json", self.me.as_dict())
        pending = deque(j for j in self.job_ids if not self._ended(j))
        self.pool.enter()
        try:
            handled: set[str] = set()
            while pending or self.running:
                cancels = self._cancel_requests()
                if self.stopping or cancels - handled:
                    handled |= cancels
                    kept: deque[str] = deque()
                    for job_id in pending:
                        if self.stopping or job_id in cancels:
                            self._write(job_id, {"state": "CANCELLED", "ended_at": now_iso()})
                        else:
                            kept.append(job_id)
                    pending = kept
                self._reap()  # first: a task that has just ended keeps its own outcome
                now = time.monotonic()
                for task in self.running.values():
                    if self.stopping or task.job_id in cancels:
                        self._kill(task, "CANCELLED")
                    elif task.deadline is not None and now > task.deadline:
                        self._kill(task, "TIMEOUT")
                    if task.term_at is not None and now > task.term_at + _KILL_GRACE_S:
                        self._signal(task, signal.SIGKILL)
                        task.killed = True
                waiting = self._start_what_may(pending)
                self._sleep(_QUEUE_POLL_S if waiting else self._next_check())
        finally:
            self.pool.leave()
        return 0

    def _may_start(self, pending: deque[str]) -> bool:
        limit = self.pool.size if self.throttle is None else min(self.throttle, self.pool.size)
        return bool(pending) and not self.stopping and len(self.running) < limit

    def _start_what_may(self, pending: deque[str]) -> bool:
        """Start tasks while slots allow; True if some still wait for a slot."""
        self.pool.want(self._may_start(pending))
        while self._may_start(pending):
            slot = self.pool.take()
            if slot is None:
                return True
            self._start(pending.popleft(), slot)
        self.pool.want(False)
        return False

    def _next_check(self) -> float:
        """Sleep until the next deadline or kill, at most a second (SIGCHLD wakes us)."""
        running = self.running.values()
        times = [t.deadline for t in running if t.deadline and t.outcome is None]
        times += [t.term_at + _KILL_GRACE_S for t in running if t.term_at and not t.killed]
        if not times:
            return _IDLE_POLL_S
        return min(_IDLE_POLL_S, max(0.01, min(times) - time.monotonic() + 0.01))

    def abandon(self, reason: str) -> None:
        """After an unexpected error: end every task that has not ended, with the reason."""
        for task in self.running.values():
            self._signal(task, signal.SIGKILL)
        for job_id in self.job_ids:
            with contextlib.suppress(Exception):
                if not self._ended(job_id):
                    state = {"state": "FAILED", "ended_at": now_iso(), "exit_code": 1}
                    self._write(job_id, {**state, "signal": 0, "reason": reason})


def main(argv: list[str]) -> int:
    local_dir = Path(argv[1])
    meta = read_json(local_dir / "meta.json")
    if meta is None:
        sys.stderr.write(f"jobledger supervisor: no readable meta.json in {local_dir}\n")
        return 2
    supervisor = Supervisor(local_dir, meta)
    try:
        return supervisor.run()
    except BaseException as exc:  # noqa: BLE001 - every task must still get an outcome
        traceback.print_exc()
        supervisor.abandon(f"jobledger's local supervisor failed: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
