"""Property-based tests (hypothesis) on everything that reads text from outside.

Parsers of SLURM output, the config file readers, job ID / tag / key validation, time limits
and array specs get random text and mutated real lines: each may refuse them, but only with the
project's own error (ParseError, ConfigError, UsageError).  Valid generated input round-trips.
The glob escaping and the cleanup of one tag are checked against the session's real Redis
servers.  Example counts are kept modest so the file runs in well under 30 s.
"""

from __future__ import annotations

import contextlib
import re
import string
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from conftest import Server
from jobledger.config import Settings, mask_url, resolve
from jobledger.connection import connect
from jobledger.errors import ConfigError, ParseError, UsageError
from jobledger.ids import (
    job_sort_key,
    sort_job_ids,
    validate_job_id,
    validate_namespace,
    validate_result_key,
    validate_tag,
)
from jobledger.keys import LAYOUT, glob_escape
from jobledger.ledger import Ledger
from jobledger.namespace import Namespace
from jobledger.schedulers.base import JobInfo
from jobledger.schedulers.slurm_parsers import (
    is_accounting_unavailable,
    parse_sacct,
    parse_sbatch_error,
    parse_sbatch_parsable,
    parse_scontrol_show_job,
    parse_squeue,
)
from jobledger.specs import expand_array_spec, parse_time_limit
from jobledger.states import State
from jobledger.store import Results
from test_slurm_parsers import STATE_TABLE

FAST = settings(max_examples=100, deadline=None)
SLOW = settings(  # examples that talk to a real Redis server (run once per server kind)
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# --- real text to mutate -------------------------------------------------------------------

SACCT_LINES = [
    "1|1|wrap|COMPLETED|0:0|None|2026-11-25T19:55:50|2026-11-25T19:55:50|vm",
    "6|6|wrap|CANCELLED by 0|0:0|None|2026-11-25T19:56:15|2026-11-25T19:57:04|vm",
    "11|5_2|wrap|FAILED|5:0|None|2026-11-25T19:56:09|2026-11-25T19:56:09|vm",
    "15|15_[2-4]|wrap|PENDING|0:0|None|Unknown|Unknown|None assigned",
    "123|123_[5-7,9-10%2]|sweep|PENDING|0:0|JobArrayTaskLimit|Unknown|Unknown|None assigned",
    "301|300+1|het|RUNNING|0:0|None|2024-05-01T12:01:00|Unknown|node[03-04]",
    "11.batch|5_2.batch|batch|FAILED|5:0||2026-11-25T19:56:09|2026-11-25T19:56:09|vm",
]
SQUEUE_LINES = [
    "5_[2-3]|5|wrap|PENDING|Resources||N/A|N/A",
    "7|7|wrap|PENDING|BeginTime||2026-11-25T20:56:06|NONE",
    "4|4|wrap|RUNNING|None|vm|2026-11-25T19:55:53|2026-11-25T19:56:53",
    "5_2|11|wrap|F|NonZeroExitCode|vm|2026-11-25T19:56:09|2026-11-25T19:56:09",
]
SCONTROL_TEXTS = [
    "JobId=11 ArrayJobId=5 ArrayTaskId=2 JobName=wrap UserId=root(0) JobState=FAILED "
    "Reason=NonZeroExitCode Restarts=0 ExitCode=5:0 StartTime=2026-11-25T19:56:09 "
    "EndTime=2026-11-25T19:56:09 AllocNode:Sid=localhost:3887 NodeList=vm CPUs/Task=1 "
    "Command=(null) WorkDir=/tmp StdOut=/tmp/slurm-5_2.out Power= ",
    "JobId=9 JobName=wrap\n   UserId=root(0) GroupId=root(0)\n"
    "   JobState=PENDING Reason=Resources Dependency=(null)\n"
    "   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0\n"
    "   StartTime=2026-11-25T19:56:53 EndTime=Unknown Deadline=N/A\n   NodeList= SchedNodeList=vm\n"
    "\nslurm_load_jobs error: Invalid job id specified\n",
    "JobId=301 HetJobId=300 HetJobOffset=1 JobName=het JobState=RUNNING Reason=None "
    "Restarts=2 ExitCode=0:0 StartTime=2024-05-01T12:01:00 EndTime=Unknown NodeList=node03",
]
SBATCH_TEXTS = [
    "4242\n",
    "4242;jobledger\n",
    "sbatch: warning: can't honor --ntasks-per-node set to 2\n4242\n",
    "sbatch: error: Batch job submission failed: Invalid partition name specified\n",
    "sacct: error: Problem talking to the database: Connection refused\n",
]
ARRAY_SPECS = ["1-3,7,9-11%2", "[1-9:2]", "5", "0-4", "[5-7,9-10%2]"]
ALL_REAL = SACCT_LINES + SQUEUE_LINES + SCONTROL_TEXTS + SBATCH_TEXTS + ARRAY_SPECS

# Characters that matter to the parsers, plus a few that are merely hostile.
HOT = "|_[]-,:%+.=; \n\t\r0123456789azAZ\x00\x0b\u0661\ufeff\u2028é"
PIECES = st.one_of(
    st.text(alphabet=HOT, max_size=4),
    st.sampled_from(["|", "||", "_[", "]", "+", ".batch", "%", "by 0", "=", "\n", " ", "9" * 11]),
    st.text(max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn, samples: list[str]) -> str:
    """A real line with a few random insertions, deletions, replacements or duplications."""
    text = draw(st.sampled_from(samples))
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 10)))
        piece = draw(PIECES)
        if op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        elif op == "replace":
            text = text[:i] + piece + text[j:]
        else:
            text = text[:i] + text[i:j] * 2 + text[j:]
    return text


