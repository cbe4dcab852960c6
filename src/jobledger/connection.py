"""Turn Settings into a connected redis-py client, and Redis failures into our errors."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import unquote

import redis
from redis._parsers import Encoder
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.connection import HiredisRespSerializer, PythonRespSerializer, SSLConnection
from redis.exceptions import ClusterDownError, MovedError, RedisClusterException, TryAgainError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection
from redis.utils import HIREDIS_AVAILABLE

from jobledger import embedded
from jobledger.config import SENTINEL_SCHEMES, Settings, mask_url, split_hosts, split_userinfo
from jobledger.errors import RedisUnavailable

__all__ = [
    "CLUSTER_RECONNECT_S",
    "JOB_RECONNECT_S",
    "connect",
    "connection_target",
    "connection_url",
    "redis_errors",
]

# How long job code (the results API) keeps reconnecting to a Redis server that went
# away (a restart loading its AOF, a failover) before a write raises: long enough for a
# restart, so a job of hours does not die of it.  Commands keep failing fast (~1 s).
JOB_RECONNECT_S = 60.0
# Redis Cluster: how long a command of the CLI or the tracker keeps trying while the
# cluster fails over (a replica takes over after cluster-node-timeout plus an election,
# about 3 s with a node timeout of 2 s); after that the command fails, and launch
# journals what it could not record.
CLUSTER_RECONNECT_S = 5.0

Redis = redis.Redis
_ENCODER = Encoder("utf-8", "surrogateescape", False)  # type: ignore[no-untyped-call]


class _Packer:
    """hiredis' command packer, and redis-py's pure-Python one for what hiredis refuses.

    hiredis encodes str strictly, so a key read back as surrogate-escaped str (a seed
    key named with non-UTF-8 bytes) cannot be sent through it: MGET of such a key
    crashed.  The Python packer (``surrogateescape``) sends it, but costs about 15 µs a
    command against hiredis' 6 µs (measured on a 13-argument EVALSHA), on every command
    of every client; so the Python one packs only the commands hiredis cannot.  Both
    write the same bytes for str, bytes, int and float (``tests/test_results.py``).
    """

    def __init__(self) -> None:
        self._fast: Any = HiredisRespSerializer() if HIREDIS_AVAILABLE else None
        self._lossless = PythonRespSerializer(6000, _ENCODER.encode)

    def pack(self, *args: Any) -> list[bytes]:
        if self._fast is not None:
            try:
                return self._fast.pack(*args)  # type: ignore[no-any-return, unused-ignore]
            except UnicodeEncodeError:
                pass
        return self._lossless.pack(*args)  # type: ignore[no-untyped-call, no-any-return]


_PACKER = _Packer()
T = TypeVar("T")


class _Refused(Exception):
    """Carries an AuthenticationError or a refused certificate through Retry (which
    retries every ConnectionError): both would be refused again."""

    def __init__(self, error: redis.ConnectionError) -> None:
        super().__init__(str(error))
        self.error = error


class _GiveUp(Exception):
    """Carries the last error out of Retry once the reconnect window has passed."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Retry(Retry):
    """Retry lost connections and timeouts, but not a refused password: it is refused again.

    AuthenticationError subclasses ConnectionError, and redis-py nests a connect retry
    inside the command retry, so a wrong password took about 4 s of backoff to report.
    With ``window_s``, retries go on until that many seconds have passed: a time
    budget, which nested retries cannot multiply as they do a count.
    """

    def __init__(self, backoff: Any, retries: int, *, window_s: float = 0.0) -> None:
        super().__init__(backoff, retries)
        self.window_s = window_s

    def call_with_retry(self, do: Callable[[], T], fail: Any, *args: Any, **kwargs: Any) -> T:
        deadline = time.monotonic() + self.window_s

        def once() -> T:
            try:
                return do()
            except redis.AuthenticationError as exc:  # the connection already cleaned up
                raise _Refused(exc) from exc
            except redis.ConnectionError as exc:
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # a wrong CA or host: refused again
                    raise _Refused(exc) from exc
                raise

        def fail_or_give_up(error: Exception, *more: Any) -> None:
            fail(error, *more)  # disconnects the broken connection
            if self.window_s and time.monotonic() >= deadline:
                raise _GiveUp(error)

        try:
            return super().call_with_retry(once, fail_or_give_up, *args, **kwargs)
        except _Refused as refused:
            raise refused.error from None
        except _GiveUp as gave_up:
            raise gave_up.error from None


def connection_url(settings: Settings) -> str:
    """The URL this process connects to (starting the embedded server if none is set)."""
    if settings.url is None:
        return embedded.ensure_server(settings.home_dir).url
    return settings.url


