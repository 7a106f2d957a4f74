"""A stage's records as Arrow columns: its Parquet written as it runs, and columns read back.

A stage appends its records to JSONL as they are final (what a killed run keeps). The same
records go, as typed columns, into row groups of a Parquet file that becomes the stage's when it
completes: no record is held for it, and no file is parsed again. The column types come from
the record's model, not from the values, so every Parquet file of a stage has one schema
whatever its values (an optional field that is always missing is still a typed column).
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from harness.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

ROW_GROUP = 65_536
"""Records per Parquet row group: a stage's appends are gathered (as columns) up to this many."""


def arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """The Arrow type of a flat record field's annotation, and whether it may be missing."""
    import pyarrow as pa

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"no single Arrow type for {annotation!r}")
        return arrow_type(kinds[0])[0], True
    if origin is typing.Literal:
        values = {type(a) for a in args}
        if len(values) != 1:
            raise TypeError(f"no single Arrow type for {annotation!r}")
        annotation = values.pop()
    simple: dict[Any, pa.DataType] = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    if annotation not in simple:
        raise TypeError(f"no Arrow type for {annotation!r}: records are flat")
    return simple[annotation], False


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    import pyarrow as pa

    fields = []
    for name, info in model.model_fields.items():
        kind, optional = arrow_type(info.annotation)
        fields.append(pa.field(name, kind, nullable=optional or info.default is None))
    return pa.schema(fields)


class ParquetSink:
    """One stage's records as they are appended, into a temporary Parquet file that finish() makes the
    stage's (atomically) and discard() removes."""

    def __init__(self, target: Path, model: type[BaseModel]) -> None:
        self.target, self.model = target, model
        self.schema = arrow_schema(model)
        self._tmp = target.with_name(f".{target.name}.tmp")
        self._writer: Any = None
        self._pending: list[pa.RecordBatch] = []
        self._waiting = 0
        self.count = 0

    def add(self, records: Sequence[BaseModel]) -> None:
        import pyarrow as pa

        if not records:
            return
        # A flat record's __dict__ is its fields; Arrow converts the dicts a column at a time in C++ (about
        # five times faster than a getattr per field and record).
        self._pending.append(pa.RecordBatch.from_pylist([r.__dict__ for r in records], schema=self.schema))
        self._waiting += len(records)
        self.count += len(records)
        if self._waiting >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, self.schema)
        if self._pending:
            self._writer.write_table(pa.Table.from_batches(self._pending, schema=self.schema))
        self._pending, self._waiting = [], 0

    def finish(self) -> int:
        """The stage's Parquet, whole; returns how many records it holds."""
        self._flush()
        self._writer.close()
        os.replace(self._tmp, self.target)
        return self.count

    def discard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)
        self._pending, self._waiting, self.count, self._writer = [], 0, 0, None


def read_metadata(parquet: Path) -> pq.FileMetaData:
    """A finished stage's Parquet's metadata (rows, columns): a missing or broken file is one line."""
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(parquet)
    except (OSError, ValueError) as exc:  # missing, truncated, foreign (pyarrow's errors are these)
        raise ConfigError(str(parquet), None, f"not a readable Parquet file of this stage ({type(exc).__name__}): "
                          "the file is missing, truncated or corrupt") from None
