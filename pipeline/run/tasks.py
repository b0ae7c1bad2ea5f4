"""What runs on a worker for a sweep: :func:`run_chunks` (a task: a few consecutive chunks,
each computed, written and marked done), :func:`run_chunk` (one chunk, anywhere), and the
backend as the worker resolves it. The refined sweep's tasks are :mod:`.refine`'s."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from pipeline.errors import StoreChangedError
from pipeline.experiments import get_experiment
from pipeline.gpu.backend import backend_info, resolve_backend
from pipeline.spec.sweep import SweepSpec
from pipeline.store.grid import ChunkGrid, ChunkKey, chunk_coords
from pipeline.store.writer import write_chunk

__all__ = ["TaskSettings", "resolved_here", "run_chunk", "run_chunks", "same"]


@dataclass(frozen=True)
class TaskSettings:
    """How a task computes: the ``backend`` name it resolves (:func:`resolved_here`), tile
    ``threads`` inside it, and ``attempts`` per chunk (1 + the run's retries)."""

    backend: str
    threads: int
    attempts: int


Outcome = tuple[int, dict[str, Any] | None, str | None]
"""A chunk's outcome in a task: (flat position, done marker record or None, error or None)."""


@functools.cache
def resolved_here(backend: str) -> tuple[str, dict[str, Any]]:
    """The backend this worker process resolves ``backend`` to, and its provenance (asked
    once per process: a GPU does not come or go while a worker lives)."""
    name = resolve_backend(backend)
    return name, backend_info(name)


def same(spec: SweepSpec) -> SweepSpec:
    """The task that holds the spec on the workers (every chunk task depends on it)."""
    return spec


def run_chunk(
    spec: SweepSpec, store: str, key: ChunkKey, backend: str = "numpy", threads: int = 1
) -> ChunkKey:
    """Compute chunk ``key`` of ``spec`` and write it (then its done marker) into ``store``.

    Runs anywhere (it is a plain function); ``backend`` (``auto`` included) is resolved
    here, and the backend and device are kept in the chunk's done marker
    (:func:`pipeline.store.sweep.chunk_info`). Returns the key.
    """
    name, info = resolved_here(backend)
    exp = get_experiment(spec.experiment)
    arrays = exp.compute_chunk(spec, chunk_coords(spec, key), backend=name, threads=threads)
    write_chunk(spec, store, key, arrays, info=info)
    return key


def run_chunks(
    flats: tuple[int, ...],
    *,
    spec: SweepSpec,
    store: str,
    token: str | None,
    how: TaskSettings,
) -> tuple[list[Outcome], float]:
    """A task: compute and write the chunks at plan positions ``flats`` into ``store``,
    whose identity ``token`` the driver read.

    Each chunk gets up to ``how.attempts`` tries; one that still fails is reported, the others
    are kept. Returns ``([(flat, marker record or None, error text or None), ...], seconds)``.
    A store that changed identity (:class:`~pipeline.errors.StoreChangedError`) stops the
    task: the driver then stops the run.
    """
    t0 = time.perf_counter()
    name, info = resolved_here(how.backend)
    exp = get_experiment(spec.experiment)
    grid = ChunkGrid.of(spec)
    out: list[Outcome] = []
    for flat in flats:
        key = grid.key(flat)
        err = None
        for _ in range(how.attempts):
            try:
                arrays = exp.compute_chunk(
                    spec, chunk_coords(spec, key), backend=name, threads=how.threads
                )
                record = write_chunk(spec, store, key, arrays, info=info, token=token)
            except StoreChangedError:
                raise
            except Exception as e:
                err = f"{type(e).__name__}: {e}"
                continue
            out.append((flat, record, None))
            break
        else:
            out.append((flat, None, err))
    return out, time.perf_counter() - t0
