"""Content-addressed SQLite cache.

A key is the sha256 of everything that determines a result (model
fingerprint, adapter, template, prompt, sampling, ...). Results are written
as they arrive, one transaction per batch, so a killed run resumes where it
stopped and an unchanged rerun makes no model call. Failures are never
stored: only finished results are `put`.

Schema changes are named migrations applied in order and recorded in the
`migrations` table (the simonw/llm pattern).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from harness.errors import InfraError
from harness.locks import exclusive_lock

MIGRATIONS: list[tuple[str, str]] = [
    ("001_results", """
        CREATE TABLE results (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (namespace, key)
        )"""),
    ("002_file_digests", """
        CREATE TABLE file_digests (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            digest TEXT NOT NULL
        )"""),
]


def default_cache_dir() -> Path:
    env = os.environ.get("HARNESS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "harness"


def content_key(parts: Mapping[str, Any]) -> str:
    """Stable key: sha256 of canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Cache:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # One process at a time opens (switches to WAL, migrates): several opening a new file at
            # once otherwise raced to "database is locked" or "table results already exists".
            with exclusive_lock(path.parent / f".{path.name}.open.lock"):
                _retry_locked(lambda: self._connect(path))
        except (sqlite3.Error, OSError) as exc:
            raise InfraError(f"{path}: cannot open the cache ({exc}); check the path (--cache or "
                             "$HARNESS_CACHE_DIR) is a writable file") from None

    def _connect(self, path: Path) -> None:
        # isolation_level=None: we open transactions explicitly, one per batch.
        self._db = sqlite3.connect(str(path), isolation_level=None, timeout=60.0)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # Keys are hashes, so a batch of 1,000 answers lands on 1,000 random pages of the key index,
            # and every commit writes each of them to the log again. Copying the log back into the file
            # (and syncing both) after every 10,000 pages rather than SQLite's 1,000, with 16 MiB of pages
            # kept in memory rather than 2, halves the time the cache takes to write 200,000 answers.
            self._db.execute("PRAGMA wal_autocheckpoint=10000")
            self._db.execute("PRAGMA cache_size=-16384")
            self._migrate()
        except BaseException:
            self._db.close()
            raise

    def work_lock(self, kind: str, identity: Any) -> AbstractContextManager[None]:
        """One process at a time does a piece of model work (a checkpoint's generations, its forgetting
        tasks) for this cache; another that asks for the same waits, then finds the results here. Two
        identical compares started together so make each model call once."""
        locks = self.path.parent / "locks"
        locks.mkdir(exist_ok=True)
        return exclusive_lock(locks / f"{self.path.stem}-{kind}-{content_key(identity)[:16]}.lock")

    def _migrate(self) -> None:
        """Every pending migration in one write transaction, which also reads what is done: a process
        that opened an older file meanwhile never applies a migration twice."""
        with self._transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL)")
            done = {row[0] for row in self._db.execute("SELECT name FROM migrations")}
            for name, sql in MIGRATIONS:
                if name not in done:
                    self._db.execute(sql)
                    self._db.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))

    def _transaction(self) -> sqlite3.Connection:
        return _Tx(self._db)  # type: ignore[return-value]

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, Any]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        with self._damage_is_infrastructure():
            for start in range(0, len(wanted), 500):  # SQLite caps bound parameters
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT key, value FROM results WHERE namespace = ? AND key IN ({marks})",
                    (namespace, *chunk))
                found.update((key, json.loads(value)) for key, value in rows)
        return found

    def put_many(self, namespace: str, items: Mapping[str, Any]) -> None:
        now = time.time()
        with self._damage_is_infrastructure(), self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)",
                [(namespace, k, json.dumps(v, ensure_ascii=False), now) for k, v in items.items()])

    @contextmanager
    def _damage_is_infrastructure(self) -> Iterator[None]:
        """A cache file damaged on disk (truncated, overwritten) or a full disk stops the run with one
        line and exit 3, never a traceback."""
        try:
            yield
        except (sqlite3.DatabaseError, ValueError) as exc:  # ValueError: a stored value that is not JSON
            raise InfraError(f"{self.path}: the cache is damaged or cannot be written ({exc}); delete it or "
                             "choose another with --cache (it holds only answers that can be asked again)") from None

    def count(self, namespace: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM results WHERE namespace = ?", (namespace,)).fetchone()[0])

    def file_digest(self, path: Path, compute: Any) -> str:
        """sha256 of a (large) file, memoised on (path, size, mtime)."""
        stat = path.stat()
        row = self._db.execute("SELECT size, mtime_ns, digest FROM file_digests WHERE path = ?",
                               (str(path),)).fetchone()
        if row and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
            return str(row[2])
        digest = str(compute(path))
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?)",
                             (str(path), stat.st_size, stat.st_mtime_ns, digest))
        return digest

    def close(self) -> None:
        self._db.close()


def _retry_locked(open_it: Callable[[], None], attempts: int = 8) -> None:
    """SQLite answers "database is locked" at once to some schema and journal changes (its busy timeout
    does not cover them); a short backoff is enough."""
    for attempt in range(attempts):
        try:
            open_it()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
