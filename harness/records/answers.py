"""A finished stage's records as the later stages read them: columns, not records.

Checks, the judge's pairs and the summary each walk every answer, and the judge's statistics every
judgment. Holding a pydantic record each for them costs about a kilobyte a record; the fields they
read, as Arrow columns read back from the stage's Parquet, cost their bytes. Each walk makes light
rows (named tuples) a batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

from pydantic import BaseModel

from harness.errors import ConfigError
from harness.records.columnar import arrow_schema, read_metadata
from harness.records.stage_records import GenerationRecord, JudgmentRecord

if TYPE_CHECKING:
    import pyarrow as pa

BATCH = 8192
T = TypeVar("T")
R = TypeVar("R", bound="Rows[Any]")  # (typing.Self needs Python 3.11)


class Rows(Generic[T]):
    """Some columns of a stage's records (`model`'s), in record order, as rows of `row` (a named tuple whose
    fields are those columns); iterable as often as needed. Read from the stage's Parquet, they are read
    again, a batch at a time, on each walk: nothing is held between walks."""

    row: ClassVar[type[Any]]
    model: ClassVar[type[BaseModel]]
    repeated: ClassVar[frozenset[str]] = frozenset()
    """Columns of few distinct values (a role, a suite's name): each value is one string for all rows."""

    def __init__(self, source: pa.Table | Path) -> None:
        self._table: pa.Table | None = None
        self._path: Path | None = None
        if isinstance(source, Path):
            meta = read_metadata(source)
            missing = set(self.row._fields) - set(meta.schema.names)
            if missing:
                raise ConfigError(str(source), None, f"has no column {sorted(missing)[0]!r}: not the Parquet file "
                                  f"of {self.model.__name__} records")
            self._path, self._rows = source, int(meta.num_rows)
        else:
            self._table, self._rows = source.select(list(self.row._fields)), int(source.num_rows)

    @classmethod
    def read(cls: type[R], parquet: Path) -> R:
        """A finished stage's Parquet; a missing, broken or foreign file is a ConfigError."""
        return cls(parquet)

    @classmethod
    def of(cls: type[R], records: Iterable[Any]) -> R:
        """From records in memory (tests, and callers that have only a few)."""
        import pyarrow as pa

        schema = arrow_schema(cls.model)
        fields = cls.row._fields
        rows = [tuple(getattr(r, name) for name in fields) for r in records]
        return cls(pa.table([pa.array([row[i] for row in rows], schema.field(name).type)
                             for i, name in enumerate(fields)], names=list(fields)))

    def __len__(self) -> int:
        return self._rows

    def __iter__(self) -> Iterator[T]:
        make: Callable[[Iterable[Any]], T] = self.row._make
        repeated = [i for i, name in enumerate(self.row._fields) if name in self.repeated]
        one: dict[Any, Any] = {}
        for batch in self._batches():
            columns = [column.to_pylist() for column in batch.columns]
            for i in repeated:
                columns[i] = [one.setdefault(value, value) for value in columns[i]]
            yield from map(make, zip(*columns))

    def _batches(self) -> Iterator[pa.RecordBatch]:
        if self._table is not None:
            yield from self._table.to_batches(max_chunksize=BATCH)
            return
        import pyarrow.parquet as pq

        assert self._path is not None
        with pq.ParquetFile(self._path) as file:
            yield from file.iter_batches(batch_size=BATCH, columns=list(self.row._fields))


class AnswerRow(Protocol):
    """What the stages after generation read of an answer: an Answer, or a GenerationRecord."""

    @property
    def role(self) -> str: ...
    @property
    def suite(self) -> str: ...
    @property
    def item_id(self) -> str: ...
    @property
    def sample_index(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def finish_reason(self) -> str: ...
    @property
    def completion_tokens(self) -> int: ...


class Answer(NamedTuple):
    role: str
    suite: str
    item_id: str
    sample_index: int
    text: str
    finish_reason: str
    completion_tokens: int


class Answers(Rows[Answer]):
    """Every answer of a run (its generations stage's records), in record order."""

    row, model = Answer, GenerationRecord
    repeated = frozenset({"role", "suite", "finish_reason"})


class Judgment(NamedTuple):
    """A judgment record without its texts (the judge's replies and reasons), as the statistics read it."""

    judge: str
    kind: str
    model: str | None
    suite: str
    item_id: str
    sample_index: int
    canary: str | None
    decided_by: str
    verdict_ab: str | None
    verdict_ba: str | None
    score_base: int | None
    score_candidate: int | None
    preference: str
    consistent: bool | None
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    calls: int
    cached: bool
    base_words: int
    candidate_words: int


class Judgments(Rows[Judgment]):
    """Every judgment of a run (its judge stage's records), in record order."""

    row, model = Judgment, JudgmentRecord
    repeated = frozenset({"judge", "kind", "model", "suite", "canary", "decided_by", "verdict_ab", "verdict_ba",
                          "preference"})
