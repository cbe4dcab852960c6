"""Job states: the enum values are the suffixes of the seed's Redis set names."""

from __future__ import annotations

from enum import Enum

__all__ = ["REQUEUEABLE_STATES", "TERMINAL_STATES", "State"]


class State(str, Enum):
    """Where a job stands in the ledger; ``<tag>_<value>`` is its Redis set."""

    PENDING_AND_RUNNING = "PENDING_AND_RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    CANCELLED = "CANCELLED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    LOST = "LOST"

    @property
    def is_terminal(self) -> bool:
        return self is not State.PENDING_AND_RUNNING

    def __str__(self) -> str:
        return self.value


TERMINAL_STATES: tuple[State, ...] = tuple(s for s in State if s.is_terminal)

# SLURM requeues jobs that end in these states when requeue is enabled, so the
# tracker keeps watching them for a while and moves them back if they return.
REQUEUEABLE_STATES: frozenset[State] = frozenset({State.NODE_FAIL, State.PREEMPTED})
