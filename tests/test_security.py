"""Security (issue 4): passwords, ACL users, TLS, job-side least privilege, secrets that
never leak, warnings about readable secrets, and the embedded server's private socket.

Every test starts its own real ``/usr/bin/redis-server`` (Debian's 7.0, built with TLS)
on a free loopback port and stops it in a finalizer.  Passwords are set with ``CONFIG
SET``/``ACL SETUSER`` after the start, never on the server's command line, so that the
``ps`` checks below also cover the test's own processes.  Certificates are generated
with ``openssl`` into the module's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

import jobledger
from conftest import CLI, Run, free_port
from jobledger import embedded
from jobledger.config import Settings, resolve
from jobledger.connection import connect
from jobledger.errors import RedisUnavailable
from jobledger.store import top_results

REDIS_SERVER = Path("/usr/bin/redis-server")
ERROR = "jobledger: error: "
WARNING = "jobledger: warning: "
# A password with characters that need care in a URL, in TOML and in a file.
ODD_PASSWORD = 'p@ss w:rd/%"x'

# The least-privilege job user of docs/reliability.md (Security) for tag "t": read/write
# its results and their indexes, read (only) its ledger sets, nothing else.
JOB_KEYS = (
    "resetkeys",
    "~t-*",
    "~jobledger:t:index:*",
    "~jobledger:t:indexed",
    "~jobledger:t:numeric",
    "~jobledger:t:numeric:*",
    "~jobledger:t:heartbeats",
    "~jobledger:tags",
    "%R~t_*",
)
JOB_COMMANDS = (
    "+ping",
    "+get",
    "+mget",
    "+set",
    "+del",
    "+incrby",
    "+sadd",
    "+srem",
    "+smembers",
    "+sismember",
    "+sdiff",
    "+zadd",
    "+zrem",
    "+zrevrange",
    "+scan",
    "+multi",
    "+exec",
    "+evalsha",
    "+script|load",
)


# --- servers and certificates -----------------------------------------------------


@dataclass
class Pki:
    """A test CA, certificates it signed, and an unrelated CA."""

    dir: Path
    ca: Path
    server_crt: Path
    server_key: Path
    client_crt: Path
    client_key: Path
    other_ca: Path
    wrong_host_crt: Path
    wrong_host_key: Path


def _openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _new_ca(d: Path, name: str) -> None:
    _openssl(
        d,
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
        *("-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2"),
        *("-subj", f"/CN=jobledger test {name}"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )


def _signed(d: Path, name: str, ca: str, san: str | None, usage: str) -> None:
    _openssl(
        d,
        *("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
        *("-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"),
    )
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
        "authorityKeyIdentifier=keyid",
        *([f"subjectAltName={san}"] if san else []),
    ]
    (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(
        d,
        *("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key"),
        *("-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext"),
    )
    (d / f"{name}.key").chmod(0o600)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    _new_ca(d, "ca")
    _new_ca(d, "other-ca")
    _signed(d, "server", "ca", "IP:127.0.0.1,DNS:localhost", "serverAuth")
    _signed(d, "client", "ca", None, "clientAuth")
    _signed(d, "wrong-host", "ca", "DNS:other.invalid", "serverAuth")
    return Pki(
        d,
        d / "ca.crt",
        d / "server.crt",
        d / "server.key",
        d / "client.crt",
        d / "client.key",
        d / "other-ca.crt",
        d / "wrong-host.crt",
        d / "wrong-host.key",
    )


@dataclass
class Srv:
    """A running redis-server and an authenticated admin client for it."""

    port: int
    proc: subprocess.Popen[bytes]
    client_kwargs: dict[str, object] = field(default_factory=dict)

    @property
    def url(self) -> str:
        scheme = "rediss" if self.client_kwargs.get("ssl") else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def admin(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, decode_responses=True, **self.client_kwargs
        )


StartServer = Callable[..., Srv]


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[StartServer]:
    """Start Debian's redis-server on a free loopback port; every one is stopped afterwards.

    ``password`` becomes ``requirepass`` (by CONFIG SET, after the start: not in argv);
    ``tls`` serves TLS only, with ``tls-auth-clients`` as given.
    """
    if not REDIS_SERVER.exists():
        pytest.fail("Debian's redis-server is not installed; run ./scripts/test.sh")
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        *,
        password: str | None = None,
        tls: Pki | None = None,
        server_cert: tuple[Path, Path] | None = None,
        auth_clients: str = "no",
    ) -> Srv:
        d = tmp_path / f"redis-{len(procs)}"
        d.mkdir()
        port = free_port()
        args = [str(REDIS_SERVER), "--bind", "127.0.0.1", "--dir", str(d)]
        args += ["--save", "", "--appendonly", "no"]
        kwargs: dict[str, object] = {}
        if tls is None:
            args += ["--port", str(port)]
        else:
            crt, key = server_cert or (tls.server_crt, tls.server_key)
            args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(crt)]
            args += ["--tls-key-file", str(key), "--tls-ca-cert-file", str(tls.ca)]
            args += ["--tls-auth-clients", auth_clients]
            kwargs = {"ssl": True, "ssl_ca_certs": str(tls.ca), "ssl_check_hostname": False}
            kwargs |= {"ssl_certfile": str(tls.client_crt), "ssl_keyfile": str(tls.client_key)}
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        srv = Srv(port, proc, kwargs)
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, f"redis-server exited with {proc.returncode}"
            try:
                with redis.Redis(
                    host="127.0.0.1", port=port, socket_connect_timeout=0.2, **kwargs
                ) as probe:
                    probe.ping()
                    if password is not None:
                        probe.config_set("requirepass", password)
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not answer"
                time.sleep(0.02)
        if password is not None:
            srv.client_kwargs["password"] = password
        return srv

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=10)


# --- the CLI ----------------------------------------------------------------------


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBLEDGER_", "SLURM_"))}
    env.pop("REDIS_URL", None)
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def make_cli(tmp_path: Path, name: str = "exp", **env: str) -> CLI:
    work = tmp_path / name
    work.mkdir(exist_ok=True)
    return CLI(work, {**clean_env(tmp_path), **env})


def run_all(*calls: tuple[CLI, tuple[str, ...]]) -> list[Run]:
    """Independent CLI invocations, run concurrently; results in the order given."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call[0](*call[1]), calls))


