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

Then every store chunk is written whole by the usual :func:`~.writer.write_chunk` (with its
usual done marker): computed pixels with their values, the others with the values of the
nearest corner of their block (:meth:`~.refine_plan.Refiner.fill_source`), and the
``computed`` mask. The store's attrs record the refinement (:data:`ATTR`).
"""

from __future__ import annotations

import os
import sys
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import StoreChangedError
from pipeline.experiments import get_experiment
from pipeline.run.progress import Heartbeat
from pipeline.run.refine_plan import Refiner, codes_of
from pipeline.run.submit import WindowPolicy, run_window, total_threads
from pipeline.spec.sweep import SweepSpec
from pipeline.store.grid import ChunkKey, chunk_counts, flat_to_key, key_to_str
from pipeline.store.identity import check_identity
from pipeline.store.markers import read_done
from pipeline.store.sweep import ensure_token
from pipeline.store.variables import COMPUTED
from pipeline.store.writer import write_chunk

if TYPE_CHECKING:
    from pipeline.run.execute import RunReport
    from pipeline.slurm.cluster import SlurmOptions

__all__ = [
    "ATTR",
    "REFINE_DIR",
    "PlaneLayout",
    "pack_chunks",
    "refine_status",
    "refine_task",
    "run_refined",
]

REFINE_DIR = "_refine"
ATTR = "refine"
"""Store attribute: the refinement's settings and counts (audit share, audits, surprises,
evaluated pixels and their fraction of the grid, rounds)."""


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
        self.counts = chunk_counts(spec)

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


def _round_dir(store: str, rnd: int) -> Path:
    return Path(store) / REFINE_DIR / f"r{rnd:02d}"


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
    rnd: int,
    flats: list[int],
    points: list[np.ndarray],
    *,
    spec: SweepSpec,
    store: str,
    token: str | None,
    backend: str,
    threads: int,
    attempts: int,
) -> tuple[list[int], float, str | None]:
    """A task: compute the plane pixels ``points[k]`` (flat indices, increasing) of round
    ``rnd`` that lie in store chunk ``flats[k]``, for every k in one call, and write one point
    file per chunk. Returns (flats, seconds, error)."""
    from pipeline.run.execute import _resolved

    t0 = time.perf_counter()
    name, _ = _resolved(backend)
    exp = get_experiment(spec.experiment)
    lay = PlaneLayout(spec)
    every = np.concatenate(points)
    bounds = np.cumsum([len(p) for p in points])[:-1]
    i, j = np.divmod(every, lay.shape[1])
    coords = {ax.name: np.asarray(ax.values) for ax in spec.axes}
    coords[lay.names[0]] = np.asarray(spec.axes[lay.pos[0]].values)[i]
    coords[lay.names[1]] = np.asarray(spec.axes[lay.pos[1]].values)[j]
    err = None
    for _ in range(attempts):
        try:
            arrays = exp.compute_points(spec, coords, backend=name, threads=threads)
            codes = codes_of(exp.pixel_class(spec, arrays))
            parts = {k: np.split(v, bounds) for k, v in arrays.items()}
            for n, (flat, pts, cls) in enumerate(
                zip(flats, points, np.split(codes, bounds), strict=True)
            ):
                if not _matches(store, rnd, flat, pts, lay):  # a retry keeps what it wrote
                    part = {k: v[n] for k, v in parts.items()}
                    _write_points(store, token, rnd, flat, lay, pts, cls, part)
        except StoreChangedError:
            raise
        except Exception as e:
            err = f"{type(e).__name__}: {e}"
            continue
        return flats, time.perf_counter() - t0, None
    return flats, time.perf_counter() - t0, err


def _write_points(
    store: str,
    token: str | None,
    rnd: int,
    flat: int,
    lay: PlaneLayout,
    points: np.ndarray,
    codes: np.ndarray,
    arrays: dict[str, np.ndarray],
) -> None:
    """The point file, written beside its final name and renamed (so it is whole or absent),
    after the store's identity is checked."""
    folder = _round_dir(store, rnd)
    folder.mkdir(parents=True, exist_ok=True)
    name = key_to_str(flat_to_key(flat, lay.counts))
    # the partial file must not carry the ``.npz`` suffix: a count of finished files (resume,
    # ``sweep status``) would take a half-written one for a chunk's points
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.part"
    with open(tmp, "wb") as f:  # a file object: np.savez appends no suffix
        np.savez(f, _index=points, _code=codes, **arrays)
    try:
        check_identity(store, token, store, f"refinement points of chunk {name} not written")
        os.replace(tmp, folder / f"{name}.npz")
    finally:
        tmp.unlink(missing_ok=True)


