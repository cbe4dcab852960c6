"""Real Redis topologies on loopback: a Cluster, and a primary with Sentinels.

Debian's ``/usr/bin/redis-server`` and ``/usr/bin/redis-cli``, every node in a directory
of its own (its conf, its ``redis.log``, a cluster node's ``nodes.conf``).  The fault
tests kill primaries in the middle of work and wait until the topology has failed over;
a killed node can be started again with the very same command line.

``tests/test_failover.py`` exercises it: failovers of both, with and without a password.
"""

from __future__ import annotations

import atexit
import os
import random
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.retry import Retry
from redis.sentinel import Sentinel

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
HOST = "127.0.0.1"
SERVICE = "jlprimary"
CLUSTER_SLOTS = 16384
BUS_OFFSET = 10000
# A write that proves a new primary takes writes; deleted right after.
PROBE_KEY = "jobledger:topologies:probe"

T = TypeVar("T")

_rng = random.SystemRandom()
_used_ports: set[int] = set()
_running: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort: no server of this process outlives it (a test forgot ``stop()``)."""
    for proc in list(_running):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


class _NotYet(Exception):
    """A condition being polled for does not hold yet; the message says why."""


def _poll(
    what: str,
    probe: Callable[[], T],
    timeout_s: float,
    nodes: Iterable[Node] = (),
    interval_s: float = 0.05,
) -> T:
    """``probe()``'s value once it stops raising _NotYet or a connection error.

    Any other exception goes straight through.  On timeout: RuntimeError with the last
    reason and the tails of the ``nodes``' logs.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return probe()
        except _NotYet as exc:
            reason = str(exc)
        except (redis.RedisError, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            logs = "\n".join(node.log_tail() for node in nodes)
            raise RuntimeError(f"{what}: not within {timeout_s:g} s; last: {reason}\n{logs}")
        time.sleep(interval_s)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    """A random port in 20000..39999 that is free with its cluster bus port (+10000).

    Never one this run handed out already, nor the bus port of one: a killed node gets
    its port back when it is started again.
    """
    for _ in range(1000):
        port = _rng.randint(20000, 39999)
        pair = {port, port + BUS_OFFSET}
        if pair & _used_ports:
            continue
        if _bindable(port) and _bindable(port + BUS_OFFSET):
            _used_ports.update(pair)
            return port
    raise RuntimeError("no free port (with a free port+10000) in 20000..39999")


def _quote(value: str) -> str:
    """``value`` as one double-quoted argument of a redis.conf line."""
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r")):
        value = value.replace(raw, escaped)
    return f'"{value}"'


def _write_private(path: Path, lines: Sequence[str]) -> None:
    """A conf file only we can read (it may hold the password), writable by the server."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n")


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


@dataclass
class Node:
    """One redis-server (or Sentinel) process on loopback, in a directory of its own."""

    port: int
    workdir: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    password: str | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        """The process is running (it may not answer yet)."""
        return self.process is not None and self.process.poll() is None

    def client(self, **kwargs: Any) -> redis.Redis:
        """A plain client to this node only; ``kwargs`` override the defaults."""
        options: dict[str, Any] = {"decode_responses": True, "password": self.password}
        options.update(kwargs)
        return redis.Redis(host=HOST, port=self.port, **options)

    def _probe(self) -> redis.Redis:
        """A client for polling: short timeouts, no retries."""
        return self.client(
            socket_timeout=2.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
        )

    def log_tail(self, lines: int = 12) -> str:
        """The last lines of this node's log (and of its stdout, if it wrote any)."""
        parts = []
        for name in ("redis.log", "stdout.log"):
            tail = _tail(self.workdir / name, lines)
            if tail:
                parts.append(f"--- {self.address} {self.workdir / name} ---\n" + "\n".join(tail))
        return "\n".join(parts) or f"--- {self.address}: no log in {self.workdir} ---"

    def kill(self) -> None:
        """SIGKILL and wait for the exit: the host died."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        _running.discard(proc)

    def start(self, timeout_s: float = 20.0) -> None:
        """Start again with the same args and wait until it answers PING.

        A node that is running already is left alone.
        """
        if self.alive:
            return
        self._launch()
        self._wait_ready(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL if it takes too long); harmless if already dead."""
        if self.alive:
            assert self.process is not None
            self.process.terminate()
        self._reap(timeout_s)

    def _reap(self, timeout_s: float) -> None:
        proc = self.process
        if proc is None:
            return
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        _running.discard(proc)

    def _launch(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / "stdout.log").open("ab") as out:
            proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self.process = proc
        _running.add(proc)

    def _wait_ready(self, timeout_s: float) -> None:
        """Until PING is answered; a node that exits or never answers is stopped."""

        def ping() -> None:
            if not self.alive:
                code = self.process.returncode if self.process else None
                raise RuntimeError(f"{self.address} exited with {code}\n{self.log_tail()}")
            with self._probe() as c:
                if not c.ping():
                    raise _NotYet("no PONG")

        try:
            _poll(f"{self.address} answering PING", ping, timeout_s, [self])
        except BaseException:
            self.stop()
            raise


def _stop_all(nodes: Iterable[Node]) -> None:
    """Stop all ``nodes`` at once (SIGTERM to each, then wait for each)."""
    nodes = list(nodes)
    for node in nodes:
        if node.alive:
            assert node.process is not None
            node.process.terminate()
    for node in nodes:
        node._reap(10.0)


def _server_node(
    workdir: Path,
    kind: str,
    *,
    password: str | None,
    appendonly: bool,
    conf_lines: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> Node:
    """A new (not yet started) redis-server node in ``workdir/<kind>-<port>``.

    The password (and a replica's ``replicaof``) go into the node's ``redis.conf``, not on
    the command line, so neither shows in a process listing and a Sentinel's
    ``CONFIG REWRITE`` can record the node's current role for a restart.
    """
    port = _free_port()
    home = workdir / f"{kind}-{port}"
    home.mkdir(parents=True)
    conf = home / "redis.conf"
    lines = ["# written by tests/topologies.py; the server may rewrite it"]
    if password is not None:
        lines += [f"requirepass {_quote(password)}", f"masterauth {_quote(password)}"]
    _write_private(conf, [*lines, *conf_lines])
    args = [REDIS_SERVER, str(conf), "--port", str(port), "--bind", HOST, "--dir", str(home)]
    args += ["--logfile", str(home / "redis.log"), "--save", ""]
    args += (
        ["--appendonly", "yes", "--appendfsync", "everysec"]
        if appendonly
        else ["--appendonly", "no"]
    )
    # Replicas sync at once instead of waiting 5 s for more replicas to join.
    args += ["--protected-mode", "no", "--repl-diskless-sync-delay", "0", *extra]
    return Node(port, home, args, None, password)


def _command(client: redis.Redis, *args: str | int) -> Any:
    """A raw command (redis-py leaves ``execute_command`` untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _text(client: redis.Redis, *command: str) -> str:
    """The reply of a command that answers a bulk string (CLUSTER NODES, CLUSTER INFO)."""
    reply = _command(client, *command)
    if not isinstance(reply, str):
        raise _NotYet(f"{' '.join(command)} answered {reply!r}")
    return reply


def _role(node: Node) -> str:
    """What ``ROLE`` says: master, slave or sentinel."""
    with node._probe() as c:
        reply = _command(c, "ROLE")
    if not isinstance(reply, list) or not reply:
        raise _NotYet(f"{node.address}: ROLE answered {reply!r}")
    return str(reply[0])


def _replication(node: Node) -> dict[str, Any]:
    with node._probe() as c:
        info = c.info("replication")
    if not isinstance(info, dict):
        raise _NotYet(f"{node.address}: INFO replication answered {info!r}")
    return info


# --- Redis Cluster ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One line of CLUSTER NODES."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str
    epoch: int
    link: str
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})

    def owns(self, slot: int) -> bool:
        return any(lo <= slot <= hi for lo, hi in self.slots)


def _parse_cluster_nodes(text: str) -> list[_Entry]:
    """``<id> <ip:port@cport[,host]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...``"""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        port_text = fields[1].split("@")[0].rpartition(":")[2]
        slots = []
        for item in fields[8:]:
            if item.startswith("["):  # a slot being migrated or imported
                continue
            lo, _, hi = item.partition("-")
            slots.append((int(lo), int(hi or lo)))
        entries.append(
            _Entry(
                node_id=fields[0],
                port=int(port_text) if port_text.isdigit() else 0,
                flags=frozenset(fields[2].split(",")),
                master_id=fields[3],
                epoch=int(fields[6]),
                link=fields[7],
                slots=tuple(slots),
            )
        )
    return entries


def _cluster_state(node: Node) -> tuple[dict[str, str], list[_Entry]]:
    """``node``'s CLUSTER INFO (as a dict) and its CLUSTER NODES view."""
    with node._probe() as c:
        info_text = _text(c, "CLUSTER", "INFO")
        nodes_text = _text(c, "CLUSTER", "NODES")
    info = {k: v for k, _, v in (line.strip().partition(":") for line in info_text.splitlines())}
    return info, _parse_cluster_nodes(nodes_text)


def _myself(node: Node, entries: list[_Entry]) -> _Entry:
    for entry in entries:
        if "myself" in entry.flags:
            return entry
    raise _NotYet(f"{node.address}: no 'myself' in CLUSTER NODES")


def _covers_all_slots(ranges: Iterable[tuple[int, int]]) -> str | None:
    """None if ``ranges`` cover 0..16383 with no overlap, else the first gap or overlap."""
    expected = 0
    for lo, hi in sorted(ranges):
        if lo != expected:
            return f"slot {min(lo, expected)} is {'unserved' if lo > expected else 'served twice'}"
        expected = hi + 1
    return None if expected == CLUSTER_SLOTS else f"slot {expected} is unserved"


@dataclass
class ClusterTopology:
    """Three primaries and three replicas.

    ``nodes[:3]`` are the initial primaries (by slot range), ``nodes[3 + i]`` the initial
    replica of ``nodes[i]``; after a failover the roles differ, ask ``primary_for``.
    """

    nodes: list[Node]
    password: str | None

    @property
    def url(self) -> str:
        """The three initial primaries (the password is not in it)."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes[:3])

    def client(self, **kwargs: Any) -> RedisCluster:
        """A cluster client that knows every node (live ones first)."""
        ordered = sorted(self.nodes, key=lambda node: not node.alive)
        options: dict[str, Any] = {"decode_responses": True, "password": self.password}
        options.update(kwargs)
        startup = [ClusterNode(HOST, n.port) for n in ordered]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=startup, **options)

    def _node(self, port: int) -> Node:
        for node in self.nodes:
            if node.port == port:
                return node
        raise RuntimeError(f"port {port} is no node of this cluster")

    def primary_for(self, key: str) -> Node:
        """The live node that serves ``key``'s slot as primary, by its own word.

        If two claim it (a restarted old primary that has not heard the news yet), the one
        with the higher config epoch.
        """
        slot = key_slot(key.encode())
        claims: list[tuple[int, Node]] = []
        problems = []
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                _, entries = _cluster_state(node)
                me = _myself(node, entries)
            except (_NotYet, redis.RedisError, OSError) as exc:
                problems.append(f"{node.address}: {exc}")
                continue
            if me.is_master and me.owns(slot):
                claims.append((me.epoch, node))
        if not claims:
            raise RuntimeError(f"no live node serves slot {slot} ({key!r}) as primary {problems}")
        return max(claims, key=lambda claim: claim[0])[1]

    def kill_primary_for(self, key: str) -> Node:
        """SIGKILL the primary of ``key``'s slot; return it."""
        node = self.primary_for(key)
        node.kill()
        return node

    def _healthy(self) -> None:
        live = [node for node in self.nodes if node.alive]
        if not live:
            raise RuntimeError("no node of the cluster is running")
        live_ports = {node.port for node in live}
        views: dict[int, list[_Entry]] = {}
        claimed: list[tuple[int, int]] = []
        masters: set[int] = set()
        for node in live:
            info, entries = _cluster_state(node)
            if info.get("cluster_state") != "ok":
                raise _NotYet(f"{node.address}: cluster_state:{info.get('cluster_state')}")
            views[node.port] = entries
            me = _myself(node, entries)
            if me.is_master:
                masters.add(node.port)
                claimed += me.slots
        gap = _covers_all_slots(claimed)
        if gap:
            raise _NotYet(f"by the live primaries' own word, {gap}")
        for port, entries in views.items():
            served = [
                e
                for e in entries
                if e.is_master and e.slots and not e.failing and e.port in masters
            ]
            gap = _covers_all_slots(r for e in served for r in e.slots)
            if gap:
                raise _NotYet(f"in the view of {HOST}:{port}, {gap} by a live primary")
            stale = [e.port for e in entries if e.slots and e.port not in live_ports]
            if stale:
                raise _NotYet(f"{HOST}:{port} still gives slots to dead {stale}")

    def wait_healthy(self, timeout_s: float = 30) -> None:
        """Until every live node says cluster_state:ok and every slot has a live primary.

        Every live node must also agree on who that primary is (none of them still hands
        slots to a dead node).
        """
        _poll("cluster healthy", self._healthy, timeout_s, self.nodes)

    def stop(self) -> None:
        """Stop every node; harmless if some (or all) are dead already."""
        _stop_all(self.nodes)


def _create_cluster(nodes: list[Node], password: str | None, timeout_s: float) -> None:
    """``redis-cli --cluster create``, the password (if any) in REDISCLI_AUTH."""
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if password is not None:
        env["REDISCLI_AUTH"] = password
    argv = [REDIS_CLI, "--cluster", "create", *(node.address for node in nodes)]
    argv += ["--cluster-replicas", "1", "--cluster-yes"]
    try:
        proc = subprocess.run(
            argv, input=b"yes\n", capture_output=True, env=env, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace")
        raise RuntimeError(f"{' '.join(argv)}: not done in {timeout_s:g} s\n{out}") from exc
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        logs = "\n".join(node.log_tail() for node in nodes)
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}\n{out}\n{logs}")


def _settled(nodes: list[Node]) -> list[Node]:
    """The nodes, primaries first, once all six agree and every replica is in sync."""
    views = set()
    for node in nodes:
        info, entries = _cluster_state(node)
        if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != "6":
            raise _NotYet(
                f"{node.address}: cluster_state:{info.get('cluster_state')}"
                f" cluster_known_nodes:{info.get('cluster_known_nodes')}"
            )
        for e in entries:
            if e.failing or e.link != "connected":
                raise _NotYet(f"{node.address} sees {e.port} as {','.join(e.flags)} {e.link}")
        ports = {e.node_id: e.port for e in entries}
        primaries = tuple(sorted((e.slots, e.port) for e in entries if e.is_master))
        pairs = tuple(
            sorted((e.port, ports.get(e.master_id, 0)) for e in entries if not e.is_master)
        )
        views.add((primaries, pairs))
    if len(views) != 1:
        raise _NotYet(f"the nodes' views differ: {views}")
    primaries, pairs = views.pop()
    if len(primaries) != 3 or len(pairs) != 3 or any(not slots for slots, _ in primaries):
        raise _NotYet(f"not three primaries with slots and three replicas: {primaries} {pairs}")
    by_port = {node.port: node for node in nodes}
    replica_of = {master: replica for replica, master in pairs}
    if sorted(replica_of) != sorted(port for _, port in primaries):
        raise _NotYet(f"not one replica for each primary: {pairs}")
    for replica, master in pairs:
        repl = _replication(by_port[replica])
        if repl.get("master_link_status") != "up" or repl.get("master_port") != master:
            raise _NotYet(f"{HOST}:{replica}: link to {master} not up: {repl}")
    ordered = [port for _, port in primaries]
    return [by_port[port] for port in ordered] + [by_port[replica_of[port]] for port in ordered]


def start_cluster(
    workdir: Path,
    *,
    password: str | None = None,
    node_timeout_ms: int = 2000,
    appendonly: bool = False,
    timeout_s: float = 60,
) -> ClusterTopology:
    """A Redis Cluster of three primaries and three replicas, settled, in ``workdir``.

    On any failure everything started is stopped again before the error goes on.
    """
    workdir = workdir.resolve()
    extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    extra += ["--cluster-node-timeout", str(node_timeout_ms)]
    # A replica may always take over, however long its link was down; and replicas stay
    # where they are put, so the shape stays three pairs.
    extra += ["--cluster-replica-validity-factor", "0", "--cluster-allow-replica-migration", "no"]
    topology = ClusterTopology([], password)
    try:
        for _ in range(6):
            node = _server_node(
                workdir, "cluster", password=password, appendonly=appendonly, extra=extra
            )
            topology.nodes.append(node)
        for node in topology.nodes:
            node._launch()
        for node in topology.nodes:
            node._wait_ready(timeout_s)
        _create_cluster(topology.nodes, password, timeout_s)
        nodes = topology.nodes
        topology.nodes = _poll("cluster settled", lambda: _settled(nodes), timeout_s, nodes)
    except BaseException:
        topology.stop()
        raise
    return topology


# --- Sentinel ---------------------------------------------------------------------------


@dataclass
class SentinelTopology:
    """A primary and a replica (either may be the primary after a failover), three Sentinels."""

    service: str
    servers: list[Node]
    sentinels: list[Node]
    password: str | None

    @property
    def url(self) -> str:
        addresses = ",".join(node.address for node in self.sentinels)
        return f"redis+sentinel://{addresses}/{self.service}"

    def _server(self, port: int) -> Node:
        for node in self.servers:
            if node.port == port:
                return node
        raise RuntimeError(f"the sentinels name {HOST}:{port}, no server of this topology")

    def _named(self) -> tuple[dict[int, tuple[int, int]], list[str]]:
        """Per live sentinel (by port): the primary's port it names and its config epoch."""
        named: dict[int, tuple[int, int]] = {}
        problems = []
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            try:
                with sentinel._probe() as c:
                    addr = c.sentinel_get_master_addr_by_name(self.service)
                    state = c.sentinel_master(self.service)
            except (redis.RedisError, OSError) as exc:
                problems.append(f"{sentinel.address}: {type(exc).__name__}: {exc}")
                continue
            if not isinstance(addr, tuple) or not isinstance(state, dict):
                problems.append(f"{sentinel.address}: answered {addr!r}")
                continue
            named[sentinel.port] = (int(addr[1]), int(state.get("config-epoch", 0)))
        return named, problems

    def primary(self) -> Node:
        """The server the sentinels name as primary (most of them; then the newest epoch)."""
        named, problems = self._named()
        if not named:
            raise RuntimeError(f"no sentinel names a primary for {self.service}: {problems}")
        votes = Counter(port for port, _ in named.values())
        epochs = {port: max(e for p, e in named.values() if p == port) for port in votes}
        return self._server(max(votes, key=lambda port: (votes[port], epochs[port])))

    def kill_primary(self) -> Node:
        """SIGKILL the current primary; return it."""
        node = self.primary()
        node.kill()
        return node

    def _failed_over(self, old: Node) -> Node:
        named, problems = self._named()
        ports = {port for port, _ in named.values()}
        if len(ports) != 1:
            raise _NotYet(f"the live sentinels name {named or 'nothing'} {problems}")
        new = self._server(ports.pop())
        if new.port == old.port:
            raise _NotYet(f"the sentinels still name {old.address}")
        if not new.alive:
            raise _NotYet(f"the sentinels name {new.address}, which is not running")
        role = _role(new)
        if role != "master":
            raise _NotYet(f"{new.address} answers ROLE {role}")
        with new._probe() as c:
            c.set(PROBE_KEY, "1", px=10_000)
            c.delete(PROBE_KEY)
        return new

    def wait_failover(self, old: Node, timeout_s: float = 30) -> Node:
        """Until every live sentinel names another server than ``old``, and that server
        answers ROLE as master and takes a write; return it."""
        nodes = [*self.servers, *self.sentinels]
        return _poll(
            f"failover away from {old.address}", lambda: self._failed_over(old), timeout_s, nodes
        )

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client of the primary the sentinels name, that follows their failovers."""
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            [(HOST, node.port) for node in self.sentinels],
            sentinel_kwargs={"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
        )
        options: dict[str, Any] = {"decode_responses": True, "password": self.password}
        options.update(kwargs)
        return cast(redis.Redis, sentinel.master_for(self.service, **options))  # type: ignore[no-untyped-call]

    def _ready(self) -> None:
        """Every sentinel sees the primary up, each replica in sync, and the others."""
        primary = self.servers[0]
        replicas = {node.port for node in self.servers[1:]}
        for sentinel in self.sentinels:
            with sentinel._probe() as c:
                state = c.sentinel_master(self.service)
                known = c.sentinel_slaves(self.service)
            if not isinstance(state, dict) or not isinstance(known, list):
                raise _NotYet(f"{sentinel.address}: SENTINEL MASTER answered {state!r}")
            where = f"{sentinel.address} on {primary.address}:"
            if not state.get("is_master") or state.get("is_sdown") or state.get("is_odown"):
                raise _NotYet(f"{where} flags {state.get('flags')}")
            if state.get("num-other-sentinels") != len(self.sentinels) - 1:
                raise _NotYet(f"{where} num-other-sentinels {state.get('num-other-sentinels')}")
            in_sync = {
                int(r["port"])
                for r in known
                if r.get("master-link-status") == "ok"
                and not r.get("is_sdown")
                and not r.get("is_disconnected")
            }
            if not replicas <= in_sync:
                raise _NotYet(f"{where} replicas in sync {sorted(in_sync)}")

    def stop(self) -> None:
        """Stop the sentinels and the servers; harmless if some are dead already."""
        _stop_all([*self.sentinels, *self.servers])


def _sentinel_node(
    workdir: Path,
    primary: Node,
    *,
    password: str | None,
    down_after_ms: int,
    failover_timeout_ms: int,
) -> Node:
    """A new (not yet started) Sentinel of ``primary``, in ``workdir/sentinel-<port>``."""
    port = _free_port()
    home = workdir / f"sentinel-{port}"
    home.mkdir(parents=True)
    conf = home / "sentinel.conf"
    lines = [
        "# written by tests/topologies.py; the sentinel rewrites it",
        f"port {port}",
        f"bind {HOST}",
        "protected-mode no",
        f"dir {_quote(str(home))}",
        f"logfile {_quote(str(home / 'redis.log'))}",
        f"sentinel monitor {SERVICE} {HOST} {primary.port} 2",
        f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}",
        f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}",
        f"sentinel parallel-syncs {SERVICE} 1",
    ]
    if password is not None:
        lines.append(f"sentinel auth-pass {SERVICE} {_quote(password)}")
    _write_private(conf, lines)
    return Node(port, home, [REDIS_SERVER, str(conf), "--sentinel"], None, None)


def start_sentinel(
    workdir: Path,
    *,
    password: str | None = None,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 3000,
    appendonly: bool = False,
    timeout_s: float = 60,
) -> SentinelTopology:
    """A primary, its replica and three Sentinels that all know each other, in ``workdir``.

    On any failure everything started is stopped again before the error goes on.
    """
    workdir = workdir.resolve()
    topology = SentinelTopology(SERVICE, [], [], password)
    try:
        primary = _server_node(workdir, "server", password=password, appendonly=appendonly)
        topology.servers.append(primary)
        # In redis.conf, not on the command line: after a failover the sentinels rewrite
        # it, so a restart follows the topology as it is then.
        replica = _server_node(
            workdir,
            "server",
            password=password,
            appendonly=appendonly,
            conf_lines=[f"replicaof {HOST} {primary.port}"],
        )
        topology.servers.append(replica)
        for node in topology.servers:
            node._launch()
        for node in topology.servers:
            node._wait_ready(timeout_s)

        def in_sync() -> None:
            repl = _replication(replica)
            if repl.get("master_link_status") != "up":
                raise _NotYet(
                    f"{replica.address}: master_link_status {repl.get('master_link_status')}"
                )

        _poll("replica in sync", in_sync, timeout_s, topology.servers)
        for _ in range(3):
            node = _sentinel_node(
                workdir,
                primary,
                password=password,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
            )
            topology.sentinels.append(node)
        for node in topology.sentinels:
            node._launch()
        for node in topology.sentinels:
            node._wait_ready(timeout_s)
        everyone = [*topology.servers, *topology.sentinels]
        _poll("sentinels know the replica and each other", topology._ready, timeout_s, everyone)
    except BaseException:
        topology.stop()
        raise
    return topology