def one_error(run: Run, code: int = 1) -> str:
    """The single ``jobledger: error:`` line of a failed run (no traceback, no stdout)."""
    assert run.code == code, run
    assert run.out == "", run
    lines = run.err.splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith(ERROR), run.err
    return lines[0][len(ERROR) :]


def succeeds(run: Run) -> str:
    assert (run.code, run.err) == (0, ""), run
    return run.out


def write_secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def write_toml(path: Path, mode: int = 0o600, **values: str) -> Path:
    return write_secret(
        path, "".join(f"{k} = {toml_str(v)}\n" for k, v in values.items()), mode=mode
    )


def script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/bash\n" + body.strip() + "\n")
    return path


# --- 1. requirepass -----------------------------------------------------------------


def test_requirepass_server_accepts_url_config_file_password_file_and_env(
    tmp_path: Path, start_redis: StartServer
) -> None:
    srv = start_redis(password=ODD_PASSWORD)
    hp = f"127.0.0.1:{srv.port}"
    pw_file = write_secret(tmp_path / "redis.pw", ODD_PASSWORD + "\n")
    by_url = make_cli(tmp_path, "url")
    by_toml = make_cli(tmp_path, "toml")
    write_toml(by_toml.cwd / "jobledger.toml", url=srv.url, password=ODD_PASSWORD)
    by_option = make_cli(tmp_path, "option")
    by_env = make_cli(tmp_path, "env", JOBLEDGER_URL=srv.url, JOBLEDGER_PASSWORD_FILE=str(pw_file))
    in_url = f"redis://:{quote(ODD_PASSWORD, safe='')}@{hp}/0"
    option_args = ("--url", srv.url, "--password-file", str(pw_file))
    writes = run_all(
        (by_url, ("set", "--namespace", "ns", "--url", in_url, "via-url", "1")),
        (by_toml, ("set", "--namespace", "ns", "via-toml", "2")),
        (by_option, ("set", "--namespace", "ns", *option_args, "via-option", "3")),
        (by_env, ("set", "--namespace", "ns", "via-env", "4")),
    )
    for run in writes:
        succeeds(run)
    # All four reached the same, password-protected server.
    names = ["ns:via-url", "ns:via-toml", "ns:via-option", "ns:via-env"]
    assert srv.admin().mget(names) == ["1", "2", "3", "4"]
    listed = succeeds(by_env("keys", "--namespace", "ns"))
    assert listed.split() == ["via-env", "via-option", "via-toml", "via-url"]


def test_wrong_or_missing_password_is_one_line_naming_the_masked_url(
    tmp_path: Path, start_redis: StartServer
) -> None:
    srv = start_redis(password="right-one")
    hp = f"127.0.0.1:{srv.port}"
    wrong_file = write_secret(tmp_path / "wrong.pw", "wrong-in-file\n")
    cli = make_cli(tmp_path)
    write_toml(tmp_path / "bad.toml", url=srv.url, password="wrong-in-toml")
    in_url, in_file, in_toml, missing = run_all(
        (cli, ("status", "-t", "t", "--url", f"redis://:wrong-in-url@{hp}/0")),
        (cli, ("status", "-t", "t", "--url", srv.url, "--password-file", str(wrong_file))),
        (cli, ("status", "-t", "t", "--config", str(tmp_path / "bad.toml"))),
        (cli, ("status", "-t", "t", "--url", srv.url)),
    )
    assert one_error(in_url).startswith(
        f"cannot use Redis at redis://:****@{hp}/0: authentication failed (invalid "
    )
    for run in (in_file, in_toml):
        assert one_error(run).startswith(f"cannot use Redis at {srv.url}: authentication failed")
    assert one_error(missing) == (
        f"cannot use Redis at {srv.url}: authentication failed (Authentication required.)"
    )
    for run in (in_url, in_file, in_toml, missing):
        assert "wrong-in" not in run.err
        assert "right-one" not in run.err


