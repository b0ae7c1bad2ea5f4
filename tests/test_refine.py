"""Adaptive boundary refinement: the planner against known fields, the refined store against
the closed form (classes, the computed mask, where filled values come from), a killed
refinement resumed to the same store as an uninterrupted one, audits that catch what the
coarse lattice misses, and one-line errors for bad ``refine:`` blocks.

The plane stub (tests/plugins/sweep_stub.py: f = b - c(a), g = 1000 a + b over integer
pixels) costs nothing: g names the pixel a value came from, so a filled pixel shows its
source."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))  # before the module's client fixture spawns its workers

import sweep_stub  # noqa: E402
import zarr  # noqa: E402

from pipeline import open_sweep, parse_spec, register, run_sweep  # noqa: E402
from pipeline.errors import SpecError  # noqa: E402
from pipeline.run.refine import pack_chunks  # noqa: E402
from pipeline.run.refine_plan import Refiner, codes_of, expected_fraction  # noqa: E402
from pipeline.spec.refine import RefineSpec  # noqa: E402
from pipeline.store.handle import Store  # noqa: E402
from pipeline.store.points import ATTR, REFINE_DIR, point_files, refine_status  # noqa: E402

register(sweep_stub.PLANE_EXPERIMENT, replace=True)

N = 64
REFINE = {"coarse": 8, "guard": 1, "audit": 0.05, "audit_seed": 3}


def plane_spec(store: Path | None = None, **refine) -> dict:
    raw = {
        "experiment": "stub_plane",
        "axes": {"a": {"start": 0, "count": N}, "b": {"start": 0, "count": N}},
        "chunks": {"a": 16, "b": 16},
        "dtype": "float64",
        "refine": {**REFINE, **refine},
    }
    if store is not None:
        raw["store"] = str(store)
    return raw


def refine_truth(truth: np.ndarray, refine: RefineSpec) -> Refiner:
    """Run the planner on a known class field (no engine)."""
    codes = codes_of(truth)
    r = Refiner(truth.shape, refine)
    while True:
        rnd = r.next_round()
        r.absorb(codes.ravel()[rnd.points])
        if len(rnd.points) == 0:
            return r


@pytest.fixture(scope="module")
def refined(tmp_path_factory, client):
    """An uninterrupted refined run of the plane stub (without a bar, a heartbeat line after
    every task: the lines are checked below)."""
    store = tmp_path_factory.mktemp("refine") / "r.zarr"
    spec = parse_spec(plane_spec(store))
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEP_HEARTBEAT_S", "0")
        report = run_sweep(spec, store, client=client, progress=False, log=lines.append)
    assert report.complete and not report.failed
    # the batch log's heartbeat: every round and the fill say done/total, rate and ETA
    beats = [m for m in lines if re.match(r"(round \d+|fill): \d+/\d+ tasks \(", m)]
    assert any(m.startswith("round 0: ") for m in beats) and any(
        m.startswith("fill: ") for m in beats
    )
    # a round runs as one task per worker thread (2 here), not one per chunk (round 0's 81
    # points lie in all 16 chunks), plus what a task's cap of one chunk's pixels (256) forces
    tasks = {m.split(":")[0]: int(m.split("/")[1].split()[0]) for m in beats if m[0] == "r"}
    points = {
        m.split(":")[0]: int(m.split(": ")[1].split(" points")[0].replace(",", ""))
        for m in lines
        if re.match(r"round \d+: [\d,]+ points", m)
    }
    assert tasks["round 0"] == 2 and len(tasks) >= 3, beats
    assert all(n <= 3 + 2 * (points[r] // 256) for r, n in tasks.items()), (tasks, points)
    last = [m for m in beats if m.startswith("fill: ")][-1]
    done, total = map(int, re.match(r"fill: (\d+)/(\d+)", last).groups())
    assert 0 < done <= total
    return spec, store


def test_refined_store_holds_the_full_field_with_its_mask(refined):
    spec, store = refined
    ds = open_sweep(store)
    a, b = np.meshgrid(np.arange(N), np.arange(N), indexing="ij")
    truth = sweep_stub.plane_values(spec, a, b)
    f, g, mask = ds.f.values, ds.g.values, ds.computed.values
    assert set(np.unique(mask)) == {0, 1}
    m = mask == 1
    # computed pixels hold their own numbers, exactly
    np.testing.assert_array_equal(f[m], truth["f"][m])
    np.testing.assert_array_equal(g[m], truth["g"][m])
    # a filled pixel shows a computed pixel of its block (within half a coarse block)
    si, sj = np.divmod(g[~m].astype(np.int64), 1000)
    assert np.all(mask[si, sj] == 1)
    assert np.abs(si - a[~m]).max() <= REFINE["coarse"] // 2
    assert np.abs(sj - b[~m]).max() <= REFINE["coarse"] // 2
    np.testing.assert_array_equal(f[~m], truth["f"][si, sj])
    # every class is right, and far from every pixel was computed
    assert np.array_equal(f > 0, truth["f"] > 0)
    attrs = ds.attrs[ATTR]
    assert attrs["evaluated"] == int(m.sum()) and attrs["evaluated_fraction"] == m.mean()
    assert m.mean() < 0.5
    assert attrs["audit"] == REFINE["audit"] and attrs["surprises"] == 0
    assert refine_status(str(store)).startswith(f"refined: {int(m.sum()):,} pixels computed")
    assert Store(str(store)).kind == "refined" and Store(str(store)).frames() == []
    # the mask is exactly the union of the point files
    files = [p for r in (store / REFINE_DIR).iterdir() for p in point_files(r)]
    idx = np.concatenate([np.load(p)["_index"] for p in files])
    assert len(idx) == len(np.unique(idx)) == m.sum()
    np.testing.assert_array_equal(np.sort(idx), np.flatnonzero(m))


def _chunk_files(store: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(store)): p.read_bytes()
        for name in ("f", "g", "computed")
        for p in sorted((store / name).rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_killed_refinement_resumes_to_the_same_store(tmp_path, refined, client):
    spec, ref_store = refined
    store = tmp_path / "k.zarr"
    (tmp_path / "k.yaml").write_text(yaml.safe_dump(plane_spec(store)))
    path = os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])
    # 0.2 s per task there (the resume here runs without): still going when killed
    env = {**os.environ, "PYTHONPATH": path, "SWEEP_STUB_DELAY": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", str(tmp_path / "k.yaml"),
         "--workers", "1", "--no-progress", "--no-summary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    r1 = store / REFINE_DIR / "r01"
    try:
        while not (r1.is_dir() and point_files(r1)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "round 1 did not start in 120 s"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, no clean-up
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # a round is about one task per worker: the kill most often lands after round 1's only
    # task wrote all its files, so take back every other one (a task killed midway through
    # writing its chunks' files leaves the same): the resume computes exactly those
    files = sorted(point_files(r1))
    for p in files[1::2]:
        p.unlink()
    n_r1 = len(point_files(r1))
    assert 0 < n_r1 < len(files) or len(files) == 1
    # a worker killed mid-write leaves a partial file: neither counted nor taken for points
    partial = r1 / ".0_0.deadbeef.part"
    partial.write_bytes(b"PK\x03\x04 half a file")
    assert refine_status(str(store)).startswith("refinement in progress: 2 round(s) started")
    lines: list[str] = []
    report = run_sweep(parse_spec(plane_spec(store)), store, client=client, progress=False,
                       log=lines.append)  # fmt: skip
    assert report.complete and not report.failed
    # round 0 was kept whole; round 1's finished chunks too
    assert any(ln.startswith("round 0:") and ln.endswith(" 0 to compute") for ln in lines), lines
    r1_line = next(ln for ln in lines if ln.startswith("round 1:"))
    n_chunks = int(r1_line.split(" in ")[1].split(" chunks")[0])
    assert r1_line.endswith(f"{n_chunks - n_r1} to compute"), (r1_line, n_r1)
    assert not partial.exists() and any("partial point file" in ln for ln in lines), lines
    a, b = open_sweep(store), open_sweep(ref_store)
    for name in ("f", "g", "computed"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert _chunk_files(store) == _chunk_files(ref_store)  # bit-identical chunk files
    assert a.attrs[ATTR] == b.attrs[ATTR]
    assert dict(zarr.open_group(str(store)).attrs)[ATTR] == b.attrs[ATTR]


def test_planner_classes_equal_the_full_field_on_a_smooth_boundary():
    n = 200
    y, x = np.mgrid[0:n, 0:n] / n
    truth = np.where((x - 0.5) ** 2 + (y - 0.45) ** 2 < 0.1 + 0.02 * np.sin(40 * x), 1.0, -1.0)
    truth[150:170, 20:40] = np.nan  # a region without class is refined around as well
    r = refine_truth(truth, RefineSpec(16, 4, 1, 0.0, 0))
    filled = codes_of(truth).ravel()[r.fill_source().ravel()].reshape(n, n)
    np.testing.assert_array_equal(filled, codes_of(truth))
    # the fill source of a computed pixel is itself; of the others, a computed pixel
    src = r.fill_source()
    assert np.all(src[r.computed] == np.flatnonzero(r.computed))
    assert r.computed.ravel()[src.ravel()].all()
    assert r.evaluated_fraction < 0.35


def test_audits_find_an_island_between_the_lattice_points():
    n = 129
    truth = np.ones((n, n))
    truth[37:42, 37:42] = -1.0  # 5 × 5, inside one 16-pixel coarse block, off its lattice
    missed = refine_truth(truth, RefineSpec(16, 4, 1, 0.0, 0))
    assert missed.evaluated_fraction < 0.02
    assert missed.surprises == 0
    filled = codes_of(truth).ravel()[missed.fill_source().ravel()]
    assert np.count_nonzero(filled != codes_of(truth).ravel()) == 25  # the island is lost
    found = refine_truth(truth, RefineSpec(16, 4, 1, 0.3, 0))
    assert found.surprises >= 1
    filled = codes_of(truth).ravel()[found.fill_source().ravel()]
    np.testing.assert_array_equal(filled, codes_of(truth).ravel())
    # the audit share is a share: about 0.3 of the pixels left to fill
    share = found.audits / (n * n - (found.computed.sum() - found.audits))
    assert 0.25 < share < 0.35


def test_expected_fraction_counts_the_coarse_lattice_and_grows_with_dimension():
    r = RefineSpec(16, 4, 1, 0.0, 0)
    coarse_only = (1024 // 16 + 1) ** 2 / 1024**2
    lo, hi = (expected_fraction((1024, 1024), r, d) for d in (1.0, 1.6))
    assert coarse_only < lo < hi <= 1.0


@pytest.mark.parametrize("refine, message", [
    ({"coarse": 12}, "spec field 'refine.coarse': value 12 is not a power of two >= 2"),
    ({"coarse": 64}, "spec field 'refine.coarse': value 64 is larger than the plane allows "
                     "(at most 63: the plane's shorter axis has 64 pixels)"),
    ({"levels": 5}, "spec field 'refine.levels': value 5 is outside 1..3 (log2 of coarse = 8)"),
    ({"guard": -1}, "spec field 'refine.guard': value -1 is not an integer >= 0"),
    ({"audit": 0.9}, "spec field 'refine.audit': value 0.9 is not a share in [0, 0.5]"),
    ({"audit_seed": "x"}, "spec field 'refine.audit_seed': value 'x' is not an integer"),
    ({"coarsee": 8}, "spec field 'refine.coarsee': unknown key; did you mean 'coarse'? "
                     "(allowed: coarse, levels, guard, audit, audit_seed)"),
])  # fmt: skip
def test_bad_refine_blocks_are_one_line_errors(refine, message):
    with pytest.raises(SpecError) as e:
        parse_spec(plane_spec(**refine))
    assert str(e.value) == message


def test_refine_needs_one_value_off_the_plane():
    raw = {"experiment": "trainability", "steps": 5, "refine": {"coarse": 4},
           "axes": {"width": [4, 8], "lr_in": {"linspace": [0, 1], "count": 9},
                    "lr_out": {"linspace": [0, 1], "count": 9}}}  # fmt: skip
    with pytest.raises(SpecError, match=r"^spec field 'refine': axes width have several values"):
        parse_spec(raw)


@pytest.mark.parametrize("raw, field", [
    ({"experiment": "trainability", "steps": 6, "axes": {
        "width": [4], "lr_in": {"linspace": [-2, 3], "count": 9},
        "lr_out": {"linspace": [-2, 3], "count": 7}}}, lambda p: p["score"]),
    ({"experiment": "propagation", "depth": 4, "probes": {"pair": {}, "batch": {"m": 3}},
      "axes": {"width": [8], "activation": ["erf"],
               "sigma_w2": {"linspace": [0.5, 3], "count": 9},
               "sigma_b": {"linspace": [0, 1], "count": 7}}}, lambda p: p["lyapunov"][:, -1]),
])  # fmt: skip
def test_scattered_points_equal_their_chunk_values(raw, field):
    from pipeline.experiments import get_experiment
    from pipeline.store.grid import chunk_coords

    spec = parse_spec(raw)
    exp = get_experiment(spec.experiment)
    whole = exp.compute_chunk(spec, chunk_coords(spec, (0,) * len(spec.axes)))
    a_name, b_name = exp.plane(spec)
    rng = np.random.default_rng(0)
    i = rng.integers(0, len(spec.axis(a_name)), 11)
    j = rng.integers(0, len(spec.axis(b_name)), 11)
    coords = {ax.name: np.asarray(ax.values) for ax in spec.axes}
    coords[a_name] = coords[a_name][i]
    coords[b_name] = coords[b_name][j]
    points = exp.compute_points(spec, coords)
    assert set(points) == set(whole)
    for name, values in whole.items():
        plane = values.reshape(values.shape[len(spec.axes) - 2 :])  # other axes have one value
        np.testing.assert_array_equal(points[name], plane[i, j])
    # the default class hook: the sign of the signed field, > 0 against <= 0
    f = field(points)
    assert (f > 0).any() and (f <= 0).any()
    np.testing.assert_array_equal(exp.pixel_class(spec, points), np.where(f > 0, 1.0, -1.0))


def test_default_compute_points_calls_compute_chunk_per_point():
    from pipeline.experiments.base import Experiment

    spec = parse_spec(plane_spec())
    a, b = np.array([0, 5, 63, 7]), np.array([3, 3, 0, 63])
    got = Experiment.compute_points(sweep_stub.PLANE_EXPERIMENT, spec, {"a": a, "b": b})
    want = sweep_stub.plane_values(spec, a, b)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


@pytest.mark.parametrize(
    "sizes, n_tasks, cap, want",
    [
        ([5, 5, 5, 5], 2, 100, [[0, 1], [2, 3]]),
        ([5, 5, 5, 5], 1, 100, [[0, 1, 2, 3]]),
        ([5, 5, 5, 5], 9, 100, [[0], [1], [2], [3]]),  # never more runs than chunks
        ([5, 5, 5, 5], 1, 10, [[0, 1], [2, 3]]),  # the cap splits what one task would hold
        ([30, 1, 1, 1, 1, 30], 2, 100, [[0, 1, 2], [3, 4, 5]]),
        ([40, 1, 1, 1, 1], 2, 30, [[0], [1, 2, 3, 4]]),  # one chunk alone over the cap
    ],
)
def test_pack_chunks_balances_points_in_consecutive_runs(sizes, n_tasks, cap, want):
    assert pack_chunks(sizes, n_tasks, cap) == want


def test_pack_chunks_covers_every_chunk_once_within_the_cap():
    rng = np.random.default_rng(1)
    for _ in range(200):
        sizes = rng.integers(1, 50, rng.integers(1, 40)).tolist()
        n, cap = int(rng.integers(1, 8)), int(rng.integers(50, 200))
        runs = pack_chunks(sizes, n, cap)
        assert [i for r in runs for i in r] == list(range(len(sizes)))
        assert all(sum(sizes[i] for i in r) <= cap for r in runs)
        # no more runs than needed for balance, plus what the cap forces (two neighbouring
        # runs closed by the cap hold more than the cap together)
        assert len(runs) <= min(len(sizes), n + 2 * (sum(sizes) // cap) + 1)


def test_trainability_points_do_not_depend_on_their_batch():
    """A refinement task computes the points of several chunks in one call: a point's values
    must be the same whichever other points share its call (tiles are padded, never mixed)."""
    from pipeline.experiments import get_experiment

    raw = {"experiment": "trainability", "steps": 6, "axes": {
        "width": [4], "lr_in": {"linspace": [-2, 3], "count": 40},
        "lr_out": {"linspace": [-2, 3], "count": 30}}}  # fmt: skip
    spec = parse_spec(raw)  # 1,200 pixels: tiles of 400 points
    exp = get_experiment(spec.experiment)
    rng = np.random.default_rng(2)
    flat = rng.choice(1200, 700, replace=False)
    coords = {ax.name: np.asarray(ax.values) for ax in spec.axes}

    def at(idx: np.ndarray) -> dict:
        c = dict(coords)
        c["lr_in"], c["lr_out"] = coords["lr_in"][idx // 30], coords["lr_out"][idx % 30]
        return exp.compute_points(spec, c)

    whole = at(flat)
    parts = [at(flat[:13]), at(flat[13:450]), at(flat[450:])]
    for name, values in whole.items():
        joined = np.concatenate([p[name] for p in parts])
        np.testing.assert_array_equal(joined, values)
    assert np.isfinite(whole["score"]).any()


@pytest.mark.parametrize(
    "shape, coarse, levels", [((37, 29), 8, 3), ((64, 65), 16, 2), ((20, 41), 4, 2), ((9, 9), 8, 1)]
)
def test_classes_present_counts_every_closed_block_by_brute_force(shape, coarse, levels):
    rng = np.random.default_rng(sum(shape) + coarse)
    spec = RefineSpec(coarse=coarse, levels=levels, audit=0.0)
    r = Refiner(shape, spec)
    # sparse computed pixels of all three classes, so blocks hold 0, 1, 2 or 3 classes
    r.codes[...] = np.where(rng.random(shape) < 0.15, rng.integers(1, 4, shape), 0)
    got = r._classes_present()
    s, seen = coarse, set()
    while s >= spec.final:
        lo0, lo1 = np.arange(0, shape[0] - 1, s), np.arange(0, shape[1] - 1, s)
        want = np.zeros((len(lo0), len(lo1)), np.int8)
        for a, i in enumerate(lo0):
            for b, j in enumerate(lo1):
                block = r.codes[i : min(i + s, shape[0] - 1) + 1, j : min(j + s, shape[1] - 1) + 1]
                want[a, b] = len(set(np.unique(block).tolist()) - {0})
        np.testing.assert_array_equal(got[s], want, err_msg=f"spacing {s}")
        seen |= set(np.unique(want).tolist())
        s //= 2
    assert len(seen) >= 2  # blocks of different counts were compared
