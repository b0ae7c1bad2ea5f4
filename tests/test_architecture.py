"""The shape of the package: stages in folders, experiments as plug-ins, no import cycles, one
activation table tied to the kernels, a wheel that carries its data, old stores that resume."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import pipeline
from pipeline import Experiment, Variable, make_plan, open_sweep, parse_spec, register, run_sweep
from pipeline.errors import PipelineError, SpecError
from pipeline.numerics.activations import ACTIVATIONS, get_activation, scaled
from pipeline.spec.fields import Axis, AxisRule, positive_int

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pipeline"


def package_modules() -> list[str]:
    """Every module of the package, by dotted name (packages by their ``__init__``)."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def module_level_imports(module: str) -> set[str]:
    """Package modules that ``module`` imports when it is imported (top-level statements,
    ``TYPE_CHECKING`` blocks excluded), with the packages such an import initialises first.

    Not counted: the root ``pipeline`` (its ``__init__`` is the public facade that re-exports
    the stages) and the packages that contain ``module`` itself (they are initialised before
    it, and a package's ``__init__`` importing its own modules is not a cycle)."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    known = set(package_modules())
    own = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 2)}
    found: set[str] = set()

    def add(name: str) -> None:
        parts = name.split(".")
        for k in range(2, len(parts) + 1):  # importing a.b.c initialises a.b, then a.b.c
            cand = ".".join(parts[:k])
            if cand in known and cand not in own:
                found.add(cand)

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                for a in node.names:
                    add(a.name)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                add(node.module)
                for a in node.names:
                    add(f"{node.module}.{a.name}")  # `from pkg import submodule`
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)

    visit(tree.body)
    return found


def all_imports(module: str) -> set[str]:
    """Package modules that ``module`` may import: every import statement in it, at module
    level or inside a function (lazy), ``TYPE_CHECKING`` blocks excluded, with the packages
    such an import initialises first (the containing packages of ``module`` not counted)."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # drop the annotations-only imports
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    known = set(package_modules())
    own = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 2)}
    found: set[str] = set()

    def add(name: str) -> None:
        parts = name.split(".")
        for k in range(2, len(parts) + 1):
            cand = ".".join(parts[:k])
            if cand in known and cand not in own:
                found.add(cand)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            add(node.module)
            for a in node.names:
                add(f"{node.module}.{a.name}")
    return found


def test_nothing_outside_the_experiments_imports_an_experiments_own_module():
    """The plug-in boundary: outside ``pipeline/experiments/`` only the registry and the base
    class are imported (lazy imports included); an experiment's presentation comes through
    its hooks."""
    offenders = []
    for m in package_modules():
        if m.startswith("pipeline.experiments"):
            continue
        for n in all_imports(m):
            if n.startswith("pipeline.experiments.") and n != "pipeline.experiments.base":
                offenders.append(f"{m} imports {n}")
    assert not offenders, "\n".join(sorted(offenders))


def test_the_analysis_imports_neither_the_engine_nor_the_experiments():
    offenders = [
        f"{m} imports {n}"
        for m in package_modules()
        if m.startswith("pipeline.analysis")
        for n in all_imports(m)
        if n.startswith(("pipeline.store", "pipeline.run", "pipeline.experiments"))
    ]
    assert not offenders, "\n".join(sorted(offenders))


def test_the_plane_labels_and_display_come_from_the_experiments():
    """What the figures used to hold themselves: the axis labels, the score's display
    transform and what its sign means."""
    from pipeline.experiments import get_experiment

    train, prop = get_experiment("trainability"), get_experiment("propagation")
    assert train.axis_label("lr_in") == "log10 lr_in (input layer)"
    assert train.axis_label("log_offset") == "log10 offset of the input-layer weights"
    assert train.axis_label("offset") == "offset of the input-layer weights"
    assert prop.axis_label("sigma_w2") == "weight variance σ_w²"
    assert prop.axis_label("sigma_b") == "bias scale σ_b"
    assert prop.axis_label("nonexistent") == "nonexistent"
    s = np.array([-(np.e - 1), 0.0, np.e**2 - 1, np.nan])
    np.testing.assert_allclose(train.display_field(s), [-1.0, 0.0, 2.0, np.nan])
    assert train.class_names == ("converged", "diverged")
    ds = xr.Dataset(coords={"sigma_w2": [1.0], "sigma_b": [0.0]})
    assert prop.stored_plane(ds) == ("sigma_w2", "sigma_b")
    assert not prop.has_critical_regime(ds)
    tds = xr.Dataset(attrs={"sweep_spec": {"mode": "offset_vs_lr"}})
    assert train.stored_plane(tds) == ("offset", "lr")