def several(lines: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(lines, min_size=1, max_size=4).map("\n".join)


# --- parsers: nothing but ParseError ---------------------------------------------------------

LEDGER_KEY = re.compile(r"[0-9]{1,10}(?:[_+][0-9]{1,10})?")
JOB_PARSERS: list[Callable[[str], dict[str, JobInfo]]] = [
    parse_sacct,
    parse_squeue,
    parse_scontrol_show_job,
]


def check_parsers(text: str) -> None:
    """Every parser either refuses ``text`` with ParseError or returns well-formed data."""
    for parser in JOB_PARSERS:
        with contextlib.suppress(ParseError):
            jobs = parser(text)
            for key, info in jobs.items():
                assert LEDGER_KEY.fullmatch(key), (parser.__name__, key)
                assert info.job_id == key
                assert isinstance(info.state, State)
    with contextlib.suppress(ParseError):
        job_id, cluster = parse_sbatch_parsable(text)
        assert job_id.isascii() and job_id.isdigit()
        assert cluster is None or (cluster and not any(c.isspace() or c == ";" for c in cluster))
    with contextlib.suppress(ParseError):
        tasks = expand_array_spec(text)
        assert all(t.isascii() and t.isdigit() for t in tasks)
        assert len(tasks) == len(set(tasks))
    down = "sacct: error: Problem talking to the database: Connection refused"
    assert is_accounting_unavailable(text + "\n" + down) is True
    if not any(c.isalpha() for c in text):
        assert is_accounting_unavailable(text) is False  # no words, no outage
    message = parse_sbatch_error(text)
    assert message and message == message.strip() and len(message.splitlines()) == 1


@FAST
@given(text=st.one_of(mutated(ALL_REAL), several(mutated(SACCT_LINES + SQUEUE_LINES))))
def test_parsers_on_mutated_real_lines_raise_only_parse_error(text: str) -> None:
    check_parsers(text)


@FAST
@given(
    text=st.one_of(st.text(), st.text(alphabet=HOT), st.binary().map(lambda b: b.decode("latin-1")))
)
@example(text="1|1|wrap|COMPLETED|0:0|None|2026-11-25T19:55:50|2026-11-25T19:55:50|vm")
@example(text="5_[1-4000000000]|5|wrap|PENDING|Resources||N/A|N/A")
@example(text="JobId=5 ArrayJobId=5 ArrayTaskId=0-99999999999 JobState=PENDING")
@example(text="1|1|w|COMPLETED|" + "9" * 5000 + ":0|None|Unknown|Unknown|vm")
def test_parsers_on_random_text_raise_only_parse_error(text: str) -> None:
    check_parsers(text)


# --- parsers: valid lines round-trip -------------------------------------------------------

# Every SLURM state word with its squeue code and ledger state: the literal table
# the parser tests already spell out.
STATE_WORDS = STATE_TABLE
TIMES = st.one_of(
    st.sampled_from(["Unknown", "None", ""]),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
        lambda t: t.replace(microsecond=0).isoformat()
    ),
)
# Names are free text, but one line: no control or line-separator characters.
NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=15)