def point_files(folder: Path) -> list[Path]:
    """The finished point files of one round folder (partial ones, ``.<key>.<id>.part``, left by
    a killed worker, are not among them)."""
    return [p for p in folder.glob("*.npz") if not p.name.startswith(".")]


def _drop_partial_files(store: str) -> int:
    """Remove the partial point files a killed run left (the driver holds the store's lease,
    so no live task of this store is writing one); how many there were."""
    stale = list(Path(store, REFINE_DIR).glob("r[0-9][0-9]/.*.part"))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def _read_points(store: str, rnd: int, key: ChunkKey, fields: tuple[str, ...]) -> Any:
    """The arrays ``fields`` of a point file, or None when it is missing or unreadable."""
    path = _round_dir(store, rnd) / f"{key_to_str(key)}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return {f: z[f] for f in fields} if fields else {f: z[f] for f in z.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None  # missing, truncated, not a zip, a bad member CRC


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
    key = flat_to_key(flat, lay.counts)
    index, parts = [], []
    for rnd, src_flat in files:
        got = _read_points(store, rnd, flat_to_key(src_flat, lay.counts), ())
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


def run_refined(
    spec: SweepSpec,
    path: str,
    created: bool,
    client: Any,
    n_workers: int | None,
    retries: int,
    backend_name: str,
    threads: int,
    progress: bool,
    say: Callable[[str], None],
    slurm: SlurmOptions | None,
) -> RunReport:
    """Run or resume the refined sweep ``spec`` into the store ``path`` (made, leased);
    the arguments are :func:`~.execute.run_sweep`'s. Rounds, then the fill of every store
    chunk not yet done; the report counts the store chunks (as any sweep's)."""
    from pipeline.run.execute import RunReport, _expected_threads, _same, open_client

    token = ensure_token(path)
    lay = PlaneLayout(spec)
    counts = lay.counts
    state = read_done(path, counts, token)
    report = RunReport(store=path, total=state.total, already_done=state.n_done, counts=counts)
    say(
        f"store {path}: {'created' if created else 'resuming'} (refined); "
        f"{report.already_done}/{report.total} chunks already done"
    )
    t0 = time.perf_counter()
    stale = _drop_partial_files(path)
    if stale:
        say(f"removed {stale} partial point file(s) left by an interrupted run")
    refiner = Refiner(lay.shape, spec.refine)  # type: ignore[arg-type]
    # a task computes at most a store chunk's pixels (what a task of the full run holds),
    # unless one chunk's points alone are more (they never are)
    cap = int(np.prod(lay.chunk))
    files: list[tuple[int, int]] = []  # every (round, chunk) point file of the plan
    run_id = uuid.uuid4().hex[:12]
    expected = _expected_threads(slurm, n_workers, backend_name) if client is None else 0
    policy = WindowPolicy(expected_threads=expected)
    with ExitStack() as stack:
        live: dict[str, Any] = {}

        def connect() -> tuple[Any, Callable[[], None] | None]:
            # the cluster starts at the first task: a resume with nothing left to compute
            # replays the plan without one
            if not live:
                live["c"] = open_client(stack, client, slurm, n_workers, backend_name, say)
                live["spec"] = live["c"][0].submit(_same, spec, key=f"spec-{run_id}", pure=False)
            return live["c"]

        while True:
            rnd = refiner.next_round()
            if len(rnd.points) == 0:
                refiner.absorb(np.zeros(0, np.int8))
                break
            owner = lay.chunk_of(rnd.points)
            groups = _split_by(owner, rnd.points)
            todo = [f for f, pts in groups.items() if not _matches(path, rnd.index, f, pts, lay)]
            say(
                f"round {rnd.index}: {len(rnd.points):,} points ({rnd.n_audits:,} audits) in "
                f"{len(groups)} chunks, {len(todo)} to compute"
            )
            if todo:
                cl, watch = connect()
                # one task per worker thread: a round waits for its slowest task, and each
                # task pays the per-call cost of a point batch once
                n_threads = max(total_threads(cl), policy.expected_threads, 1)
                runs = pack_chunks([len(groups[f]) for f in todo], n_threads, cap)
                items = [([todo[k] for k in r], [groups[todo[k]] for k in r]) for r in runs]
                _run_tasks(
                    cl, watch, policy, path, token, items,
                    lambda item, cl=cl, rnd=rnd: cl.submit(
                        refine_task, rnd.index, item[0], item[1], spec=live["spec"],
                        store=path, token=token, backend=backend_name, threads=threads,
                        attempts=retries + 1, key=f"refine-{rnd.index}-{item[0][0]}-{run_id}",
                        pure=False,
                    ),
                    report, counts, progress, f"round {rnd.index}", say,
                )  # fmt: skip
                if report.failed:
                    return _finish(report, t0, say)
            codes = np.zeros(len(rnd.points), np.int8)
            for f in groups:
                got = _read_points(path, rnd.index, flat_to_key(f, counts), ("_index", "_code"))
                codes[np.searchsorted(rnd.points, got["_index"])] = got["_code"]
                files.append((rnd.index, f))
            surprises = refiner.absorb(codes)
            if surprises:
                say(f"round {rnd.index}: {surprises} audit surprise(s); their blocks refine")

        sources = refiner.fill_source().ravel()
        by_chunk: dict[int, list[tuple[int, int]]] = {}
        for r, f in files:
            by_chunk.setdefault(f, []).append((r, f))
        state = read_done(path, counts, token)
        missing = [int(f) for f in state.missing()]
        items = []
        for f in missing:
            src = sources[lay.pixels(flat_to_key(f, counts))]
            need = np.unique(lay.chunk_of(np.unique(src)))
            items.append((f, src, [rf for c in need for rf in by_chunk.get(int(c), [])]))
        say(
            f"refined: {int(refiner.computed.sum()):,} of {refiner.codes.size:,} pixels "
            f"computed ({refiner.evaluated_fraction:.3f}), {refiner.audits:,} audits, "
            f"{refiner.surprises} surprise(s); filling {len(items)} chunks"
        )
        if items:
            cl, watch = connect()
            _run_tasks(
                cl, watch, policy, path, token, items,
                lambda item, cl=cl: cl.submit(
                    fill_task, item[0], item[1], item[2], spec=live["spec"], store=path,
                    token=token, key=f"fill-{item[0]}-{run_id}", pure=False,
                ),
                report, counts, progress, "fill", say, fill=True,
            )  # fmt: skip
    _record(path, spec, refiner)
    return _finish(report, t0, say)


