"""The results API on both real servers, and compatibility with the seed's plain keys."""

from __future__ import annotations

import pytest
import redis

from conftest import CLUSTER_KINDS, K, Server
from jobledger.errors import InvalidValue, UsageError
from jobledger.store import Results, purge_results, top_results

REDIS_KINDS = CLUSTER_KINDS  # these suites run on Redis Cluster too


@pytest.fixture
def res(jl_client: redis.Redis) -> Results:
    return Results(jl_client, "rlmol_exp", "4238610")


def test_set_writes_the_seed_key_layout(res: Results, client: redis.Redis) -> None:
    res.set("reward", 0.52)
    res.set("name", "ethanol")
    assert client.get(K(client, "rlmol_exp-4238610:reward")) == "0.52"
    assert client.get(K(client, "rlmol_exp-4238610:name")) == "ethanol"
    assert res.prefix == K(res.client, "rlmol_exp-4238610:x")[:-2]


def test_get_keys_items_delete(res: Results) -> None:
    res.update({"a": 1, "b": 2.5, "c": "text", "d": b"\xff\x00raw"})
    assert res.get("a") == "1"
    assert res.get("missing") is None
    assert res.keys() == ["a", "b", "c", "d"]
    assert res.items()["b"] == "2.5"
    assert res.get_bytes("d") == b"\xff\x00raw"
    assert res.delete("a", "nope") == 1
    assert res.keys() == ["b", "c", "d"]


def test_incr_counts_atomically_and_ranks(res: Results) -> None:
    assert res.incr("steps") == 1
    assert res.incr("steps", 41) == 42
    assert res.incr("loss", 0.5) == pytest.approx(0.5)
    assert [(e.key, e.value) for e in res.top(1)] == [("steps", 42.0)]


def test_top_skips_non_numeric_and_follows_overwrites(res: Results) -> None:
    res.update({"x": 0.1, "y": 0.9, "z": "n/a", "w": "nan"})
    res.set("x", 5)
    assert [(e.key, e.value) for e in res.top(3)] == [("x", 5.0), ("y", 0.9)]
    res.set("x", "gone")
    assert [e.key for e in res.top(3)] == ["y"]


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}, object()])
def test_other_value_types_are_refused_with_a_clear_error(res: Results, value: object) -> None:
    with pytest.raises(InvalidValue, match="values must be str, int, float or bytes"):
        res.set("k", value)  # type: ignore[arg-type]
    assert res.keys() == []


@pytest.mark.parametrize("key", ["", "a\nb", "nul\x00"])
def test_bad_key_names_are_refused(res: Results, key: str) -> None:
    with pytest.raises(UsageError):
        res.set(key, 1)


def test_seed_written_results_are_found_by_scan(
    jl_client: redis.Redis, client: redis.Redis
) -> None:
    client.sadd(K(client, "rlmol_exp_ALL"), "4238610", "4238611")
    client.set(K(client, "rlmol_exp-4238610:bd291298-f442"), "0.5227367576701759")
    client.set(K(client, "rlmol_exp-4238610:bd295cbc-f442"), "0.16931495241029793")
    client.set(K(client, "rlmol_exp-4238611:other"), "0.9")
    client.set(K(client, "rlmol_exp-4238611:label"), "not a number")
    client.set(K(client, "rlmol_exp-1-2:x"), "99")  # another tag ("rlmol_exp-1"): never ours
    r = Results(jl_client, "rlmol_exp", "4238610")
    assert r.keys() == ["bd291298-f442", "bd295cbc-f442"]
    assert r.top(1)[0].value == pytest.approx(0.5227367576701759)
    top = top_results(jl_client, "rlmol_exp", 2)
    assert [(e.job_id, e.key) for e in top] == [("4238611", "other"), ("4238610", "bd291298-f442")]


def test_top_across_tag_merges_indexed_and_seed_jobs(
    jl_client: redis.Redis, client: redis.Redis
) -> None:
    Results(jl_client, "t", "1").update({"a": 0.3, "b": 0.7})
    client.sadd(K(client, "t_ALL"), "1", "2")
    client.set(K(client, "t-2:c"), "0.5")
    top = top_results(jl_client, "t", 3)
    assert [(e.job_id, e.key, e.value) for e in top] == [
        ("1", "b", 0.7),
        ("2", "c", 0.5),
        ("1", "a", 0.3),
    ]


def test_written_results_are_plain_redis_strings(res: Results, client: redis.Redis) -> None:
    res.update({"k1": 1, "k2": "v"})
    assert client.type(K(client, "rlmol_exp-4238610:k1")) == "string"
    assert client.mget(K(client, "rlmol_exp-4238610:k1"), K(client, "rlmol_exp-4238610:k2")) == [
        "1",
        "v",
    ]


def test_purge_results_only_touches_its_tag(jl_client: redis.Redis, client: redis.Redis) -> None:
    Results(jl_client, "a", "1").set("x", 1)
    client.set(K(client, "a_b-1:x"), "1")
    client.set(K(client, "ab-1:x"), "1")
    client.set(K(client, "a-1-2:x"), "1")
    assert purge_results(jl_client, "a") == 1
    assert client.exists(K(client, "a_b-1:x"), K(client, "ab-1:x"), K(client, "a-1-2:x")) == 3


def test_incr_of_a_text_value_is_an_invalid_value_error(res: Results) -> None:
    res.set("label", "abc")
    with pytest.raises(InvalidValue, match="not a number"):
        res.incr("label")
    assert res.get("label") == "abc"