def connection_target(settings: Settings) -> str:
    """A secret-free name of the server ``settings`` lead to (without starting anything)."""
    if settings.url is None:
        return embedded.server_paths(settings.home_dir).url
    scheme = settings.url.partition("://")[0]
    if scheme.endswith(("+cluster", "+sentinel")):
        # The same cluster (or Sentinel group) whatever the order its seeds are listed
        # in: journal entries are replayed only on the server they name.
        seeds, path, _ = split_hosts(settings.url)
        hosts = ",".join(sorted(f"{host}:{port}" for host, port in seeds))
        return f"{scheme}://{hosts}" + (f"/{path}" if path else "")
    return mask_url(settings.url)


def _client_kwargs(settings: Settings, reconnect_s: float = 0.0) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "decode_responses": True,
        # Results may be arbitrary bytes: surrogateescape keeps them lossless as str.
        "encoding_errors": "surrogateescape",
        # hiredis' packer encodes str strictly, so a key read back as surrogate-escaped str
        # could not be sent again (MGET of a seed key named with non-UTF-8 bytes crashed).
        "command_packer": _PACKER,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        "health_check_interval": 30,
        "retry": _Retry(
            ExponentialBackoff(cap=1.0, base=0.05),
            retries=-1 if reconnect_s else 3,  # -1: as long as the window lasts
            window_s=reconnect_s,
        ),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }
    password = settings.effective_password()
    if password is not None:
        kwargs["password"] = password
    if settings.username is not None:
        kwargs["username"] = settings.username
    if settings.url and settings.url.startswith("rediss"):  # rediss://, rediss+cluster://, ...
        kwargs["ssl_check_hostname"] = True  # redis-py < 6 did not check it by default
        for ours, theirs in (
            ("tls_ca_certs", "ssl_ca_certs"),
            ("tls_certfile", "ssl_certfile"),
            ("tls_keyfile", "ssl_keyfile"),
        ):
            value = getattr(settings, ours)
            if value:
                kwargs[theirs] = value
    return kwargs


# Errors a cluster raises while a primary is down or its slots move to a replica.
_CLUSTER_TRANSIENT = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    TryAgainError,
    MovedError,  # a node-bound pipeline (durability) whose slot moved: ask the cluster again
    RedisClusterException,
)


class _Cluster(RedisCluster):
    """RedisCluster whose commands ride out a failover for a time budget.

    redis-py retries a cluster command a fixed number of times, without waiting, so a
    command sent while a dead primary's replica is being elected failed within
    milliseconds.  Here it is retried with backoff until ``reconnect_s`` have passed.
    A refused password is never retried.
    """

    reconnect_s = CLUSTER_RECONNECT_S

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return retrying(self, lambda: RedisCluster.execute_command(self, *args, **kwargs))  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        pipe.__class__ = _ClusterPipeline  # the same object; only execute() differs
        return pipe


class ClusterUnavailable(redis.ConnectionError):
    """redis-py's RedisClusterException ("cannot be connected", a slot no node serves)
    is no RedisError: as this, every handler of Redis failures sees it."""


class _ClusterPipeline(ClusterPipeline):
    def execute(self, raise_on_error: bool = True) -> Any:
        try:
            return super().execute(raise_on_error)
        except RedisClusterException as exc:
            raise ClusterUnavailable(str(exc)) from exc


def _multi_host_kwargs(settings: Settings, url: str, reconnect_s: float) -> dict[str, Any]:
    """Client options for a cluster or Sentinel URL: credentials in the URL count too."""
    kwargs = _client_kwargs(settings, reconnect_s)
    username, password = split_userinfo(url)
    if username and "username" not in kwargs:
        kwargs["username"] = unquote(username)
    if password is not None and "password" not in kwargs:
        kwargs["password"] = unquote(password)
    return kwargs


def retrying(client: Any, do: Callable[[], T]) -> T:
    """``do()``, again (within the client's reconnect window) while a cluster fails over.

    A cluster pipeline does not go through ``_Cluster.execute_command``: ``do`` builds
    and executes the whole pipeline each time, so what it sends must be safe to send
    again (jobledger's write scripts are).  On one server and with Sentinel the
    connection's own retry already covers pipelines: ``do()`` runs once.
    """
    if not isinstance(client, _Cluster):
        return do()
    deadline = time.monotonic() + client.reconnect_s
    delay = 0.05
    while True:
        try:
            return do()
        except redis.AuthenticationError:
            raise
        except _CLUSTER_TRANSIENT as exc:
            if time.monotonic() + delay >= deadline:
                if isinstance(exc, RedisClusterException):
                    raise ClusterUnavailable(str(exc)) from exc
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            # A pipeline error leaves the slot table as it was: ask the cluster again.
            with contextlib.suppress(*_CLUSTER_TRANSIENT):
                client.nodes_manager.initialize()


