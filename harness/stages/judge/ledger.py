"""Which judged pairs are whole, and their records written in pair order.

A pair is whole when every conversation it needs has an outcome (both orders; one conversation when
the two orders are the same text), from the cache or from a call. Its record is made then. Records
go to `emit` in pair order whatever order the calls finished in, so what a run writes does not
depend on the endpoint's timing: the whole prefix goes out once it has grown by `every` pairs, or
`interval_s` after the last write, and at the end. Progress counts whole pairs, in order or not, at
the same moments.

The cache, not these records, is what a resumed stage reads, and a conversation is cached as soon
as it finishes (window.py): a record written late loses nothing when the stage is killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from harness.records.stage_records import JudgmentRecord
from harness.stages.judge.llm import Outcome

Combine = Callable[[int, Outcome, Outcome], JudgmentRecord]
"""(pair index, outcome of order AB, outcome of order BA) -> the pair's record."""
Emit = Callable[[list[JudgmentRecord]], None]
OnProgress = Callable[[int, int], None]
"""(pairs just made whole, pairs in all) -> None."""

INTERVAL_S = 0.5


class PairLedger:
    def __init__(self, keys: Sequence[tuple[str, str]], combine: Combine, emit: Emit,
                 progress: OnProgress | None, every: int, interval_s: float = INTERVAL_S) -> None:
        """keys: per pair, the cache keys of its two orders (equal when both are one conversation)."""
        self._keys = keys
        self._combine, self._emit, self._progress = combine, emit, progress
        self._every, self._interval_s = every, interval_s
        self._outcomes: dict[str, Outcome] = {}
        self._waiting: dict[str, list[int]] = {}
        self._missing = [len(set(pair)) for pair in keys]
        for index, pair in enumerate(keys):
            for key in dict.fromkeys(pair):
                self._waiting.setdefault(key, []).append(index)
        self._records: list[JudgmentRecord | None] = [None] * len(keys)
        self._written = 0
        """Pairs whose records are written: always a prefix."""
        self._unreported = 0
        self._last = time.monotonic()

    def answered(self, outcomes: Mapping[str, Outcome]) -> None:
        """Outcomes by key (cache hits, or calls just finished); pairs they make whole get their records."""
        for key, outcome in outcomes.items():
            self._outcomes[key] = outcome
            for index in self._waiting.pop(key, ()):
                self._missing[index] -= 1
                if not self._missing[index] and index < len(self._records):  # past a cap: not kept
                    ab, ba = self._keys[index]
                    self._records[index] = self._combine(index, self._outcomes[ab], self._outcomes[ba])
                    self._unreported += 1

    def whole(self, index: int) -> bool:
        return index < len(self._records) and self._records[index] is not None

    @property
    def size(self) -> int:
        """Pairs the ledger keeps (all of them, unless `cap` cut the list)."""
        return len(self._records)

    def whole_prefix(self) -> int:
        """How many pairs from the start are whole."""
        end = self._written
        while end < len(self._records) and self._records[end] is not None:
            end += 1
        return end

    def made(self) -> Sequence[JudgmentRecord | None]:
        """Each pair's record once it is whole (None before): read, never changed, by the caller."""
        return self._records

    def cap(self, end: int) -> None:
        """Keep only the first `end` pairs (judging stopped early); they must be whole, and none after
        them written yet."""
        assert self._written <= end <= self.whole_prefix(), "capped outside the whole, unwritten range"
        del self._records[end:]

    def publish(self, force: bool = False, upto: int | None = None) -> None:
        """Write the records of the whole prefix (no further than `upto`) and report progress, when due (or
        `force`)."""
        end = self.whole_prefix() if upto is None else min(upto, self.whole_prefix())
        if end == self._written and not self._unreported:
            return
        now = time.monotonic()
        if not (force or end - self._written >= self._every or now - self._last >= self._interval_s):
            return
        self._last = now
        if end > self._written:
            batch = [r for r in self._records[self._written:end] if r is not None]
            self._written = end
            self._emit(batch)
        if self._progress and self._unreported:
            made, self._unreported = self._unreported, 0
            self._progress(made, len(self._records))

    def records(self) -> list[JudgmentRecord]:
        """Every pair's record, in pair order (all must be whole)."""
        assert self._written == len(self._records), "records asked for before every pair was whole"
        return [r for r in self._records if r is not None]