# --- 2. ACL users -------------------------------------------------------------------


def test_acl_user_connects_by_url_and_by_username_with_password_file(
    tmp_path: Path, start_redis: StartServer
) -> None:
    srv = start_redis(password="admin-pw")
    admin = srv.admin()
    admin.acl_setuser(
        "alice", enabled=True, passwords=["+alice-pw"], keys=["*"], commands=["+@all"]
    )
    hp = f"127.0.0.1:{srv.port}"
    write_secret(tmp_path / "alice.pw", "alice-pw\n")
    by_url = make_cli(tmp_path, "url")
    by_toml = make_cli(tmp_path, "toml")
    write_toml(
        by_toml.cwd / "jobledger.toml", url=srv.url, username="alice", password_file="../alice.pw"
    )
    wrong_user = make_cli(tmp_path, "mallory")
    a, b, c = run_all(
        (by_url, ("set", "--namespace", "ns", "--url", f"redis://alice:alice-pw@{hp}/0", "a", "1")),
        (by_toml, ("set", "--namespace", "ns", "b", "2")),
        (wrong_user, ("status", "-t", "t", "--url", f"redis://mallory:alice-pw@{hp}/0")),
    )
    succeeds(a)
    succeeds(b)
    assert admin.mget(["ns:a", "ns:b"]) == ["1", "2"]
    assert one_error(c).startswith(
        f"cannot use Redis at redis://mallory:****@{hp}/0: authentication failed"
    )
    # The CLI prints str() of this error; the wrong password is masked there too.
    with pytest.raises(RedisUnavailable) as refused:
        connect(Settings.from_url(f"redis://alice:not-alices@{hp}/0"))
    assert str(refused.value).startswith(
        f"cannot use Redis at redis://alice:****@{hp}/0: authentication failed"
    )
    # The config file's username really is the one used (not the default user).
    settings = resolve({}, env={}, cwd=by_toml.cwd, user_config=tmp_path / "none.toml")
    with connect(settings) as client:
        assert client.acl_whoami() == "alice"


# --- 3. TLS -------------------------------------------------------------------------


def test_tls_server_is_reached_with_the_configured_ca(
    tmp_path: Path, start_redis: StartServer, pki: Pki
) -> None:
    srv = start_redis(tls=pki)
    cli = make_cli(tmp_path)
    shutil.copy(pki.ca, cli.cwd / "site-ca.pem")
    write_toml(cli.cwd / "jobledger.toml", url=srv.url, tls_ca_certs="site-ca.pem")
    localhost = f"rediss://localhost:{srv.port}/0"
    by_ip, by_name = run_all(
        (cli, ("set", "--namespace", "ns", "k", "v")),
        (cli, ("get", "--namespace", "ns", "--url", localhost, "absent")),
    )
    succeeds(by_ip)
    assert by_name.code == 2 and "absent" in by_name.err  # connected; the key does not exist
    assert srv.admin().get("ns:k") == "v"


def test_tls_with_a_wrong_ca_no_ca_or_a_wrong_host_is_one_line(
    tmp_path: Path, start_redis: StartServer, pki: Pki
) -> None:
    srv = start_redis(tls=pki)
    wrong_host = start_redis(tls=pki, server_cert=(pki.wrong_host_crt, pki.wrong_host_key))
    other, system, good_ca = (make_cli(tmp_path, name) for name in ("other", "system", "good"))
    write_toml(other.cwd / "jobledger.toml", url=srv.url, tls_ca_certs=str(pki.other_ca))
    write_toml(system.cwd / "jobledger.toml", url=srv.url)  # the system's CAs only
    write_toml(good_ca.cwd / "jobledger.toml", url=wrong_host.url, tls_ca_certs=str(pki.ca))
    by_other_ca, by_system_ca, by_host = run_all(
        (other, ("status", "-t", "t")),
        (system, ("status", "-t", "t")),
        (good_ca, ("status", "-t", "t")),
    )
    for run in (by_other_ca, by_system_ca):
        message = one_error(run)
        assert message.startswith(f"cannot use Redis at {srv.url}: TLS failure ("), message
        assert "certificate verify failed" in message
    # A certificate from the right CA but for another host is refused too.
    message = one_error(by_host)
    assert message.startswith(f"cannot use Redis at {wrong_host.url}: TLS failure ("), message
    assert "IP address mismatch" in message
    # Job code (which keeps reconnecting through a Redis restart) is refused at once too.
    started = time.monotonic()
    with pytest.raises(RedisUnavailable, match=r"TLS failure .*certificate verify failed"):
        jobledger.results(
            job_id="1", tag="t", settings=Settings.from_url(srv.url, tls_ca_certs=str(pki.other_ca))
        )
    assert time.monotonic() - started < 30, "refused at once, not after the 60 s window"


