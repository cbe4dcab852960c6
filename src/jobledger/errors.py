"""The exceptions jobledger raises; the CLI maps each to one line and an exit code."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "Interrupted",
    "InvalidValue",
    "JobledgerError",
    "NotFound",
    "ParseError",
    "RedisUnavailable",
    "SchedulerError",
    "UsageError",
]


class JobledgerError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with (1 runtime, 2 input)."""

    exit_code = 1


class UsageError(JobledgerError):
    """The caller asked for something invalid (bad tag, bad job ID, missing option)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration source is unreadable or holds an invalid value."""


class InvalidValue(UsageError, TypeError):
    """A result value of a type jobledger does not store (only str, int, float, bytes)."""


class Interrupted(JobledgerError):
    """SIGINT or SIGTERM ended the command (exit 128 + the signal's number)."""

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class NotFound(UsageError):
    """A job, key or tag the caller named does not exist."""


class RedisUnavailable(JobledgerError):
    """Redis could not be reached or refused us (connection, auth or TLS failure)."""


class SchedulerError(JobledgerError):
    """The scheduler rejected a request or could not be queried."""


class ParseError(SchedulerError):
    """Scheduler output that does not have the expected shape."""
