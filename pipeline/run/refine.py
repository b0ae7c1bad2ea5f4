"""The driver of a refined sweep (a spec with ``refine:``): rounds of scattered points, then
the full-resolution field.

The rounds are planned by :class:`pipeline.run.refine_plan.Refiner`. Round ``r``'s points
are grouped by the store chunk they fall in, and the groups are packed into about one task
per worker thread (:func:`pack_chunks`, consecutive chunks of about equal point counts, at
most a chunk's pixels per task). A task computes the points of its chunks in one call
(:meth:`~pipeline.experiments.base.Experiment.compute_points`), classifies them
(:meth:`~pipeline.experiments.base.Experiment.pixel_class`) and writes one point file per
chunk, ``<store>/_refine/r<r>/<chunk key>.npz`` (flat pixel indices, class codes, every
variable), made atomically: the file is the chunk's done marker. Rounds run one after the
other through the bounded window (:mod:`.submit`): the next round's plan needs every class
of this one (a block is split when its samples disagree), so a round starts when the
previous one has finished. Packing keeps that wait short: a point batch has a per-call cost
(a NumPy trainability call computes whole padded tiles of points, however few it is given),
paid once per task, so with one task per chunk a round of a few points in each of many
chunks cost many times its compute; packed, the refined run's time follows the share of
pixels it computes. The values do not depend on the packing (a point's values never depend
on the other points of its call). A resumed run replays the plan from the stored classes
(the same plan: it is a pure function of them), keeps the point files that match it and
computes the rest.

Then every store chunk is written whole by the usual
:func:`~pipeline.store.writer.write_chunk` (with its usual done marker): computed pixels with
their values, the others with the values of the nearest corner of their block
(:meth:`~.refine_plan.Refiner.fill_source`), and the ``computed`` mask. The store's attrs
record the refinement (:data:`pipeline.store.points.ATTR`); its point files are
:mod:`pipeline.store.points`'.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

from pipeline.errors import StoreChangedError
from pipeline.experiments import get_experiment
from pipeline.run.context import RunContext
from pipeline.run.driving import Meter, TaskLoop, task_error
from pipeline.run.refine_plan import Refiner, codes_of
from pipeline.run.report import RunReport
from pipeline.run.submit import total_threads
from pipeline.run.tasks import TaskSettings, resolved_here, same
from pipeline.spec.sweep import SweepSpec
from pipeline.store.grid import ChunkGrid, ChunkKey
from pipeline.store.handle import Store
from pipeline.store.points import (
    drop_partial_files,
    read_points,
    record_refinement,
    write_points,
)
from pipeline.store.variables import COMPUTED
from pipeline.store.writer import write_chunk

__all__ = ["PlaneLayout", "RefinedSweep", "fill_task", "pack_chunks", "refine_task"]


class PlaneLayout:
    """Where the plane lies in a spec's grid: its two axes (positions in the spec, sizes,
    chunk lengths) and the mapping from plane pixels to store chunks."""

    def __init__(self, spec: SweepSpec) -> None:
        plane = get_experiment(spec.experiment).plane(spec)
        assert plane is not None and spec.refine is not None
        self.names = plane
        self.pos = (spec.dims.index(plane[0]), spec.dims.index(plane[1]))
        self.shape = (spec.shape[self.pos[0]], spec.shape[self.pos[1]])
        self.chunk = (spec.chunks[self.pos[0]], spec.chunks[self.pos[1]])
        self.grid = ChunkGrid.of(spec)
        self.counts = self.grid.counts

    def name(self, flat: int) -> str:
        """The key string of the store chunk at plan position ``flat`` (a point file's name)."""
        return self.grid.name(flat)

    def chunk_of(self, points: np.ndarray) -> np.ndarray:
        """Flat store chunk index (plan order) of each flat plane pixel index."""
        i, j = np.divmod(points, self.shape[1])
        key = np.zeros((len(self.counts), len(points)), np.int64)
        key[self.pos[0]] = i // self.chunk[0]
        key[self.pos[1]] = j // self.chunk[1]
        return np.ravel_multi_index(tuple(key), self.counts)

    def pixels(self, key: ChunkKey) -> np.ndarray:
        """Flat plane indices of chunk ``key``'s pixels, shape (rows, cols) of the chunk."""
        a, b = key[self.pos[0]], key[self.pos[1]]
        i = np.arange(a * self.chunk[0], min((a + 1) * self.chunk[0], self.shape[0]))
        j = np.arange(b * self.chunk[1], min((b + 1) * self.chunk[1], self.shape[1]))
        return i[:, None] * self.shape[1] + j[None, :]

    def to_grid(self, plane_arr: np.ndarray, ndim: int) -> np.ndarray:
        """A chunk's (rows, cols, *extra) array as the grid's chunk: singleton non-plane
        dims inserted, plane axes in spec order."""
        arr = plane_arr if self.pos[0] < self.pos[1] else np.swapaxes(plane_arr, 0, 1)
        shape = [1] * ndim
        lo, hi = sorted(self.pos)
        shape[lo], shape[hi] = arr.shape[0], arr.shape[1]
        return arr.reshape(*shape, *arr.shape[2:])


def pack_chunks(sizes: list[int], n_tasks: int, cap: int) -> list[list[int]]:
    """Consecutive runs of chunks, one per task: positions into ``sizes`` (a round's points per
    chunk, in plan order), split into about ``n_tasks`` runs of about equal point counts, and
    never more than ``cap`` points in a run unless one chunk alone has more. Every position
    is in exactly one run, in order."""
    total = sum(sizes)
    n_tasks = max(1, min(n_tasks, len(sizes)))
    goal = total / n_tasks
    out: list[list[int]] = []
    cur: list[int] = []
    acc = done = 0
    for i, n in enumerate(sizes):
        # close the run before this chunk when it would overflow the cap, or when more than
        # half of it would lie beyond the run's share of the round
        if cur and (acc + n > cap or done + acc + n / 2 > goal * (len(out) + 1)):
            out.append(cur)
            done, cur, acc = done + acc, [], 0
        cur.append(i)
        acc += n
    if cur:
        out.append(cur)
    return out


def refine_task(
    item: tuple[int, list[int], list[np.ndarray]],
    *,
    spec: SweepSpec,
    store: str,
    token: str | None,
    how: TaskSettings,
) -> tuple[list[int], float, str | None]:
    """A task: ``item`` is (round ``rnd``, store chunks ``flats``, ``points``): compute the
    plane pixels ``points[k]`` (flat indices, increasing) of round ``rnd`` that lie in store
    chunk ``flats[k]``, for every k in one call, and write one point file per chunk.
    Returns (flats, seconds, error)."""
    rnd, flats, points = item
    t0 = time.perf_counter()
    name, _ = resolved_here(how.backend)
    exp = get_experiment(spec.experiment)
    lay = PlaneLayout(spec)
    every = np.concatenate(points)
    bounds = np.cumsum([len(p) for p in points])[:-1]
    i, j = np.divmod(every, lay.shape[1])
    coords = {ax.name: np.asarray(ax.values) for ax in spec.axes}
    coords[lay.names[0]] = np.asarray(spec.axes[lay.pos[0]].values)[i]
    coords[lay.names[1]] = np.asarray(spec.axes[lay.pos[1]].values)[j]
    err = None
    for _ in range(how.attempts):
        try:
            arrays = exp.compute_points(spec, coords, backend=name, threads=how.threads)
            codes = codes_of(exp.pixel_class(spec, arrays))
            parts = {k: np.split(v, bounds) for k, v in arrays.items()}
            for n, (flat, pts, cls) in enumerate(
                zip(flats, points, np.split(codes, bounds), strict=True)
            ):
                if not _matches(store, rnd, flat, pts, lay):  # a retry keeps what it wrote
                    part = {"_index": pts, "_code": cls, **{k: v[n] for k, v in parts.items()}}
                    write_points(store, token, rnd, lay.name(flat), part)
        except StoreChangedError:
            raise
        except Exception as e:
            err = f"{type(e).__name__}: {e}"
            continue
        return flats, time.perf_counter() - t0, None
    return flats, time.perf_counter() - t0, err


def fill_task(
    flat: int,
    sources: np.ndarray,
    files: list[tuple[int, int]],
    *,
    spec: SweepSpec,
    store: str,
    token: str | None,
) -> tuple[int, dict[str, Any] | None, str | None]:
    """A task: write store chunk ``flat`` whole: pixel p gets the values of pixel
    ``sources[p]`` (itself when computed), read from the point files ``files`` ((round,
    chunk) pairs). Returns (flat, done marker record, error)."""
    lay = PlaneLayout(spec)
    key = lay.grid.key(flat)
    index, parts = [], []
    for rnd, src_flat in files:
        got = read_points(store, rnd, lay.name(src_flat))
        if got is None:
            return flat, None, f"point file of round {rnd}, chunk {src_flat} is unreadable"
        index.append(got.pop("_index"))
        got.pop("_code")
        parts.append(got)
    idx = np.concatenate(index)
    order = np.argsort(idx)
    pos = order[np.searchsorted(idx, sources.ravel(), sorter=order)]
    if not np.array_equal(idx[pos], sources.ravel()):
        return flat, None, "a fill source was not computed (the point files do not match)"
    ndim = len(spec.dims)
    arrays = {}
    for name in parts[0]:
        vals = np.concatenate([p[name] for p in parts])[pos]
        arrays[name] = lay.to_grid(vals.reshape(*sources.shape, *vals.shape[1:]), ndim)
    computed = (sources == lay.pixels(key)).astype(np.int8)
    arrays[COMPUTED.name] = lay.to_grid(computed, ndim)
    try:
        record = write_chunk(spec, store, key, arrays, info={"refined": True}, token=token)
    except StoreChangedError:
        raise
    except Exception as e:
        return flat, None, f"{type(e).__name__}: {e}"
    return flat, record, None


def _split_by(owner: np.ndarray, points: np.ndarray) -> dict[int, np.ndarray]:
    """Points grouped by their owning chunk (each group increasing)."""
    order = np.argsort(owner, kind="stable")
    uniq, starts = np.unique(owner[order], return_index=True)
    bounds = [*starts[1:], len(order)]
    return {int(u): points[order[a:b]] for u, a, b in zip(uniq, starts, bounds, strict=True)}


def _matches(store: str, rnd: int, flat: int, points: np.ndarray, lay: PlaneLayout) -> bool:
    """True when the round's point file for chunk ``flat`` exists, reads whole (every
    member's CRC checked: a damaged file is computed again) and holds ``points``."""
    got = read_points(store, rnd, lay.name(flat))
    return got is not None and np.array_equal(got["_index"], points)


class RefinedSweep:
    """The refined strategy: rounds of scattered points, then every store chunk filled."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec
        self.lay = PlaneLayout(spec)
        self.grid = self.lay.grid

    def run(self, ctx: RunContext, store: Store, created: bool) -> RunReport:
        """Run or resume the rounds and the fill into ``store`` (made, leased, opened); the
        report counts the store chunks (as any sweep's)."""
        say, path, lay = ctx.say, store.path, self.lay
        state = store.done(self.grid)
        report = RunReport(
            store=path, total=state.total, already_done=state.n_done, counts=state.counts
        )
        say(
            f"store {path}: {'created' if created else 'resuming'} (refined); "
            f"{report.already_done}/{report.total} chunks already done"
        )
        t0 = time.perf_counter()
        stale = drop_partial_files(path)
        if stale:
            say(f"removed {stale} partial point file(s) left by an interrupted run")
        refiner = Refiner(lay.shape, self.spec.refine)  # type: ignore[arg-type]
        self.run_id = uuid.uuid4().hex[:12]
        self._spec_ref: Any = None
        files = self._rounds(ctx, store, refiner, report)
        if files is not None:
            self._fill(ctx, store, refiner, files, report)
            record_refinement(path, self._record(refiner))
        report.seconds = time.perf_counter() - t0
        report.finish(say, "written")
        return report

    def _loop(self, ctx: RunContext, store: Store) -> TaskLoop:
        """The task loop on the context's cluster (started at the first task: a resume with
        nothing left to compute replays the plan without one), the spec sent once."""
        client, watch = ctx.client()
        if self._spec_ref is None:
            self._spec_ref = client.submit(same, self.spec, key=f"spec-{self.run_id}", pure=False)
        return TaskLoop(ctx, store, client, watch)

    def _rounds(
        self, ctx: RunContext, store: Store, refiner: Refiner, report: RunReport
    ) -> list[tuple[int, int]] | None:
        """Every round, computed or replayed; the (round, chunk) point files of the plan, or
        None when a round had failures (the report holds them)."""
        lay, path = self.lay, store.path
        # a task computes at most a store chunk's pixels (what a task of the full run holds)
        cap = int(np.prod(lay.chunk))
        files: list[tuple[int, int]] = []
        while True:
            rnd = refiner.next_round()
            if len(rnd.points) == 0:
                refiner.absorb(np.zeros(0, np.int8))
                return files
            groups = _split_by(lay.chunk_of(rnd.points), rnd.points)
            todo = [f for f, pts in groups.items() if not _matches(path, rnd.index, f, pts, lay)]
            ctx.say(
                f"round {rnd.index}: {len(rnd.points):,} points ({rnd.n_audits:,} audits) in "
                f"{len(groups)} chunks, {len(todo)} to compute"
            )
            if todo:
                loop = self._loop(ctx, store)
                # one task per worker thread: a round waits for its slowest task, and each
                # task pays the per-call cost of a point batch once
                n_threads = max(total_threads(loop.client), ctx.expected_threads, 1)
                runs = pack_chunks([len(groups[f]) for f in todo], n_threads, cap)
                items = [
                    (rnd.index, [todo[k] for k in r], [groups[todo[k]] for k in r]) for r in runs
                ]
                self._run(loop, items, report, f"round {rnd.index}")
                if report.failed:
                    return None
            codes = np.zeros(len(rnd.points), np.int8)
            for f in groups:
                got = read_points(path, rnd.index, lay.name(f), ("_index", "_code"))
                codes[np.searchsorted(rnd.points, got["_index"])] = got["_code"]
                files.append((rnd.index, f))
            surprises = refiner.absorb(codes)
            if surprises:
                ctx.say(f"round {rnd.index}: {surprises} audit surprise(s); their blocks refine")

    def _fill(
        self,
        ctx: RunContext,
        store: Store,
        refiner: Refiner,
        files: list[tuple[int, int]],
        report: RunReport,
    ) -> None:
        """Write every store chunk not yet done, whole, from the point files."""
        lay = self.lay
        sources = refiner.fill_source().ravel()
        by_chunk: dict[int, list[tuple[int, int]]] = {}
        for r, f in files:
            by_chunk.setdefault(f, []).append((r, f))
        items = []
        for f in (int(f) for f in store.done(self.grid).missing()):
            src = sources[lay.pixels(self.grid.key(f))]
            need = np.unique(lay.chunk_of(np.unique(src)))
            items.append((f, src, [rf for c in need for rf in by_chunk.get(int(c), [])]))
        ctx.say(
            f"refined: {int(refiner.computed.sum()):,} of {refiner.codes.size:,} pixels "
            f"computed ({refiner.evaluated_fraction:.3f}), {refiner.audits:,} audits, "
            f"{refiner.surprises} surprise(s); filling {len(items)} chunks"
        )
        if items:
            self._run(self._loop(ctx, store), items, report, "fill")

    def _run(self, loop: TaskLoop, items: list[Any], report: RunReport, desc: str) -> None:
        """Run ``items`` (a round's point tasks, or the fill's chunks) through the window;
        failures go to ``report.failed``, filled chunks to its computed ones (their markers
        are per-chunk files)."""
        ctx, store, fill = loop.ctx, loop.store, desc == "fill"
        common = {"spec": self._spec_ref, "store": store.path, "token": store.token}

        def submit(item: Any) -> Any:
            if fill:
                return loop.client.submit(
                    fill_task, *item, **common, key=f"fill-{item[0]}-{self.run_id}", pure=False
                )
            return loop.client.submit(
                refine_task, item, **common, how=ctx.task_settings,
                key=f"refine-{item[0]}-{item[1][0]}-{self.run_id}", pure=False,
            )  # fmt: skip

        def on_done(item: Any, fut: Any, out: Any) -> tuple[float | None, int]:
            flats = [item[0]] if fill else item[1]
            more = f" (+{len(flats) - 1} more)" if len(flats) > 1 else ""
            name = f"{'' if fill else desc + ' '}chunk {self.lay.name(flats[0])}{more}"
            if out is None:  # not finished (a finished task's result is gathered)
                report.failed[name] = task_error(fut)
            elif out[-1] is not None:
                report.failed[name] = out[-1]
            elif fill:
                report.add_computed(out[0])
            return (out[1] if out is not None and not fill else None), 1

        stats = loop.run(items, submit, on_done, Meter(desc, "task", len(items)),
                         ctx.window_policy(adaptive=False))  # fmt: skip
        if note := stats.requeued_note():
            ctx.say(f"{desc}: {note}")

    def _record(self, refiner: Refiner) -> dict[str, Any]:
        """The refinement's settings and counts, for the store's attrs."""
        assert self.spec.refine is not None
        return {
            **self.spec.refine.to_dict(),
            "audits": int(refiner.audits),
            "surprises": int(refiner.surprises),
            "evaluated": int(refiner.computed.sum()),
            "evaluated_fraction": refiner.evaluated_fraction,
            "rounds": int(refiner.rounds),
        }