@st.composite
def job_rows(draw: st.DrawFn) -> list[tuple[str, list[str], str, State, int, int, str]]:
    """(printed JobID, ledger keys, state word, state, exit code, signal, name) per job."""
    bases = draw(st.lists(st.integers(1, 4_000_000_000), min_size=1, max_size=5, unique=True))
    rows = []
    for base in bases:
        kind = draw(st.sampled_from(["plain", "task", "het", "range"]))
        if kind == "plain":
            printed, keys_ = str(base), [str(base)]
        elif kind == "task":
            task = draw(st.integers(0, 4_000_000))
            printed, keys_ = f"{base}_{task}", [f"{base}_{task}"]
        elif kind == "het":
            offset = draw(st.integers(0, 20))
            printed, keys_ = f"{base}+{offset}", [f"{base}+{offset}"]
        else:
            first, count = draw(st.integers(0, 1000)), draw(st.integers(1, 5))
            printed = f"{base}_[{first}-{first + count - 1}%2]"
            keys_ = [f"{base}_{t}" for t in range(first, first + count)]
        word, _, state = draw(st.sampled_from(STATE_WORDS))
        suffix = draw(st.sampled_from(["", " by 0", "+"])) if word == "CANCELLED" else ""
        rows.append(
            (
                printed,
                keys_,
                word + suffix,
                state,
                draw(st.integers(0, 255)),
                draw(st.integers(0, 64)),
                draw(NAMES),
            )
        )
    return rows


@FAST
@given(rows=job_rows(), start=TIMES, end=TIMES, raw_id=st.integers(1, 4_000_000_000))
def test_generated_sacct_outputs_round_trip(
    rows: list[tuple[str, list[str], str, State, int, int, str]], start: str, end: str, raw_id: int
) -> None:
    lines = [
        f"{raw_id}|{printed}|{name}|{word}|{code}:{sig}|None|{start}|{end}|vm"
        for printed, _, word, _, code, sig, name in rows
    ]
    # Job step rows (present without -X) never show up as jobs.
    lines += [f"{raw_id}.batch|{rows[0][0]}.batch|batch|FAILED|1:0||{start}|{end}|vm"]
    jobs = parse_sacct("\n".join(lines) + "\n")
    assert set(jobs) == {k for row in rows for k in row[1]}
    for _, keys_, word, state, code, sig, name in rows:
        for key in keys_:
            info = jobs[key]
            assert (info.job_id, info.state, info.raw_state) == (key, state, word)
            assert (info.exit_code, info.signal) == (code, sig)
            assert info.name == (name or None)


@FAST
@given(rows=job_rows(), compact=st.booleans(), raw_id=st.integers(1, 4_000_000_000))
def test_generated_squeue_outputs_round_trip(
    rows: list[tuple[str, list[str], str, State, int, int, str]], compact: bool, raw_id: int
) -> None:
    codes = {long: short for long, short, _ in STATE_WORDS}
    lines = []
    for printed, _, word, *_, name in rows:
        shown = codes[word.split()[0].rstrip("+")] if compact else word
        lines.append(f"{printed}|{raw_id}|{name}|{shown}|Resources||N/A|NONE")
    jobs = parse_squeue("\n".join(lines))
    assert set(jobs) == {k for row in rows for k in row[1]}
    for _, keys_, _, state, *_ in rows:
        for key in keys_:
            assert (jobs[key].job_id, jobs[key].state) == (key, state)
            assert (jobs[key].exit_code, jobs[key].signal) == (None, None)


