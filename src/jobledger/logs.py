"""Where a job's stdout and stderr go, and reading them back.

A job's record keeps its output files as SLURM filename patterns (``%j``, ``%A``,
``%a``, ``%x``, ...), because one launch records many array tasks with one set of
fields and some tokens (``%N``, the node; ``%j`` of an array task, its own job
number) are only known once the job runs.  :func:`resolve` turns a pattern into the
path of one job from the job's ID and record, as sbatch itself does.

The pure parts (patterns, ``#SBATCH`` directives) come first; the file reading below
them never follows more than one file and never reads more than it prints.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import socket
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jobledger.errors import NotFound

__all__ = [
    "LogPaths",
    "escape",
    "find_options",
    "job_logs",
    "last_line",
    "output_options",
    "partial",
    "read_lines",
    "resolve",
    "sbatch_directives",
    "stderr_last_line",
    "tail",
]

# %[0-9]*<letter>; "%%" is a literal percent sign.
_TOKEN = re.compile(r"%(%|([0-9]*)([AabJjNnstux]))")
_NO_TASK = "4294967294"  # what SLURM prints for %a of a job that is not an array task
_TAIL_CHUNK = 64 * 1024


def escape(text: str) -> str:
    """Literal text as a pattern (``%`` doubled)."""
    return text.replace("%", "%%")


def partial(pattern: str, values: Mapping[str, str]) -> str:
    """``pattern`` with the tokens named in ``values`` filled in; the others kept."""

    def one(match: re.Match[str]) -> str:
        if match[1] == "%":
            return "%%"
        pad, letter = match[2], match[3]
        if letter not in values:
            return match[0]
        return escape(_padded(values[letter], pad))

    return pattern if "\\" in pattern else _TOKEN.sub(one, pattern)


def _padded(value: str, pad: str) -> str:
    width = min(int(pad), 10) if pad else 0
    return value.zfill(width) if width and value.isdigit() else value


def resolve(pattern: str, values: Mapping[str, str]) -> str | None:
    """The path ``pattern`` names for one job; None while a token it needs is unknown.

    A backslash anywhere turns interpolation off (sbatch's rule): the pattern is
    then the path, without its backslashes.
    """
    if "\\" in pattern:
        return pattern.replace("\\", "")
    missing = False

    def one(match: re.Match[str]) -> str:
        nonlocal missing
        if match[1] == "%":
            return "%"
        pad, letter = match[2], match[3]
        if letter not in values:
            missing = True
            return ""
        return _padded(values[letter], pad)

    path = _TOKEN.sub(one, pattern)
    return None if missing else path


def job_values(job_id: str, record: Mapping[str, str]) -> dict[str, str]:
    """The pattern tokens one job's ID and record determine."""
    base, _, task = job_id.partition("_")
    base = base.split("+")[0]
    values = {"A": base, "a": task or _NO_TASK, "n": "0", "t": "0", "s": "batch"}
    raw = record.get("raw_job_id")
    if not task or raw:
        values["j"] = raw or base
    nodes = record.get("nodes")
    if nodes:
        values["N"] = _first_node(nodes)
    for letter, field in (("x", "name"), ("u", "user")):
        if record.get(field):
            values[letter] = record[field]
    return values


def _first_node(nodes: str) -> str:
    """``node[01-04],gpu1`` -> ``node01``: the batch step runs on the first node."""
    head = re.split(r",(?![^\[]*\])", nodes)[0]
    match = re.fullmatch(r"(.*?)\[([0-9]+)[^\]]*\](.*)", head)
    return f"{match[1]}{match[2]}{match[3]}" if match else head


# --- which files: options on the command line and in the script ---------------------

_OUTPUT_OPTIONS = {
    "output": ("--output", "-o"),
    "error": ("--error", "-e"),
    "chdir": ("--chdir", "-D"),
}


def find_options(args: Sequence[str], table: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """The values of sbatch options in ``args`` (last wins): ``table`` maps our name to
    the option's long and short spelling (``"--output", "-o"``; ``""``: no short one)."""
    found: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        for name, (long, short) in table.items():
            if arg == long or (short and arg == short):
                if i + 1 < len(args):
                    found[name] = args[i + 1]
                    i += 1
            elif arg.startswith(long + "="):
                found[name] = arg[len(long) + 1 :]
            elif short and arg.startswith(short) and not arg.startswith("--") and len(arg) > 2:
                found[name] = arg[2:]
        i += 1
    return found


def output_options(args: Sequence[str]) -> dict[str, str]:
    """The ``--output``, ``--error`` and ``--chdir`` values in sbatch arguments."""
    return find_options(args, _OUTPUT_OPTIONS)


def sbatch_directives(script_head: str) -> list[str]:
    """The arguments of a script's ``#SBATCH`` lines, read up to its first command as
    sbatch reads them."""
    args: list[str] = []
    for line in script_head.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        if stripped.startswith("#SBATCH"):
            text = stripped[len("#SBATCH") :].split(" #")[0]
            try:
                args += shlex.split(text)
            except ValueError:
                args += text.split()
    return args


@dataclass(frozen=True)
class LogPaths:
    """A job's output files as recorded (patterns) and resolved (paths, None if unknown)."""

    stdout_pattern: str | None
    stderr_pattern: str | None
    stdout: str | None
    stderr: str | None

    def path(self, stream: str) -> str | None:
        return self.stdout if stream == "stdout" else self.stderr

    def pattern(self, stream: str) -> str | None:
        return self.stdout_pattern if stream == "stdout" else self.stderr_pattern


def job_logs(job_id: str, record: Mapping[str, str]) -> LogPaths:
    """Where one job's stdout and stderr are, from its record."""
    values = job_values(job_id, record)
    out, err = record.get("stdout"), record.get("stderr")
    return LogPaths(
        out,
        err,
        resolve(out, values) if out else None,
        resolve(err, values) if err else None,
    )


# --- reading --------------------------------------------------------------------------


def _this_host() -> set[str]:
    name = socket.gethostname()
    return {name, name.split(".")[0], "localhost"}


def elsewhere(job_id: str, path: str, record: Mapping[str, str]) -> str | None:
    """Why ``path`` is out of reach: the job ran on another node and this machine cannot
    see the file's directory (not a shared file system); None when it is not that."""
    nodes = record.get("nodes")
    if not nodes or _first_node(nodes).split(".")[0] in _this_host():
        return None
    if Path(path).parent.is_dir():
        return None
    return (
        f"{path} is on the disk of {_first_node(nodes)}, where job {job_id} ran; "
        "this machine cannot see that directory (run jobledger logs there)"
    )


def missing_reason(job_id: str, path: str, record: Mapping[str, str]) -> str:
    """Why ``path`` cannot be read here: on another node's disk, not written yet, or gone."""
    away = elsewhere(job_id, path, record)
    if away:
        return away
    if record.get("state") == "PENDING_AND_RUNNING" and not record.get("started_at"):
        return f"job {job_id} has not started yet: {path} does not exist yet (try -f)"
    return f"{path} does not exist: it was deleted or moved"


def _open_regular(path: str) -> int:
    """A read-only descriptor for a regular file; OSError for anything else (a FIFO or a
    terminal named as a job's output would block the reader for ever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EINVAL, "not a regular file", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_log(job_id: str, path: str, record: Mapping[str, str]) -> int:
    """A file descriptor for reading ``path``; NotFound saying why when it cannot be read."""
    try:
        return _open_regular(path)
    except FileNotFoundError:
        raise NotFound(missing_reason(job_id, path, record)) from None
    except IsADirectoryError:
        raise NotFound(f"{path} is not a regular file, so not job {job_id}'s output") from None
    except PermissionError:
        raise NotFound(f"{path}: permission denied") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in a hand-edited path
        raise NotFound(f"{path!r} cannot be read: {exc}") from None


def tail(fd: int, lines: int, *, max_bytes: int | None = None) -> tuple[list[bytes], int]:
    """The last ``lines`` lines of the open file (read backwards), and its size; with
    ``max_bytes``, reading stops there (a file of progress bars has no newline to find)."""
    size = os.fstat(fd).st_size
    buffer = b""
    offset = size
    limit = size - max_bytes if max_bytes is not None else 0
    while offset > max(limit, 0) and buffer.count(b"\n") <= lines:
        step = min(_TAIL_CHUNK, offset)
        offset -= step
        buffer = os.pread(fd, step, offset) + buffer
    parts = buffer.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return parts[-lines:] if lines else [], size


_READ_LINES_BYTES = 1 << 20  # the tail shown of a file is read from its last MiB at most
_LINE_SHOWN = 2000


def read_lines(path: str, lines: int) -> list[str] | None:
    """The last ``lines`` lines of ``path`` as text (from its last MiB; a progress bar's
    carriage returns end lines too, and a line is cut after 2,000 characters), or None
    when it cannot be read."""
    try:
        fd = _open_regular(path)
    except (OSError, ValueError):  # ValueError: a NUL in a hand-edited path
        return None
    try:
        found, _ = tail(fd, lines, max_bytes=_READ_LINES_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    text = [part for line in found for part in line.rstrip(b"\r").split(b"\r")][-lines:]
    return [t.decode("utf-8", "replace")[:_LINE_SHOWN] for t in text] if lines else []


def last_line(path: str) -> str | None:
    """The last non-empty line of ``path`` (at most 500 characters); "" when the file
    has none; None when it cannot be read."""
    found = read_lines(path, 20)
    if found is None:
        return None
    return next((line.strip()[:500] for line in reversed(found) if line.strip()), "")


def stderr_last_line(job_id: str, record: Mapping[str, str]) -> str | None:
    """The last non-empty line of a job's stderr ("" if none), or None when its record
    names no file or this machine cannot read it."""
    path = job_logs(job_id, record).stderr
    return last_line(path) if path else None


def chunks(fd: int, start: int = 0) -> Iterator[bytes]:
    """The file's bytes from ``start`` to its current end, 64 kB at a time."""
    offset = start
    while True:
        data = os.pread(fd, _TAIL_CHUNK, offset)
        if not data:
            return
        offset += len(data)
        yield data