def test_tls_client_certificate_is_required_and_accepted(
    tmp_path: Path, start_redis: StartServer, pki: Pki
) -> None:
    srv = start_redis(tls=pki, auth_clients="yes")
    with_cert, without = make_cli(tmp_path, "with"), make_cli(tmp_path, "without")
    write_toml(
        with_cert.cwd / "jobledger.toml",
        url=srv.url,
        tls_ca_certs=str(pki.ca),
        tls_certfile=str(pki.client_crt),
        tls_keyfile=str(pki.client_key),
    )
    write_toml(without.cwd / "jobledger.toml", url=srv.url, tls_ca_certs=str(pki.ca))
    good, refused = run_all(
        (with_cert, ("set", "--namespace", "ns", "k", "v")), (without, ("status", "-t", "t"))
    )
    succeeds(good)
    assert srv.admin().get("ns:k") == "v"
    # TLS 1.3 refuses a missing client certificate after the handshake: the client sees
    # "certificate required", or an EOF/reset, depending on when it reads or writes.
    assert one_error(refused).startswith(f"cannot use Redis at {srv.url}: ")


# --- 4. job-side least privilege ------------------------------------------------------


def acl_server(start_redis: StartServer) -> Srv:
    """A server whose default user is off: an ``admin`` user for the CLI, ``job_t`` for jobs."""
    srv = start_redis(password="bootstrap")
    admin = srv.admin()
    admin.execute_command("ACL", "SETUSER", "admin", "on", ">admin-pw", "~*", "&*", "+@all")
    admin.execute_command(
        "ACL", "SETUSER", "job_t", "on", ">job-pw", *JOB_KEYS, "resetchannels", "-@all",
        *JOB_COMMANDS,
    )  # fmt: skip
    admin.execute_command("ACL", "SETUSER", "default", "off")
    srv.client_kwargs |= {"username": "admin", "password": "admin-pw"}
    return srv


def reset_job_user(admin: redis.Redis, keys: Sequence[str], commands: Sequence[str]) -> None:
    """Make ``job_t`` (password job-pw) anew with exactly these key patterns and commands."""
    admin.execute_command(
        "ACL", "SETUSER", "job_t", "reset", "on", ">job-pw", *keys, "resetchannels",
        "-@all", *commands,
    )  # fmt: skip


def job_workload(settings: Settings) -> list[object]:
    """Everything a job does with its results: set/update/incr/get/keys/items/top/delete."""
    fresh = jobledger.results(job_id="9", tag="t", settings=settings)
    seen: list[object] = [fresh.keys(), fresh.top()]  # unindexed: SCAN
    r = jobledger.results(job_id="7", tag="t", settings=settings)
    r.set("reward", 0.5)
    r.update({"loss": 3, "model": "gnn"})
    seen += [r.incr("steps", 2), r.incr("lr", 0.25), r.get("reward"), r.get_bytes("model")]
    seen += [r.keys(), r.items(), [(e.key, e.value) for e in r.top(2)], r.delete("model")]
    seen.append([(e.job_id, e.key) for e in top_results(r.client, "t", 1)])
    fresh.client.close()
    r.client.close()
    return seen


def test_job_user_writes_its_tags_results_and_nothing_else(
    tmp_path: Path, start_redis: StartServer
) -> None:
    srv = acl_server(start_redis)
    admin = srv.admin()
    admin.sadd("t_ALL", "7", "9")
    admin.sadd("u_ALL", "1")
    job_url = f"redis://job_t:job-pw@127.0.0.1:{srv.port}/0"
    job = Settings.from_url(job_url)
    assert job_workload(job) == [
        [],
        [],
        2,
        0.25,
        "0.5",
        b"gnn",
        ["loss", "lr", "model", "reward", "steps"],
        {"loss": "3", "lr": "0.25", "model": "gnn", "reward": "0.5", "steps": "2"},
        [("loss", 3.0), ("steps", 2.0)],
        1,
        [("7", "loss")],
    ]
    assert admin.get("t-7:reward") == "0.5"
    assert admin.smembers("jobledger:t:index:7") == {"loss", "lr", "reward", "steps"}

    # Another tag's results, its ledger, and this tag's own ledger are out of reach.
    other = jobledger.results(job_id="1", tag="u", settings=job)
    denied: list[Callable[[], object]] = [
        lambda: other.set("x", 1),
        lambda: other.incr("n", 1),  # the Lua path: EVALSHA declares the keys
        lambda: other.get("x"),
        lambda: other.client.sadd("u_ALL", "2"),
        lambda: other.client.sadd("t_ALL", "8"),  # a job may read its ledger, not write it
        lambda: other.client.hset("jobledger:t:job:7", "state", "COMPLETED"),
        lambda: other.client.xadd("jobledger:t:events", {"job": "7"}),
        lambda: other.client.flushall(),
        lambda: other.client.keys("*"),
        lambda: other.client.config_get("requirepass"),
        lambda: other.client.eval("return 1", 0),
    ]
    for attempt in denied:
        with pytest.raises(redis.exceptions.NoPermissionError):
            attempt()
    # A script the job loads itself is checked command by command, key by key.
    sneaky = other.client.script_load("return redis.call('SET', 'u-1:x', 1)")
    with pytest.raises(redis.ResponseError, match="can't access at least one of the keys"):
        other.client.evalsha(sneaky, 0)
    assert admin.get("u-1:x") is None
    assert admin.smembers("u_ALL") == {"1"}
    assert admin.smembers("t_ALL") == {"7", "9"}
    assert not admin.exists("jobledger:t:job:7", "jobledger:t:events")
    # The key pattern is a prefix: a tag named "t-<anything>" is covered too (documented).
    other.client.set("t-x-1:k", "1")
    assert admin.get("t-x-1:k") == "1"
    other.client.close()

    # Connecting as the job user works; NOPERM is reported as one line by the CLI.
    refused = make_cli(tmp_path)("status", "-t", "u", "--url", job_url)
    message = one_error(refused)
    assert "no permissions" in message, message
    assert "job-pw" not in refused.err


