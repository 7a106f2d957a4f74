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

from harness.records.columnar import arrow_schema, read_columns
from harness.records.stage_records import GenerationRecord, JudgmentRecord

if TYPE_CHECKING:
    import pyarrow as pa
    from typing_extensions import Self  # (typing.Self from Python 3.11)

BATCH = 8192
T = TypeVar("T")


class Rows(Generic[T]):
    """Some columns of a stage's records (`model`'s), in record order, as rows of `row` (a named tuple whose
    fields are those columns); iterable as often as needed."""

    row: ClassVar[type[Any]]
    model: ClassVar[type[BaseModel]]

    def __init__(self, table: pa.Table) -> None:
        self._table = table.select(list(self.row._fields))

    @classmethod
    def read(cls, parquet: Path) -> Self:
        return cls(read_columns(parquet, cls.row._fields))

    @classmethod
    def of(cls, records: Iterable[Any]) -> Self:
        """From records in memory (tests, and callers that have only a few)."""
        import pyarrow as pa

        schema = arrow_schema(cls.model)
        fields = cls.row._fields
        rows = [tuple(getattr(r, name) for name in fields) for r in records]
        return cls(pa.table([pa.array([row[i] for row in rows], schema.field(name).type)
                             for i, name in enumerate(fields)], names=list(fields)))

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __iter__(self) -> Iterator[T]:
        make: Callable[[Iterable[Any]], T] = self.row._make
        for batch in self._table.to_batches(max_chunksize=BATCH):
            yield from map(make, zip(*(column.to_pylist() for column in batch.columns)))


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
