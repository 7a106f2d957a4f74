"""The SQLite cache: migrations, round trips, persistence across connections."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from harness.records.cache import MIGRATIONS, Cache, content_key


def test_content_key_is_canonical() -> None:
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert len(content_key({})) == 64


def test_round_trip_and_persistence(cache_path: Path) -> None:
    cache = Cache(cache_path)
    cache.put_many("ns", {"k1": {"text": "héllo"}, "k2": {"text": "b"}})
    cache.close()
    again = Cache(cache_path)
    assert again.get_many("ns", ["k1", "k2", "missing"]) == {"k1": {"text": "héllo"}, "k2": {"text": "b"}}
    assert again.get_many("other", ["k1"]) == {}
    assert again.count("ns") == 2


def test_many_keys_beyond_sqlite_parameter_limit(cache_path: Path) -> None:
    cache = Cache(cache_path)
    cache.put_many("ns", {str(i): i for i in range(2000)})
    assert len(cache.get_many("ns", [str(i) for i in range(2500)])) == 2000


def test_migrations_are_named_and_applied_once(cache_path: Path) -> None:
    Cache(cache_path).close()
    Cache(cache_path).close()
    names = [r[0] for r in sqlite3.connect(cache_path).execute("SELECT name FROM migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]


def test_file_digest_is_memoised_until_the_file_changes(cache_path: Path, tmp_path: Path) -> None:
    cache = Cache(cache_path)
    target = tmp_path / "w.bin"
    target.write_bytes(b"abc")
    calls: list[Path] = []

    def compute(p: Path) -> str:
        calls.append(p)
        return p.read_bytes().hex()

    assert cache.file_digest(target, compute) == "616263"
    assert cache.file_digest(target, compute) == "616263"
    assert len(calls) == 1
    target.write_bytes(b"abcd")
    assert cache.file_digest(target, compute) == "61626364"
    assert len(calls) == 2
