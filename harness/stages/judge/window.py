"""The judge's conversations in a sliding window: at most `size` in flight at any moment, and as one
finishes the next starts.

Fixed chunks (the stage's first design) waited for each chunk's slowest call before starting the
next chunk; under an endpoint whose latency has a heavy tail that left most of the concurrency idle.
Here a slow reply holds its own slot and nothing else.

A conversation (its first call and any re-ask) holds one slot from start to end, so the calls in
flight never exceed `size`, and the endpoint's own bound (the same number) never queues one. A
finished conversation is handed to `save` before its slot takes the next: the outcomes that finish
in the same turn of the event loop are saved together, in one batch, and a kill can lose at most the
conversations in flight. Tasks start in the order given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from harness.config.engine import SamplingConfig
from harness.engines.base import Caller, CallingBackend
from harness.stages.judge.llm import Outcome, Task, judge_task
from harness.stages.judge.prompt import LoadedDefinition

OnSaved = Callable[[dict[str, Outcome]], None]
"""Finished conversations by key -> None, once per batch; what it raises stops the window."""


def run_window(backend: CallingBackend, tasks: Iterable[Task], loaded: LoadedDefinition, sampling: SamplingConfig,
               size: int, save: OnSaved) -> None:
    """Every task through the window, `size` at a time; `save` sees each outcome before its slot moves on."""
    async def main() -> None:
        async with backend.session() as call:
            await _slide(call, tasks, loaded, sampling, size, _Saver(save))
    asyncio.run(main())


async def _slide(call: Caller, tasks: Iterable[Task], loaded: LoadedDefinition, sampling: SamplingConfig,
                 size: int, saver: _Saver) -> None:
    queue = iter(tasks)  # one shared iterator: each slot takes the next task not yet started

    async def slot() -> None:
        for task in queue:
            outcome = await judge_task(call, task, loaded, sampling)
            await saver.saved(task.key, outcome)

    slots = [asyncio.ensure_future(slot()) for _ in range(size)]
    try:
        await asyncio.gather(*slots)
    except BaseException:  # a save that failed (or a cancelled stage): stop the calls still in flight
        for s in slots:
            s.cancel()
        await asyncio.gather(*slots, return_exceptions=True)
        raise


class _Saver:
    """Collects finished outcomes and saves them in one batch on the event loop's next turn; every
    slot whose outcome is in the batch waits for the save (and raises what it raised)."""

    def __init__(self, save: OnSaved) -> None:
        self._save = save
        self._pending: dict[str, Outcome] = {}
        self._batch: asyncio.Future[None] | None = None

    async def saved(self, key: str, outcome: Outcome) -> None:
        self._pending[key] = outcome
        if self._batch is None:
            loop = asyncio.get_running_loop()
            self._batch = loop.create_future()
            loop.call_soon(self._flush)
        await asyncio.shield(self._batch)  # one slot cancelled must not cancel the others' wait

    def _flush(self) -> None:
        batch, done = self._pending, self._batch
        self._pending, self._batch = {}, None
        assert done is not None
        try:
            self._save(batch)
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)