def test_float_subclasses_are_stored_as_plain_numbers(res: Results, client: redis.Redis) -> None:
    class Float64(float):
        def __repr__(self) -> str:
            return f"np.float64({float(self)})"

    res.set("x", Float64(0.25))
    assert client.get(K(client, "rlmol_exp-4238610:x")) == "0.25"
    assert res.top(1)[0].value == 0.25


def test_seed_results_of_ended_jobs_are_indexed_by_the_first_top(
    jl_client: redis.Redis, client: redis.Redis
) -> None:
    client.sadd(K(client, "t_ALL"), "1", "2")
    client.sadd(K(client, "t_COMPLETED"), "1")
    client.sadd(K(client, "t_PENDING_AND_RUNNING"), "2")
    client.set(K(client, "t-1:a"), "0.5")
    client.set(K(client, "t-2:b"), "0.9")
    assert [(e.job_id, e.key) for e in top_results(jl_client, "t", 2)] == [("1", "a")]
    assert client.smembers(K(client, "jobledger:t:indexed")) == {"1"}  # job 2 may still write
    assert client.smembers(K(client, "jobledger:t:index:1")) == {"a"}
    client.delete(K(client, "t-1:a"))  # no SCAN now: job 1's results come from the index
    assert Results(jl_client, "t", "1").keys() == ["a"]


def test_top_does_not_walk_the_keyspace_for_jobs_still_running(
    jl_client: redis.Redis, client: redis.Redis
) -> None:
    Results(jl_client, "t", "1").set("a", 0.5)
    client.sadd(K(client, "t_ALL"), "1", "2")
    client.sadd(K(client, "t_PENDING_AND_RUNNING"), "2")  # pending: nothing written yet, no index
    client.config_resetstat()
    assert [e.key for e in top_results(jl_client, "t", 3)] == ["a"]
    assert "cmdstat_scan" not in client.info("commandstats")


def test_jobledger_results_stays_the_function_after_every_import() -> None:
    import importlib

    import jobledger

    for name in ("jobledger.store", "jobledger.cli", "jobledger.schedulers.local"):
        importlib.import_module(name)
    assert callable(jobledger.results)
    assert jobledger.results.__module__ == "jobledger"


def test_the_two_command_packers_write_the_same_bytes() -> None:
    """hiredis packs every command it can, redis-py's Python packer the rest: a command
    must mean the same to the server whichever packed it."""
    from redis._parsers import Encoder
    from redis.connection import HiredisRespSerializer, PythonRespSerializer

    python = PythonRespSerializer(6000, Encoder("utf-8", "surrogateescape", False).encode)
    fast = HiredisRespSerializer()
    for args in [
        ("SET", "t-1:reward", 0.1),
        ("ZADD", "z", 1e300, "m", -0.0, "n", 10**30, "o"),
        ("SET", "é ü", b"\xff\x00raw", 7),
        ("EVALSHA", "abc", 2, "k1", "k2", "", "x" * 10_000),
    ]:
        assert b"".join(fast.pack(*args)) == b"".join(python.pack(*args)), args


def test_keys_with_bytes_that_are_not_utf8_are_read_and_sent_back(
    res: Results, server: Server
) -> None:
    if server.kind == "redis-cluster":
        pytest.skip("redis-py's cluster client encodes keys strictly (no command packer)")
    raw = redis.Redis.from_url(server.url)
    raw.set(b"rlmol_exp-4238610:caf\xe9", b"1.5")  # a seed job writing Latin-1 names
    assert res.keys() == ["caf\udce9"]  # surrogate-escaped, hiredis cannot encode it
    assert res.items() == {"caf\udce9": "1.5"}  # the MGET went through the Python packer
    raw.close()


def test_one_update_writes_every_value_and_its_index_entries(
    res: Results, client: redis.Redis
) -> None:
    values: dict[str, str | float] = {f"k{i}": i * 0.5 for i in range(1000)}
    values["k7"] = "text"
    res.update(values)
    res.update({"k8": "now text", "k9": 99})
    assert client.get(K(client, "rlmol_exp-4238610:k7")) == "text"
    assert len(client.smembers(K(client, "jobledger:rlmol_exp:index:4238610"))) == 1000
    job_rank = client.zrange(
        K(client, "jobledger:rlmol_exp:numeric:4238610"), 0, -1, withscores=True
    )
    assert len(job_rank) == 998 and ("k9", 99.0) in job_rank
    assert client.zscore(K(client, "jobledger:rlmol_exp:numeric"), "4238610:k999") == 499.5
    assert client.zscore(K(client, "jobledger:rlmol_exp:numeric"), "4238610:k8") is None
    assert client.sismember(K(client, "jobledger:rlmol_exp:indexed"), "4238610")
    assert client.sismember("jobledger:tags", "rlmol_exp")
    assert client.zscore(K(client, "jobledger:rlmol_exp:heartbeats"), "4238610") is not None
    assert res.items()["k999"] == "499.5"


def test_writes_with_durability_replica_count_what_no_replica_confirmed(
    jl_client: redis.Redis,
) -> None:
    from jobledger.durability import Durability
    from jobledger.keys import CLUSTER_LAYOUT, layout_for

    res = Results(jl_client, "d", "1", durability=Durability(1, 50))
    res.set("a", 1)
    assert res.incr("n", 2) == 2 and res.incr("n", 0.5) == 2.5
    # The session's cluster has a replica per primary; the single servers have none.
    assert res.unconfirmed == (0 if layout_for(jl_client) is CLUSTER_LAYOUT else 3)
    assert res.items() == {"a": "1", "n": "2.5"}