def test_no_import_cycle_between_modules():
    graph = {m: module_level_imports(m) for m in package_modules()}
    # Tarjan would name every cycle; a DFS that reports the first one is enough here
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                dfs(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)


KNOWN_LAZY_CYCLES: set[frozenset[str]] = set()
"""Cycles through function-level imports still to be removed (none left); a cycle not listed
here fails the test, and so does a listed one that is gone (so the list only shrinks)."""


def test_no_import_cycle_with_lazy_imports_included():
    """Function-level imports count too: a cycle through them is a cycle of design."""
    graph = {m: all_imports(m) for m in package_modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[frozenset[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan: every strongly connected component
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(frozenset(comp))

    for m in sorted(graph):
        if m not in index:
            strongconnect(m)
    new = [sorted(c) for c in cycles if c not in KNOWN_LAZY_CYCLES]
    assert not new, "import cycles (lazy imports included): " + "; ".join(map(str, new))
    gone = [sorted(c) for c in KNOWN_LAZY_CYCLES if c not in cycles]
    assert not gone, f"these cycles are gone: remove them from KNOWN_LAZY_CYCLES: {gone}"


MAX_PARAMETERS = 8
"""The most parameters a function of the execution layer takes (``self``/``cls`` not
counted, ``*args`` and ``**kwargs`` one each): settings travel in a run context, a store
handle or a chunk grid, not as long argument lists."""


def test_no_function_of_the_store_or_run_packages_takes_more_than_eight_parameters():
    offenders = []
    for path in sorted((PACKAGE / "store").glob("*.py")) + sorted((PACKAGE / "run").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
                n = len([x for x in names if x not in ("self", "cls")])
                n += (a.vararg is not None) + (a.kwarg is not None)
                if n > MAX_PARAMETERS:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n}")
    assert not offenders, "\n".join(offenders)


def test_one_driver_decides_where_chunks_run():
    """The cluster kinds are the run context's: no run mode or command starts a cluster or
    connects to a scheduler itself."""
    pattern = re.compile(r"\b(local_cluster|connect_scheduler|slurm_client|check_submittable)\(")
    allowed = {"pipeline/run/context.py", "pipeline/run/clients.py", "pipeline/slurm/cluster.py"}
    offenders = [
        str(p.relative_to(ROOT))
        for p in sorted(PACKAGE.rglob("*.py"))
        if str(p.relative_to(ROOT)) not in allowed and pattern.search(p.read_text())
    ]
    assert not offenders, offenders


STAGES = (
    ("pipeline.errors", "pipeline.provenance", "pipeline.durations", "pipeline.numerics",
     "pipeline.gpu", "pipeline.kernels", "pipeline.draws"),
    ("pipeline.spec", "pipeline.experiments.base"),
    ("pipeline.analysis", "pipeline.slurm"),
    ("pipeline.experiments.",),
    ("pipeline.store",),
    ("pipeline.run",),
    ("pipeline.figures",),
    ("pipeline.cli", "pipeline.__main__"),
)  # fmt: skip
"""The stage order, lowest first: a module imports only modules of its own stage or below
(lazy imports included). The experiments' registry (``pipeline.experiments``) and base class
are the plug-in interface, with the spec; an experiment's own package sits above the analysis
(its summary uses the boundary report) and below the engine, which runs it; the root
``pipeline`` is the public facade over everything."""


def stage(module: str) -> int:
    """The index in :data:`STAGES` of ``module`` (the registry counts with the spec)."""
    if module == "pipeline.experiments":
        return 1
    for rank, prefixes in enumerate(STAGES):
        for p in prefixes:
            if module == p or module.startswith(p if p.endswith(".") else p + "."):
                return rank
    raise AssertionError(f"{module} is in no stage: add it to STAGES")


def test_no_import_runs_back_up_the_stage_order():
    offenders = [
        f"{m} (stage {stage(m)}) imports {n} (stage {stage(n)})"
        for m in package_modules()
        if m != "pipeline"
        for n in all_imports(m)
        if stage(n) > stage(m)
    ]
    assert not offenders, "\n".join(sorted(offenders))


def test_the_figure_kinds_declared_with_the_spec_are_the_registered_ones():
    import pipeline.figures  # noqa: F401  (registers every kind)
    from pipeline.figures.registry import FIGURES
    from pipeline.spec.figures import FIGURE_OPTIONS

    assert list(FIGURES) == list(FIGURE_OPTIONS)
    assert all(FIGURES[k].options is FIGURE_OPTIONS[k] for k in FIGURES)


@pytest.mark.slow
def test_every_module_imports_on_its_own(tmp_path):
    """Each module imported first, in a fresh module table (one interpreter for all). The
    package's bytecode is cached in a temporary folder: with PYTHONDONTWRITEBYTECODE set
    (this machine sets it) each of the ~90 imports compiled the package's sources again."""
    code = """
import importlib, sys
sys.dont_write_bytecode, sys.pycache_prefix = False, sys.argv.pop(1)
failed = []
for name in sys.argv[1:]:
    for k in [k for k in sys.modules if k == "pipeline" or k.startswith("pipeline.")]:
        del sys.modules[k]
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    modules = [m for m in package_modules() if m != "pipeline.__main__"]
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "pycache"), *modules],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_importing_the_numerics_loads_no_dask_zarr_or_xarray():
    """``pipeline/__init__`` resolves its public names on first use, so the pure numerics (and
    ``import pipeline`` itself) load without the engine's dependencies."""
    code = (
        "import sys, pipeline, pipeline.numerics\n"
        "import pipeline.numerics.rng, pipeline.numerics.theory, pipeline.numerics.levy\n"
        "import pipeline.numerics.activations, pipeline.errors\n"
        "heavy = ('dask', 'distributed', 'zarr', 'xarray', 'pipeline.store', 'pipeline.run')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
        "             or m.startswith(('pipeline.store', 'pipeline.run'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_no_experiment_name_branches_outside_the_experiments():
    pattern = re.compile(r"experiment\s*[!=]=\s*[\"']|[\"'](propagation|trainability)[\"']\s*[!=]=")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "experiments") in path.parents:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_command_line_turns_exactly_pipeline_errors_into_one_line(monkeypatch, capsys):
    import pipeline.cli as cli

    def user_error(args):
        raise SpecError("axes.alpha", "value 2.5 is outside (0, 2]")

    monkeypatch.setitem(cli._COMMANDS, "plan", user_error)
    assert cli.main(["plan", "x.yaml"]) == 2
    assert capsys.readouterr().err == (
        "error: spec field 'axes.alpha': value 2.5 is outside (0, 2]\n"
    )
    for exc in (ValueError, TypeError, KeyError, FileNotFoundError):

        def bug(args, exc=exc):
            raise exc("an internal bug")

        monkeypatch.setitem(cli._COMMANDS, "plan", bug)
        with pytest.raises(exc, match="an internal bug"):  # a bug keeps its traceback
            cli.main(["plan", "x.yaml"])


def test_library_errors_name_arguments_and_the_command_line_maps_them_to_flags():
    """No raise outside ``pipeline/cli/`` words its message as a flag (``"--jobs: ..."``);
    the library names its argument (``error.option``) and ``sweep`` prints the flag."""
    from pipeline.cli import flag_message
    from pipeline.errors import SlurmError, UsageError

    raise_flag = re.compile(r"Error\(\s*f?[\"']--[a-z]")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if (PACKAGE / "cli") in path.parents:
            continue
        text = path.read_text()
        for m in raise_flag.finditer(text):
            offenders.append(f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}")
    assert not offenders, "\n".join(offenders)
    cases = [
        (UsageError("jobs and adapt: give one", option=("jobs", "adapt")),
         "--jobs and --adapt: give one"),
        (SlurmError("profile 'gpu' (f.yaml): 'cores' is required", option="profile"),
         "--profile 'gpu' (f.yaml): 'cores' is required"),
        (UsageError("start_timeout: value 0 must be > 0", option="start_timeout"),
         "--start-timeout: value 0 must be > 0"),
        (SlurmError("profile: no profile 'profile' in x", option="profile"),
         "--profile: no profile 'profile' in x"),
        (PipelineError("store: no output path"), "store: no output path"),
    ]  # fmt: skip
    for error, printed in cases:
        assert flag_message(error) == printed


# ---------------------------------------------------------------- activations and kernels


def test_kernel_activation_ids_are_the_tables():
    from pipeline.gpu.kernels import kernel_files

    header = kernel_files().joinpath("activation_ids.cuh").read_text()
    defines = {m[0].lower(): int(m[1]) for m in re.findall(r"#define PS_ACT_(\w+) (\d+)", header)}
    assert defines == {name: act.kernel_id for name, act in ACTIVATIONS.items()}
    for src in ("propagate.cu", "train.cu"):
        text = kernel_files().joinpath(src).read_text()
        assert '#include "activation_ids.cuh"' in text, src
        assert not re.search(r"#define P[ST]_ACT_", text), f"{src} defines its own ids"
    from pipeline.experiments.trainability.gpu import ACT_IDS

    assert ACT_IDS == {"tanh": 0, "relu": 1, "identity": 3, "sigmoid": 4}


def test_the_kernels_ids_and_gains_come_from_the_tables():
    """The shipped header is the generated text; the training kernel takes its gains as
    arguments (the table's); the Numba ids are the table's order; an id a kernel has no case
    for is an error there (a trap; a ValueError in the emulation), not the identity."""
    from pipeline.experiments.trainability.activations import TRAIN_ACTIVATIONS
    from pipeline.experiments.trainability.compiled import ACTIVATION_IDS
    from pipeline.experiments.trainability.emulate import _train_dphi, _train_phi
    from pipeline.experiments.trainability.gpu import kernel_args
    from pipeline.experiments.trainability.reference import make_problem
    from pipeline.gpu.kernels import activation_ids_header, kernel_files, kernel_source

    assert kernel_files().joinpath("activation_ids.cuh").read_text() == activation_ids_header()
    assert "#define PS_ACT_SIGMOID 4" in kernel_source("train.cu")
    assert ACTIVATION_IDS == {name: i for i, name in enumerate(TRAIN_ACTIVATIONS)}
    lr = np.zeros(2)
    for name, (base, g_in, g_out) in TRAIN_ACTIVATIONS.items():
        args = kernel_args(make_problem(4, 2, 0, 0.0, "full"), name, lr, lr, None, 3, "float64")
        assert (args["act"], args["gain_in"], args["gain_out"]) == (
            ACTIVATIONS[base].kernel_id,
            g_in,
            g_out,
        )
    for src in ("propagate.cu", "train.cu"):
        text = kernel_files().joinpath(src).read_text()
        defaults = re.findall(r"default:[^\n]*\n\s*([^\n]*)", text)
        assert defaults and all(d.startswith("__trap();") for d in defaults), (src, defaults)
    z = np.linspace(-2, 2, 9)
    with pytest.raises(ValueError, match="kernel id 2"):  # erf: not a training activation
        _train_phi(z, (2, np.float64(1), np.float64(1)), np.tanh)
    with pytest.raises(ValueError, match="kernel id 9"):
        _train_dphi(z, z, (9, np.float64(1), np.float64(1)))


def test_trainability_activations_are_gains_on_the_one_table():
    z = np.linspace(-3, 3, 101)
    from pipeline.experiments.trainability.reference import train_activation

    r2 = np.sqrt(2.0)
    cases = {
        "tanh": (np.tanh(r2 * z), r2 * (1 - np.tanh(r2 * z) ** 2)),
        "relu": (r2 * np.maximum(z, 0), r2 * (z > 0)),
        "identity": (z, np.ones_like(z)),
        "sigmoid": (1 / (1 + np.exp(-z)), np.exp(-z) / (1 + np.exp(-z)) ** 2),
    }
    for name, (phi, dphi) in cases.items():
        act = train_activation(name)
        a = act.phi(z, np)
        np.testing.assert_allclose(a, phi, rtol=1e-14, atol=1e-15, err_msg=name)
        np.testing.assert_allclose(act.dphi_hx(z, a, np), dphi, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(act.dphi(z, np), dphi, rtol=1e-12, atol=1e-15)
    assert scaled("tanh") is get_activation("tanh") and get_activation("identity").name == "linear"
    with pytest.raises(PipelineError, match="unknown value 'swish'"):
        get_activation("swish")


# ---------------------------------------------------------------- a toy experiment plugs in


class ToyExperiment(Experiment):
    """f(a, b) = a·b − k over a plane, plus a per-point vector: the smallest experiment."""

    name = "toy"
    axis_rules = (
        AxisRule("a", "float", default=None, long_name="first axis"),
        AxisRule("b", "float", default=(1.0,), long_name="second axis"),
    )
    param_keys = ("k",)

    def parse_params(self, raw: Mapping[str, Any], axes: tuple[Axis, ...]) -> tuple[Any, dict]:
        k = positive_int(raw.get("k", 1), "k", 0)
        return k, {"k": k}

    def default_chunk(self, axis: Axis) -> int:
        return min(len(axis), 3)

    def variables(self, spec: Any) -> list[Variable]:
        return [
            Variable("f", (), "a b - k"),
            Variable("v", ("i",), "(a, b, k)"),
        ]

    def extra_coords(self, spec: Any) -> dict:
        return {"i": (np.arange(3), {"long_name": "component"})}

    def chunk_cost(self, spec: Any, chunk_shape: tuple[int, ...]) -> dict[str, float]:
        return {"flops": float(np.prod(chunk_shape)), "peak_bytes": 64.0}

    def compute_chunk(self, spec, coords, backend="numpy", threads=1):
        a, b = np.meshgrid(coords["a"], coords["b"], indexing="ij")
        k = spec.params
        v = np.stack([a, b, np.full_like(a, k)], axis=-1)
        return {"f": (a * b - k).astype(spec.dtype), "v": v.astype(spec.dtype)}

    def plane(self, spec: Any) -> tuple[str, str]:
        return ("a", "b")

    def signed_field(self, spec: Any, ds: xr.Dataset) -> xr.DataArray:
        return ds["f"]


def test_a_toy_experiment_runs_through_plan_execute_store(tmp_path):
    from distributed import Client, LocalCluster

    register(ToyExperiment(), replace=True)
    raw = {"experiment": "toy", "axes": {"a": {"linspace": [0, 2], "count": 7}, "b": [1, 2]}}
    spec = parse_spec({**raw, "k": 1})
    plan = make_plan(spec)
    assert (plan.n_chunks, plan.chunk_shape, plan.variables) == (3, (3, 2), ("f", "v"))
    with pytest.raises(SpecError, match="spec field 'k'"):
        parse_spec({**raw, "k": -1})
    with pytest.raises(SpecError, match="spec field 'axes.c'"):
        parse_spec({**raw, "axes": {**raw["axes"], "c": [1]}})
    # a toy registered at run time lives in this process: in-process workers see it
    with (
        LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as cluster,
        Client(cluster) as client,
    ):
        report = run_sweep(spec, tmp_path / "toy.zarr", client=client, progress=False)
    assert report.complete and not report.failed
    ds = open_sweep(tmp_path / "toy.zarr")
    a, b = np.meshgrid(np.linspace(0, 2, 7), [1, 2], indexing="ij")
    np.testing.assert_allclose(ds.f.values, a * b - 1, rtol=1e-6)
    np.testing.assert_allclose(ds.v.sel(i=2).values, 1)
    # the generic hooks work for it too: summary, zoom's field
    from pipeline.run.zoom import signed_field

    assert "toy store" in ToyExperiment().summary(ds)
    assert signed_field(spec, ds).dims == ("a", "b")


# ---------------------------------------------------------------- stores of version 0.1.0


@pytest.mark.parametrize("name", ["propagation_partial.zarr", "trainability_partial.zarr"])
@pytest.mark.slow
def test_stores_written_before_the_restructure_open_and_resume(name, tmp_path, client):
    old = tmp_path / name
    shutil.copytree(ROOT / "tests" / "data" / "legacy-0.1" / name, old)
    before = open_sweep(old)
    old_vars = set(before.data_vars)
    # the propagation flag tells which points the old version computed (read before resuming)
    old_done = before["nonfinite_layer"].values >= 0 if "nonfinite_layer" in old_vars else None
    spec = pipeline.read_spec(old)
    assert before.attrs["git_revision"].startswith("bef03a0")
    # the old stores were written by the NumPy backend: resume on it, so the halves compare bit
    # for bit (auto would pick numba where it is installed: equal within its contract only)
    report = run_sweep(spec, old, client=client, progress=False, backend="numpy")
    assert report.already_done == report.total // 2 and report.complete
    fresh = run_sweep(spec, tmp_path / "fresh.zarr", client=client, progress=False, backend="numpy")
    assert fresh.complete
    a, b = open_sweep(old).load(), open_sweep(tmp_path / "fresh.zarr").load()
    assert set(a.data_vars) == set(b.data_vars)
    for v in old_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
    # variables added since (underflow_layer): -1 ("not computed") where the old version had
    # computed the chunk, the new run's values in the chunks computed by the resume
    for v in set(b.data_vars) - old_vars:
        assert (a[v].values[old_done] == -1).all(), v
        np.testing.assert_array_equal(a[v].values[~old_done], b[v].values[~old_done], err_msg=v)
        assert (b[v].values >= 0).all(), v


# ---------------------------------------------------------------- the wheel


@pytest.mark.slow
def test_the_wheel_carries_kernels_and_profiles_and_runs_from_them(tmp_path):
    """``pip wheel`` of the repository, its file list, and the installed package (not the
    checkout) planning a sweep, finding its kernels and the shipped SLURM profiles."""
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", tmp_path],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("phase_sweep-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    kernels = {"rng.cu", "propagate.cu", "train.cu", "philox_cms.cuh", "activation_ids.cuh"}
    assert {f"pipeline/kernels/{k}" for k in kernels} <= names
    assert "pipeline/slurm/jobqueue.yaml" in names
    assert not any(n.startswith(("tests/", "benchmarks/", "workflows/")) for n in names)
    for m in package_modules():
        rel = m.replace(".", "/")
        assert (f"{rel}/__init__.py" if (ROOT / rel).is_dir() else f"{rel}.py") in names, m

    target = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = (
        "import pipeline, pipeline.gpu.kernels as k, pipeline.slurm.profiles as p\n"
        "print(pipeline.__file__)\n"
        "print(k.kernel_files())\n"
        "print(p.PROFILE_FILE, sorted(p.shipped_profiles()))\n"
        "print(len(k.kernel_source('rng.cu')), len(k.kernel_source('train.cu')))\n"
        "print(p.load_profile('gpu').options['job_extra_directives'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert all(str(target) in line for line in lines[:3]), lines
    assert "['cpu', 'gpu']" in lines[2] and "--gres=gpu:1" in lines[4]
    plan = subprocess.run(
        [sys.executable, "-m", "pipeline", "plan", str(ROOT / "workflows" / "quickstart.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert plan.returncode == 0, plan.stderr
    assert "(GPU memory, CuPy)" in plan.stdout and "GPU time" in plan.stdout
    assert "time (estimate)" in plan.stdout  # the installed wheel calibrates too
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return  # the compile-from-the-installed-package check needs nvcc (compile-only)
    src = target / "pipeline" / "kernels"
    for name in ("rng.cu", "propagate.cu"):  # train.cu: ~30 s; test_kernels_compile has it
        res = subprocess.run(
            [nvcc, "--fatbin", "-std=c++14", "-gencode=arch=compute_80,code=sm_80",
             "-I", str(src), "-o", str(tmp_path / f"{name}.fatbin"), str(src / name)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, f"{name}: {res.stderr}"
