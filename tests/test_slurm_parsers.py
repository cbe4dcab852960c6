"""Tests for the pure SLURM output parsers, on output as SLURM 22.05 prints it.

The samples marked "captured" were copied from the project's one-node SLURM 22.05.8 cluster;
the others (cancelled jobs, pending array ranges, het jobs, requeues) follow the same format.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobledger.errors import ParseError
from jobledger.schedulers.slurm_parsers import (
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    is_accounting_unavailable,
    parse_sacct,
    parse_sbatch_error,
    parse_sbatch_parsable,
    parse_scontrol_show_job,
    parse_squeue,
    parse_state,
    sacct_format,
)
from jobledger.specs import MAX_ARRAY_TASKS, expand_array_spec
from jobledger.states import State

ACTIVE = State.PENDING_AND_RUNNING

# The oracle for every state SLURM 22.05 prints: long name, squeue compact code, ledger state.
STATE_TABLE: list[tuple[str, str, State]] = [
    ("PENDING", "PD", ACTIVE),
    ("RUNNING", "R", ACTIVE),
    ("REQUEUED", "RQ", ACTIVE),
    ("REQUEUE_FED", "RF", ACTIVE),
    ("REQUEUE_HOLD", "RH", ACTIVE),
    ("RESIZING", "RS", ACTIVE),
    ("SUSPENDED", "S", ACTIVE),
    ("COMPLETING", "CG", ACTIVE),
    ("CONFIGURING", "CF", ACTIVE),
    ("SIGNALING", "SI", ACTIVE),
    ("STAGE_OUT", "SO", ACTIVE),
    ("STOPPED", "ST", ACTIVE),
    ("SPECIAL_EXIT", "SE", ACTIVE),
    ("RESV_DEL_HOLD", "RD", ACTIVE),
    ("COMPLETED", "CD", State.COMPLETED),
    ("FAILED", "F", State.FAILED),
    ("TIMEOUT", "TO", State.TIMEOUT),
    ("CANCELLED", "CA", State.CANCELLED),
    ("OUT_OF_MEMORY", "OOM", State.OUT_OF_MEMORY),
    ("NODE_FAIL", "NF", State.NODE_FAIL),
    ("PREEMPTED", "PR", State.PREEMPTED),
    ("BOOT_FAIL", "BF", State.BOOT_FAIL),
    ("DEADLINE", "DL", State.DEADLINE),
    ("REVOKED", "RV", State.CANCELLED),
]

# captured: sacct -X -P -n -o JobIDRaw,JobID,JobName,State,ExitCode,Reason,Start,End,NodeList
SACCT_CAPTURED = """\
1|1|wrap|COMPLETED|0:0|None|2026-11-25T19:55:50|2026-11-25T19:55:50|vm
2|2|wrap|FAILED|3:0|None|2026-11-25T19:55:50|2026-11-25T19:55:50|vm
3|3|wrap|COMPLETED|0:0|None|2026-11-25T19:55:53|2026-11-25T19:55:54|vm
4|4|wrap|RUNNING|0:0|None|2026-11-25T19:55:53|Unknown|vm
6|6|wrap|RUNNING|0:0|None|2026-11-25T19:56:15|Unknown|vm
9|9|wrap|PENDING|0:0|None|Unknown|Unknown|None assigned
10|5_1|wrap|COMPLETED|0:0|None|2026-11-25T19:56:06|2026-11-25T19:56:06|vm
11|5_2|wrap|FAILED|5:0|None|2026-11-25T19:56:09|2026-11-25T19:56:09|vm
5|5_3|wrap|COMPLETED|0:0|None|2026-11-25T19:56:12|2026-11-25T19:56:12|vm
"""

# captured: the same query without -X, so job steps are listed too
SACCT_WITH_STEPS = """\
2|2|wrap|FAILED|3:0|None|2026-11-25T19:55:50|2026-11-25T19:55:50|vm
2.batch|2.batch|batch|FAILED|3:0||2026-11-25T19:55:50|2026-11-25T19:55:50|vm
11|5_2|wrap|FAILED|5:0|None|2026-11-25T19:56:09|2026-11-25T19:56:09|vm
11.batch|5_2.batch|batch|FAILED|5:0||2026-11-25T19:56:09|2026-11-25T19:56:09|vm
"""

SACCT_ARRAYS_AND_HETJOBS = """\
127|123_4|sweep|RUNNING|0:0|None|2024-05-01T12:00:03|Unknown|node01
123|123_[5-7,9-10%2]|sweep|PENDING|0:0|JobArrayTaskLimit|Unknown|Unknown|None assigned
300|300+0|het|RUNNING|0:0|None|2024-05-01T12:01:00|Unknown|node02
301|300+1|het|RUNNING|0:0|None|2024-05-01T12:01:00|Unknown|node[03-04]
"""

SACCT_CANCELLED = """\
4301|4301|train|CANCELLED by 0|0:15|None|2024-05-01T12:00:03|2024-05-01T12:30:00|node01
4302|4302|train|CANCELLED by 1234|0:0|None|None|2024-05-01T12:31:00|None assigned
4303|4303|train|CANCELLED+|0:0|None|2024-05-01T12:00:03|2024-05-01T12:30:00|node01
"""

# captured: squeue -h -o '%i|%A|%j|%T|%r|%N|%S|%e'
SQUEUE_CAPTURED = """\
7|7|wrap|PENDING|BeginTime||2026-11-25T20:56:06|NONE
9|9|wrap|PENDING|Resources||2026-11-25T19:56:53|NONE
8|8|wrap|PENDING|JobHeldUser||N/A|N/A
4|4|wrap|RUNNING|None|vm|2026-11-25T19:55:53|2026-11-25T19:56:53
6|6|wrap|RUNNING|None|vm|2026-11-25T19:56:15|NONE
"""

# captured: scontrol show job -o (two of the records; note the trailing space SLURM prints)
SCONTROL_CAPTURED = (
    "JobId=4 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901756 "
    "Nice=0 Account=root QOS=normal JobState=RUNNING Reason=None Dependency=(null) Requeue=1 "
    "Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:57 TimeLimit=00:01:00 "
    "TimeMin=N/A SubmitTime=2026-11-25T19:55:50 EligibleTime=2026-11-25T19:55:50 "
    "AccrueTime=2026-11-25T19:55:50 StartTime=2026-11-25T19:55:53 EndTime=2026-11-25T19:56:53 "
    "Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-25T19:55:53 "
    "Scheduler=Main Partition=debug AllocNode:Sid=localhost:3887 ReqNodeList=(null) "
    "ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 "
    "ReqB:S:C:T=0:0:*:* TRES=cpu=1,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* "
    "CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) "
    "DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) "
    "Command=(null) WorkDir=/tmp StdErr=/tmp/slurm-4.out StdIn=/dev/null "
    "StdOut=/tmp/slurm-4.out Power= \n"
    "JobId=11 ArrayJobId=5 ArrayTaskId=2 JobName=wrap UserId=root(0) GroupId=root(0) "
    "MCS_label=N/A Priority=4294901755 Nice=0 Account=root QOS=normal JobState=FAILED "
    "Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 "
    "ExitCode=5:0 RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A "
    "SubmitTime=2026-11-25T19:56:06 EligibleTime=2026-11-25T19:56:06 "
    "AccrueTime=2026-11-25T19:56:06 StartTime=2026-11-25T19:56:09 EndTime=2026-11-25T19:56:09 "
    "Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-25T19:56:09 "
    "Scheduler=Main Partition=debug AllocNode:Sid=localhost:3887 ReqNodeList=(null) "
    "ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 "
    "ReqB:S:C:T=0:0:*:* TRES=cpu=1,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* "
    "CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) "
    "DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) "
    "Command=(null) WorkDir=/tmp StdErr=/tmp/slurm-5_2.out StdIn=/dev/null "
    "StdOut=/tmp/slurm-5_2.out Power= \n"
)

# captured: scontrol show job 9 (without -o), followed by the answer for an unknown job ID
SCONTROL_MULTILINE = """\
JobId=9 JobName=wrap
   UserId=root(0) GroupId=root(0) MCS_label=N/A
   Priority=4294901752 Nice=0 Account=root QOS=normal
   JobState=PENDING Reason=Resources Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   RunTime=00:00:00 TimeLimit=UNLIMITED TimeMin=N/A
   SubmitTime=2026-11-25T19:56:06 EligibleTime=2026-11-25T19:56:06
   AccrueTime=2026-11-25T19:56:06
   StartTime=2026-11-25T19:56:53 EndTime=Unknown Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-25T19:56:30 Scheduler=Backfill:*
   Partition=debug AllocNode:Sid=localhost:3887
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList= SchedNodeList=vm
   NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   Command=(null)
   WorkDir=/tmp
   Power=
   \n\