@FAST
@given(rows=job_rows(), one_line=st.booleans(), restarts=st.integers(0, 99))
def test_generated_scontrol_outputs_round_trip(
    rows: list[tuple[str, list[str], str, State, int, int, str]], one_line: bool, restarts: int
) -> None:
    records = []
    for printed, _, word, _, code, sig, _ in rows:
        base, _, rest = printed.partition("_")
        if "+" in printed:
            base, _, offset = printed.partition("+")
            ids = f"JobId={int(base) + 1} HetJobId={base} HetJobOffset={offset}"
        elif rest:
            ids = f"JobId={base} ArrayJobId={base} ArrayTaskId={rest.strip('[]')}"
        else:
            ids = f"JobId={base}"
        fields = [
            f"{ids} JobName=x UserId=root(0)",
            f"JobState={word.split()[0]} Reason=None Restarts={restarts}",
            f"ExitCode={code}:{sig} StartTime=Unknown EndTime=Unknown NodeList=",
            "Command=/bin/run --flag JobState=BOGUS WorkDir=/home/u/my runs",
        ]
        records.append(" ".join(fields) + " " if one_line else "\n   ".join(fields) + "\n")
    jobs = parse_scontrol_show_job("\n".join(records))
    assert set(jobs) == {k for row in rows for k in row[1]}
    for _, keys_, _, state, code, sig, _ in rows:
        for key in keys_:
            info = jobs[key]
            assert (info.job_id, info.state, info.restarts) == (key, state, restarts)
            assert (info.exit_code, info.signal) == (code, sig)


@FAST
@given(
    job_id=st.integers(0, 9_999_999_999),
    cluster=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)),
    warnings=st.lists(st.sampled_from(["", "  ", "sbatch: warning: something odd"]), max_size=3),
)
def test_generated_sbatch_parsable_output_round_trips(
    job_id: int, cluster: str | None, warnings: list[str]
) -> None:
    line = f"{job_id}" + (f";{cluster}" if cluster else "")
    assert parse_sbatch_parsable("\n".join([*warnings, line, *warnings]) + "\n") == (
        str(job_id),
        cluster,
    )


@FAST
@given(
    ranges=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 30), st.integers(1, 5)),
        min_size=1,
        max_size=5,
    ),
    brackets=st.booleans(),
    throttle=st.one_of(st.none(), st.integers(1, 50)),
)
def test_generated_array_specs_expand_as_written(
    ranges: list[tuple[int, int, int]], brackets: bool, throttle: int | None
) -> None:
    items, expected = [], []
    for first, span, step in ranges:
        last = first + span
        if span == 0:
            items.append(str(first))
        elif step == 1:
            items.append(f"{first}-{last}")
        else:
            items.append(f"{first}-{last}:{step}")
        expected += [str(t) for t in range(first, last + 1, step if span else 1)]
    spec = ",".join(items) + (f"%{throttle}" if throttle else "")
    spec = f"[{spec}]" if brackets else spec
    assert expand_array_spec(spec) == list(dict.fromkeys(expected))


# --- configuration files: nothing but ConfigError ------------------------------------------

