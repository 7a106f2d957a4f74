"""A stage's records as Arrow columns: its JSONL made into Parquet, and columns read back.

A stage appends its records to JSONL as they are final; when it completes, the JSONL is parsed
straight into typed columns (Arrow's JSON reader, in C++) and written as Parquet. No record is
held in Python for it, so finishing a stage of a million records costs their bytes, not a
million objects. The column types come from the record's model, not from the values, so every
Parquet file of a stage has one schema whatever its values (an optional field that is always
missing is still a typed column).
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

BLOCK_BYTES = 4 << 20
"""Arrow's JSON reader parses a block at a time, and needs each line inside one block: a file with a
longer line is read again in blocks that hold its longest (larger blocks are slower to parse)."""


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


def jsonl_to_parquet(jsonl: Path, target: Path, model: type[BaseModel]) -> int:
    """Write `target` (atomically) from the records in `jsonl` (absent: none); returns how many."""
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    schema = arrow_schema(model)
    if jsonl.is_file() and jsonl.stat().st_size:
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
        try:
            table = pj.read_json(jsonl, read_options=pj.ReadOptions(block_size=BLOCK_BYTES), parse_options=options)
        except pa.ArrowInvalid:  # a line longer than a block (and only that: the lines are ours, whole)
            longest = max(map(len, jsonl.open("rb")))
            table = pj.read_json(jsonl, read_options=pj.ReadOptions(block_size=2 * longest + 1),
                                 parse_options=options)
        table = table.select(schema.names)
    else:
        table = schema.empty_table()
    tmp = target.with_name(f".{target.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, target)
    return int(table.num_rows)


def read_columns(parquet: Path, columns: Sequence[str]) -> pa.Table:
    """Some columns of a finished stage's Parquet (the others are never read from disk)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_table(parquet, columns=list(columns))
    except (OSError, ValueError) as exc:  # missing, truncated, foreign (pyarrow's errors are these)
        raise ConfigError(str(parquet), None, f"not a readable Parquet file of this stage ({type(exc).__name__}): "
                          "the file is missing, truncated or corrupt") from None