slurm_load_jobs error: Invalid job id specified
"""


def at(text: str) -> datetime:
    """Return the naive datetime SLURM means by ``text``."""
    return datetime.fromisoformat(text)


# --- sbatch --parsable ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ("4242\n", ("4242", None)),
        ("4242", ("4242", None)),
        ("4242;jobledger\n", ("4242", "jobledger")),
        ("\n\n  4242  \n\n", ("4242", None)),
        ("sbatch: warning: can't honor --ntasks-per-node set to 2\n4242\n", ("4242", None)),
    ],
)
def test_sbatch_parsable_gives_job_id_and_cluster(
    stdout: str, expected: tuple[str, str | None]
) -> None:
    assert parse_sbatch_parsable(stdout) == expected


@pytest.mark.parametrize(
    "stdout", ["", "\n", "Submitted batch job 4242\n", "4242\n4243\n", "42x\n", "4242;\n"]
)
def test_sbatch_output_that_is_not_a_job_id_is_a_parse_error(stdout: str) -> None:
    with pytest.raises(ParseError, match="sbatch --parsable"):
        parse_sbatch_parsable(stdout)


def test_sbatch_parse_error_quotes_the_text_truncated() -> None:
    with pytest.raises(ParseError) as caught:
        parse_sbatch_parsable("garbage " * 100)
    message = str(caught.value)
    assert "'garbage garbage" in message
    assert "..." in message
    assert len(message) < 200


# --- sacct ---------------------------------------------------------------------------------


def test_sacct_format_lists_the_fields_without_restarts() -> None:
    assert sacct_format() == "JobIDRaw,JobID,JobName,State,ExitCode,Reason,Start,End,NodeList"
    assert sacct_format() == ",".join(SACCT_FIELDS)
    # sacct 22.05 rejects the whole query when asked for a field it lacks.
    assert "Restarts" not in SACCT_FIELDS


def test_completed_job_has_exit_code_times_name_and_nodes() -> None:
    info = parse_sacct(SACCT_CAPTURED)["3"]
    assert info.job_id == "3"
    assert info.state is State.COMPLETED
    assert info.raw_state == "COMPLETED"
    assert (info.exit_code, info.signal) == (0, 0)
    assert info.started_at == at("2026-11-25T19:55:53")
    assert info.ended_at == at("2026-11-25T19:55:54")
    assert info.nodes == "vm"
    assert info.name == "wrap"
    assert info.reason is None
    assert info.restarts is None


def test_failed_job_keeps_its_exit_code() -> None:
    info = parse_sacct(SACCT_CAPTURED)["2"]
    assert info.state is State.FAILED
    assert (info.exit_code, info.signal) == (3, 0)


def test_running_job_has_a_start_but_no_end() -> None:
    info = parse_sacct(SACCT_CAPTURED)["4"]
    assert info.state is ACTIVE
    assert info.started_at == at("2026-11-25T19:55:53")
    assert info.ended_at is None


def test_pending_job_has_unknown_times_and_no_nodes() -> None:
    info = parse_sacct(SACCT_CAPTURED)["9"]
    assert info.state is ACTIVE
    assert info.started_at is None
    assert info.ended_at is None
    assert info.nodes is None


def test_array_tasks_are_keyed_by_jobid_not_jobidraw() -> None:
    jobs = parse_sacct(SACCT_CAPTURED)
    assert set(jobs) == {"1", "2", "3", "4", "6", "9", "5_1", "5_2", "5_3"}
    assert jobs["5_2"].state is State.FAILED
    assert jobs["5_2"].exit_code == 5
    # JobIDRaw 10, 11 and 5 are the tasks' internal numbers, not ledger IDs.
    assert "10" not in jobs
    assert "11" not in jobs


def test_pending_array_range_expands_to_one_entry_per_task_ignoring_the_throttle() -> None:
    jobs = parse_sacct(SACCT_ARRAYS_AND_HETJOBS)
    pending = [f"123_{task}" for task in (5, 6, 7, 9, 10)]
    assert set(jobs) == {"123_4", *pending, "300+0", "300+1"}
    for key in pending:
        assert jobs[key].job_id == key
        assert jobs[key].state is ACTIVE
        assert jobs[key].reason == "JobArrayTaskLimit"
        assert jobs[key].nodes is None
    assert jobs["123_4"].started_at == at("2024-05-01T12:00:03")


def test_cancelled_pending_array_range_expands_to_cancelled_tasks() -> None:
    # captured: "scancel 15" while tasks 0-1 ran and 2-4 still waited
    text = """\