def _cluster(settings: Settings, url: str, reconnect_s: float) -> Redis:
    kwargs = _multi_host_kwargs(settings, url, reconnect_s)
    # redis-py's cluster nodes take neither a command packer nor our retry (they are
    # filtered out); retries are _Cluster's.
    for name in ("command_packer", "retry", "retry_on_error"):
        kwargs.pop(name)
    seeds, _, _ = split_hosts(url)
    client = _Cluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds],  # type: ignore[no-untyped-call]
        ssl=url.startswith("rediss"),
        **kwargs,
    )
    client.reconnect_s = max(reconnect_s, CLUSTER_RECONNECT_S)
    return client  # type: ignore[return-value]


class _SentinelConnection(SentinelManagedConnection):
    """A connection to the primary the Sentinels name *now*, at every socket connect.

    redis-py reconnects a broken connection through ``connect_check_health``, which
    keeps the host and port it had: after a failover a command in flight kept dialling
    the dead primary until its retry window ended.  Here every socket connect asks the
    Sentinels first (as a fresh connection always did).
    """

    def _connect(self) -> Any:
        if self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super()._connect()  # type: ignore[no-untyped-call]


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    pass


def _sentinel(settings: Settings, url: str, reconnect_s: float) -> Redis:
    kwargs = _multi_host_kwargs(settings, url, reconnect_s)
    seeds, service, _ = split_hosts(url)
    tls = url.startswith("rediss")
    kwargs["connection_class"] = _SentinelSSLConnection if tls else _SentinelConnection
    # The Sentinels answer "which server is the primary" without the server's password
    # (Sentinel has its own, rarely set); TLS as for the server.
    ask: dict[str, Any] = {"socket_connect_timeout": 2, "socket_timeout": 2}
    ask["decode_responses"] = True
    if tls:
        ask.update({k: v for k, v in kwargs.items() if k.startswith("ssl")}, ssl=True)
    manager = Sentinel(seeds, sentinel_kwargs=ask)  # type: ignore[no-untyped-call]
    client: Redis = manager.master_for(service, **kwargs)  # type: ignore[no-untyped-call]
    return client


def connect(settings: Settings, *, check: bool = True, reconnect_s: float = 0.0) -> Redis:
    """A client for the configured server; with ``check`` a PING proves it answers.

    ``reconnect_s`` > 0: each command keeps reconnecting that long before it fails
    (job code, see JOB_RECONNECT_S); otherwise a few retries within about a second
    (on Redis Cluster: CLUSTER_RECONNECT_S, a failover's length).  A
    ``redis+cluster://`` URL (or ``redis_cluster = true``) gives a Redis Cluster client,
    a ``redis+sentinel://`` URL a client of the primary its Sentinels name, which
    follows the primary through a failover.
    """
    url = connection_url(settings)
    with redis_errors(url):
        client: Redis
        if settings.is_redis_cluster:
            if not url.split("://")[0].endswith("+cluster"):
                scheme, _, rest = url.partition("://")
                url = f"{scheme}+cluster://{rest.split('/')[0]}"
            client = _cluster(settings, url, reconnect_s)
        elif url.split("://")[0] in SENTINEL_SCHEMES:
            client = _sentinel(settings, url, reconnect_s)
        else:
            client = redis.Redis.from_url(url, **_client_kwargs(settings, reconnect_s))
        if check:
            client.ping()
    return client


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
        return f"authentication failed ({text})"
    if "certificate" in text.lower() or "SSL" in text:
        return f"TLS failure ({text})"
    return text


@contextlib.contextmanager
def redis_errors(url: str) -> Iterator[None]:
    """Re-raise connection, authentication and TLS failures as one-line RedisUnavailable."""
    try:
        yield
    except (
        redis.ConnectionError,
        redis.TimeoutError,
        redis.AuthenticationError,
        ClusterDownError,
        TryAgainError,
        RedisClusterException,
    ) as exc:
        raise RedisUnavailable(f"cannot use Redis at {mask_url(url)}: {_describe(exc)}") from exc
    except redis.ResponseError as exc:
        if any(word in str(exc) for word in ("NOAUTH", "WRONGPASS", "NOPERM")):
            raise RedisUnavailable(
                f"Redis at {mask_url(url)} refused the request: {_describe(exc)}"
            ) from exc
        raise
