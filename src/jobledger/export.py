"""The ledger of a tag as rows, for files and data frames: one row per job or per result.

Rows are produced a chunk of jobs at a time (records with one pipelined HMGET each,
results with :func:`jobledger.store.results_of`), and every writer consumes them as
they come, so exporting 100,000 jobs holds one chunk, not the tag.  The one exception
is the set of result key names of the wide layout (one column per key), which a first
pass over the index reads before the first row is written; Parquet's typed columns
also need to know, in that pass, which keys hold only numbers.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from jobledger.errors import UsageError
from jobledger.ids import sort_job_ids
from jobledger.ledger import Ledger
from jobledger.states import State
from jobledger.store import as_number, result_names_union, results_grid, results_of
from jobledger.text import valid_text
from jobledger.usage import usage_from_record

__all__ = [
    "FORMATS",
    "JOB_COLUMNS",
    "LONG_COLUMNS",
    "Column",
    "Table",
    "ensure_pyarrow",
    "format_for",
    "job_states",
    "job_table",
    "natural_key",
    "replaced_atomically",
    "to_dataframe",
    "typed",
    "write",
]

FORMATS = ("csv", "json", "jsonl", "parquet")


@dataclass(frozen=True)
class Column:
    """One column of an export: its name, and what its values are (``str``, ``int``,
    ``float``, ``time``: an ISO 8601 timestamp, or ``auto``: a result value, a number
    in JSON when it reads as one)."""

    name: str
    kind: str = "str"
    field: str | None = None  # the record field it comes from, when it is not ``name``


JOB_COLUMNS: tuple[Column, ...] = (
    Column("job_id"),
    Column("state"),
    Column("raw_state"),
    Column("submitted_at", "time"),
    Column("started_at", "time"),
    Column("ended_at", "time"),
    Column("elapsed_s", "float"),
    Column("exit_code", "int"),
    Column("signal", "int"),
    Column("reason"),
    Column("attempts", "int"),
    Column("cpu_s", "float"),
    Column("max_rss_bytes", "int"),
    Column("req_mem_bytes", "int"),
    Column("req_cpus", "int"),
    Column("cpu_efficiency", "float"),
    Column("mem_efficiency", "float"),
    Column("nodes"),
    Column("stalled_since", "time"),
    Column("resubmit_of"),
    Column("resubmit_of_array"),
    Column("resubmitted_as"),
    Column("name"),
    Column("script"),
    Column("stderr_last"),
)
"""A job row: the state set it is in, then what its record says."""

LONG_COLUMNS: tuple[Column, ...] = (
    Column("job_id"),
    Column("state"),
    Column("key"),
    Column("value"),
    Column("number", "float"),
)
"""A result row of the long layout: one per job and result key."""

_INT = re.compile(r"[+-]?[0-9]{1,18}")
_CHUNK = 1000


def typed(value: str | None, kind: str) -> Any:
    """A stored string as the column's type (None when empty); a value that does not
    read as that type is kept as the string it is (JSON), never dropped."""
    if value is None or value == "":
        return None
    if kind == "int" and _INT.fullmatch(value.strip()):
        return int(value)
    if kind == "float":
        number = as_number(value)
        return value if number is None else number
    if kind == "auto":
        if _INT.fullmatch(value.strip()):
            return int(value)
        number = as_number(value)
        return value if number is None else number
    return value


@dataclass
class Table:
    """Columns and a one-pass iterator of rows (dicts of stored strings, None = no value)."""

    columns: list[Column]
    rows: Iterator[dict[str, str | None]]


def job_states(ledger: Ledger, states: Sequence[State] | None = None) -> dict[str, str]:
    """Job ID -> the state set it is in, for every job of the tag (or of ``states``), in
    job ID order.  A job of ``_ALL`` in no state set has state ``""``; one in several
    (which ``fsck`` repairs) has them joined with ``,``."""
    names = [s.value for s in State] if states is None else [s.value for s in states]
    snapshot = ledger.snapshot(names if states is not None else ["ALL", *names])
    where: dict[str, list[str]] = {}
    for name in names:
        for job_id in snapshot[name]:
            where.setdefault(job_id, []).append(name)
    ids = snapshot["ALL"] if states is None else []
    every = set(ids) | set(where)
    return {j: ",".join(where.get(j, [])) for j in sort_job_ids(every)}


def job_table(
    ledger: Ledger,
    *,
    states: Sequence[State] | None = None,
    results: bool = False,
    long: bool = False,
    typed_results: bool = False,
) -> Table:
    """The rows of an export: one per job (with ``results``, one column per result key
    after the job columns), or with ``results`` and ``long`` one per job and result.

    A result key named like a job column becomes the column ``result:<key>``.
    ``typed_results``: also find which result keys hold only numbers (for typed
    columns; reads every value once more).
    """
    where = job_states(ledger, states)
    ids = list(where)
    client, tag = ledger.client, ledger.tag
    if results and long:
        return Table(list(LONG_COLUMNS), _long_rows(ledger, where))
    columns = list(JOB_COLUMNS)
    if not results:
        return Table(columns, _job_rows(ledger, where, None))
    names = result_names_union(client, tag, ids)
    kinds = dict.fromkeys(names, "auto")
    if typed_results:
        kinds = dict.fromkeys(names, "int")
        for _, values in _results(ledger, ids, names):
            for key, value in values.items():
                kinds[key] = _widest(kinds[key], value)
    taken = {c.name for c in JOB_COLUMNS}
    result_columns = []
    for key in sorted(kinds, key=natural_key):
        name = key
        while name in taken:  # a key named like a job column (or like a renamed key)
            name = f"result:{name}"
        taken.add(name)
        result_columns.append(Column(name, kinds[key], field=key))
    return Table(columns + result_columns, _job_rows(ledger, where, result_columns))


_GRID_NAMES = 64  # up to this many result keys in all: read them as a grid, no index reads


def _results(
    ledger: Ledger, ids: list[str], names: Iterable[str]
) -> Iterator[tuple[str, dict[str, str]]]:
    """Each job's results among ``names``: as a grid of MGETs when the tag has few key
    names (the usual reward/loss/...), else through each job's own index."""
    names = list(names)
    if len(names) <= _GRID_NAMES:
        return results_grid(ledger.client, ledger.tag, ids, names)
    return results_of(ledger.client, ledger.tag, ids)


