"""Job states: the enum values are the suffixes of the seed's Redis set names."""

from __future__ import annotations

from enum import Enum

__all__ = ["REQUEUEABLE_STATES", "TERMINAL_STATES", "State", "parse_states"]


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


def parse_states(text: str, *, allow_all: bool = False) -> list[State]:
    """``"failed,TIMEOUT"`` -> the states, in order; UsageError naming an unknown one.

    ``RUNNING`` and ``PENDING`` stand for PENDING_AND_RUNNING; with ``allow_all``,
    ``ALL`` stands for every state.
    """
    from jobledger.errors import UsageError

    states: list[State] = []
    for word in (w.strip().upper() for w in text.split(",")):
        if not word:
            continue
        if allow_all and word == "ALL":
            return list(State)
        if word in ("RUNNING", "PENDING"):
            word = State.PENDING_AND_RUNNING.value
        try:
            state = State(word)
        except ValueError:
            known = ", ".join(s.value for s in State) + ", or RUNNING/PENDING"
            known += ", ALL" if allow_all else ""
            raise UsageError(f"unknown state {word!r} (known: {known})") from None
        if state not in states:
            states.append(state)
    if not states:
        raise UsageError("no state given")
    return states
