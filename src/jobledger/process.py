"""Is a process still the one we started?  PIDs are reused, so a PID alone cannot say.

A process is identified by its PID, its start time (clock ticks since boot, field 22 of
``/proc/<pid>/stat``) and the boot it belongs to.  Where ``/proc`` is missing (macOS),
only the PID can be checked.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["ProcessId", "alive", "identity"]


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class ProcessId:
    """One process, told apart from a later one that got the same PID."""

    pid: int
    start: int | None = None
    boot: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ProcessId | None:
        """The identity stored in ``data`` (a dict read from JSON), or None if malformed."""
        if not isinstance(data, dict):
            return None
        pid, start, boot = data.get("pid"), data.get("start"), data.get("boot")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            return None
        start = start if isinstance(start, int) and not isinstance(start, bool) else None
        return cls(pid, start, boot if isinstance(boot, str) else None)


def identity(pid: int) -> ProcessId:
    """The identity of the running process ``pid``."""
    fields = _stat_fields(pid)
    start = None
    if fields is not None and len(fields) > 19:
        with contextlib.suppress(ValueError):
            start = int(fields[19])
    return ProcessId(pid, start, _boot_id())


def alive(process: ProcessId | int) -> bool:
    """True while that very process runs (a zombie has exited; a reused PID is another)."""
    if isinstance(process, int):
        process = ProcessId(process)
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process has this PID: decided below where /proc can tell
    fields = _stat_fields(process.pid)
    if fields is None:
        return not Path("/proc/self/stat").exists()  # no /proc at all: the PID is all we have
    if not fields or fields[0] in ("Z", "X"):
        return False
    if process.boot is not None and process.boot != _boot_id():
        return False
    if process.start is not None and len(fields) > 19:
        return fields[19] == str(process.start)
    return True
