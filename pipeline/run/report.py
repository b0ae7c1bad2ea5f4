"""What a run did: :class:`RunReport` (chunks computed, already done, failed), and the lines
the driver ends with."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.store.grid import ChunkKey, flat_to_key

__all__ = ["RunReport", "SweepFailed"]

SHOWN_FAILURES = 50
"""Failed chunks listed one a line at the end of a run (the rest are counted)."""


class SweepFailed(RuntimeError):
    """Some chunks failed after their retries; finished chunks are kept in the store."""


@dataclass
class RunReport:
    """What one ``run_sweep`` call did.

    ``computed``: keys computed and written by this call (plan order); ``already_done``:
    chunks skipped because they were marked done in the store; ``failed``: key string →
    error text; ``window``: the most tasks the driver allowed in flight, ``chunks_per_task``:
    chunks fused into one task.
    """

    store: str
    total: int
    already_done: int
    counts: tuple[int, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    window: int = 0
    chunks_per_task: int = 1
    _computed: array = field(default_factory=lambda: array("q"), repr=False)

    def add_computed(self, flat: int) -> None:
        """Count the chunk at plan position ``flat`` as computed by this call."""
        self._computed.append(flat)

    @property
    def computed(self) -> list[ChunkKey]:
        """Keys computed by this call, in plan order."""
        return [flat_to_key(f, self.counts) for f in sorted(self._computed)]

    @property
    def n_computed(self) -> int:
        """How many chunks this call computed."""
        return len(self._computed)

    @property
    def complete(self) -> bool:
        """True when every chunk of the sweep is done."""
        return self.already_done + len(self._computed) == self.total

    def finish(self, say: Callable[[str], None], verb: str, prefix: str = "") -> None:
        """The run's last lines: counts, time, then each failure (``prefix`` before its
        name), at most :data:`SHOWN_FAILURES` of them."""
        say(
            f"{self.n_computed} chunks {verb} in {self.seconds:.1f} s, "
            f"{len(self.failed)} failed; {self.already_done + self.n_computed}/"
            f"{self.total} done"
        )
        for k, err in list(self.failed.items())[:SHOWN_FAILURES]:
            say(f"  {prefix}{k} failed: {err}")
        if len(self.failed) > SHOWN_FAILURES:
            say(f"  ... and {len(self.failed) - SHOWN_FAILURES} more failed chunks")