def _split_by(owner: np.ndarray, points: np.ndarray) -> dict[int, np.ndarray]:
    """Points grouped by their owning chunk (each group increasing)."""
    order = np.argsort(owner, kind="stable")
    uniq, starts = np.unique(owner[order], return_index=True)
    bounds = [*starts[1:], len(order)]
    return {int(u): points[order[a:b]] for u, a, b in zip(uniq, starts, bounds, strict=True)}


def _matches(store: str, rnd: int, flat: int, points: np.ndarray, lay: PlaneLayout) -> bool:
    """True when the round's point file for chunk ``flat`` exists, reads whole (every
    member's CRC checked: a damaged file is computed again) and holds ``points``."""
    got = _read_points(store, rnd, flat_to_key(flat, lay.counts), ())
    return got is not None and np.array_equal(got["_index"], points)


def _run_tasks(
    client: Any,
    watch: Callable[[], None] | None,
    policy: WindowPolicy,
    path: str,
    token: str | None,
    items: list[Any],
    submit: Callable[[Any], Any],
    report: RunReport,
    counts: tuple[int, ...],
    progress: bool,
    desc: str,
    say: Callable[[str], None],
    fill: bool = False,
) -> None:
    """Run ``items`` through the window; failures go to ``report.failed``, fill tasks'
    chunks to ``report``'s computed ones (their markers are per-chunk files)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="task", disable=not progress, file=sys.stderr)
    beat = None if progress else Heartbeat(say, len(items), desc=desc, unit="tasks")

    def on_done(item: Any, fut: Any, out: Any) -> float | None:
        bar.update(1)
        if beat is not None:
            beat.update(1)
        flats = item[0] if isinstance(item[0], list) else [item[0]]
        more = f" (+{len(flats) - 1} more)" if len(flats) > 1 else ""
        first = key_to_str(flat_to_key(flats[0], counts))
        name = f"{'' if fill else desc + ' '}chunk {first}{more}"
        if out is None:  # not finished (its result is gathered by the window when it is)
            exc = fut.exception() if fut.status == "error" else None
            if isinstance(exc, StoreChangedError):
                raise exc
            report.failed[name] = f"{type(exc).__name__}: {exc}" if exc else fut.status
            return None
        if out[-1] is not None:
            report.failed[name] = out[-1]
        elif fill:
            report._computed.append(out[0])
        return out[1] if not fill else None

    def tick() -> None:
        check_identity(path, token, path, "the run stops")
        if watch is not None:
            watch()
        if beat is not None:
            beat.tick()

    try:
        stats = run_window(client, iter(items), submit, on_done, policy, tick)
        if note := stats.requeued_note():
            say(f"{desc}: {note}")
    finally:
        bar.close()


def refine_status(store: str) -> str:
    """``sweep status``'s line for a refined store: what the refinement recorded, or the
    rounds whose point files are there so far (the store's chunks are written at the end)."""
    import zarr

    done = zarr.open_group(store, mode="r").attrs.get(ATTR)
    if done:
        return (
            f"refined: {done['evaluated']:,} pixels computed ({done['evaluated_fraction']:.3f} "
            f"of the grid) in {done['rounds']} rounds; {done['audits']:,} audits, "
            f"{done['surprises']} surprise(s)"
        )
    rounds = sorted(Path(store, REFINE_DIR).glob("r[0-9][0-9]"))
    files = sum(len(point_files(r)) for r in rounds)
    return (
        f"refinement in progress: {len(rounds)} round(s) started, {files} point file(s); "
        "the chunks are written after the last round"
    )


def _record(path: str, spec: SweepSpec, refiner: Refiner) -> None:
    """The refinement's settings and counts, in the store's attrs (:data:`ATTR`)."""
    import zarr

    assert spec.refine is not None
    g = zarr.open_group(path, mode="r+")
    g.attrs[ATTR] = {
        **spec.refine.to_dict(),
        "audits": int(refiner.audits),
        "surprises": int(refiner.surprises),
        "evaluated": int(refiner.computed.sum()),
        "evaluated_fraction": refiner.evaluated_fraction,
        "rounds": int(refiner.rounds),
    }


def _finish(report: RunReport, t0: float, say: Callable[[str], None]) -> RunReport:
    report.seconds = time.perf_counter() - t0
    say(
        f"{report.n_computed} chunks written in {report.seconds:.1f} s, "
        f"{len(report.failed)} failed; {report.already_done + report.n_computed}/"
        f"{report.total} done"
    )
    for k, err in list(report.failed.items())[:50]:
        say(f"  {k} failed: {err}")
    return report
