"""The local scheduler as a scheduler: unique IDs per ledger, a real queue, every outcome filed.

Each test drives the real ``jobledger`` CLI against the session's real Redis servers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from conftest import CLI, free_port
from jobledger.ledger import Ledger
from jobledger.schedulers.local import default_max_running, read_json, task_state_path
from test_local_jobs import launch, track_until, write_script

P = "PENDING_AND_RUNNING"


def other_dir(cli: CLI, name: str) -> CLI:
    """The same user and server, another experiment directory."""
    work = cli.cwd.parent / name
    work.mkdir()
    return CLI(work, dict(cli.env))


def local_dir(cli: CLI, job_id: str) -> Path:
    return cli.cwd / ".jobledger" / "local" / job_id.split("_")[0]


def wait_for(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# --- IDs: unique per ledger, found through the record ---------------------------------


def test_two_directories_sharing_a_server_get_different_ids_and_each_job_its_outcome(
    cli: CLI,
) -> None:
    b = other_dir(cli, "b")
    [a_id] = launch(cli, "shared", write_script(cli.cwd, "ok.sh", "exit 0"))
    [b_id] = launch(b, "shared", write_script(b.cwd, "bad.sh", "exit 3"))
    assert a_id != b_id
    status = track_until(b, "shared", "done")  # tracked from b: a's job is found by its record
    assert status["jobs"]["COMPLETED"] == [a_id]
    assert status["jobs"]["FAILED"] == [b_id]
    assert status["jobs"]["LOST"] == []


def test_cancel_from_another_directory_cancels_the_job_its_record_names(cli: CLI) -> None:
    b = other_dir(cli, "b")
    [job_id] = launch(cli, "cx", write_script(cli.cwd, "sleep.sh", "sleep 60"))
    run = b("cancel", job_id, "--tag", "cx")
    assert run.code == 0, run.err
    assert run.out == f"cancel requested: {job_id}\n"
    status = track_until(b, "cx", "done")
    assert status["jobs"]["CANCELLED"] == [job_id]


def test_cancel_of_an_ended_job_says_so_and_signals_nobody(cli: CLI) -> None:
    [job_id] = launch(cli, "ce", write_script(cli.cwd, "ok.sh", "exit 0"))
    state = task_state_path(local_dir(cli, job_id), job_id)
    wait_for(lambda: (read_json(state) or {}).get("state") == "COMPLETED", 30, "the job to end")
    # The supervisor has exited; its PID now belongs to a bystander.
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        sup = local_dir(cli, job_id) / "supervisor.json"
        sup.write_text(json.dumps({"pid": bystander.pid}))
        run = cli("cancel", job_id, "--tag", "ce", "--json")
        assert run.code == 0, run.err
        assert json.loads(run.out)["already_ended"] == [job_id]
        assert json.loads(run.out)["cancelled"] == []
        time.sleep(0.3)
        assert bystander.poll() is None, "cancel signalled a process that was not the job's"
        track_until(cli, "ce", "done")
        filed = cli("cancel", job_id, "--tag", "ce")
        assert (filed.code, filed.out) == (
            0,
            f"job {job_id} already ended (COMPLETED): nothing to cancel\n",
        )
    finally:
        bystander.kill()
        bystander.wait()


def test_a_launch_while_redis_is_down_gets_an_id_no_server_allocation_can_reach(
    cli: CLI,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    script = write_script(cli.cwd, "ok.sh", "exit 0")
    first, second = (
        cli("launch", "--tag", "off", "--scheduler", "local", "--url", url, "--json", str(script))
        for _ in range(2)
    )
    ids = [json.loads(r.out)["job_ids"][0] for r in (first, second)]
    assert all(r.code == 0 for r in (first, second)), first.err + second.err
    assert len(set(ids)) == 2
    assert all(len(i) == 18 and i.isdigit() for i in ids)  # far above any INCR'd ID
    [online] = launch(cli, "off", script)
    assert int(online) < 10**17


def test_the_ledger_refuses_an_id_it_holds_for_another_submission(jl_client: redis.Redis) -> None:
    from datetime import datetime, timezone

    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    ledger = Ledger(jl_client, "dup")
    assert ledger.record_submission("7", now=now, submission="a", fields={"script": "a.sh"}) == 1
    assert ledger.record_submission("7", now=now, submission="a") == 0  # a replay
    assert ledger.record_submission("7", now=now, submission="b", fields={"script": "b.sh"}) == -1
    assert jl_client.hget("jobledger:dup:job:7", "script") == "a.sh"  # never overwritten


def test_a_reset_server_never_hands_out_an_id_used_in_this_directory(
    cli: CLI, client: redis.Redis
) -> None:
    script = write_script(cli.cwd, "ok.sh", "exit 0")
    [first] = launch(cli, "reset", script)
    track_until(cli, "reset", "done")
    client.flushall()  # the counter starts again at 1
    [second] = launch(cli, "reset", script)
    assert second != first
    status = track_until(cli, "reset", "done")
    assert status["jobs"]["COMPLETED"] == [second]


# --- the queue --------------------------------------------------------------------------

RECORD_RUN = """
echo "start $(date +%s.%N)" > "runs/$JOBLEDGER_JOB_ID"
sleep 0.6
echo "end $(date +%s.%N)" >> "runs/$JOBLEDGER_JOB_ID"
"""


def intervals(runs: Path) -> dict[str, tuple[float, float]]:
    out = {}
    for path in runs.iterdir():
        lines = dict(line.split() for line in path.read_text().splitlines())
        out[path.name] = (float(lines["start"]), float(lines["end"]))
    return out


def most_at_once(spans: dict[str, tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_at_most_max_running_jobs_run_at_once_and_the_rest_start_in_order(cli: CLI) -> None:
    (cli.cwd / "runs").mkdir()
    script = write_script(cli.cwd, "run.sh", RECORD_RUN)
    ids = launch(cli, "q", script, "--array", "1-6", "--max-running", "2")
    status = json.loads(cli("status", "--tag", "q", "--json").out)
    assert status["jobs"]["ALL"] == ids  # every task recorded before any ran
    status = track_until(cli, "q", "done", timeout_s=60)
    assert status["jobs"]["COMPLETED"] == ids
    spans = intervals(cli.cwd / "runs")
    assert most_at_once(spans) == 2
    for i in range(2, len(ids)):  # in submission order: each waited for an earlier one
        assert spans[ids[i]][0] >= spans[ids[i - 2]][0]
        assert spans[ids[i]][0] >= min(spans[j][1] for j in ids[:i]) - 0.05


def test_an_array_throttle_is_honoured_as_slurm_does(cli: CLI) -> None:
    (cli.cwd / "runs").mkdir()
    script = write_script(cli.cwd, "run.sh", RECORD_RUN)
    ids = launch(cli, "thr", script, "--array", "1-4%1", "--max-running", "8")
    track_until(cli, "thr", "done", timeout_s=60)
    assert most_at_once(intervals(cli.cwd / "runs")) == 1
    assert len(ids) == 4


def test_later_submissions_wait_behind_earlier_ones_across_directories(cli: CLI) -> None:
    b = other_dir(cli, "b")
    for d in (cli, b):
        (d.cwd / "runs").mkdir()
    first = launch(cli, "fifo", write_script(cli.cwd, "run.sh", RECORD_RUN), "--max-running", "1")
    second = launch(b, "fifo", write_script(b.cwd, "run.sh", RECORD_RUN), "--max-running", "1")
    track_until(cli, "fifo", "done", timeout_s=60)
    a_span = intervals(cli.cwd / "runs")[first[0]]
    b_span = intervals(b.cwd / "runs")[second[0]]
    assert b_span[0] >= a_span[1] - 0.05  # one machine-wide queue: b waited for a


def test_the_default_limit_is_the_number_of_cpus(cli: CLI) -> None:
    env = {k: v for k, v in cli.env.items() if k != "JOBLEDGER_LOCAL_MAX_RUNNING"}
    plain = CLI(cli.cwd, env)
    [job_id] = launch(plain, "cpus", write_script(cli.cwd, "ok.sh", "exit 0"))
    meta = read_json(local_dir(cli, job_id) / "meta.json")
    assert meta is not None and meta["max_running"] == default_max_running()
    configured = CLI(cli.cwd, {**env, "JOBLEDGER_LOCAL_MAX_RUNNING": "3"})
    [other] = launch(configured, "cpus", write_script(cli.cwd, "ok.sh", "exit 0"))
    assert (read_json(local_dir(cli, other) / "meta.json") or {})["max_running"] == 3


def supervisors_of(directory: Path) -> list[int]:
    """PIDs of the local supervisors running the submission in ``directory``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"jobledger.schedulers.local_supervisor" in argv and os.fsencode(directory) in argv:
            pids.append(int(proc.name))
    return pids