def _widest(kind: str, value: str) -> str:
    if kind == "int" and _INT.fullmatch(value.strip()):
        return "int"
    if kind in ("int", "float") and as_number(value) is not None:
        return "float"
    return "str"


def natural_key(key: str) -> list[tuple[int, Any]]:
    """Sort key that puts ``reward_9`` before ``reward_10``."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"([0-9]+)", key) if p]


def _chunks(items: list[str], size: int = _CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _job_rows(
    ledger: Ledger, where: dict[str, str], result_columns: list[Column] | None
) -> Iterator[dict[str, str | None]]:
    ids = list(where)
    # One results reader for the whole export (it reads the tag's index set once).
    names = [c.field or c.name for c in result_columns or ()]
    results = _results(ledger, ids, names) if result_columns is not None else None
    for batch in _chunks(ids):
        records = dict(ledger.records(batch))  # whole records: cheaper than 24 field names
        values = dict(itertools.islice(results, len(batch))) if results is not None else {}
        for job_id in batch:
            record = _with_efficiencies(records.get(job_id, {}))
            row: dict[str, str | None] = {"job_id": job_id, "state": where[job_id]}
            for column in JOB_COLUMNS[2:]:
                row[column.name] = record.get(column.field or column.name)
            for column in result_columns or ():
                row[column.name] = values.get(job_id, {}).get(column.field or column.name)
            yield row


def _with_efficiencies(record: dict[str, str]) -> dict[str, str]:
    """The record with CPU and memory efficiency computed from its usage fields when it
    does not hold them (as ``usage`` and ``show`` compute them)."""
    if "cpu_efficiency" in record and "mem_efficiency" in record:
        return record
    used = usage_from_record(record)
    if used is None:
        return record
    derived = {"cpu_efficiency": used.cpu_efficiency, "mem_efficiency": used.mem_efficiency}
    extra = {k: repr(round(v, 4)) for k, v in derived.items() if v is not None and k not in record}
    return {**record, **extra} if extra else record


def _long_rows(ledger: Ledger, where: dict[str, str]) -> Iterator[dict[str, str | None]]:
    for job_id, values in results_of(ledger.client, ledger.tag, list(where)):
        for key in sorted(values, key=natural_key):
            value = values[key]
            number = as_number(value)
            yield {
                "job_id": job_id,
                "state": where[job_id],
                "key": key,
                "value": value,
                "number": None if number is None else repr(number),
            }


# --- writers -----------------------------------------------------------------


def format_for(path: str | None, given: str | None) -> str:
    """The format asked for, or the one the output file's suffix names (default csv)."""
    if given is not None:
        return given
    suffix = Path(path).suffix.lower().lstrip(".") if path and path != "-" else ""
    return suffix if suffix in FORMATS else "csv"