16|15_0|wrap|CANCELLED|0:15|None|2026-11-25T20:01:25|2026-11-25T20:01:26|vm
17|15_1|wrap|CANCELLED|0:15|None|2026-11-25T20:01:25|2026-11-25T20:01:26|vm
15|15_[2-4]|wrap|CANCELLED|0:0|None|None|2026-11-25T20:01:26|None assigned
4|4|wrap|TIMEOUT|0:15|None|2026-11-25T19:55:53|2026-11-25T19:57:00|vm
"""
    jobs = parse_sacct(text)
    assert set(jobs) == {"15_0", "15_1", "15_2", "15_3", "15_4", "4"}
    assert {info.state for key, info in jobs.items() if key != "4"} == {State.CANCELLED}
    assert jobs["15_3"].started_at is None
    assert jobs["15_3"].ended_at == at("2026-11-25T20:01:26")
    assert (jobs["15_0"].exit_code, jobs["15_0"].signal) == (0, 15)
    assert jobs["4"].state is State.TIMEOUT


def test_heterogeneous_job_components_are_keyed_with_a_plus() -> None:
    jobs = parse_sacct(SACCT_ARRAYS_AND_HETJOBS)
    assert jobs["300+0"].nodes == "node02"
    assert jobs["300+1"].nodes == "node[03-04]"
    assert "301" not in jobs


def test_cancelled_by_uid_is_filed_as_cancelled() -> None:
    jobs = parse_sacct(SACCT_CANCELLED)
    assert jobs["4301"].state is State.CANCELLED
    assert jobs["4301"].raw_state == "CANCELLED by 0"
    assert (jobs["4301"].exit_code, jobs["4301"].signal) == (0, 15)
    assert jobs["4302"].raw_state == "CANCELLED by 1234"


def test_cancelled_before_start_has_no_start_but_an_end() -> None:
    info = parse_sacct(SACCT_CANCELLED)["4302"]
    assert info.started_at is None
    assert info.ended_at == at("2024-05-01T12:31:00")
    assert info.nodes is None


def test_state_truncated_with_a_plus_is_still_recognised() -> None:
    info = parse_sacct(SACCT_CANCELLED)["4303"]
    assert info.state is State.CANCELLED
    assert info.raw_state == "CANCELLED+"


def test_job_step_rows_are_skipped() -> None:
    jobs = parse_sacct(SACCT_WITH_STEPS)
    assert set(jobs) == {"2", "5_2"}
    assert jobs["2"].name == "wrap"


def test_the_last_row_for_a_job_wins() -> None:
    # sacct -D lists a requeued job once per run.
    text = (
        "77|77|train|NODE_FAIL|0:0|None|2024-05-01T12:00:00|2024-05-01T12:05:00|node01\n"
        "77|77|train|RUNNING|0:0|None|2024-05-01T12:06:00|Unknown|node02\n"
    )
    info = parse_sacct(text)["77"]
    assert info.state is ACTIVE
    assert info.nodes == "node02"


def test_a_later_task_row_overrides_the_pending_range_entry() -> None:
    text = (
        "123|123_[1-3]|sweep|PENDING|0:0|Priority|Unknown|Unknown|None assigned\n"
        "124|123_2|sweep|COMPLETED|0:0|None|2024-05-01T12:00:00|2024-05-01T12:01:00|node01\n"
    )
    jobs = parse_sacct(text)
    assert jobs["123_1"].state is ACTIVE
    assert jobs["123_2"].state is State.COMPLETED


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [("3:0", (3, 0)), ("0:9", (0, 9)), ("0:0", (0, 0)), ("255:0", (255, 0)), ("", (None, None))],
)
def test_exit_code_is_split_into_code_and_signal(
    exit_code: str, expected: tuple[int | None, int | None]
) -> None:
    line = f"5|5|job|FAILED|{exit_code}|None|Unknown|Unknown|None assigned\n"
    info = parse_sacct(line)["5"]
    assert (info.exit_code, info.signal) == expected


@pytest.mark.parametrize("value", ["Unknown", "None", ""])
def test_unknown_none_and_empty_times_are_none(value: str) -> None:
    info = parse_sacct(f"5|5|job|COMPLETED|0:0|None|{value}|{value}|node01\n")["5"]
    assert info.started_at is None
    assert info.ended_at is None


def test_reason_other_than_none_is_kept() -> None:
    text = "8|8|job|PENDING|0:0|JobHeldUser|Unknown|Unknown|None assigned\n"
    assert parse_sacct(text)["8"].reason == "JobHeldUser"


def test_job_name_containing_a_pipe_is_rejoined() -> None:
    text = "5|5|a|b|c|COMPLETED|0:0|None|Unknown|Unknown|node01\n"
    info = parse_sacct(text)["5"]
    assert info.name == "a|b|c"
    assert info.state is State.COMPLETED


def test_header_line_is_ignored() -> None:
    text = "|".join(SACCT_FIELDS) + "\n1|1|wrap|COMPLETED|0:0|None|Unknown|Unknown|vm\n"
    assert set(parse_sacct(text)) == {"1"}


@pytest.mark.parametrize("text", ["", "\n", "  \n\n   \n"])
def test_blank_sacct_output_gives_no_jobs(text: str) -> None:
    assert parse_sacct(text) == {}


def test_a_line_with_too_few_fields_is_a_parse_error_naming_the_line() -> None:
    with pytest.raises(ParseError, match=r"9 '\|'-separated fields.*'4242\|4242\|COMPLETED'"):
        parse_sacct("1|1|wrap|COMPLETED|0:0|None|Unknown|Unknown|vm\n4242|4242|COMPLETED\n")


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("5|5|job|EXPLODED|0:0|None|Unknown|Unknown|vm", "unknown SLURM job state 'EXPLODED'"),
        ("5|5|job||0:0|None|Unknown|Unknown|vm", "unknown SLURM job state ''"),
        ("5|5|job|COMPLETED|zero|None|Unknown|Unknown|vm", "bad exit code 'zero'"),
        ("5|5|job|COMPLETED|0:0|None|yesterday|Unknown|vm", "bad time 'yesterday'"),
        ("5|5|job|COMPLETED|0:0|None|2024-13-01T00:00:00|Unknown|vm", "bad time"),
        ("5|abc|job|COMPLETED|0:0|None|Unknown|Unknown|vm", "bad job ID 'abc'"),
        ("5|5_[3-1]|job|PENDING|0:0|None|Unknown|Unknown|vm", "bad range '3-1'"),
        ("x|5|job|COMPLETED|0:0|None|Unknown|Unknown|vm", "bad raw job ID 'x'"),
    ],
)
def test_garbage_in_a_sacct_field_is_a_parse_error(line: str, complaint: str) -> None:
    with pytest.raises(ParseError, match=complaint):
        parse_sacct(line + "\n")


# --- the state table -----------------------------------------------------------------------


@pytest.mark.parametrize(("word", "code", "expected"), STATE_TABLE)
def test_sacct_state_names_map_to_ledger_states(word: str, code: str, expected: State) -> None:
    info = parse_sacct(f"77|77|job|{word}|0:0|None|Unknown|Unknown|None assigned\n")["77"]
    assert info.state is expected
    assert info.raw_state == word


@pytest.mark.parametrize(("word", "code", "expected"), STATE_TABLE)
def test_squeue_compact_state_codes_map_like_their_long_names(
    word: str, code: str, expected: State
) -> None:
    info = parse_squeue(f"77|77|job|{code}|None||N/A|N/A\n")["77"]
    assert info.state is expected
    assert parse_state(word) is expected


@pytest.mark.parametrize("raw", ["", "   ", "?", "UNKNOWN", "RUN NING", "+"])
def test_unknown_state_words_are_parse_errors(raw: str) -> None:
    with pytest.raises(ParseError, match="unknown SLURM job state"):
        parse_state(raw)


# --- squeue --------------------------------------------------------------------------------


def test_squeue_format_is_the_documented_string() -> None:
    assert SQUEUE_FORMAT == "%i|%A|%j|%T|%r|%N|%S|%e"


def test_squeue_pending_job_forecast_start_is_dropped() -> None:
    info = parse_squeue(SQUEUE_CAPTURED)["7"]
    assert info.state is ACTIVE
    assert info.reason == "BeginTime"
    assert info.started_at is None  # 20:56:06 is when the job may start, not when it did
    assert info.ended_at is None
    assert info.nodes is None


def test_squeue_running_job_keeps_its_start_but_not_its_time_limit_end() -> None:
    info = parse_squeue(SQUEUE_CAPTURED)["4"]
    assert info.started_at == at("2026-11-25T19:55:53")
    assert info.ended_at is None
    assert info.nodes == "vm"
    assert info.reason is None
    assert (info.exit_code, info.signal) == (None, None)


def test_squeue_lists_every_job_with_name_and_reason() -> None:
    jobs = parse_squeue(SQUEUE_CAPTURED)
    assert set(jobs) == {"4", "6", "7", "8", "9"}
    assert jobs["8"].reason == "JobHeldUser"
    assert all(info.name == "wrap" for info in jobs.values())


def test_squeue_array_rows_are_keyed_and_expanded_like_sacct() -> None:
    text = (
        "123_[5-10%2]|123|sweep|PENDING|JobArrayTaskLimit||N/A|N/A\n"
        "123_4|127|sweep|RUNNING|None|node01|2024-05-01T12:00:03|NONE\n"
        "300+1|301|het|RUNNING|None|node02|2024-05-01T12:01:00|NONE\n"
    )
    jobs = parse_squeue(text)
    assert set(jobs) == {f"123_{task}" for task in range(4, 11)} | {"300+1"}
    assert jobs["123_7"].reason == "JobArrayTaskLimit"
    assert jobs["123_4"].nodes == "node01"


def test_squeue_shows_recently_finished_jobs_with_their_end() -> None:
    # captured with -t all and %t: finished jobs linger for MinJobAge
    info = parse_squeue("5_2|11|wrap|F|NonZeroExitCode|vm|2026-11-25T19:56:09|2026-11-25T19:56:09")
    assert info["5_2"].state is State.FAILED
    assert info["5_2"].ended_at == at("2026-11-25T19:56:09")


def test_blank_squeue_output_gives_no_jobs() -> None:
    assert parse_squeue("") == {}
    assert parse_squeue("\n\n") == {}


@pytest.mark.parametrize(
    "line",
    [
        "7|7|wrap|PENDING|BeginTime|",
        "7|seven|wrap|PENDING|BeginTime||N/A|N/A",
        "7|7|wrap|WAITING|BeginTime||N/A|N/A",
        "squeue: error: Invalid user: nobody",
    ],
)
def test_garbage_squeue_lines_are_parse_errors(line: str) -> None:
    with pytest.raises(ParseError):
        parse_squeue(line + "\n")


# --- scontrol show job ---------------------------------------------------------------------


def test_scontrol_running_job_has_restarts_and_no_forecast_end() -> None:
    info = parse_scontrol_show_job(SCONTROL_CAPTURED)["4"]
    assert info.state is ACTIVE
    assert info.raw_state == "RUNNING"
    assert info.restarts == 0
    assert info.started_at == at("2026-11-25T19:55:53")
    assert info.ended_at is None  # EndTime=19:56:53 is StartTime + TimeLimit
    assert info.nodes == "vm"
    assert info.name == "wrap"
    assert info.reason is None


def test_scontrol_array_task_is_keyed_by_array_job_and_task() -> None:
    jobs = parse_scontrol_show_job(SCONTROL_CAPTURED)
    assert set(jobs) == {"4", "5_2"}
    info = jobs["5_2"]
    assert info.state is State.FAILED
    assert (info.exit_code, info.signal) == (5, 0)
    assert info.reason == "NonZeroExitCode"
    assert info.ended_at == at("2026-11-25T19:56:09")


def test_scontrol_multiline_layout_and_unknown_id_message_are_accepted() -> None:
    jobs = parse_scontrol_show_job(SCONTROL_MULTILINE)
    assert set(jobs) == {"9"}
    assert jobs["9"].state is ACTIVE
    assert jobs["9"].reason == "Resources"
    assert jobs["9"].started_at is None  # a backfill forecast
    assert jobs["9"].nodes is None


def test_scontrol_unknown_job_id_gives_no_jobs() -> None:
    assert parse_scontrol_show_job("slurm_load_jobs error: Invalid job id specified\n") == {}
    assert parse_scontrol_show_job("") == {}


def test_scontrol_pending_array_range_expands_per_task() -> None:
    text = (
        "JobId=123 ArrayJobId=123 ArrayTaskId=5-7,9%2 ArrayTaskThrottle=2 JobName=sweep "
        "JobState=PENDING Reason=JobArrayTaskLimit Restarts=0 ExitCode=0:0 "
        "StartTime=Unknown EndTime=Unknown NodeList= Command=/home/alice/sweep.sh\n"
    )
    jobs = parse_scontrol_show_job(text)
    assert set(jobs) == {"123_5", "123_6", "123_7", "123_9"}
    assert jobs["123_9"].reason == "JobArrayTaskLimit"


def test_scontrol_het_job_component_is_keyed_with_a_plus() -> None:
    text = (
        "JobId=301 HetJobId=300 HetJobOffset=1 HetJobIdSet=300-301 JobName=het "
        "JobState=RUNNING Reason=None Restarts=2 ExitCode=0:0 StartTime=2024-05-01T12:01:00 "
        "EndTime=Unknown NodeList=node03\n"
    )
    info = parse_scontrol_show_job(text)["300+1"]
    assert info.restarts == 2
    assert info.nodes == "node03"


def test_scontrol_values_with_spaces_do_not_fake_other_fields() -> None:
    text = (
        "JobId=50 JobName=train JobState=COMPLETED Reason=None ExitCode=0:0 "
        "StartTime=2024-05-01T12:00:00 EndTime=2024-05-01T12:01:00 NodeList=node01 "
        "Command=/home/alice/run.sh --lr 0.1 JobState=FAILED WorkDir=/home/alice/my runs\n"
    )
    info = parse_scontrol_show_job(text)["50"]
    assert info.state is State.COMPLETED
    assert info.ended_at == at("2024-05-01T12:01:00")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n", "slurm"),
        ("JobId=5 JobName=x Reason=None\n", "without JobId/JobState"),
        ("JobId=abc JobState=RUNNING\n", "without JobId/JobState"),
        ("JobId=5 ArrayTaskId=3 JobState=RUNNING\n", "without ArrayJobId"),
        ("JobId=5 JobState=RUNNING Restarts=many\n", "bad Restarts"),
        ("JobId=5 JobState=RUNNING\ngarbage\n", "unexpected line"),
        ("   UserId=root(0)\n", "unexpected line"),
    ],
)
def test_garbage_scontrol_output_is_a_parse_error(text: str, complaint: str) -> None:
    with pytest.raises(ParseError, match=complaint):
        parse_scontrol_show_job(text)


# --- array specs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1-3,7,9-11%2", ["1", "2", "3", "7", "9", "10", "11"]),
        ("1-9:2", ["1", "3", "5", "7", "9"]),
        ("[1-3]", ["1", "2", "3"]),
        ("5", ["5"]),
        ("0", ["0"]),
        ("3,1,3", ["3", "1"]),
        ("4-4", ["4"]),
    ],
)
def test_array_specs_expand_to_task_ids(spec: str, expected: list[str]) -> None:
    assert expand_array_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["", "%2", "a", "3-1", "1-5:0", "1-3%x", "1,,2", "-1", "1-", "1-3:", "\u0661-\u0663", "[1-3"],
)
def test_garbage_array_specs_are_parse_errors(spec: str) -> None:
    with pytest.raises(ParseError):
        expand_array_spec(spec)


def test_array_specs_are_capped() -> None:
    assert len(expand_array_spec(f"0-{MAX_ARRAY_TASKS - 1}")) == MAX_ARRAY_TASKS
    with pytest.raises(ParseError, match="tasks"):
        expand_array_spec(f"0-{MAX_ARRAY_TASKS}")
    with pytest.raises(ParseError, match="tasks"):
        expand_array_spec("0-400000000")
    with pytest.raises(ParseError, match="bad job array spec"):  # <job>_<task>: 9 digits
        expand_array_spec("0-4000000000")


# --- stderr helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stderr",
    [
        "sacct: error: Slurm accounting storage is disabled\n",
        "sacct: error: Problem talking to the database: Connection refused\n",
        "sacct: error: slurm_persist_conn_open_without_init: failed to open persistent "
        "connection to host:localhost:6819: Connection refused\n",
        "sacct: error: Sending PersistInit msg: Connection refused\n",
        "sacct: error: slurmdbd: Socket timed out on send/recv operation\n",
    ],
)
def test_accounting_outages_are_recognised(stderr: str) -> None:
    assert is_accounting_unavailable(stderr)


@pytest.mark.parametrize(
    "stderr",
    [
        "",
        'sacct: error: Invalid field requested: "Restarts"\n',
        "sacct: error: Unknown arguments: --bogus\n",
    ],
)
def test_other_sacct_errors_are_not_accounting_outages(stderr: str) -> None:
    assert not is_accounting_unavailable(stderr)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            "sbatch: error: Batch job submission failed: Invalid partition name specified\n",
            "Batch job submission failed: Invalid partition name specified",
        ),
        (
            "sbatch: error: Memory specification can not be satisfied\n"
            "sbatch: error: Batch job submission failed: Requested node configuration is not "
            "available\n",
            "Batch job submission failed: Requested node configuration is not available",
        ),
        (
            "sbatch: warning: can't run 1 processes on 2 nodes, setting nnodes to 1\n"
            "sbatch: error: invalid partition specified: gpu\n\n",
            "invalid partition specified: gpu",
        ),
        ("sbatch: unrecognized option '--bogus'\n", "unrecognized option '--bogus'"),
        ("", "sbatch failed with no message"),
        ("\n  \n", "sbatch failed with no message"),
        ("sbatch: error:\n", "sbatch failed with no message"),
    ],
)
def test_sbatch_error_is_reduced_to_one_clean_line(stderr: str, expected: str) -> None:
    assert parse_sbatch_error(stderr) == expected


# --- properties ----------------------------------------------------------------------------

PARSERS: list[Callable[[str], object]] = [
    parse_sbatch_parsable,
    parse_sacct,
    parse_squeue,
    parse_scontrol_show_job,
    expand_array_spec,
]

# Pieces of real output, so random lines get past the first checks more often.
TOKENS = st.sampled_from(
    [
        "",
        "5",
        "5_3",
        "5_[1-3%2]",
        "5+1",
        "5.batch",
        "RUNNING",
        "CANCELLED by 0",
        "0:0",
        "None",
        "Unknown",
        "N/A",
        "NONE",
        "2024-05-01T12:00:03",
        "None assigned",
        "vm",
        "JobId=5",
        "JobState=RUNNING",
        "ArrayTaskId=1-3",
        "ArrayJobId=5",
        "Restarts=0",
    ]
)
FIELDS = st.one_of(TOKENS, st.text(max_size=12))
LINES = st.one_of(
    st.lists(FIELDS, max_size=10).map("|".join),
    st.lists(FIELDS, max_size=10).map(" ".join),
    st.text(max_size=40),
)
OUTPUTS = st.lists(LINES, max_size=5).map("\n".join)


def parses_or_raises_parse_error(parser: Callable[[str], object], text: str) -> None:
    """Run ``parser``; ParseError is fine, any other exception fails the test."""
    with contextlib.suppress(ParseError):
        parser(text)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(), OUTPUTS))
def test_parsers_raise_nothing_but_parse_error_on_any_text(text: str) -> None:
    for parser in PARSERS:
        parses_or_raises_parse_error(parser, text)


@settings(deadline=None)
@given(text=st.text())
def test_stderr_helpers_never_raise_and_give_one_line(text: str) -> None:
    # Accounting is "down" exactly when sacct's stderr says so, wherever the words are.
    down = "sacct: error: Slurm accounting storage is disabled"
    assert is_accounting_unavailable(f"{text}\n{down}") is True
    assert is_accounting_unavailable(f"{down.upper()}{text}") is True
    if not any(c.isalpha() for c in text):
        assert is_accounting_unavailable(text) is False
    message = parse_sbatch_error(text)
    assert message
    assert message == message.strip()
    assert len(message.splitlines()) == 1


NUMBERS = st.integers(min_value=1, max_value=4_000_000_000).map(str)
JOB_IDS = st.one_of(
    NUMBERS,
    st.tuples(NUMBERS, st.integers(0, 1_000_000)).map(lambda pair: f"{pair[0]}_{pair[1]}"),
    st.tuples(NUMBERS, st.integers(0, 20)).map(lambda pair: f"{pair[0]}+{pair[1]}"),
)
RAW_STATES = st.tuples(
    st.sampled_from(STATE_TABLE), st.sampled_from(["", " by 0", " by 1234", "+"])
).map(lambda pair: (pair[0][0] + pair[1], pair[0][2]))
TIMES = st.one_of(
    st.sampled_from(["Unknown", "None", ""]),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
        lambda moment: moment.replace(microsecond=0).isoformat()
    ),
)
NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20)


@settings(deadline=None)
@given(
    job_id=JOB_IDS,
    raw_id=NUMBERS,
    name=NAMES,
    raw_state=RAW_STATES,
    code=st.integers(0, 255),
    signal=st.integers(0, 64),
    start=TIMES,
    end=TIMES,
    reason=st.sampled_from(["None", "Resources", "NonZeroExitCode", "JobHeldUser"]),
    nodes=st.sampled_from(["None assigned", "vm", "node[01-04]"]),
)
def test_generated_sacct_lines_round_trip(
    job_id: str,
    raw_id: str,
    name: str,
    raw_state: tuple[str, State],
    code: int,
    signal: int,
    start: str,
    end: str,
    reason: str,
    nodes: str,
) -> None:
    state_text, state = raw_state
    fields = [raw_id, job_id, name, state_text, f"{code}:{signal}", reason, start, end, nodes]
    jobs = parse_sacct("|".join(fields) + "\n")
    assert list(jobs) == [job_id]
    info = jobs[job_id]
    assert info.job_id == job_id
    assert info.state is state
    assert info.raw_state == state_text
    assert (info.exit_code, info.signal) == (code, signal)
    assert info.name == (name or None)
    if state.is_terminal and end not in ("Unknown", "None", ""):
        assert info.ended_at == datetime.fromisoformat(end)
