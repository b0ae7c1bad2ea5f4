"""The driver's loop, shared by the run modes: tasks through the bounded window
(:func:`pipeline.run.submit.run_window`) with a progress bar (or heartbeat lines without a
terminal), and each second the store's identity, the SLURM job keeper and the caller's own
check. A store deleted or replaced under the run, or the job keeper giving up, cancels the
tasks in flight and propagates; finished work stays done."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import StoreChangedError
from pipeline.run.context import RunContext
from pipeline.run.progress import Heartbeat
from pipeline.run.submit import WindowPolicy, WindowStats, run_window
from pipeline.store.handle import Store

__all__ = ["Meter", "TaskLoop", "task_error"]


@dataclass(frozen=True)
class Meter:
    """What the progress shows: ``desc`` and ``unit`` of the bar, ``bar_total`` units for
    the bar; the heartbeat (named ``beat_desc``, default ``desc``) counts ``beat_total``
    (default the bar's) of which ``done`` are done already."""

    desc: str
    unit: str
    bar_total: int
    beat_total: int | None = None
    done: int = 0
    beat_desc: str | None = None


def task_error(fut: Any) -> str:
    """The error text of a task that did not finish (its exception, or its status); a
    store that changed identity is raised instead (the run stops)."""
    exc = fut.exception() if fut.status == "error" else None
    if isinstance(exc, StoreChangedError):
        raise exc
    return f"{type(exc).__name__}: {exc}" if exc is not None else f"task {fut.status}"


class TaskLoop:
    """One run's tasks on ``client`` (with the SLURM job keeper ``watch``) for ``store``
    (opened: its token is checked every second) under the context ``ctx``."""

    def __init__(
        self, ctx: RunContext, store: Store, client: Any, watch: Callable[[], None] | None
    ) -> None:
        self.ctx, self.store, self.client, self.watch = ctx, store, client, watch

    def run(
        self,
        items: Iterable[Any],
        submit: Callable[[Any], Any],
        on_done: Callable[[Any, Any, Any], tuple[float | None, int]],
        meter: Meter,
        policy: WindowPolicy,
        every: Callable[[], None] | None = None,
    ) -> WindowStats:
        """Run ``items`` (``submit(item)`` makes a task's future); ``on_done(item, future,
        result or None)`` returns (the task's seconds or None, units of the meter it
        finished); ``every`` runs with each tick (e.g. folding done markers)."""
        from tqdm.auto import tqdm

        ctx = self.ctx
        bar = tqdm(
            total=meter.bar_total, desc=meter.desc, unit=meter.unit,
            disable=not ctx.progress, file=sys.stderr,
        )  # fmt: skip
        beat = None
        if not ctx.progress:  # batch logs: a heartbeat line every few minutes
            total = meter.bar_total if meter.beat_total is None else meter.beat_total
            desc = meter.desc if meter.beat_desc is None else meter.beat_desc
            beat = Heartbeat(ctx.say, total, meter.done, desc=desc, unit=meter.unit + "s")

        def finished(item: Any, fut: Any, result: Any) -> float | None:
            seconds, n = on_done(item, fut, result)
            bar.update(n)
            if beat is not None:
                beat.update(n)
            return seconds

        def tick() -> None:
            self.store.check_identity()
            if self.watch is not None:
                self.watch()
            if every is not None:
                every()
            if beat is not None:
                beat.tick()

        try:
            stats = run_window(self.client, iter(items), submit, finished, policy, tick)
            # the workers checked the store before each write; a store deleted or replaced
            # after the last check must not be reported as complete
            self.store.check_identity()
        finally:
            bar.close()
        return stats
