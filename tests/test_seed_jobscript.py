"""The seed's own job script, unchanged, launched by jobledger on both backends.

A group moving from the seed keeps ``test_jobscript.sbatch``: it sets its ``#SBATCH``
options, activates its environment, builds ``JOB_SPECIFIC_PREFIX`` from ``job_tag``
(which the seed's launcher passed with ``sbatch --export``) and ``SLURM_JOB_ID``, and
runs ``python test_process.py``, which reads ``redis.json`` for host and port and
writes ten random values with plain redis-py.  jobledger must give the job the same
names, so the values land under ``<tag>-<jobid>:`` where ``last``, ``show`` and ``top``
find them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CLI, Server, _clean_env, start_server

JOBSCRIPT = """#!/bin/bash
#SBATCH --time=00:05:00
#SBATCH --job-name=rlmol_exp
#SBATCH --nodes=1
#SBATCH --output=outerr/seed-%j.out
#SBATCH --error=outerr/seed-%j.err

source env/bin/activate   # the seed: conda activate redis_integration

export JOB_SPECIFIC_PREFIX="${job_tag}-${SLURM_JOB_ID}"
echo "Job prefix: ${JOB_SPECIFIC_PREFIX}"

python test_process.py
"""

PROCESS = """
import json
import os
import random
import uuid

import redis

with open("redis.json") as f:
    config = json.load(f)

PREFIX = os.environ["JOB_SPECIFIC_PREFIX"]
rconn = redis.Redis(host=config["host"], port=config["port"])

for _ in range(10):
    key = str(uuid.uuid1())
    value = random.random()
    rconn.set("%s:%s" % (PREFIX, key), value)

keys = [k.decode() for k in rconn.scan_iter(match=PREFIX + ":*")]
values = sorted((float(rconn.get(k)), k) for k in keys)
print("top three:", values[-3:])
"""


@pytest.fixture(scope="module")
def seed_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A TCP redis-server: the seed's redis.json names a host and a port."""
    srv = start_server("redis-server", tmp_path_factory.mktemp("seed-redis"))
    yield srv
    srv.process.terminate()
    srv.process.wait(timeout=10)


def seed_experiment(tmp_path: Path, server: Server) -> CLI:
    """An experiment directory laid out as the seed's, with its environment to activate."""
    env = _clean_env(tmp_path)
    env["JOBLEDGER_URL"] = server.url
    work = tmp_path / "exp"
    (work / "outerr").mkdir(parents=True)
    (work / "env" / "bin").mkdir(parents=True)
    # Activating the environment puts its python (here: the one with redis-py) first on PATH.
    python_dir = Path(sys.executable).parent
    (work / "env" / "bin" / "activate").write_text(f'export PATH="{python_dir}:$PATH"\n')
    host, port = server.url.removeprefix("redis://").split("/")[0].split(":")
    (work / "redis.json").write_text(json.dumps({"host": host, "port": int(port)}))
    (work / "test_process.py").write_text(PROCESS)
    (work / "test_jobscript.sbatch").write_text(JOBSCRIPT)
    return CLI(work, env)


@pytest.mark.parametrize("scheduler", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def test_the_seed_job_script_writes_where_jobledger_reads(
    seed_redis: Server, tmp_path: Path, scheduler: str
) -> None:
    cli = seed_experiment(tmp_path, seed_redis)
    tag = f"rlmol_exp_{scheduler}"
    run = cli("launch", "--tag", tag, "--scheduler", scheduler, "--json", "test_jobscript.sbatch")
    assert run.code == 0, run.err
    [job_id] = json.loads(run.out)["job_ids"]
    try:
        deadline = time.monotonic() + 120
        while True:
            cli("track", "--once", "--tag", tag, "--scheduler", scheduler)
            status = json.loads(cli("status", "--tag", tag, "--json").out)
            if status["counts"]["PENDING_AND_RUNNING"] == 0:
                break
            assert time.monotonic() < deadline, f"the seed job did not end: {status}"
            time.sleep(0.5)
    finally:
        if scheduler == "slurm":
            subprocess.run(["scancel", job_id], capture_output=True, check=False)
    assert status["jobs"]["COMPLETED"] == [job_id], status
    # SLURM writes where the script's own #SBATCH --output says; the local scheduler
    # writes outerr/<name>-<id>.out. The record says which, and `logs` reads it.
    expected = f"seed-{job_id}.out" if scheduler == "slurm" else f"{tag}-{job_id}.out"
    paths = json.loads(cli("show", job_id, "--tag", tag, "--json").out)["logs"]
    assert paths["stdout"] == str(cli.cwd / "outerr" / expected)
    out = cli("logs", job_id, "--tag", tag).out
    assert f"Job prefix: {tag}-{job_id}" in out, out
    last = json.loads(cli("last", "--tag", tag, "--json").out)
    assert last["job_id"] == job_id
    assert len(last["results"]) == 10, last
    shown = json.loads(cli("show", job_id, "--tag", tag, "--json").out)
    assert len(shown["results"]) == 10
    top = json.loads(cli("top", "--tag", tag, "-n", "3", "--json").out)["top"]
    assert [t["job_id"] for t in top] == [job_id] * 3
    assert top[0]["value"] == max(float(v) for v in last["results"].values())


@pytest.mark.slurm
def test_jobledgers_own_sacct_settings_stay_out_of_slurm_jobs(
    seed_redis: Server, tmp_path: Path
) -> None:
    cli = seed_experiment(tmp_path, seed_redis)
    tag = "timefmt"
    script = cli.cwd / "env.sh"
    script.write_text('#!/bin/bash\necho "SLURM_TIME_FORMAT=${SLURM_TIME_FORMAT-unset}"\n')
    run = cli("launch", "--tag", tag, "--scheduler", "slurm", "--json", str(script))
    assert run.code == 0, run.err
    [job_id] = json.loads(run.out)["job_ids"]
    out_file = cli.cwd / "outerr" / f"{tag}-{job_id}.out"
    deadline = time.monotonic() + 120
    try:
        while not (out_file.exists() and out_file.read_text()):
            assert time.monotonic() < deadline, "the job did not run"
            time.sleep(0.5)
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, check=False)
    assert out_file.read_text() == "SLURM_TIME_FORMAT=unset\n"
