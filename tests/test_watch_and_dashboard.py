"""watch (terminal) and dashboard (web): real Redis servers, the real command, a real
HTTP client and, for the page, Debian's Chromium driven by Selenium."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import redis

import browser
from conftest import CLI, free_port
from experiment import build
from jobledger.dashboard import create_app
from jobledger.ledger import Ledger, Transition
from jobledger.overview import overview
from jobledger.states import State

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def _finish(client: redis.Redis, tag: str, job_id: str, target: State = State.COMPLETED) -> None:
    move = Transition(job_id, State.PENDING_AND_RUNNING, target, {"exit_code": 0})
    assert Ledger(client, tag).move(move, now=NOW, by="tracker") == 1


# --- watch ------------------------------------------------------------------------------


def test_watch_once_prints_counts_stalled_and_tracker_in_one_line(
    cli: CLI, jl_client: redis.Redis
) -> None:
    build(jl_client, "exp", 20, results_per_job=2)
    run = cli("watch", "-t", "exp", "--once")
    assert run.code == 0, run.err
    line = run.out.strip()
    assert "exp: ALL 20, PENDING_AND_RUNNING 2, COMPLETED 12, FAILED 4, TIMEOUT 2" in line
    assert "stalled 0" in line and "none has run for this tag" in line
    data = json.loads(cli("watch", "-t", "exp", "--once", "--json").out)
    assert (
        data["counts"]["ALL"] == 20
        and data["top"][0] == {"job_id": "1019", "key": "loss", "value": 0.05}
    ) or data["top"]
    assert len(data["events"]) == 10 and data["last_event_id"] == data["events"][-1]["id"]


def test_watch_reads_only_and_follows_new_transitions_until_ctrl_c(
    cli: CLI, jl_client: redis.Redis, server: object
) -> None:
    build(jl_client, "exp", 10, results_per_job=0)
    proc = cli.start("watch", "-t", "exp", "--interval", "0.3")
    try:
        first = proc.stdout.readline()  # type: ignore[union-attr]
        assert "ALL 10" in first
        _finish(jl_client, "exp", "1009")
        lines = [proc.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        text = "".join(lines)
        assert "job 1009: PENDING_AND_RUNNING -> COMPLETED" in text
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err  # Ctrl-C ends a view quietly
    assert "Traceback" not in err
    keys = jl_client.dbsize()
    assert cli("watch", "-t", "exp", "--once").code == 0
    assert jl_client.dbsize() == keys  # nothing written


def test_watch_on_a_terminal_is_full_screen_and_restores_it_on_ctrl_c(
    cli: CLI, jl_client: redis.Redis
) -> None:
    build(jl_client, "exp", 5, results_per_job=2)
    jl_client.sadd("exp_ALL", "[red]forged[/]")  # data, not markup
    pid, fd = pty.fork()
    if pid == 0:  # the child: jobledger on a real terminal
        os.chdir(cli.cwd)
        env = {**cli.env, "COLUMNS": "120", "LINES": "40", "TERM": "xterm"}
        os.execve(
            sys.executable,
            [sys.executable, "-m", "jobledger", "watch", "-t", "exp", "-i", "0.5"],
            env,
        )
    seen = b""
    deadline = time.monotonic() + 20
    while b"newest transitions" not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            seen += os.read(fd, 65536)
    os.kill(pid, signal.SIGINT)
    while True:
        try:
            if not select.select([fd], [], [], 5)[0]:
                break
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"\x1b[?1049h" in seen and b"\x1b[?1049l" in seen  # alternate screen, and back
    text = seen.decode("utf-8", "replace")
    assert "jobledger watch: tag exp, 6 jobs" in text and "top results" in text


def test_overview_never_writes_to_redis(jl_client: redis.Redis) -> None:
    build(jl_client, "exp", 10, results_per_job=2)
    jl_client.sadd("exp_ALL", "55")
    jl_client.set("exp-55:reward", "1")  # a seed job: `top` would index it, a view must not
    jl_client.sadd("exp_COMPLETED", "55")
    keys_before = jl_client.dbsize()
    view = overview(Ledger(jl_client, "exp"))
    assert view.counts["COMPLETED"] == 7 and view.stalled == 0
    assert jl_client.dbsize() == keys_before
    assert not jl_client.sismember("jobledger:exp:indexed", "55")


# --- dashboard API ----------------------------------------------------------------------


@contextmanager
def serving(app: object) -> Iterator[httpx.Client]:
    """``app`` served by a real uvicorn on a free loopback port, and an HTTP client of it."""
    import threading

    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not web.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        web.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def api(jl_client: redis.Redis) -> Iterator[httpx.Client]:
    with serving(create_app(jl_client)) as http:
        yield http


def test_api_counts_pages_sorts_and_filters_on_the_server(
    api: httpx.Client, jl_client: redis.Redis
) -> None:
    build(jl_client, "exp", 120, results_per_job=2)
    tags = api.get("/api/tags").json()
    assert tags["tags"]["exp"]["ALL"] == 120
    view = api.get("/api/tags/exp").json()
    assert view["counts"]["FAILED"] == 24 and len(view["events"]) == 10

    page = api.get("/api/tags/exp/jobs", params={"limit": 10, "offset": 20}).json()
    assert page["total"] == 120 and page["jobs"][0]["job_id"] == "1020"
    assert len(page["jobs"]) == 10 and page["jobs"][0]["state"] == "COMPLETED"

    failed = api.get("/api/tags/exp/jobs", params={"state": "FAILED", "limit": 1000}).json()
    assert failed["total"] == 24 and {j["state"] for j in failed["jobs"]} == {"FAILED"}

    longest = api.get("/api/tags/exp/jobs", params={"sort": "elapsed_s", "desc": "1"}).json()
    elapsed = [float(j["elapsed_s"]) for j in longest["jobs"][:5]]
    assert elapsed == sorted(elapsed, reverse=True) and elapsed[0] == 108
    # Running jobs have no elapsed time: last, in both directions.
    tail = api.get(
        "/api/tags/exp/jobs", params={"sort": "elapsed_s", "desc": "1", "offset": 110}
    ).json()
    assert all("elapsed_s" not in j for j in tail["jobs"])
    tail_up = api.get("/api/tags/exp/jobs", params={"sort": "elapsed_s", "offset": 110}).json()
    assert all("elapsed_s" not in j for j in tail_up["jobs"])

    # The cached order follows a move: the first page is fresh after a state change.
    _finish(jl_client, "exp", "1009", State.FAILED)
    again = api.get("/api/tags/exp/jobs", params={"state": "FAILED", "limit": 1000}).json()
    assert again["total"] == 25 and "1009" in [j["job_id"] for j in again["jobs"]]


def test_api_job_logs_failures_trend_and_events_are_the_clis_data(
    api: httpx.Client, cli: CLI, jl_client: redis.Redis, tmp_path: Path
) -> None:
    build(jl_client, "exp", 30, results_per_job=3)
    log = tmp_path / "out.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    jl_client.hset("jobledger:exp:job:1006", "stdout", str(log).replace("%", "%%"))

    job = api.get("/api/tags/exp/jobs/1006").json()
    assert job == json.loads(cli("show", "1006", "-t", "exp", "--json").out)
    assert job["states"] == ["FAILED"] and job["results"]["loss"]
    tail = api.get("/api/tags/exp/jobs/1006/logs", params={"lines": 3}).json()
    assert tail["lines"] == ["line 97", "line 98", "line 99"]
    err = api.get("/api/tags/exp/jobs/1006/logs", params={"stream": "stderr"}).json()
    assert err["lines"] is None and err["unreadable"] == "no file recorded for this job"

    failures = api.get("/api/tags/exp/failures").json()
    assert failures == json.loads(cli("failures", "-t", "exp", "--json").out)

    trend = api.get("/api/tags/exp/trend", params={"key": "reward"}).json()
    cli_trend = json.loads(cli("trend", "reward", "-t", "exp", "--json").out)
    assert trend["points"] == cli_trend["points"] and trend["summary"] == cli_trend["summary"]
    bins = api.get("/api/tags/exp/trend", params={"key": "reward", "bins": 3}).json()["bins"]
    assert [b["jobs"] for b in bins] == [10, 10, 10] and bins[0]["first"] == "1000"

    newest = api.get("/api/tags/exp").json()["last_event_id"]
    assert api.get("/api/tags/exp/events", params={"after": newest}).json()["events"] == []
    _finish(jl_client, "exp", "1009")
    new = api.get("/api/tags/exp/events", params={"after": newest}).json()["events"]
    assert [(e["job"], e["to"]) for e in new] == [("1009", "COMPLETED")]


def test_api_bad_input_is_a_400_with_one_message(api: httpx.Client, jl_client: redis.Redis) -> None:
    build(jl_client, "exp", 3, results_per_job=0)
    for path, params, status, message in (
        ("/api/tags/bad*tag", {}, 400, "invalid tag"),
        ("/api/tags/exp/jobs", {"sort": "colour"}, 400, "cannot sort by 'colour'"),
        ("/api/tags/exp/jobs", {"state": "DONE"}, 400, "unknown state 'DONE'"),
        ("/api/tags/exp/jobs", {"limit": "x"}, 400, "limit must be a whole number"),
        ("/api/tags/exp/jobs/abc", {}, 400, "invalid job ID"),
        ("/api/tags/exp/jobs/42", {}, 404, "not in the ledger"),
        ("/api/tags/exp/trend", {}, 400, "give ?key="),
        ("/api/tags/exp/events", {"after": "(0"}, 400, "must be an event ID"),
        ("/api/tags/exp/jobs", {"state": "FAILED,TIMEOUT"}, 400, "one state at a time"),
        ("/api/tags/exp/jobs/42/logs", {}, 404, "not in the ledger"),
        ("/api/nothing", {}, 404, "Not Found"),
    ):
        reply = api.get(path, params=params)
        assert reply.status_code == status, (path, reply.text)
        assert message in reply.json()["error"]


def test_dashboard_is_read_only_and_answers_to_localhost_only(
    api: httpx.Client, jl_client: redis.Redis
) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        reply = api.request(method, "/api/tags")
        assert reply.status_code == 405 and reply.headers["allow"] == "GET, HEAD"
        assert reply.json() == {"error": "read-only: only GET and HEAD"}
    assert api.head("/").status_code == 200
    # DNS rebinding: a page of evil.example whose name now points at 127.0.0.1.
    assert api.get("/api/tags", headers={"Host": "evil.example"}).status_code == 403
    page = api.get("/")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert b'<script src="/static/app.js"' in page.content
    assert b"http" not in api.get("/static/app.js").content.replace(b"http://www.w3.org", b"")


def test_a_token_guards_every_request_and_a_link_sets_a_cookie(jl_client: redis.Redis) -> None:
    token = "s3cret-token"
    with serving(create_app(jl_client, token=token)) as http:
        assert http.get("/api/tags").status_code == 401
        assert http.get("/static/app.js").status_code == 401
        assert http.get("/api/tags", headers={"Authorization": "Bearer wrong"}).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert http.get("/api/tags", headers=bearer).status_code == 200
        first = http.get("/", params={"token": token})
        assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
        assert http.get("/api/tags").status_code == 200  # the cookie carries it now
        assert http.post("/api/tags", headers=bearer).status_code == 405


def test_the_dashboard_works_with_a_redis_user_that_can_only_read(
    jl_client: redis.Redis, server: object, tmp_path: Path
) -> None:
    build(jl_client, "exp", 20, results_per_job=2)
    user = f"reader{uuid.uuid4().hex[:8]}"
    jl_client.execute_command(
        "ACL",
        "SETUSER",
        user,
        "on",
        ">readpw",
        "~*",
        "+@read",
        "+@connection",
        "+@transaction",
        "-@write",
        "-@scripting",
    )
    try:
        from jobledger.config import Settings
        from jobledger.connection import connect

        url = server.url  # type: ignore[attr-defined]
        reader = connect(Settings.from_url(url, username=user, password="readpw"))
        with serving(create_app(reader)) as http:
            for path in (
                "/api/tags",
                "/api/tags/exp",
                "/api/tags/exp/jobs?sort=elapsed_s",
                "/api/tags/exp/jobs/1004",
                "/api/tags/exp/jobs/1004/logs",
                "/api/tags/exp/failures",
                "/api/tags/exp/trend?key=reward_*&bins=5",
                "/api/tags/exp/events?after=0",
            ):
                reply = http.get(path)
                assert reply.status_code == 200, (path, reply.text)
    finally:
        jl_client.execute_command("ACL", "DELUSER", user)


def _url(proc: subprocess.Popen[str]) -> str:
    """The URL the dashboard prints once it listens."""
    line = proc.stderr.readline()  # type: ignore[union-attr]
    assert "jobledger dashboard: http://" in line, line
    return line.split()[2]


def test_dashboard_command_prints_a_url_with_a_new_token_and_checks_its_options(
    cli: CLI, tmp_path: Path
) -> None:
    port = free_port()
    proc = cli.start("dashboard", "--port", str(port))
    try:
        url = _url(proc)
        assert url.startswith(f"http://127.0.0.1:{port}/?token=")
        token = url.split("?token=")[1]
        assert len(token) >= 24
        assert httpx.get(f"http://127.0.0.1:{port}/api/tags").status_code == 401
        assert httpx.get(url).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0  # Ctrl-C stops it quietly

    secret = tmp_path / "token"
    secret.write_text("a-token-from-a-file-0123\n")
    secret.chmod(0o600)
    port = free_port()
    proc = cli.start("dashboard", "--port", str(port), "--token-file", str(secret))
    try:
        assert _url(proc) == f"http://127.0.0.1:{port}/"  # a token of yours is not printed
        bearer = {"Authorization": "Bearer a-token-from-a-file-0123"}
        assert httpx.get(f"http://127.0.0.1:{port}/api/tags", headers=bearer).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)

    for args, message in (
        (["--port", "99999"], "Invalid value for '--port'"),
        (["--no-token", "--host", "0.0.0.0"], "--no-token needs a loopback --host"),
        (["--token", "short"], "a dashboard token is 16 to 200"),
        (["--token-file", str(tmp_path / "none")], "cannot read --token-file"),
    ):
        bad = cli("dashboard", *args)
        assert bad.code == 2 and bad.err.splitlines()[-1].startswith("jobledger: error:"), args
        assert message in bad.err, (args, bad.err)
    warned = cli(
        "dashboard", "--token", "a-token-on-the-command-line", "--url", "redis://127.0.0.1:1"
    )
    assert warned.code == 1 and "visible to other users in ps" in warned.err


# --- the page in a real browser ----------------------------------------------------------


def _browser() -> object:
    if not browser.installed():
        why = "Debian's chromium and chromium-driver are not installed (./scripts/test.sh does)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires the browser test: {why}")
        pytest.skip(why)
    return browser.headless_chromium(1400, 1600)


@pytest.mark.parametrize("server", ["redis-server"], indirect=True)
def test_the_page_filters_opens_a_job_and_updates_live_in_chromium(
    cli: CLI, jl_client: redis.Redis
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    build(jl_client, "exp", 60, results_per_job=3)
    port = free_port()
    proc = cli.start("dashboard", "--port", str(port), "--poll", "0.5")
    chromium = _browser()
    try:
        url = _url(proc)
        d = chromium
        wait = WebDriverWait(d, 15)  # type: ignore[arg-type]
        d.get(url)  # type: ignore[attr-defined]

        def text(id_: str) -> str:  # read in one step: a refresh may replace the element
            script = "const e = document.getElementById(arguments[0]); return e ? e.innerText : ''"
            return str(d.execute_script(script, id_))  # type: ignore[attr-defined]

        wait.until(lambda _: "of 60" in text("page-info"))
        assert text("count-FAILED").split() == ["12", "FAILED"]

        d.find_element(By.ID, "count-FAILED").click()  # type: ignore[attr-defined]
        wait.until(lambda _: "of 12" in text("page-info"))
        rows = d.find_elements(By.CSS_SELECTOR, "#jobs tbody tr.job")  # type: ignore[attr-defined]
        assert len(rows) == 12 and {r.get_attribute("data-state") for r in rows} == {"FAILED"}

        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", rows[0])  # type: ignore[attr-defined]
        rows[0].click()
        wait.until(lambda _: text("job-id") == "1006")
        assert "loss" in text("job-results") and "FAILED" in text("job-state")

        d.find_element(By.ID, "state-filter").send_keys("ALL")  # type: ignore[attr-defined]
        wait.until(lambda _: "of 60" in text("page-info"))
        _finish(jl_client, "exp", "1009")  # a state change while the page is open
        wait.until(lambda _: text("count-COMPLETED").split()[0] == "37")
        assert "1009" in text("events")

        d.find_element(By.ID, "trend-key").send_keys("reward")  # type: ignore[attr-defined]
        d.find_element(By.ID, "trend-go").click()  # type: ignore[attr-defined]
        wait.until(lambda _: "60 jobs" in text("trend-summary"))
        lines = d.find_elements(By.CSS_SELECTOR, "#trend-chart polyline")  # type: ignore[attr-defined]
        assert lines
        errors = [
            e
            for e in d.get_log("browser")  # type: ignore[attr-defined]
            if e["level"] == "SEVERE"
        ]
        assert errors == []
        assert "token" not in d.current_url  # type: ignore[attr-defined]  # kept in a cookie
        ARTIFACTS.mkdir(exist_ok=True)
        d.execute_script("window.scrollTo(0, 0)")  # type: ignore[attr-defined]
        d.save_screenshot(str(ARTIFACTS / "dashboard.png"))  # type: ignore[attr-defined]
    finally:
        chromium.quit()  # type: ignore[attr-defined]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def test_pages_kept_up_to_date_from_events_match_a_fresh_sort(
    jl_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    from jobledger import pages as pages_module
    from jobledger.pages import SORTS, JobPages

    sorts_from_scratch: list[tuple[str, str]] = []
    computed = pages_module._computed

    def counted(ledger: Ledger, name: str, sort: str, *args: object) -> object:
        sorts_from_scratch.append((name, sort))
        return computed(ledger, name, sort, *args)  # type: ignore[arg-type]

    build(jl_client, "exp", 200, results_per_job=0)
    ledger = Ledger(jl_client, "exp")
    kept = JobPages(kept=100)
    views = [
        (s, sort, desc)
        for s in ("ALL", "FAILED", "PENDING_AND_RUNNING", "COMPLETED")
        for sort in SORTS
        for desc in (False, True)
    ]

    def pages(cache: JobPages) -> list[object]:
        return [
            [
                j["job_id"]
                for j in cache.page(ledger, state=s, sort=sort, descending=d, limit=1000).jobs
            ]
            for s, sort, d in views
        ]

    pages(kept)  # every order computed once, then only advanced
    monkeypatch.setattr(pages_module, "_computed", counted)
    rng = random.Random(9)
    for round_ in range(4):
        running = sorted(ledger.members(State.PENDING_AND_RUNNING))
        for job_id in rng.sample(running, 3):
            target = rng.choice([State.COMPLETED, State.FAILED])
            fields = {"elapsed_s": rng.randrange(1000), "exit_code": int(target is State.FAILED)}
            ledger.move(
                Transition(job_id, State.PENDING_AND_RUNNING, target, fields), now=NOW, by="tracker"
            )
        ledger.record_submission(str(5000 + round_), now=NOW)  # a new job
        if round_ == 2:  # a move made without jobledger: no event, the set sizes change
            jl_client.smove("exp_COMPLETED", "exp_FAILED", "1000")
        sorts_from_scratch.clear()
        fresh = pages(JobPages())
        assert len(sorts_from_scratch) == len(views) // 2  # the fresh cache: every order
        sorts_from_scratch.clear()
        assert pages(kept) == fresh, f"round {round_}"
        if round_ != 2:  # advanced from the events, not sorted again
            assert sorts_from_scratch == [], f"round {round_}"
        else:  # the sets a move without an event changed are sorted again
            assert {name for name, _ in sorts_from_scratch} == {"FAILED", "COMPLETED"}


def test_odd_inputs_a_view_meets(cli: CLI, jl_client: redis.Redis, tmp_path: Path) -> None:
    from jobledger.logs import read_lines

    build(jl_client, "exp", 3, results_per_job=0)
    run = cli("watch", "-t", "exp", "--once", "--events", "0")
    assert run.code == 0 and "ALL 3" in run.out, run.err
    # A name written into the tag registry by hand is skipped, not fatal.
    jl_client.sadd("jobledger:tags", "not a tag!")
    assert cli("tags", "--json").code == 0
    with serving(create_app(jl_client)) as http:
        assert list(http.get("/api/tags").json()["tags"]) == ["exp"]
    # A progress bar: carriage returns, no newline, far more than a MiB.
    bar = tmp_path / "err.log"
    bar.write_bytes(b"".join(b"\r%d%%|####" % (i % 100) for i in range(300_000)) + b"\rdone")
    assert read_lines(str(bar), 3) == ["98%|####", "99%|####", "done"]
