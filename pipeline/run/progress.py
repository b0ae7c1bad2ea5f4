"""How fast a sweep goes and when it ends: rates, ETAs, heartbeat lines, readable durations.

* :func:`format_duration` writes seconds as people read them (``"950 ms"``, ``"4 min 19 s"``,
  ``"2 d 3 h"``).
* :func:`done_times` reads when each done chunk of a store finished: the done index keeps the
  time each folded marker was written (``t``), per-chunk marker files not folded yet give
  their modification time. :func:`rate_eta` turns these into a rate over the recent window
  and the time left at that rate (what ``sweep status`` prints).
* :class:`Heartbeat` is the log line of a run whose progress bar is off (``--no-progress``,
  batch jobs): done/total, rate and ETA at most every :func:`heartbeat_every` seconds
  (``SWEEP_HEARTBEAT_S``, default 120).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.durations import format_duration

__all__ = [
    "HEARTBEAT_ENV",
    "Heartbeat",
    "RateEta",
    "done_times",
    "format_duration",
    "heartbeat_every",
    "rate_eta",
]

HEARTBEAT_ENV = "SWEEP_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 120.0
RATE_WINDOW_S = 600.0
"""The recent window (seconds) over which rates are measured."""


def heartbeat_every() -> float:
    """Seconds between heartbeat lines: ``SWEEP_HEARTBEAT_S`` if set to a number >= 0, else
    120."""
    try:
        value = float(os.environ.get(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S))
    except ValueError:
        return DEFAULT_HEARTBEAT_S
    return value if value >= 0 else DEFAULT_HEARTBEAT_S


def done_times(store: str | Path, counts: tuple[int, ...], token: str | None) -> np.ndarray:
    """When the done chunks of ``store`` finished, in seconds since the epoch, shape
    ``(n_known,)``, unsorted: the index's recorded times (NaN ones dropped) and the mtimes of
    per-chunk marker files not yet folded into it."""
    from pipeline.store.markers import DONE_DIR, INDEX_FILE, load_index

    out: list[np.ndarray] = []
    index, _ = load_index(store, counts, token, codes_only=True, times=True)
    if index is not None:
        t = index.times[index.codes > 0]
        out.append(t[np.isfinite(t)])
    folder = Path(store) / DONE_DIR
    try:
        entries = list(os.scandir(folder))
    except OSError:
        entries = []
    mt = []
    for e in entries:
        if e.name == INDEX_FILE or ".tmp" in e.name or not e.name[:1].isdigit():
            continue
        try:
            mt.append(e.stat().st_mtime)
        except OSError:  # folded and deleted meanwhile
            continue
    out.append(np.asarray(mt, np.float64))
    return np.concatenate(out)


@dataclass(frozen=True)
class RateEta:
    """A measured rate (``rate``: units per second over ``window`` seconds ending at
    ``last``, epoch seconds) and the time left for ``remaining`` units at that rate
    (``eta``, seconds; NaN when the rate is unknown)."""

    rate: float
    window: float
    last: float
    remaining: int

    @property
    def eta(self) -> float:
        if self.remaining == 0:
            return 0.0
        return self.remaining / self.rate if self.rate > 0 else math.nan

    def line(self, unit: str = "chunks") -> str:
        """``rate 3.2 chunks/s (last 4 min 10 s), ETA 5 min 2 s`` (or why there is none)."""
        if not self.rate > 0:
            return "rate: unknown (fewer than 2 finish times recorded)"
        return (
            f"rate {_rate_text(self.rate, unit)} (over the last {format_duration(self.window)}"
            f" of finish times), ETA {format_duration(self.eta)} for {self.remaining} more"
        )


def _rate_text(rate: float, unit: str) -> str:
    if rate >= 0.1:
        return f"{rate:.3g} {unit}/s"
    if rate * 60 >= 0.1:
        return f"{rate * 60:.3g} {unit}/min"
    return f"{rate * 3600:.3g} {unit}/h"


def rate_eta(times: np.ndarray, remaining: int, window: float = RATE_WINDOW_S) -> RateEta:
    """The rate of the finish ``times`` (epoch seconds) over the last ``window`` seconds
    before the latest one: (count - 1) / (span of those times), so n finishes spread over
    s seconds give (n - 1)/s per second; NaN with fewer than 2 distinct times there."""
    t = np.sort(np.asarray(times, np.float64))
    if t.size < 2:
        return RateEta(math.nan, 0.0, float(t[-1]) if t.size else math.nan, remaining)
    last = float(t[-1])
    recent = t[t >= last - window]
    if recent.size < 2 or recent[-1] <= recent[0]:
        recent = t[-min(t.size, 50) :]  # a slow sweep: its last finishes, however old
    span = float(recent[-1] - recent[0])
    if span <= 0:
        return RateEta(math.nan, 0.0, last, remaining)
    return RateEta((recent.size - 1) / span, span, last, remaining)


class Heartbeat:
    """Log lines for a run without a progress bar: ``update(n)`` as units finish and
    ``tick()`` now and then; a line (done/total, rate over the recent window, ETA) goes to
    ``say`` at most every ``every`` seconds (default :func:`heartbeat_every`)."""

    def __init__(
        self,
        say: Callable[[str], None],
        total: int,
        done: int = 0,
        *,
        desc: str = "progress",
        unit: str = "chunks",
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.say, self.total, self.done = say, int(total), int(done)
        self.desc, self.unit, self.clock = desc, unit, clock
        self.every = heartbeat_every() if every is None else float(every)
        now = clock()
        self.last = now
        self.samples: deque[tuple[float, int]] = deque([(now, self.done)])

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.done += int(n)
        self.samples.append((self.clock(), self.done))
        self.tick()

    def rate(self) -> float:
        """Units per second over the recent window (since the start of the run at first)."""
        now = self.clock()
        while len(self.samples) > 2 and self.samples[1][0] < now - RATE_WINDOW_S:
            self.samples.popleft()
        t0, d0 = self.samples[0]
        return (self.done - d0) / (now - t0) if now > t0 and self.done > d0 else math.nan

    def line(self) -> str:
        """``progress: 120/1000 chunks (12.0 %), 3.2 chunks/s, ETA 4 min 35 s``."""
        rate = self.rate()
        left = self.total - self.done
        eta = left / rate if rate > 0 else math.nan
        pct = 100 * self.done / self.total if self.total else 100.0
        speed = _rate_text(rate, self.unit) if rate > 0 else f"no {self.unit} finished yet"
        return (
            f"{self.desc}: {self.done}/{self.total} {self.unit} ({pct:.1f} %), {speed}, "
            f"ETA {format_duration(eta) if left else 'done'}"
        )

    def tick(self) -> None:
        """Say a line if ``every`` seconds passed since the last one."""
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self.say(self.line())