def test_a_10000_task_array_is_recorded_before_it_runs_and_costs_one_supervisor(
    cli: CLI, client: redis.Redis
) -> None:
    script = write_script(cli.cwd, "sleep.sh", "sleep 30")
    ids = launch(cli, "big", script, "--array", "1-10000", "--max-running", "2")
    assert len(ids) == 10_000
    assert client.scard("big_ALL") == client.scard(f"big_{P}") == 10_000
    base = local_dir(cli, ids[0])
    wait_for(lambda: task_state_path(base, ids[0]).exists(), 30, "the first task to start")
    [supervisor] = supervisors_of(base)
    time.sleep(0.5)
    assert sum(1 for _ in (base / "tasks").iterdir()) == 2  # the others wait their turn
    os.kill(supervisor, signal.SIGTERM)  # as scancel of the whole array
    wait_for(lambda: not supervisors_of(base), 60, "the supervisor to cancel every task")
    status = track_until(cli, "big", "done", timeout_s=120)
    assert len(status["jobs"]["CANCELLED"]) == 10_000


# --- scripts that cannot run, supervisors that die -------------------------------------


def test_a_script_that_cannot_be_executed_ends_failed_with_the_reason(cli: CLI) -> None:
    bad_interp = write_script(cli.cwd, "interp.sh", "")
    bad_interp.write_text("#!/nonexistent/interp\necho hi\n")
    no_shebang = cli.cwd / "plain.sh"
    no_shebang.write_text("echo hi\n")
    binary = cli.cwd / "blob"
    binary.write_bytes(b"\x00\x01\x02garbage\xff" * 10)
    for path in (bad_interp, no_shebang, binary):
        path.chmod(0o755)
    ids = {
        "interp": launch(cli, "noexec", bad_interp)[0],
        "plain": launch(cli, "noexec", no_shebang)[0],
        "binary": launch(cli, "noexec", binary)[0],
    }
    status = track_until(cli, "noexec", "done")
    assert sorted(status["jobs"]["FAILED"]) == sorted(ids.values())
    reasons = {
        what: json.loads(cli("show", job_id, "--tag", "noexec", "--json").out)["record"]["reason"]
        for what, job_id in ids.items()
    }
    assert (
        reasons["interp"]
        == f"{bad_interp}: /nonexistent/interp: bad interpreter: No such file or directory"
    )
    assert "Exec format error" in reasons["plain"] and "no #! line" in reasons["plain"]
    assert "Exec format error" in reasons["binary"]
    shown = cli("show", ids["interp"], "--tag", "noexec").out
    assert "bad interpreter" in shown