def write(table: Table, fmt: str, output: str | None) -> int:
    """Write the table as ``fmt`` to the file ``output`` (None or ``-``: standard output);
    the number of rows.  A file is written beside its final name and renamed into place
    at the end, so a failed export leaves an existing file as it was."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "parquet":
        if output in (None, "-"):
            raise UsageError("parquet is a binary file format: give --output FILE.parquet")
        ensure_pyarrow()  # before anything is written: a missing extra is a clear error
    if output in (None, "-"):
        out = _stdout()
        try:
            return _write_text(table, fmt, out)
        finally:
            out.flush()
            out.detach()  # standard output stays open for whoever prints next
    with replaced_atomically(output) as partial:
        if fmt == "parquet":
            return _write_parquet(table, partial)
        with partial.open("w", encoding="utf-8", errors="surrogateescape", newline="") as f:
            return _write_text(table, fmt, f)


@contextmanager
def replaced_atomically(name: str | Path) -> Iterator[Path]:
    """A path to write ``target``'s new content to.  A regular file (or a new one) is
    written beside it and renamed over it when the block ends without an error (removed
    when it fails), so a failed export or plot leaves an existing file as it was.  A
    device or a pipe (``/dev/null``, ``/dev/stdout``, a FIFO) is written in place: it is
    never replaced by a file.  A directory, or a path whose directory does not exist,
    is a UsageError before anything is written."""
    text = str(name)  # as given: Path("sub/") would drop the slash that says "directory"
    target = Path(text)
    if not text or text.endswith("/") or target.name in ("", ".", ".."):
        raise UsageError(f"{text!r} names a directory, not a file to write")
    if target.exists():
        mode = target.stat().st_mode  # of what a link points to
        if stat.S_ISDIR(mode):
            raise UsageError(f"{text} is a directory, not a file to write")
        if not stat.S_ISREG(mode):
            yield target  # a device or a pipe: written as it is
            return
        target = target.resolve()  # write through a link to the file it names
    elif not target.parent.is_dir():
        raise UsageError(f"cannot write {text}: directory {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        yield partial
        if target.exists():
            partial.chmod(target.stat().st_mode & 0o7777)  # an 0600 export stays 0600
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _stdout() -> io.TextIOWrapper:
    """Standard output writing stored values exactly, as a file would: bytes that are
    not UTF-8 included, whatever the locale's encoding error handler."""
    import sys

    sys.stdout.flush()
    return io.TextIOWrapper(
        sys.stdout.buffer,
        encoding="utf-8",
        errors="surrogateescape",
        newline="",
        write_through=True,
    )


def _write_text(table: Table, fmt: str, out: IO[str]) -> int:
    names = [c.name for c in table.columns]
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for row in table.rows:
            writer.writerow(["" if row[n] is None else row[n] for n in names])
            count += 1
        return count
    kinds = [(c.name, c.kind) for c in table.columns]
    if fmt == "json":
        out.write("[")
    for row in table.rows:
        item = {valid_text(n): _json_value(row[n], k) for n, k in kinds}
        text = json.dumps(item, ensure_ascii=True, default=str)
        if fmt == "json":
            out.write(("\n" if count == 0 else ",\n") + text)
        else:
            out.write(text + "\n")
        count += 1
    if fmt == "json":
        out.write("\n]\n" if count else "]\n")
    return count


def _json_value(value: str | None, kind: str) -> Any:
    converted = typed(value, kind)
    return valid_text(converted) if isinstance(converted, str) else converted


def ensure_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise UsageError(
            f"Parquet needs pyarrow: pip install 'jobledger[analysis]' (import failed: {exc})"
        ) from None
    return pyarrow