def test_each_command_of_the_job_acl_is_needed(start_redis: StartServer) -> None:
    """JOB_COMMANDS (documented) is minimal: without any one of them the workload fails."""
    srv = acl_server(start_redis)
    admin = srv.admin()
    job = Settings.from_url(f"redis://job_t:job-pw@127.0.0.1:{srv.port}/0")
    needed = []
    for command in JOB_COMMANDS:
        admin.flushall()
        admin.script_flush()
        admin.sadd("t_ALL", "7", "9")
        rest = [c for c in JOB_COMMANDS if c != command]
        reset_job_user(admin, JOB_KEYS, rest)
        admin.acl_log_reset()
        try:
            job_workload(job)
        except (redis.ResponseError, RedisUnavailable) as exc:  # NOPERM, or EXEC/Lua refused
            # The write script asks the ACL itself before writing (no ACL LOG entry then).
            asked = "may not run every command of a results write" in str(exc)
            assert asked or admin.acl_log(), f"a failure without {command} that ACL did not cause"
            needed.append(command)
    assert needed == list(JOB_COMMANDS)


def test_a_job_user_with_the_acl_of_before_heartbeats_still_writes_its_results(
    tmp_path: Path, start_redis: StartServer
) -> None:
    srv = acl_server(start_redis)
    admin = srv.admin()
    old_keys = [k for k in JOB_KEYS if "heartbeats" not in k]  # the ACL jobledger 0.2 documented
    reset_job_user(admin, old_keys, JOB_COMMANDS)
    job = Settings.from_url(f"redis://job_t:job-pw@127.0.0.1:{srv.port}/0")
    res = jobledger.results(job_id="7", tag="t", settings=job)
    res.set("reward", 0.5)  # the MULTI with the heartbeat is refused whole, then retried
    res.update({"a": 1, "b": 2})
    assert res.incr("steps", 2) == 2
    res.start_heartbeat(0.05)  # its thread notices the refusal once and stops
    time.sleep(0.3)
    res.stop_heartbeat()
    assert admin.mget("t-7:reward", "t-7:a", "t-7:b", "t-7:steps") == ["0.5", "1", "2", "2"]
    assert admin.smembers("jobledger:t:index:7") == {"reward", "a", "b", "steps"}
    assert admin.exists("jobledger:t:heartbeats") == 0


def test_job_uses_its_own_acl_user_while_the_cli_uses_admin(
    tmp_path: Path, start_redis: StartServer
) -> None:
    srv = acl_server(start_redis)
    cli = make_cli(tmp_path)
    write_secret(cli.cwd / "admin.pw", "admin-pw\n")
    write_toml(cli.cwd / "jobledger.toml", url=srv.url, username="admin", password_file="admin.pw")
    write_secret(cli.cwd / "job.pw", "job-pw\n")
    job_toml = write_toml(
        cli.cwd / "job-t.toml", url=srv.url, username="job_t", password_file="job.pw"
    )
    (cli.cwd / "job.py").write_text(
        "import jobledger, redis\n"
        "r = jobledger.results()\n"
        "print('user', r.client.connection_pool.connection_kwargs['username'])\n"
        "r.set('reward', 0.75)\n"
        "try:\n"
        "    jobledger.results(tag='u').set('x', 1)\n"
        "except redis.exceptions.NoPermissionError as exc:\n"
        "    print('denied', exc)\n"
    )
    job = script(
        cli.cwd,
        "job.sh",
        f'export JOBLEDGER_CONFIG="{job_toml}"  # the job user, not the launcher\n'
        '"$JOBLEDGER_PYTHON" job.py',
    )
    launched = cli("launch", "-t", "t", "--scheduler", "local", "--json", str(job))
    [job_id] = json.loads(succeeds(launched))["job_ids"]
    status = track_until_done(cli, "t")
    assert status["jobs"]["COMPLETED"] == [job_id], status
    out = (cli.cwd / "outerr" / f"t-{job_id}.out").read_text()
    assert out.splitlines()[0] == "user job_t", out
    assert "denied " in out and "no permissions" in out, out
    shown = json.loads(succeeds(cli("show", job_id, "-t", "t", "--json")))
    assert shown["results"] == {"reward": "0.75"}
    assert srv.admin().get("u-" + job_id + ":x") is None


# --- 5. secrets never leak -----------------------------------------------------------