def test_a_supervisor_killed_while_its_job_waits_in_the_queue_leads_to_lost(cli: CLI) -> None:
    [running] = launch(
        cli, "kq", write_script(cli.cwd, "sleep.sh", "sleep 60"), "--max-running", "1"
    )
    [queued] = launch(cli, "kq", write_script(cli.cwd, "ok.sh", "exit 0"), "--max-running", "1")
    announced = local_dir(cli, queued) / "supervisor.json"
    wait_for(announced.exists, 30, "the supervisor to announce itself")
    [pid] = supervisors_of(local_dir(cli, queued))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not supervisors_of(local_dir(cli, queued)), 10, "the supervisor to die")
    args = ("track", "--once", "--tag", "kq", "--scheduler", "local", "--lost-grace", "0")
    assert cli(*args).code == 0
    assert cli(*args).code == 0
    status = json.loads(cli("status", "--tag", "kq", "--json").out)
    assert status["jobs"]["LOST"] == [queued]
    assert status["jobs"][P] == [running]
    assert cli("cancel", running, "--tag", "kq").code == 0
    assert track_until(cli, "kq", "done")["jobs"]["CANCELLED"] == [running]


# --- interrupted and huge launches -------------------------------------------------------


def test_a_1500_task_array_is_one_journal_entry_even_with_few_file_descriptors(
    cli: CLI,
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # down: everything goes to the journal
    script = write_script(cli.cwd, "ok.sh", "exit 0")
    argv = [sys.executable, "-m", "jobledger", "launch", "--tag", "fd", "--scheduler", "local"]
    argv += ["--url", url, "--array", "1-1500", "--max-running", "1", "--json", str(script)]
    proc = subprocess.run(
        ["bash", "-c", 'ulimit -n 64 && exec "$@"', "bash", *argv],
        cwd=cli.cwd,
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    ids = json.loads(proc.stdout)["job_ids"]
    [entry] = (cli.cwd / ".jobledger" / "journal").glob("*.json")
    assert json.loads(entry.read_text())["job_ids"] == ids
    assert len(ids) == 1500


def test_sigint_during_a_launch_records_every_accepted_id_then_exits_130(
    cli: CLI, client: redis.Redis
) -> None:
    script = write_script(cli.cwd, "ok.sh", "exit 0")
    argv = [sys.executable, "-m", "jobledger", "launch", "--tag", "int", "--scheduler", "local"]
    argv += ["--array", "1-30000", "--max-running", "1", str(script)]
    proc = subprocess.Popen(
        argv, cwd=cli.cwd, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    root = cli.cwd / ".jobledger" / "local"
    wait_for(lambda: any(root.glob("*/meta.json")), 60, "the scheduler to accept the array")
    proc.send_signal(signal.SIGINT)  # while the 30,000 IDs are being recorded
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("jobledger: error: interrupted: the scheduler had accepted 30000 job(s)")
    assert len(out.split()) == 30_000
    assert client.scard("int_ALL") == 30_000
    assert not list((cli.cwd / ".jobledger" / "journal").glob("*.json"))


@pytest.mark.parametrize("when", ["importing", "waiting on Redis"])
def test_ctrl_c_in_a_command_is_one_line_and_exit_130(tmp_path: Path, when: str) -> None:
    """SIGINT while the command imports what it needs (click, redis-py: the first few
    hundred ms, where a traceback used to come out) or waits on a server that never
    answers."""
    import socket

    from conftest import cli_for

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        cli = cli_for(url, tmp_path)
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobledger", "status", "--tag", "t"],
            cwd=cli.cwd,
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        connections = []
        if when == "importing":
            time.sleep(0.25)  # Python is up (~40 ms); click and redis-py load till ~0.4 s
        else:
            silent.settimeout(30)
            connections.append(silent.accept()[0])  # it is inside the command now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        for connection in connections:
            connection.close()
    assert (proc.returncode, out, err) == (130, "", "jobledger: error: interrupted\n")


def test_jobs_of_the_layout_before_the_queue_are_still_filed(
    cli: CLI, jl_client: redis.Redis
) -> None:
    """Upgrading jobledger while local jobs run: their one-state-file layout is read."""
    job_dir = cli.cwd / ".jobledger" / "local" / "7"
    job_dir.mkdir(parents=True)
    (job_dir / "meta.json").write_text(json.dumps({"job_id": "7", "name": "old"}))
    ended = {"state": "FAILED", "exit_code": 3, "ended_at": "2026-11-30T10:00:00+00:00"}
    (job_dir / "state.json").write_text(json.dumps(ended))
    from datetime import datetime, timezone

    fields = {"scheduler": "local", "work_dir": str(cli.cwd)}  # what 0.1 recorded
    Ledger(jl_client, "old").record_submission("7", now=datetime.now(timezone.utc), fields=fields)
    status = track_until(cli, "old", "done")
    assert status["jobs"]["FAILED"] == ["7"]


def test_a_waiting_submission_that_cannot_run_does_not_hold_up_one_that_can(cli: CLI) -> None:
    (cli.cwd / "runs").mkdir()
    # Long enough that the second launch (a CLI start, on a loaded machine too) lands
    # while the first task still runs.
    slow = write_script(cli.cwd, "slow.sh", RECORD_RUN.replace("sleep 0.6", "sleep 3"))
    script = write_script(cli.cwd, "run.sh", RECORD_RUN)
    first = launch(cli, "hol", slow, "--array", "1-2", "--max-running", "1")  # slot 0 only
    [second] = launch(cli, "hol", script, "--max-running", "2")  # may use slot 1 as well
    track_until(cli, "hol", "done", timeout_s=60)
    spans = intervals(cli.cwd / "runs")
    assert spans[second][0] < spans[first[1]][0]  # it ran beside the first task, not after all


def test_a_bad_journal_entry_is_set_aside_and_stops_no_command(cli: CLI) -> None:
    journal = cli.cwd / ".jobledger" / "journal"
    journal.mkdir(parents=True)
    entry = {"tag": "bad tag", "job_ids": ["5"], "submitted_at": "2026-12-01T00:00:00+00:00"}
    (journal / "bad-5-0000.json").write_text(json.dumps({**entry, "fields": {}}))
    run = cli("status", "--tag", "t")
    assert run.code == 0, run.err
    assert "journal entry set aside" in run.err
    assert not list(journal.glob("*.json")) and list(journal.glob("*.bad"))
    assert cli("status", "--tag", "t").err == ""  # once


def test_an_array_task_number_the_ledger_cannot_hold_is_refused_before_submitting(
    cli: CLI,
) -> None:
    script = write_script(cli.cwd, "ok.sh", "exit 0")
    run = cli("launch", "--tag", "t", "--scheduler", "local", "--array", "1234567890", str(script))
    assert run.code == 2, run.err
    assert "invalid --array" in run.err
    assert not (cli.cwd / ".jobledger" / "local").exists()


def test_a_cancel_right_after_launch_is_filed_cancelled(cli: CLI) -> None:
    """Before the supervisor is up: the request waits for it, and kills nothing."""
    [job_id] = launch(cli, "early", write_script(cli.cwd, "sleep.sh", "sleep 60"))
    run = cli("cancel", job_id, "--tag", "early")
    assert (run.code, run.out) == (0, f"cancel requested: {job_id}\n"), run.err
    assert track_until(cli, "early", "done")["jobs"]["CANCELLED"] == [job_id]


def test_max_running_is_refused_for_a_scheduler_that_queues_by_itself(cli: CLI) -> None:
    script = write_script(cli.cwd, "ok.sh", "exit 0")
    argv = ["launch", "--tag", "t", "--scheduler", "slurm", "--max-running", "2", "--dry-run"]
    run = cli(*argv, str(script))
    assert run.code == 2
    assert run.err.startswith("jobledger: error: --max-running is for the local scheduler")