CONFIG_SAMPLES = {
    "redis.json": [
        '{"host": "app-test.hpc.nrel.gov", "port": 6379, "namespace": "rlmol"}',
        '{"host": "::1", "port": "6380", "db": 2, "ssl": true, "password": "pw", "username": "u"}',
    ],
    "redis.config": [
        'job_tag="rlmol_exp"\nredis_cmd="redis-cli -h app-test.hpc.nrel.gov -p 6379 -a pw"\n',
        "export job_tag=exp # comment\nredis_cmd='redis-cli --tls -u redis://h:1/0 -n 3'\n",
        'redis_cmd="redis-cli -s /tmp/redis.sock -n 2 --user u --pass p"\n',
    ],
    "jobledger.toml": [
        'url = "rediss://app-test.hpc.nrel.gov:6378/0"\nusername = "rlmol"\n'
        'password_file = "~/.redis-password"\ntag = "rlmol_exp"\n',
        'url = "unix:///tmp/r.sock?db=1"\nnamespace = "ns"\nscheduler = "local"\nhome = "exp"\n',
    ],
}
CONFIG_HOT = "{}[]\":,='\n #\\-.0123456789abhlnoprstux/@?[]~\x00é"
TOML_VALUES = st.one_of(
    st.sampled_from(
        [
            *("5", "true", "1e999", "nan", "1979-05-27", "[1, 2]", "{a = 1}", '"a\\u0000b"'),
            *('"~nosuchuser/x"', '"redis://[::1"', '"http://x"', '"redis://h:99999"', "9" * 5000),
            *("[" * 600 + "]" * 600, '"""multi\nline"""', "'literal'", '"\\ud800"'),
        ]
    ),
    st.text(max_size=20).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
)
JSON_VALUES = st.one_of(
    st.sampled_from(["null", "true", "1.5", '"²"', '"0"', '"["', "9" * 5000, "[" * 5000, "-1"]),
    st.integers(-10, 70_000).map(str),
    st.text(max_size=15).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
)
SETTING_NAMES = ["url", "tag", "namespace", "host", "port", "db", "ssl", "password", "home"]