class PsSampler:
    """``ps -eo args`` of every process, sampled in the background until stopped."""

    def __init__(self) -> None:
        self.samples: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            proc = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True)
            self.samples.append(proc.stdout)
            self._stop.wait(0.05)

    def __enter__(self) -> PsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def text(self) -> str:
        return "\n".join(self.samples)


LEAK_JOB = """
echo "== env"
env
if [ -n "${JOBLEDGER_JOB_ID:-}" ]; then  # a local job: its parent is the supervisor
  echo "== supervisor env"
  tr '\\0' '\\n' < "/proc/$PPID/environ"
fi
echo "== ps"
ps -eo args
"$JOBLEDGER_PYTHON" -c 'import jobledger; jobledger.results().set("ok", 1)'
echo "== done"
"""


def track_until_done(cli: CLI, tag: str, *extra: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        succeeds(cli("track", "--once", "-t", tag, "--scheduler", "local", *extra))
        status = json.loads(succeeds(cli("status", "-t", tag, "--json")))
        if status["counts"]["PENDING_AND_RUNNING"] == 0 or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def redis_text(client: redis.Redis) -> str:
    """Every key and value of the server, as text (to search for a secret)."""
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        value: object = {
            "string": lambda k: client.get(k),
            "hash": lambda k: client.hgetall(k),
            "list": lambda k: client.lrange(k, 0, -1),
            "set": lambda k: client.smembers(k),
            "zset": lambda k: client.zrange(k, 0, -1),
            "stream": lambda k: client.xrange(k),
        }[kind](key)
        parts.append(f"{key} {value}")
    return "\n".join(parts)


def files_text(*roots: Path, skip: Path) -> str:
    parts = []
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and path != skip:
                parts.append(f"{path}\n{path.read_text(errors='replace')}")
    return "\n".join(parts)


def credentials(mode: str, srv: Srv, secret: str, cwd: Path) -> dict[str, str]:
    """Configure ``cwd`` for one way of giving the password; the env variables it needs."""
    hp = f"127.0.0.1:{srv.port}"
    if mode == "password_file":
        write_secret(cwd / "redis.pw", secret + "\n")
        write_toml(cwd / "jobledger.toml", url=srv.url, password_file="redis.pw")
        return {}
    if mode == "env_password_file":
        pw = write_secret(cwd / "redis.pw", secret + "\n")
        return {"JOBLEDGER_URL": srv.url, "JOBLEDGER_PASSWORD_FILE": str(pw)}
    if mode == "url_in_env":
        return {"JOBLEDGER_URL": f"redis://:{secret}@{hp}/0"}
    assert mode == "url_query_in_env"
    return {"JOBLEDGER_URL": f"redis://{hp}/0?password={secret}"}


@pytest.mark.parametrize(
    "mode",
    ["password_file", "env_password_file", "url_in_env", "url_query_in_env"],
)
def test_secret_stays_out_of_ps_job_environment_logs_and_files_with_local_jobs(
    tmp_path: Path, start_redis: StartServer, mode: str
) -> None:
    secret = f"Leak{uuid.uuid4().hex}"
    srv = start_redis(password=secret)
    cli = make_cli(tmp_path)
    cli.env |= credentials(mode, srv, secret, cli.cwd)
    job = script(cli.cwd, "leak.sh", LEAK_JOB)
    with PsSampler() as ps:
        launched = cli("launch", "-t", "t", "--scheduler", "local", "--json", str(job))
        [job_id] = json.loads(succeeds(launched))["job_ids"]
        daemon = cli.start("track", "-t", "t", "--scheduler", "local", "--interval", "0.2")
        try:
            deadline = time.monotonic() + 30
            while not srv.admin().sismember("t_COMPLETED", job_id):
                assert time.monotonic() < deadline, "the job was not filed COMPLETED"
                time.sleep(0.05)
        finally:
            daemon.send_signal(signal.SIGTERM)
            logs, log_err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, log_err
    assert f"t {job_id}: PENDING_AND_RUNNING -> COMPLETED" in log_err  # INFO logs were on

    home = cli.cwd / ".jobledger"
    [connection] = home.glob("job-connection-*.toml")
    out = (cli.cwd / "outerr" / f"t-{job_id}.out").read_text()
    err = (cli.cwd / "outerr" / f"t-{job_id}.err").read_text()
    assert out.rstrip().endswith("== done"), out + err
    assert err == ""  # no warning: the connection file is private
    job_env = out.split("== env\n")[1].split("== supervisor env\n")[0]
    assert f"JOBLEDGER_CONFIG={connection}" in job_env.splitlines()
    assert len(ps.samples) > 5
    places = {
        "launch output": launched.out + launched.err,
        "ps -eo args during launch and track": ps.text,
        "the job's environment and its ps": out,
        "the job's stderr": err,
        "track daemon logs": logs + log_err,
        "files in .jobledger/ and outerr/": files_text(home, cli.cwd / "outerr", skip=connection),
        "Redis keys and values": redis_text(srv.admin()),
    }
    for place, text in places.items():
        assert secret not in text, f"the password leaked into {place}"
    # The one place the secret is: a 0600 file in a 0700 directory, and it works.
    assert secret in connection.read_text()
    assert stat.S_IMODE(connection.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert srv.admin().get(f"t-{job_id}:ok") == "1"


@pytest.mark.slurm
def test_secret_stays_out_of_sbatch_argv_job_environment_and_ps_on_slurm(
    tmp_path: Path, start_redis: StartServer
) -> None:
    secret = f"Leak{uuid.uuid4().hex}"
    srv = start_redis(password=secret)
    cli = make_cli(tmp_path)
    cli.env |= credentials("url_in_env", srv, secret, cli.cwd)
    tag = f"sec-{uuid.uuid4().hex[:8]}"
    job = script(cli.cwd, "leak.sh", LEAK_JOB)
    # sbatch returns in milliseconds: a wrapper records exactly what it was given.
    real_sbatch, seen = shutil.which("sbatch"), tmp_path / "sbatch-saw"
    (tmp_path / "bin").mkdir()
    wrapper = script(
        tmp_path / "bin",
        "sbatch",
        f'{{ printf "%s\\n" "$@"; env; ps -eo args; }} > {seen}\nexec {real_sbatch} "$@"',
    )
    wrapper.chmod(0o755)
    cli.env["PATH"] = f"{wrapper.parent}:{cli.env['PATH']}"
    dry = cli("launch", "--dry-run", "--json", "-t", tag, "--scheduler", "slurm", str(job))
    argv = json.loads(succeeds(dry))["argv"]
    assert argv[0] == "sbatch"
    assert secret not in dry.out
    try:
        with PsSampler() as ps:
            launched = cli("launch", "-t", tag, "--scheduler", "slurm", "--json", str(job))
            [job_id] = json.loads(succeeds(launched))["job_ids"]
            deadline = time.monotonic() + 120
            out_file = cli.cwd / "outerr" / f"{tag}-{job_id}.out"
            while not (out_file.exists() and "== done" in out_file.read_text()):
                assert time.monotonic() < deadline, "the SLURM job did not finish"
                time.sleep(0.2)
            status = track_until_done(cli, tag, "--scheduler", "slurm", timeout_s=60)
    finally:
        subprocess.run(["scancel", f"--name={tag}"], capture_output=True, check=False)
    assert status["jobs"]["COMPLETED"] == [job_id], status
    scontrol = subprocess.run(
        ["scontrol", "show", "job", "-dd", job_id], capture_output=True, text=True, check=False
    )
    home = cli.cwd / ".jobledger"
    [connection] = home.glob("job-connection-*.toml")
    out = out_file.read_text()
    saw = seen.read_text()
    assert f"--job-name={tag}" in saw.splitlines()  # the wrapper did see this submission
    assert "sbatch --parsable" in saw  # and ps showed sbatch's argv
    places = {
        "sbatch argv and env (dry run)": dry.out + dry.err,
        "launch output": launched.out + launched.err,
        "ps -eo args during submit and track": ps.text,
        "the job's environment and its ps": out,
        "the job's stderr": (cli.cwd / "outerr" / f"{tag}-{job_id}.err").read_text(),
        "sbatch's argv, environment and ps while it ran": saw,
        "scontrol show job": scontrol.stdout + scontrol.stderr,
        "files in .jobledger/ and outerr/": files_text(home, cli.cwd / "outerr", skip=connection),
        "Redis keys and values": redis_text(srv.admin()),
    }
    for place, text in places.items():
        assert secret not in text, f"the password leaked into {place}"
    assert "JOBLEDGER_URL=\n" in out  # blanked: the submitter's URL does not reach the job
    assert stat.S_IMODE(connection.stat().st_mode) == 0o600
    assert srv.admin().get(f"{tag}-{job_id}:ok") == "1"


# --- 6. readable secrets give a warning ------------------------------------------------


def exposed_case(case: str, srv: Srv, cwd: Path, mode: int) -> tuple[Path, dict[str, str]]:
    """Write the case's secret-holding file with ``mode``; (that file, command-line options)."""
    if case == "redis.json":
        data = {"host": "127.0.0.1", "port": srv.port, "password": "pw"}
        return write_secret(cwd / "redis.json", json.dumps(data), mode), {}
    if case == "redis.config":
        line = f'redis_cmd="redis-cli -h 127.0.0.1 -p {srv.port} -a pw"\n'
        return write_secret(cwd / "redis.config", line, mode), {}
    if case == "toml password":
        return write_toml(cwd / "jobledger.toml", mode, url=srv.url, password="pw"), {}
    if case == "toml url with password":
        url = f"redis://:pw@127.0.0.1:{srv.port}/0"
        return write_toml(cwd / "jobledger.toml", mode, url=url), {}
    pw = write_secret(cwd / "pw.txt", "pw\n", mode)
    if case == "password file in toml":
        write_toml(cwd / "jobledger.toml", 0o644, url=srv.url, password_file="pw.txt")
        return pw, {}
    assert case == "--password-file"
    return pw, {"url": srv.url, "password_file": str(pw)}


def warnings_of(cwd: Path, options: dict[str, str], env: dict[str, str]) -> tuple[str, ...]:
    """The warnings the CLI would print there (in-process: the same ``resolve``)."""
    return resolve(options, env=env, cwd=cwd, user_config=cwd / "no-user-config.toml").warnings


@pytest.mark.parametrize(
    ("case", "mode"),
    [
        ("redis.json", 0o644),
        ("redis.config", 0o604),
        ("toml password", 0o640),
        ("toml url with password", 0o644),
        ("password file in toml", 0o644),
        ("--password-file", 0o644),
    ],
)
def test_secret_readable_by_group_or_other_warns_once_and_0600_does_not(
    tmp_path: Path, start_redis: StartServer, case: str, mode: int
) -> None:
    srv = start_redis(password="pw")
    cli = make_cli(tmp_path)
    exposed, options = exposed_case(case, srv, cli.cwd, mode)
    argv = [arg for k, v in options.items() for arg in (f"--{k.replace('_', '-')}", v)]
    warned = cli("status", "-t", "t", *argv)
    assert warned.code == 0, warned  # a warning, and the command carries on
    assert warned.out.startswith("t: 0 jobs")
    assert warned.err.splitlines() == [
        f"{WARNING}{exposed} holds a password and is readable by group/other "
        f"(mode {mode:o}); run: chmod 600 {exposed}"
    ]
    exposed.chmod(0o600)
    assert warnings_of(cli.cwd, options, {}) == ()


def test_password_file_named_by_the_environment_warns_when_readable(
    tmp_path: Path, start_redis: StartServer
) -> None:
    srv = start_redis(password="pw")
    pw = write_secret(tmp_path / "pw.txt", "pw\n", 0o644)
    cli = make_cli(tmp_path, JOBLEDGER_URL=srv.url, JOBLEDGER_PASSWORD_FILE=str(pw))
    run = cli("status", "-t", "t")
    assert run.code == 0, run
    assert run.err.splitlines() == [
        f"{WARNING}{pw} holds a password and is readable by group/other (mode 644); "
        f"run: chmod 600 {pw}"
    ]
    pw.chmod(0o600)
    assert warnings_of(cli.cwd, {}, cli.env) == ()


# --- 7. the embedded server is private ----------------------------------------------------

PROBE = """
import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    s.sendall(b"PING\\r\\n")
    print(s.recv(64).decode().strip())
except OSError as exc:
    print(errno.errorcode.get(exc.errno, str(exc)))
"""


def probe_as_nobody(sock: Path) -> str:
    """What user ``nobody`` gets when it connects to ``sock`` and sends PING."""
    proc = subprocess.run(
        ["/usr/bin/python3", "-c", PROBE, str(sock)],
        user=65534,
        group=65534,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a probe as user nobody")
@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no /usr/bin/python3")
def test_embedded_server_directory_and_socket_shut_out_other_users() -> None:
    # pytest's tmp_path is under a 0700 directory: use one other users may traverse.
    base = Path(tempfile.mkdtemp(prefix="jlsec-"))
    base.chmod(0o711)
    home = base / "exp"
    home.mkdir(mode=0o711)
    cli = CLI(home, clean_env(base))
    try:
        assert cli("server", "start").code == 0
        paths = embedded.server_paths(home)
        assert paths.socket.parent == paths.data_dir  # not the /tmp fallback
        assert stat.S_IMODE(paths.data_dir.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(paths.socket.stat().st_mode)
        assert stat.S_IMODE(paths.socket.stat().st_mode) == 0o700
        with connect(Settings(home=str(home))) as client:
            assert client.config_get("port") == {"port": "0"}  # nothing on the network
            assert client.config_get("unixsocketperm") == {"unixsocketperm": "700"}
        assert probe_as_nobody(paths.socket) == "EACCES"  # the 0700 directory stops it
        paths.data_dir.chmod(0o711)  # let others traverse: only the socket's mode is left
        assert probe_as_nobody(paths.socket) == "EACCES"
        paths.socket.chmod(0o777)  # control: the probe does reach a socket it may use
        assert probe_as_nobody(paths.socket) == "+PONG"
    finally:
        embedded.stop_server(home)
        shutil.rmtree(base)


def test_a_results_write_the_acl_refuses_a_command_of_writes_nothing(
    start_redis: StartServer,
) -> None:
    """Keys are checked before a script runs, commands only as it calls them: the write
    script asks for every command first, so a refusal leaves no half-written result."""
    srv = acl_server(start_redis)
    admin = srv.admin()
    no_zrem = [c for c in JOB_COMMANDS if c != "+zrem"]
    reset_job_user(admin, JOB_KEYS, no_zrem)
    job = Settings.from_url(f"redis://job_t:job-pw@127.0.0.1:{srv.port}/0")
    res = jobledger.results(job_id="7", tag="t", settings=job)
    res.set("reward", 0.5)  # numbers need no ZREM
    with pytest.raises(redis.exceptions.NoPermissionError):
        res.update({"reward": "n/a", "model": "gnn"})  # text takes the value out of the ranking
    assert admin.get("t-7:reward") == "0.5"
    assert admin.exists("t-7:model") == 0
    assert admin.smembers("jobledger:t:index:7") == {"reward"}
    assert admin.zscore("jobledger:t:numeric", "7:reward") == 0.5
    res.client.close()