def _arrow_type(pa: Any, kind: str) -> Any:
    return {
        "int": pa.int64(),
        "float": pa.float64(),
        "time": pa.timestamp("ms", tz="UTC"),  # Parquet has no seconds unit
    }.get(kind, pa.string())


def _arrow_value(value: str | None, kind: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "time":
        from datetime import datetime

        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    if kind in ("int", "float"):
        converted = typed(value, kind)
        return converted if isinstance(converted, (int, float)) else None
    return valid_text(value)


def _write_parquet(table: Table, path: Path, batch_rows: int = 10_000) -> int:
    pa = ensure_pyarrow()
    kinds = [(c.name, "str" if c.kind == "auto" else c.kind) for c in table.columns]
    schema = pa.schema([(valid_text(n), _arrow_type(pa, k)) for n, k in kinds])
    count = 0
    with pa.parquet.ParquetWriter(str(path), schema) as writer:
        for batch in _batches(table.rows, batch_rows):
            columns = {valid_text(n): [_arrow_value(r[n], k) for r in batch] for n, k in kinds}
            writer.write_table(pa.Table.from_pydict(columns, schema=schema))
            count += len(batch)
    return count


def _batches(rows: Iterable[dict[str, str | None]], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def to_dataframe(
    tag: str | None = None,
    *,
    results: bool = True,
    long: bool = False,
    states: str | State | Sequence[State | str] | None = None,
    client: Any = None,
    settings: Any = None,
) -> Any:
    """The tag's jobs as a pandas DataFrame: one row per job with its record's columns
    (times as UTC timestamps, numbers as numbers) and, with ``results``, one column per
    result key (numbers where they read as numbers); ``long``: one row per job and
    result instead.  Needs the analysis extra (``pip install 'jobledger[analysis]'``)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise UsageError(
            f"to_dataframe needs pandas: pip install 'jobledger[analysis]' (import failed: {exc})"
        ) from None
    from jobledger.config import resolve
    from jobledger.ids import validate_tag

    settings = settings or resolve()
    tag = tag or settings.tag
    if not tag:
        raise UsageError("no tag: pass to_dataframe(tag=...) or set JOBLEDGER_TAG")
    from jobledger.states import parse_states

    if long and not results:
        raise UsageError("long is a layout of results: pass results=True too")
    wanted = None
    if states is not None:  # "failed", "RUNNING,TIMEOUT", [State.TIMEOUT]: as --state
        items = [states] if isinstance(states, (str, State)) else list(states)
        text = ",".join(s.value if isinstance(s, State) else str(s) for s in items)
        wanted = parse_states(text, allow_all=True)
    own = client is None
    if client is None:
        from jobledger.connection import connect

        client = connect(settings)
    try:
        return _frame(
            pd,
            job_table(Ledger(client, validate_tag(tag)), states=wanted, results=results, long=long),
        )
    finally:
        if own:
            client.close()


def _frame(pd: Any, table: Table) -> Any:
    names = [c.name for c in table.columns]
    frames = [
        pd.DataFrame(
            {
                c.name: pd.Series([_frame_value(r[c.name], c.kind) for r in batch], dtype=object)
                for c in table.columns
            },
            columns=names,
        )
        for batch in _batches(table.rows, 10_000)
    ]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=names)
    for column in table.columns:
        values = frame[column.name]
        if column.kind == "time":
            times = pd.to_datetime(values, utc=True, errors="coerce")
            if times.isna().sum() == values.isna().sum():  # else a value is not a time: kept
                frame[column.name] = times
        elif column.kind in ("int", "auto") and _all_of(values, int, empty=column.kind == "int"):
            frame[column.name] = values.astype("Int64")  # nullable: a missing code stays missing
        elif _all_of(values, (int, float), empty=column.kind in ("int", "float")):
            frame[column.name] = values.astype("float64")
    return frame


def _all_of(values: Any, kinds: Any, *, empty: bool = False) -> bool:
    """Every value present is of ``kinds`` (``empty``: also when there is none, for a
    column whose type does not depend on the data)."""
    present = values.dropna()
    return (empty or bool(len(present))) and all(
        isinstance(v, kinds) and not isinstance(v, bool) for v in present
    )


def _frame_value(value: str | None, kind: str) -> Any:
    if kind == "time":
        return value or None
    converted = typed(value, kind)
    return valid_text(converted) if isinstance(converted, str) else converted
