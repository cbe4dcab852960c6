"""The CLI and the seed's scripts on Redis Cluster (the session's 6-node cluster).

The ledger, results, tracker and local-jobs suites run on the cluster as well
(``REDIS_KINDS``); this module covers what only a cluster has: the hash-tagged names,
the seed scripts pointed at a cluster, and a tag's jobs under the other layout.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis

from conftest import CLI, Server, cli_for

REDIS_KINDS = ["redis-cluster"]


@pytest.fixture
def ccli(server: Server, client: redis.Redis, tmp_path: Path) -> CLI:
    return cli_for(server.url, tmp_path)


def _node(server: Server) -> tuple[str, str]:
    host, _, port = server.url.removeprefix("redis+cluster://").split(",")[0].rpartition(":")
    return host, port


def _seed_cli(server: Server, *args: str) -> str:
    """What the seed's scripts run: ``redis-cli -c`` against any node."""
    host, port = _node(server)
    done = subprocess.run(
        ["redis-cli", "-c", "-h", host, "-p", port, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_seed_scripts_with_a_braced_job_tag_write_what_jobledger_reads(
    ccli: CLI, server: Server
) -> None:
    tag = "{rlmol_exp}"  # job_tag={rlmol_exp} in redis.config
    for job_id in ("101", "102"):  # the seed's launcher
        _seed_cli(server, "SADD", f"{tag}_ALL", job_id)
        _seed_cli(server, "SADD", f"{tag}_PENDING_AND_RUNNING", job_id)
    _seed_cli(server, "SET", f"{tag}-101:reward", "0.5")  # the job
    # the seed's tracker: one SMOVE between two sets, one slot thanks to the hash tag
    assert _seed_cli(server, "SMOVE", f"{tag}_PENDING_AND_RUNNING", f"{tag}_COMPLETED", "101")
    status = json.loads(ccli("status", "--tag", "rlmol_exp", "--json").out)
    assert status["layout"] == "cluster"
    assert status["jobs"]["COMPLETED"] == ["101"]
    assert status["jobs"]["PENDING_AND_RUNNING"] == ["102"]
    shown = json.loads(ccli("show", "101", "--tag", "rlmol_exp", "--json").out)
    assert shown["results"] == {"reward": "0.5"}
    fsck = json.loads(ccli("fsck", "--tag", "rlmol_exp", "--json").out)
    assert fsck["layout"] == "cluster"


def test_a_seed_redis_config_with_redis_cli_c_is_read_as_a_cluster(
    ccli: CLI, server: Server
) -> None:
    host, port = _node(server)
    (ccli.cwd / "redis.config").write_text(
        f'job_tag={{rlmol_exp}}\nredis_cmd="redis-cli -c -h {host} -p {port}"\n'
    )
    env = {k: v for k, v in ccli.env.items() if k != "JOBLEDGER_URL"}
    run = CLI(ccli.cwd, env)("config", "--json")
    assert run.code == 0, run.err
    rows = {name: row["value"] for name, row in json.loads(run.out).items()}
    assert rows["tag"] == "rlmol_exp"
    assert rows["url"] == f"redis+cluster://{host}:{port}"
    assert CLI(ccli.cwd, env)("status", "--json").code == 0


def test_jobs_under_the_seed_names_on_a_cluster_are_reported_not_silently_missed(
    ccli: CLI, client: redis.Redis
) -> None:
    client.sadd("plain_ALL", "1", "2")  # a seed script without braces in job_tag
    client.sadd("plain_PENDING_AND_RUNNING", "1", "2")
    run = ccli("status", "--tag", "plain", "--json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["other_layout_jobs"] == 2
    assert "2 job(s) of tag plain are under the seed key layout's names" in run.err
    fsck = json.loads(ccli("fsck", "--tag", "plain", "--json").out)
    [problem] = fsck["problems"]
    assert (problem["kind"], problem["job_ids"]) == ("other_layout", ["1", "2"])
    assert problem["detail"] == {"set": "plain_ALL", "layout": "seed"}


def test_every_read_command_works_on_a_cluster(ccli: CLI) -> None:
    script = ccli.cwd / "job.sh"
    script.write_text(
        "#!/bin/sh\n"
        '"$JOBLEDGER_PYTHON" -c "import jobledger; r = jobledger.results(); '
        "r.update({'reward': 0.25, 'loss': 3})\"\n"
    )
    for _ in range(3):
        assert ccli("launch", "--tag", "c", "--scheduler", "local", str(script)).code == 0
    for _ in range(100):
        ccli("track", "--once", "--tag", "c", "--scheduler", "local")
        status = json.loads(ccli("status", "--tag", "c", "--json").out)
        if status["counts"]["COMPLETED"] == 3:
            break
    assert status["counts"]["COMPLETED"] == 3, status
    for args in (
        ("last",),
        ("top", "-n", "2"),
        ("export", "--format", "csv", "--results"),
        ("fsck",),
        ("tags",),
        ("cleanup", "--yes"),
    ):
        run = ccli(*args, "--tag", "c") if args[0] != "tags" else ccli(*args)
        assert run.code == 0, (args, run.err)
    top = ccli("top", "-n", "1", "--tag", "c").out
    assert "{c}-" in top and ":loss" in top  # the names as they are on the cluster


def test_jobs_get_the_cluster_names_and_the_connection_settings_launch_used(
    tmp_path: Path,
) -> None:
    from jobledger.config import Settings
    from jobledger.launch import job_environment

    plain = Settings(url="redis+cluster://a:1,b:2", durability="replica", home=str(tmp_path))
    env = job_environment(plain, "rlmol_exp", write=False)
    assert (env["job_tag"], env["JOBLEDGER_TAG"], env["JOBLEDGER_LAYOUT"]) == (
        "{rlmol_exp}",
        "rlmol_exp",
        "cluster",
    )
    assert (env["JOBLEDGER_REDIS_CLUSTER"], env["JOBLEDGER_DURABILITY"]) == ("true", "replica")
    secret = Settings(
        url="redis://node:7000",
        redis_cluster="true",
        password="pw",
        durability="replica",
        durability_timeout_ms="300",
        home=str(tmp_path),
    )
    env = job_environment(secret, "t")
    assert "pw" not in " ".join(env.values())  # the secret is only in the 0600 file
    text = Path(env["JOBLEDGER_CONFIG"]).read_text()
    assert 'redis_cluster = true\ndurability = "replica"\ndurability_timeout_ms = 300' in text


def test_the_journal_names_a_cluster_by_its_seeds_in_any_order_and_without_secrets() -> None:
    from jobledger.config import Settings
    from jobledger.connection import connection_target

    first = connection_target(Settings(url="redis+cluster://u:pw@b:2,a:1"))
    assert first == connection_target(Settings(url="redis+cluster://a:1,b:2"))
    assert first == "redis+cluster://a:1,b:2"
    assert connection_target(Settings(url="redis+sentinel://s2:1,s1:1/svc")).endswith("/svc")