@st.composite
def structured_configs(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, content) built from known setting names and hostile values."""
    name = draw(st.sampled_from(list(CONFIG_SAMPLES)))
    settings_ = draw(st.lists(st.sampled_from(SETTING_NAMES), min_size=1, max_size=4, unique=True))
    if name == "redis.json":
        pairs = [f'"{k}": {draw(JSON_VALUES)}' for k in settings_]
        return name, "{" + ", ".join(pairs) + "}"
    if name == "jobledger.toml":
        return name, "".join(f"{k} = {draw(TOML_VALUES)}\n" for k in settings_)
    cmd = draw(st.lists(st.sampled_from(["-h", "-p", "-n", "-u", "-s", "-a", "--tls", "[", "²"])))
    return name, f'job_tag={draw(st.text(max_size=8))}\nredis_cmd="redis-cli {" ".join(cmd)}"\n'


def check_resolve(files: dict[str, bytes], explicit: bool = False) -> None:
    """resolve() over these files in a fresh directory: Settings, or ConfigError only."""
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp) / "exp"
        cwd.mkdir()
        for name, content in files.items():
            (cwd / name).write_bytes(content)
        cli = {"config": "jobledger.toml"} if explicit and "jobledger.toml" in files else {}
        try:
            result = resolve(cli, env={}, cwd=cwd, user_config=cwd / "absent.toml")
        except ConfigError as exc:
            assert len(str(exc).splitlines()) == 1, str(exc)
            return
        if result.url is not None:
            assert Settings.from_url(result.url).url == result.url
            mask_url(result.url)
        result.describe()


@FAST
@given(
    files=st.one_of(
        st.tuples(st.sampled_from(list(CONFIG_SAMPLES)), st.text(alphabet=CONFIG_HOT)),
        st.sampled_from(list(CONFIG_SAMPLES)).flatmap(
            lambda name: st.tuples(st.just(name), mutated(CONFIG_SAMPLES[name]))
        ),
        structured_configs(),
        st.tuples(st.sampled_from(list(CONFIG_SAMPLES)), st.text()),
    ),
    raw=st.one_of(st.none(), st.binary(max_size=20)),
    explicit=st.booleans(),
)
@example(files=("redis.json", '{"host": "x", "po'), raw=None, explicit=False)
@example(files=("redis.json", '["host", "x"]'), raw=None, explicit=False)
@example(files=("jobledger.toml", "tag = 5"), raw=None, explicit=True)
@example(files=("redis.json", '{"port": "²"}'), raw=None, explicit=False)
@example(files=("redis.json", '{"host": "["}'), raw=None, explicit=False)
@example(files=("redis.json", '{"db": ' + "9" * 5000 + "}"), raw=None, explicit=False)
@example(files=("jobledger.toml", "tag = " + "[" * 600 + "]" * 600), raw=None, explicit=False)
@example(files=("jobledger.toml", 'home = "~nosuchuser/x"'), raw=None, explicit=False)
@example(files=("jobledger.toml", 'password_file = "a\\u0000b"'), raw=None, explicit=False)
def test_config_files_give_settings_or_config_error(
    files: tuple[str, str], raw: bytes | None, explicit: bool
) -> None:
    name, text = files
    content = {name: text.encode("utf-8")}
    if raw is not None:  # and a second file that may not even be UTF-8
        other = next(n for n in CONFIG_SAMPLES if n != name)
        content[other] = raw
    check_resolve(content, explicit)


# --- job IDs, time limits, names ------------------------------------------------------------


def is_valid_job_id(text: str) -> bool:
    """The documented rule, spelled out without regular expressions."""
    base, sep, sub = text, "", ""
    for s in "_+":
        if s in text:
            base, sep, sub = text.partition(s)
            break
    digits = set(string.digits)
    if not (1 <= len(base) <= 18 and set(base) <= digits):
        return False
    return not sep or (1 <= len(sub) <= 9 and set(sub) <= digits)


JOB_ID_TEXT = st.one_of(
    st.text(),
    st.text(alphabet="0123456789_+-. x\u0661\uff11", max_size=25),
    st.from_regex(r"[0-9]{1,20}(?:[_+][0-9]{0,11})?", fullmatch=True),
)


@FAST
@given(text=JOB_ID_TEXT)
@example(text="\u0661\u0662")  # Arabic-Indic digits: int() takes them
@example(text="\uff11")  # a fullwidth 1
@example(text="9" * 30)
def test_job_ids_are_accepted_exactly_by_the_documented_rule(text: str) -> None:
    if is_valid_job_id(text):
        assert validate_job_id(text) == text
    else:
        with pytest.raises(UsageError) as caught:
            validate_job_id(text)
        assert len(str(caught.value).splitlines()) == 1


@FAST
@given(ids=st.lists(JOB_ID_TEXT, max_size=15))
def test_job_sort_key_is_a_total_order_that_never_raises(ids: list[str]) -> None:
    ordered = sort_job_ids(ids)
    assert sorted(ordered) == sorted(ids)
    keyed = [job_sort_key(i) for i in ordered]
    assert keyed == sorted(keyed)
    # Distinct IDs never tie: the order does not depend on the input order.
    assert sort_job_ids(list(reversed(ids))) == ordered
    valid = [i for i in ordered if is_valid_job_id(i)]
    assert ordered[: len(valid)] == valid  # unknown shapes sort last
    plain = [i for i in valid if i.isdigit()]
    assert [int(i) for i in plain] == sorted(int(i) for i in plain)


@FAST
@given(base=st.integers(0, 10**17), task=st.integers(0, 10**8), other=st.integers(0, 10**17))
def test_array_tasks_sort_after_their_parent_and_before_the_next_job(
    base: int, task: int, other: int
) -> None:
    assume(other != base)
    ordered = sort_job_ids([f"{base}+{task}", f"{other}", f"{base}_{task}", f"{base}"])
    mine = [i for i in ordered if i != str(other)]
    assert mine == [f"{base}", f"{base}_{task}", f"{base}+{task}"]
    assert ordered.index(str(other)) in ((0,) if other < base else (3,))


@FAST
@given(text=st.one_of(st.text(), st.text(alphabet="0123456789-: \u0661", max_size=14)))
@example(text="9" * 5000)
@example(text="\u0661\u0660")
@example(text="0:0")
def test_time_limits_give_positive_seconds_or_usage_error(text: str) -> None:
    try:
        seconds = parse_time_limit(text)
    except UsageError as exc:
        assert len(str(exc).splitlines()) == 1
        return
    assert isinstance(seconds, int) and seconds > 0


@FAST
@given(
    d=st.integers(0, 30),
    h=st.integers(0, 23),
    m=st.integers(0, 59),
    s=st.integers(0, 59),
    shape=st.sampled_from(["MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS"]),
)
def test_valid_time_limits_round_trip_to_seconds(
    d: int, h: int, m: int, s: int, shape: str
) -> None:
    text = {
        "MM": f"{m}",
        "MM:SS": f"{m}:{s:02d}",
        "HH:MM:SS": f"{h}:{m:02d}:{s:02d}",
        "D-HH": f"{d}-{h}",
        "D-HH:MM": f"{d}-{h}:{m:02d}",
        "D-HH:MM:SS": f"{d}-{h:02d}:{m:02d}:{s:02d}",
    }[shape]
    seconds = {
        "MM": m * 60,
        "MM:SS": m * 60 + s,
        "HH:MM:SS": h * 3600 + m * 60 + s,
        "D-HH": d * 86400 + h * 3600,
        "D-HH:MM": d * 86400 + h * 3600 + m * 60,
        "D-HH:MM:SS": d * 86400 + h * 3600 + m * 60 + s,
    }[shape]
    if seconds == 0:
        with pytest.raises(UsageError, match="must be positive"):
            parse_time_limit(text)
    else:
        assert parse_time_limit(text) == seconds


NAME_CHARS = string.ascii_letters + string.digits + "._-"
NAME_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=NAME_CHARS + " *?[]:\\é😀\n", max_size=110),
    st.text(alphabet=NAME_CHARS, min_size=95, max_size=105),
)


def is_valid_name(text: str) -> bool:
    return (
        1 <= len(text) <= 100
        and text[0] in string.ascii_letters + string.digits
        and all(c in NAME_CHARS for c in text)
    )


@FAST
@given(text=NAME_TEXT)
@example(text="")
@example(text="-a")
@example(text="x" * 101)
@example(text="jobledger")
def test_tags_and_namespaces_are_accepted_exactly_by_the_documented_rule(text: str) -> None:
    if is_valid_name(text):
        assert validate_tag(text) == text
    else:
        with pytest.raises(UsageError) as caught:
            validate_tag(text)
        assert len(str(caught.value).splitlines()) == 1
    if is_valid_name(text) and text != "jobledger":
        assert validate_namespace(text) == text
    else:
        with pytest.raises(UsageError):
            validate_namespace(text)


@FAST
@given(
    text=st.one_of(
        st.text(),
        st.tuples(st.integers(1020, 1030), st.text(max_size=2)).map(lambda p: "k" * p[0] + p[1]),
    )
)
@example(text="a\x00b")
@example(text="a\nb")
@example(text="k:with spaces and é")
def test_result_keys_are_non_empty_printable_and_at_most_1024_characters(text: str) -> None:
    if text and len(text) <= 1024 and text.isprintable():
        assert validate_result_key(text) == text
    else:
        with pytest.raises(UsageError) as caught:
            validate_result_key(text)
        assert len(str(caught.value).splitlines()) == 1


# --- glob escaping against a real Redis -----------------------------------------------------

# (pattern piece, a literal text the unescaped piece matches)
GLOB_PIECES = st.one_of(
    st.text(alphabet="ab:-_é", min_size=1, max_size=3).map(lambda s: (s, s)),
    st.sampled_from(
        [
            *(("*", ""), ("*", "zz"), ("?", "q"), ("[ab]", "a"), ("[a-c]", "b"), ("[^x]", "y")),
            *(("\\a", "a"), ("\\*", "*"), ("^", "^"), ("]", "]")),
        ]
    ),
)


@SLOW
@given(
    pieces=st.lists(GLOB_PIECES, min_size=1, max_size=6),
    others=st.lists(st.text(alphabet="ab*?[]\\^-:é", min_size=1, max_size=6), max_size=4),
)
@example(pieces=[("a", "a"), ("*", "zz")], others=["a", "a*b"])
@example(pieces=[("[ab]", "a")], others=["[ab", "[ab]]", "\\[ab]"])
def test_glob_escape_makes_scan_match_literal(
    client: redis.Redis, pieces: list[tuple[str, str]], others: list[str]
) -> None:
    name = "g" + "".join(p for p, _ in pieces)  # never the empty key
    decoy = "g" + "".join(d for _, d in pieces)
    client.flushall()
    stored = set()
    for key in {name, decoy, *others, name + "x", "x" + name}:
        stored |= {key, f"{key}:k"}
    client.mset(dict.fromkeys(stored, "1"))
    # The decoy is a real one: the unescaped name, used as a pattern, matches it.
    assert decoy in set(client.scan_iter(match=name, count=1000))
    assert set(client.scan_iter(match=glob_escape(name), count=1000)) == {name}
    # The namespace pattern built on the escaped name lists that name's keys only.
    found = set(client.scan_iter(match=glob_escape(name) + ":*", count=1000))
    assert found == {k for k in stored if k.startswith(name + ":")}


# --- one tag's cleanup never touches another tag's keys -------------------------------------

STATE_SETS = {s.value for s in State}
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
OWN_KEY = re.compile(r"[0-9]{1,18}(?:[_+][0-9]{1,9})?:.*", re.DOTALL)


def owned_by(tag: str, key: str) -> bool:
    """Whether ``cleanup --purge-results`` of ``tag`` may delete ``key`` (the documented rule)."""
    if key == f"{tag}_ALL" or any(key == f"{tag}_{s}" for s in STATE_SETS):
        return True
    if key.startswith(f"jobledger:{tag}:"):
        return key not in (LAYOUT.tracker_lease(tag), LAYOUT.tracker_fence(tag))
    return key.startswith(f"{tag}-") and OWN_KEY.fullmatch(key[len(tag) + 1 :]) is not None


def dump_all(client: redis.Redis) -> dict[str, object]:
    """Every key with its type and content (not DUMP: a set dumps in its hash order)."""
    out: dict[str, object] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "string":
            out[key] = client.get(key)
        elif kind == "set":
            out[key] = sorted(client.smembers(key))  # type: ignore[arg-type]
        elif kind == "hash":
            out[key] = sorted(client.hgetall(key).items())  # type: ignore[union-attr]
        elif kind == "list":
            out[key] = client.lrange(key, 0, -1)
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = (kind, client.xrange(key))
    return out


NEIGHBOURS = ["_b", "b", "-1", "-1-2", "-12", "_ALL", "_1", ".x", "-", "_COMPLETED", "-1_2"]


@SLOW
@given(
    base=st.from_regex(r"[a-z][a-z0-9]{0,3}", fullmatch=True),
    suffix=st.sampled_from(NEIGHBOURS),
    other_is_longer=st.booleans(),
    upper=st.booleans(),
    job_ids=st.lists(st.sampled_from(["1", "2", "11", "1_2", "12+0"]), min_size=1, max_size=3),
)
def test_cleanup_of_one_tag_leaves_every_other_tag_alone(
    server: Server,
    client: redis.Redis,
    base: str,
    suffix: str,
    other_is_longer: bool,
    upper: bool,
    job_ids: list[str],
) -> None:
    other = base.upper() if upper and base.upper() != base else base + suffix
    tag, other = (base, other) if other_is_longer else (other, base)
    client.flushall()
    jl = connect(Settings.from_url(server.url))
    for t in (tag, other):
        ledger = Ledger(jl, t)
        for job in job_ids:
            ledger.record_submission(job, now=NOW)
            Results(jl, t, job).set("reward", 0.5)
        client.sadd(f"{t}_ALL", "7")  # a seed-written job with unindexed results
        client.set(f"{t}-7:seed", "1")
        client.set(f"{t}-7:a:b", "x")
        Namespace(jl, t).set("x", "plain")
        client.set(LAYOUT.tracker_fence(t), "3")
    before = dump_all(client)
    Ledger(jl, tag).cleanup(purge_results_too=True)
    jl.close()
    after = dump_all(client)
    registry = LAYOUT.tags_registry()
    expected = {k: v for k, v in before.items() if k != registry and not owned_by(tag, k)}
    assert {k: v for k, v in after.items() if k != registry} == expected
    assert client.smembers(LAYOUT.tags_registry()) == {other}
