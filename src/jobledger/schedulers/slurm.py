"""SLURM: a thin subprocess layer over the pure parsers in ``slurm_parsers``.

One ``sacct`` call covers up to ``chunk_size`` jobs; when accounting is not
available the same question goes to ``squeue -t all`` (which only remembers
jobs for slurmctld's MinJobAge), and the result says it is degraded.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from jobledger.errors import SchedulerError
from jobledger.ids import base_job_id, job_sort_key
from jobledger.logs import escape, find_options, output_options, sbatch_directives
from jobledger.schedulers.base import JobInfo, QueryResult, Records, Submission, SubmitRequest
from jobledger.schedulers.slurm_parsers import (
    SQUEUE_FORMAT,
    USAGE_FIELDS,
    is_accounting_unavailable,
    parse_sacct_rows,
    parse_sacct_usage,
    parse_sbatch_error,
    parse_sbatch_parsable,
    parse_squeue_rows,
    sacct_format,
)
from jobledger.specs import expand_array_spec, read_head

__all__ = ["SlurmScheduler", "with_prefix_export"]

log = logging.getLogger(__name__)

# Seed-style bash scripts read JOB_SPECIFIC_PREFIX; the job ID only exists once
# the job runs, so launch adds this line after the #SBATCH header.
PREFIX_EXPORT = (
    'if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then '
    'export JOB_SPECIFIC_PREFIX="${job_tag:-$JOBLEDGER_TAG}-'
    '${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"; '
    'else export JOB_SPECIFIC_PREFIX="${job_tag:-$JOBLEDGER_TAG}-${SLURM_JOB_ID}"; fi'
    "  # added by jobledger launch"
)
_SHELLS = ("sh", "bash", "zsh", "ksh", "dash")
_CLUSTER_OPTION = {"clusters": ("--clusters", "-M"), "cluster": ("--cluster", "")}


def with_prefix_export(script_text: str) -> str:
    """The script with the JOB_SPECIFIC_PREFIX export inserted after its header comments.

    sbatch reads ``#SBATCH`` lines only up to the first command, so the line goes
    after the leading block of comments and blank lines.  Non-shell scripts
    (a python shebang) are returned unchanged.
    """
    lines = script_text.splitlines(keepends=True)
    if lines and lines[0].startswith("#!"):
        interpreter = lines[0][2:].split()
        words = [Path(w).name for w in interpreter]
        if words and not any(w in _SHELLS for w in words[:2]):
            return script_text
    cut = 0
    while cut < len(lines) and (not lines[cut].strip() or lines[cut].lstrip().startswith("#")):
        cut += 1
    head = "".join(lines[:cut])
    if head and not head.endswith("\n"):
        head += "\n"
    return head + PREFIX_EXPORT + "\n" + "".join(lines[cut:])


class SlurmScheduler:
    """Submit with sbatch, query with batched sacct (squeue fallback), cancel with scancel."""

    name = "slurm"
    allocates_ids = True
    remote_nodes = True

    def __init__(self, *, chunk_size: int = 1000, timeout_s: float = 120.0) -> None:
        self.chunk_size = chunk_size
        self.timeout_s = timeout_s

    def _run(
        self, argv: list[str], *, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a SLURM command; a query's timestamps are read as ISO (SLURM_TIME_FORMAT).

        ``env`` is given for sbatch only, and then used as it is: sbatch hands its
        environment to the job, which must not get jobledger's SLURM_TIME_FORMAT.
        Each command runs in its own session, so a Ctrl-C at the terminal cannot kill
        sbatch between accepting a job and printing its ID.
        """
        if env is None:
            env = {**os.environ, "SLURM_TIME_FORMAT": "standard"}
        try:
            return subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env=env,
                timeout=self.timeout_s,
                check=False,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise SchedulerError(f"{argv[0]} not found on PATH: is SLURM installed here?") from exc
        except subprocess.TimeoutExpired as exc:
            raise SchedulerError(f"{argv[0]} did not answer within {self.timeout_s:.0f} s") from exc

    # --- submit -----------------------------------------------------------------

    def describe(self, request: SubmitRequest) -> list[str]:
        return self.submit_argv(request)

    def start(self, submission: Submission) -> None:
        """Nothing to do: sbatch queued the jobs already."""

    def _user_outputs(self, request: SubmitRequest) -> dict[str, str]:
        """--output/--error/--chdir as the user set them: the command line over the script."""
        from_script = output_options(sbatch_directives(read_head(request.script)))
        return {**from_script, **output_options(request.extra_args)}

    def log_patterns(self, request: SubmitRequest) -> tuple[str, str]:
        """Ours (``<output_dir>/%x-%j.out``/``.err``) unless the user named a file; then
        theirs, with sbatch's defaults (``slurm-%j.out``, stderr with stdout)."""
        chosen = self._user_outputs(request)
        if "output" not in chosen and "error" not in chosen:
            pattern = escape(str(request.output_dir)) + ("/%x-%A_%a" if request.array else "/%x-%j")
            return pattern + ".out", pattern + ".err"
        # Our --chdir on the command line beats the script's; one after `--` beats ours.
        work = Path(request.work_dir) / output_options(request.extra_args).get("chdir", ".")
        out = chosen.get("output", "slurm-%A_%a.out" if request.array else "slurm-%j.out")
        err = chosen.get("error", out)
        out, err = (p if p.startswith("/") else escape(str(work)) + "/" + p for p in (out, err))
        return out, err

    def submit_argv(self, request: SubmitRequest) -> list[str]:
        """sbatch's arguments: never a secret (those travel in a 0600 file, not argv)."""
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={request.name}",
            f"--chdir={request.work_dir}",
        ]
        chosen = self._user_outputs(request)
        if "output" not in chosen and "error" not in chosen:
            out, err = self.log_patterns(request)
            argv += [f"--output={out}", f"--error={err}"]
        if request.time_limit:
            argv.append(f"--time={request.time_limit}")
        if request.array:
            argv.append(f"--array={request.array}")
        given = find_options(request.extra_args, _CLUSTER_OPTION)
        if request.cluster and "clusters" not in given:
            argv.append(f"--clusters={request.cluster}")
        return argv + list(request.extra_args)

    def submit(self, request: SubmitRequest) -> Submission:
        try:
            text = request.script.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SchedulerError(f"cannot read job script {request.script}: {exc}") from exc
        env = {**os.environ, **request.env}
        # The script goes through stdin so the export line can be added without
        # writing a modified copy next to the user's file.
        proc = self._run(self.submit_argv(request), stdin=with_prefix_export(text), env=env)
        if proc.returncode != 0:
            raise SchedulerError(f"sbatch: {parse_sbatch_error(proc.stderr)}")
        job_id, cluster = parse_sbatch_parsable(proc.stdout)
        if request.array:
            ids = tuple(f"{job_id}_{task}" for task in expand_array_spec(request.array))
        else:
            ids = (job_id,)
        return Submission(ids, cluster)

    # --- query ------------------------------------------------------------------

    def query(self, jobs: Records) -> QueryResult:
        """One sacct call per cluster and chunk of jobs (``-M`` for jobs whose record
        names a cluster), then one more per chunk of ended jobs for their usage."""
        by_cluster: dict[str, set[str]] = {}
        for job_id, record in jobs.items():
            by_cluster.setdefault(record.get("cluster") or "", set()).add(job_id)
        found: dict[str, JobInfo] = {}
        problems: list[tuple[str, str]] = []
        degraded: str | None = None
        for cluster, wanted in sorted(by_cluster.items()):
            where = ["-M", cluster] if cluster else []
            bases = sorted({base_job_id(j) for j in wanted}, key=job_sort_key)
            rows: dict[str, JobInfo] = {}
            for start in range(0, len(bases), self.chunk_size):
                chunk = ",".join(bases[start : start + self.chunk_size])
                selection = [*where, "-j", chunk]
                part, bad, degraded = self._accounted(selection, selection, degraded)
                rows.update(part)
                problems += bad
            if degraded is None:
                # squeue answers for every task of an array: keep what sacct told of the
                # others (exit codes, which squeue does not print).
                extra = self._not_yet_accounted(wanted - rows.keys(), where)
                rows.update({j: info for j, info in extra.items() if j not in rows})
            rows = {j: info for j, info in rows.items() if j in wanted}
            if degraded is None:
                rows = self._with_usage(rows, where)
            found.update(rows)
        return QueryResult(found, degraded, tuple(problems))

    def _not_yet_accounted(self, missing: set[str], where: list[str]) -> dict[str, JobInfo]:
        """What squeue says of jobs sacct does not list: one call per chunk, only when
        some are missing.  sacct leaves out a job that is not yet eligible (``--begin``
        in the future) and, for a few seconds, a just-submitted array; without this,
        the tracker took such a job for unknown and filed it LOST after the grace."""
        bases = sorted({base_job_id(j) for j in missing}, key=job_sort_key)
        found: dict[str, JobInfo] = {}
        for start in range(0, len(bases), self.chunk_size):
            chunk = ",".join(bases[start : start + self.chunk_size])
            try:
                rows, _ = self._squeue([*where, "-j", chunk])
            except SchedulerError as exc:  # the jobs stay missing, as they were
                log.warning("squeue for jobs sacct does not list failed: %s", exc)
                continue
            found.update(rows)
        return found

    def _with_usage(self, found: dict[str, JobInfo], where: list[str]) -> dict[str, JobInfo]:
        """Ended jobs get what accounting measured: one more sacct (with steps) per chunk."""
        ended = sorted(
            {base_job_id(j) for j, i in found.items() if i.state.is_terminal}, key=job_sort_key
        )
        for start in range(0, len(ended), self.chunk_size):
            chunk = ",".join(ended[start : start + self.chunk_size])
            argv = ["sacct", "-P", "-n", "-o", ",".join(USAGE_FIELDS), *where, "-j", chunk]
            try:
                proc = self._run(argv)
            except SchedulerError as exc:  # what a job used never holds up its filing
                log.warning("sacct (usage) failed: %s", exc)
                continue
            if proc.returncode != 0:
                log.warning("sacct (usage) failed: %s", _first_line(proc.stderr))
                continue
            usage, bad = parse_sacct_usage(proc.stdout)
            for _, why in bad:  # never skips the job: its usage is simply not recorded
                log.warning("sacct usage row skipped: %s", why)
            for job_id, measured in usage.items():
                if job_id in found and found[job_id].state.is_terminal:
                    found[job_id] = replace(found[job_id], usage=measured)
        return found

    def _accounted(
        self, sacct_selection: list[str], squeue_selection: list[str], degraded: str | None
    ) -> tuple[dict[str, JobInfo], list[tuple[str, str]], str | None]:
        """Ask sacct; when accounting is down (or already known to be: ``degraded``), squeue.

        Returns the jobs, the rows that did not parse, and why the answer is degraded.
        """
        if degraded is None:
            argv = ["sacct", "-X", "-P", "-n", "-o", sacct_format(), *sacct_selection]
            proc = self._run(argv)
            if proc.returncode == 0 and not is_accounting_unavailable(proc.stderr):
                rows, bad = parse_sacct_rows(proc.stdout)
                return rows, bad, None
            if not is_accounting_unavailable(proc.stderr + proc.stdout):
                raise SchedulerError(f"sacct failed: {_first_line(proc.stderr)}")
            degraded = f"accounting unavailable ({_first_line(proc.stderr)}); using squeue"
        rows, bad = self._squeue(squeue_selection)
        return rows, bad, degraded

    def _squeue(self, selection: list[str]) -> tuple[dict[str, JobInfo], list[tuple[str, str]]]:
        proc = self._run(["squeue", "-h", "-t", "all", "-o", SQUEUE_FORMAT, *selection])
        if proc.returncode != 0:
            if "Invalid job id" in proc.stderr:
                return {}, []  # every ID in the list has left slurmctld's memory
            raise SchedulerError(f"squeue failed: {_first_line(proc.stderr)}")
        return parse_squeue_rows(proc.stdout)

    # --- cancel / find ----------------------------------------------------------

    def cancel(self, jobs: Records) -> list[str]:
        """One scancel per cluster (``-M`` for jobs whose record names one)."""
        by_cluster: dict[str, list[str]] = {}
        for job_id, record in jobs.items():
            by_cluster.setdefault(record.get("cluster") or "", []).append(job_id)
        for cluster, ids in sorted(by_cluster.items()):
            proc = self._run(["scancel", *(["-M", cluster] if cluster else []), *ids])
            if proc.returncode != 0:
                raise SchedulerError(f"scancel: {parse_sbatch_error(proc.stderr)}")
        return []

    def find_by_name(
        self, name: str, *, since: datetime | None = None, cluster: str | None = None
    ) -> list[JobInfo]:
        """Jobs named ``name``: sacct since ``since`` (default 7 days), plus what squeue
        knows (sacct with a start time does not list jobs that were never eligible to
        run, such as pending or held ones)."""
        start = (since or datetime.now() - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S")
        selection = [*(["-M", cluster] if cluster else []), f"--name={name}"]
        found, _, degraded = self._accounted([*selection, "-S", start], selection, None)
        if degraded is None:
            queued, _ = self._squeue(selection)
            found = {**queued, **found}
        return sorted(found.values(), key=lambda info: job_sort_key(info.job_id))


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")
