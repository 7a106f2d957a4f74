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


def test_new_cache_files_open_safely_from_several_processes_at_once(tmp_path: Path) -> None:
    """Opening a new cache from 4 processes at once once crashed with "database is locked" (the switch to
    WAL) or "table results already exists" (migrations checked outside the write transaction)."""
    import subprocess
    import sys

    script = ("import sys; from pathlib import Path; from harness.records.cache import Cache\n"
              "for i in range(60):\n"
              "    c = Cache(Path(sys.argv[1]) / f'c{i}.sqlite'); c.put_many('n', {'k': i}); c.close()\n")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    for i in range(60):
        cache = Cache(tmp_path / f"c{i}.sqlite")
        applied = [r[0] for r in cache._db.execute("SELECT name FROM migrations")]
        assert applied == [name for name, _ in MIGRATIONS] and cache.get_many("n", ["k"]) == {"k": i}
        cache.close()


def test_a_cache_that_cannot_be_opened_is_one_line_and_the_infrastructure_code(tmp_path: Path) -> None:
    import subprocess

    import pytest

    from harness.errors import InfraError
    from tests.conftest import ROOT, harness_cmd

    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(InfraError, match=r"dir.sqlite: cannot open the cache \("):
        Cache(tmp_path / "dir.sqlite")
    result = subprocess.run(harness_cmd("train", str(ROOT / "examples" / "sft.yaml"), "--cache",
                                        str(tmp_path / "dir.sqlite")), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 3 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
