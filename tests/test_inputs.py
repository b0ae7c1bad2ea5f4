"""Hostile input: YAML limits, duplicate keys, YAML 1.1 numbers, seeds >= 2**63, size and
memory limits, command-line flags, a scheduler that is not one, and a seeded fuzz test.

Every bad input is one line, ``error: ...``, exit status 2, found before anything is
allocated, and leaves nothing on disk.
"""

from __future__ import annotations

import contextlib
import copy
import http.server
import io
import math
import os
import random
import signal
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline import open_sweep, parse_spec, run_sweep
from pipeline.cli import main
from pipeline.errors import PipelineError, ResourceError, SpecError
from pipeline.spec.workflow import load_workflow
from pipeline.spec.yamlfile import MAX_DEPTH, MAX_NODES, parse_yaml

PROP = {
    "name": "inputs",
    "axes": {"width": [16], "sigma_w": {"linspace": [0.5, 2.0], "count": 4}, "sigma_b": [0.0]},
    "depth": 3,
    "record_layers": "last",
}
TRAIN = {
    "experiment": "trainability",
    "axes": {"lr_in": [0.0, 1.0], "lr_out": [0.0, 1.0]},
    "steps": 25,
}


def sweep(*args, cwd, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def one_line_error(out, startswith: str = "error: ") -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert out.stderr.startswith(startswith) and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


def spec_error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(parse_yaml(text, "s.yaml"))
    assert "\n" not in str(info.value)
    return str(info.value)


# ---- YAML: limits, duplicate keys, numbers ----------------------------------------------------


BOMB = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)


@pytest.mark.parametrize("field", ["name", "description", "figure", "axes"])
def test_alias_bombs_fail_at_once(field):
    # 9**9 = 387 million strings named in 10 lines: refused in well under a second
    text = f"{BOMB}\n{field}: *a8\ndepth: 3\n"
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=rf"holds over {MAX_NODES:,} values with its aliases"):
        parse_yaml(text, "bomb.yaml")
    assert time.perf_counter() - t0 < 2.0


def test_deep_nesting_and_alias_cycles_are_one_line():
    deep = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(SpecError, match=f"nests more than {MAX_DEPTH} levels deep"):
        parse_yaml(deep, "deep.yaml")
    # aliases can nest deeper than the text shows
    chain = "\n".join(["a0: &a0 [1]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 40)])
    with pytest.raises(SpecError, match="levels deep \\(aliases expanded\\)"):
        parse_yaml(chain, "chain.yaml")
    with pytest.raises(SpecError, match="not valid YAML|refers to itself"):
        parse_yaml("a: &a [*a]\n", "cycle.yaml")


def test_duplicate_keys_name_the_field_and_both_lines():
    text = "axes:\n  width: [16]\n  sigma_w: [1.0]\n  width: [32]\ndepth: 3\n"
    with pytest.raises(SpecError) as info:
        parse_yaml(text, "dup.yaml")
    assert str(info.value) == (
        "spec field 'axes.width': given twice in 'dup.yaml' (lines 2 and 4); keep one"
    )
    assert parse_yaml("a: 1\nb: {a: 2}\n") == {"a": 1, "b": {"a": 2}}  # same key, two maps


def test_numbers_are_read_as_yaml_1_2_numbers():
    got = parse_yaml("a: 1.0e6\nb: 1e-3\nc: 1e6\nd: -2.5E+2\ne: .5\nf: 1_000\ng: .inf\nh: 1.\n")
    assert got == {"a": 1e6, "b": 1e-3, "c": 1e6, "d": -250.0, "e": 0.5, "f": 1000,
                   "g": math.inf, "h": 1.0}  # fmt: skip
    assert all(type(v) is float for k, v in got.items() if k != "f")
    assert parse_yaml("a: 2024-01-01\nb: 1e6x\nc: e6\n") == {
        "a": "2024-01-01", "b": "1e6x", "c": "e6"
    }  # fmt: skip
    spec = parse_spec(parse_yaml(yaml.safe_dump(PROP).replace("2.0", "2.0e0")))
    assert spec.axis("sigma_w").values[-1] == 2.0
    # a count written as a float says how to write it
    msg = spec_error("axes: {width: [4], sigma_w: {linspace: [0, 1], count: 1e3}}\ndepth: 2")
    assert msg.endswith("count 1000.0 is not an integer >= 1 (write it as an integer, e.g. 1000)")


# ---- sizes the kernels and the driver can hold ----------------------------------------------


BIG = "1" + "0" * 400
SIZES = [
    ("depth: 2147483648", "'depth': value 2147483648 is over the limit of 2,147,483,647"),
    (
        "axes: {width: [2147483648], sigma_w: [1.0]}",
        "'axes.width': value 2147483648 is outside the allowed integers [1, 2147483647]",
    ),
    (
        "axes: {width: [4], sigma_w: {linspace: [0, 1], count: 1000000000000}}",
        "'axes.sigma_w.count': count 1000000000000 is over the limit of 1,048,576 per axis",
    ),
    (
        "axes: {width: [4], seed: {start: 0, count: 100000}, sigma_w: {linspace: [0, 1], "
        "count: 1000}, sigma_b: {linspace: [0, 1], count: 1000}}",
        "'axes': 100,000,000,000 grid points",
    ),
    (
        "axes: {width: [4], sigma_w: {linspace: [0, 1], count: 1025}, sigma_b: {linspace: "
        "[0, 1], count: 1025}}\nchunks: {sigma_w: 1, sigma_b: 1}",
        "'chunks': 1,050,625 chunks; the limit is 1,048,576",
    ),
    (
        "depth: 100000000\nrecord_layers: all",
        "'record_layers': 100,000,000 recorded layers; the limit is 1,048,576",
    ),
    (
        "axes: {width: [4], seed: {start: 18446744073709551614, count: 3}, sigma_w: [1.0]}",
        "'axes.seed.start': value 18446744073709551616 is outside",
    ),
    ("axes: {width: [4], sigma_w: [1e400]}", "'axes.sigma_w': value inf is not a finite number"),
    (
        f"axes: {{width: [4], sigma_w: [{BIG}]}}",
        "'axes.sigma_w': value 100000000000000000000000000000...(401 characters) is not a",
    ),
    ("probes: {circle: {K: 3000000000}}", "'probes.circle.K': value 3000000000 is over the limit"),
]


@pytest.mark.parametrize(("text", "message"), SIZES, ids=[t[:30] for t, _ in SIZES])
def test_sizes_are_limited_before_anything_is_allocated(text, message):
    raw = {**PROP, **parse_yaml(text)}
    t0 = time.perf_counter()
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert str(info.value).startswith(f"spec field {message}"), str(info.value)
    assert time.perf_counter() - t0 < 2.0  # nothing of the asked size was built


def test_trainability_steps_and_kept_trajectories_are_limited():
    with pytest.raises(SpecError, match="'steps': value 4000000000 is over the limit"):
        parse_spec({**TRAIN, "steps": 4_000_000_000})
    with pytest.raises(SpecError, match="with keep_trajectory: true; the limit is 1,048,576"):
        parse_spec({**TRAIN, "steps": 2_000_000, "keep_trajectory": True})


@pytest.mark.slow
def test_seeds_are_uint64_end_to_end(client, tmp_path):
    big = [2**63, 2**63 + 1, 2**64 - 1]
    spec = parse_spec({**PROP, "axes": {**PROP["axes"], "seed": [0, *big]}})
    store = tmp_path / "s.zarr"
    report = run_sweep(spec, store, client=client, progress=False, log=lambda m: None)
    assert report.complete and not report.failed
    ds = open_sweep(store)
    assert ds.seed.dtype == np.uint64 and ds.seed.values.tolist() == [0, *big]
    q = ds.q.isel(layer=-1).squeeze().values  # (seed, sigma_w)
    assert len({tuple(row) for row in q.tolist()}) == 4  # four networks, four different rows
    # each row is its seed's network: the same numbers as a store of that seed alone
    lone = parse_spec({**PROP, "axes": {**PROP["axes"], "seed": [2**63 + 1]}})
    run_sweep(lone, tmp_path / "lone.zarr", client=client, progress=False, log=lambda m: None)
    np.testing.assert_array_equal(
        open_sweep(tmp_path / "lone.zarr").q.isel(layer=-1).squeeze().values, q[2]
    )


# ---- workflows: scales and figure options -----------------------------------------------------


def test_a_typo_in_any_scale_is_reported_when_the_workflow_loads(tmp_path):
    w = tmp_path / "w.yaml"
    w.write_text(yaml.safe_dump({**PROP, "scales": {
        "smoke": {"depth": 2}, "paper": {"axes": {"widht": [64]}}}}))  # fmt: skip
    for scale in (None, "smoke", "paper"):
        with pytest.raises(SpecError) as info:
            load_workflow(w, scale)
        assert str(info.value).startswith(
            "spec field 'scales.paper.axes.widht': unknown key; did you mean 'width'?"
        )
    w.write_text(yaml.safe_dump({**PROP, "scael": {}}))
    with pytest.raises(SpecError) as info:
        load_workflow(w)
    assert "did you mean 'scales'?" in str(info.value)
    assert "scales" in str(info.value).split("allowed: ")[1].split(", ")
    assert "scale" not in str(info.value).split("allowed: ")[1].rstrip(")").split(", ")


FIGURES = [
    ({"kind": "phase_cv", "layers": [15, "x"]}, "'figure.layers[1]': value 'x' is not an integer"),
    ({"kind": "phase_cv", "layers": list(range(1, 20))}, "'figure.layers': expected 1 to 12"),
    ({"kind": "phase_cv", "threshold": -1}, "'figure.threshold': value -1.0 is outside (0, inf)"),
    ({"kind": "xi_c_map", "theory_points": 10**6}, "'figure.theory_points': value 1000000 is over"),
    ({"kind": "xi_c_map", "xi_levels": "2024-01-01"}, "'figure.xi_levels': value '2024-01-01' is"),
    ({"kind": "effective_rank", "rho": 1.5}, "'figure.rho': value 1.5 is outside (0, 1]"),
    ({"kind": "frontier", "layers": [1]}, "'figure.layers': unknown key (allowed: kind)"),
    ({"kind": ["frontier"]}, "'figure.kind': unknown value \"['frontier']\""),
    ({"layers": [1]}, "'figure': expected a mapping with a 'kind'"),
]


@pytest.mark.parametrize(("figure", "message"), FIGURES, ids=[m[:24] for _, m in FIGURES])
def test_figure_options_are_checked(figure, message):
    with pytest.raises(SpecError) as info:
        parse_spec({**PROP, "figure": figure})
    assert str(info.value).startswith(f"spec field {message}"), str(info.value)


# ---- the command line --------------------------------------------------------------------------


FLAGS = [
    (["run", "s.yaml", "--workers", "0"], "--workers: value 0 must be >= 1"),
    (["run", "s.yaml", "--workers", "100000"], "--workers: value 100000 is over the limit"),
    (["run", "s.yaml", "--workers", "x"], "sweep run: argument --workers: invalid int value"),
    (["run", "s.yaml", "--threads", "0"], "--threads: value 0 must be >= 1"),
    (["run", "s.yaml", "--retries", "-1"], "--retries: value -1 must be >= 0"),
    (["run", "s.yaml", "--store", ""], "--store: '' is not a path"),
    (["run", "s.yaml", "--jobs", "2"], "--jobs/--adapt: they need --cluster slurm"),
    (["run", "s.yaml", "--bogus"], "sweep: unrecognized arguments: --bogus"),
    (["zoom", "s.yaml", "--frames", "0"], "--frames: value 0 must be >= 1"),
    (["zoom", "s.yaml", "--frames", "61"], "--frames: value 61 is over the limit of 60"),
    (["zoom", "s.yaml", "--frames", "2", "--threads", "-3"], "--threads: value -3 must be >= 1"),
    (["analyze", "x.zarr", "--factor", "nan"], "--factor: value nan must be a finite number > 1"),
    (["analyze", "x.zarr", "--factor", "1"], "--factor: value 1.0 must be a finite number > 1"),
    (["analyze", "x.zarr", "--burn-in", "-1"], "--burn-in: value -1 must be >= 0"),
    (["submit", "s.yaml", "--start-timeout", "nan"], "--start-timeout: value nan must be > 0"),
    (["plan", "s.yaml", "--scale", "huge"], "spec field 'scales': unknown scale 'huge'"),
    (["status"], "sweep status: the following arguments are required: store"),
]


@pytest.mark.parametrize(("args", "message"), FLAGS, ids=[" ".join(a) for a, _ in FLAGS])
def test_bad_flags_are_one_line_and_leave_nothing(tmp_path, args, message):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**PROP, "store": "s.zarr"}))
    with contextlib.chdir(tmp_path):
        rc, err = _cli(args)
    assert rc == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_version_plan_without_store_and_help(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("sweep (phase-sweep) ")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(PROP))
    assert main(["plan", str(tmp_path / "s.yaml")]) == 0
    assert "store             none given (--store, or store: in the spec)" in (
        capsys.readouterr().out
    )
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "converged shares and boundary dimensions (trainability)" in text
    assert "every frame (zoom)" in text


@pytest.mark.slow
def test_tilde_is_expanded_once(tmp_path, client):
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**PROP, "store": "~/a.zarr"}))
    out = sweep("plan", "s.yaml", cwd=tmp_path, env={"HOME": str(home)})
    assert f"store             {home}/a.zarr" in out.stdout, out.stdout
    out = sweep("run", "s.yaml", "--store=~/b.zarr", "--workers", "1", "--no-progress",
                "--no-summary", cwd=tmp_path, env={"HOME": str(home)})  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert (home / "b.zarr" / "zarr.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "s.yaml"]  # no './~'
    assert sorted(p.name for p in home.iterdir()) == ["b.zarr"]  # no temp store left


def test_memory_per_task_is_checked_against_the_workers(tmp_path):
    from pipeline.run.plan import make_plan
    from pipeline.run.resources import check_task_memory, slurm_worker_memory

    # a 20000-wide network: its weight matrix alone is 1.6 GB (float32)
    wide = {**PROP, "axes": {**PROP["axes"], "width": [20_000]}, "store": "w.zarr"}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(wide))
    spec = parse_spec(wide)
    need = make_plan(spec).peak_task_bytes
    assert need > 20_000**2 * 4
    with pytest.raises(ResourceError, match=r"needs 1\.\d+ GiB .* but a worker of SLURM profile"):
        check_task_memory(spec, slurm_worker_memory({"memory": "2GB", "processes": 2}),
                          "a worker of SLURM profile 'x'")  # fmt: skip
    check_task_memory(spec, slurm_worker_memory({"memory": "16GB", "processes": 2}), "x")
    check_task_memory(spec, None, "workers of unknown size")  # nothing to check against
    profiles = Path(__file__).resolve().parent.parent / "slurm" / "local.yaml"  # 1 GiB
    submit = ["submit", "w.yaml", "--profiles", str(profiles), "--profile", "local", "--dry-run"]
    huge = {**wide, "axes": {**wide["axes"], "width": [2_000_000]}}  # 16 TB per matrix
    (tmp_path / "h.yaml").write_text(yaml.safe_dump(huge))
    with contextlib.chdir(tmp_path):
        rc, err = _cli(submit)
        assert rc == 2 and err.startswith("error: memory: one task of this sweep needs 1.")
        assert "pass --no-memory-check to run anyway" in err and err.count("\n") == 1
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main([*submit, "--no-memory-check"]) == 0
        assert out.getvalue().rstrip().endswith("--no-memory-check --no-progress")
        # a local run: each worker process gets the machine's memory / workers
        rc, err = _cli(["run", "h.yaml", "--workers", "1"])
        assert rc == 2 and err.startswith("error: memory: ") and "a local worker" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.yaml", "w.yaml"]


@contextlib.contextmanager
def _server(handler):
    """A TCP server on a free local port, answering with ``handler``; yields its address."""
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


class _Garbage(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.request.recv(64)
            self.request.sendall(b"\xff" * 4096)  # read as a frame length: exabytes


@pytest.mark.slow
def test_a_scheduler_address_that_is_no_scheduler_fails_in_seconds(tmp_path):
    from pipeline.run.clients import connect_scheduler

    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**PROP, "store": "s.zarr"}))
    with _server(_Garbage) as address:
        t0 = time.perf_counter()
        err = one_line_error(sweep("run", "s.yaml", "--scheduler", address, cwd=tmp_path))
        assert time.perf_counter() - t0 < 20
        assert f"--scheduler: no Dask scheduler at '{address}'" in err
    with _server(http.server.SimpleHTTPRequestHandler) as address:
        t0 = time.perf_counter()
        with pytest.raises(PipelineError, match="^scheduler: no Dask scheduler answered"):
            connect_scheduler(address, timeout=2.0)
        assert time.perf_counter() - t0 < 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


# ---- fuzz: random specs and flags, none of which may crash, hang or leave files ---------------

JUNK = [
    None, True, False, 0, -1, 1, 3, 2**31 - 1, 2**31, 2**63, 2**64, -(2**63), 10**400,
    1e308, -1e-300, float("inf"), float("-inf"), float("nan"), -0.0, 0.5, 2.0, "", "x", "tanh",
    "~/fuzz.zarr", "/sys/fuzz.zarr", "a" * 3000, "1.0e6", "2024-01-01", [], [1, 2], [[[]]],
    [0.5, 0.5], ["tanh", "relu"], {}, {"a": 1}, {"linspace": [0, 1], "count": 10**9},
    {"linspace": [0, 1e300], "count": 3}, {"logspace": [0, 400], "count": 3},
    {"start": 2**64 - 3, "count": 5}, {"start": 0, "count": 2**21}, {"values": [1, 2]},
    {"every": 0}, {"kind": "frontier"}, {"kind": "phase_cv", "layers": [1, -1]},
]  # fmt: skip
FIELDS = [
    "experiment", "name", "description", "store", "dtype", "depth", "record_layers",
    "figure", "chunks", "chunks.sigma_w", "chunks.seed", "axes", "axes.width", "axes.alpha",
    "axes.seed", "axes.activation", "axes.sigma_w", "axes.sigma_w2", "axes.sigma_b",
    "probes", "probes.pair", "probes.pair.q0", "probes.pair.c0", "probes.circle.K",
    "probes.batch.m", "steps", "mode", "dataset", "keep_trajectory", "axes.lr_in", "axes.eps",
    "scales", "scales.smoke", "scales.smoke.depth", "scales.smoke.axes.width", "scale", "bogus",
]  # fmt: skip
BAD_FLAGS = {
    "--workers": ["0", "-2", "x", "99999", "1.5"],
    "--threads": ["0", "-1", "inf"],
    "--retries": ["-1", "1000"],
    "--store": ["", "\t"],
    "--frames": ["0", "61", "x"],
    "--backend": ["gpu", ""],
    "--jobs": ["0"],
    "--scale": ["nope"],
    "--start-timeout": ["0", "nan", "-5"],
}


def _mutate(rng: random.Random) -> str:
    """A random spec as YAML text: a valid base with a few fields set to junk, and
    sometimes text-level damage (aliases, nesting, a repeated key, broken syntax)."""
    raw = copy.deepcopy(rng.choice([PROP, TRAIN, {**PROP, "scales": {"smoke": {"depth": 2}}}]))
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        *parents, last = rng.choice(FIELDS).split(".")
        node = raw
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[last] = copy.deepcopy(rng.choice(JUNK))
    text = yaml.safe_dump(raw, allow_unicode=True)
    damage = rng.random()
    if damage < 0.08:
        field = rng.choice(["name", "description", "figure", "axes", "probes", "depth"])
        text = f"{BOMB}\n{text}\n{field}: *a{rng.randint(3, 8)}\n"
        text = text.replace(f"\n{field}:", "\n_dup:", 1) if f"\n{field}:" in text else text
    elif damage < 0.14:
        n = rng.choice([40, 500, 5000])
        text += f"extra: {'[' * n}{']' * n}\n"
    elif damage < 0.2:
        line = rng.choice([ln for ln in text.splitlines() if ln and not ln.startswith(" ")])
        text += line + "\n"  # a top-level key again
    elif damage < 0.26 and len(text) > 2:
        i = rng.randrange(len(text))
        text = (
            text[:i] + rng.choice(["{", "]", ":", "\t", "*x", "&", "!!python/object "]) + text[i:]
        )
    elif damage < 0.3:
        text = text.replace(": ", ": !!binary ", 1)
    return text


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def _cli(argv: list[str]) -> tuple[int, str]:
    """Run ``sweep argv`` in this process; (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 1
    return rc, err.getvalue()


@pytest.mark.slow
def test_fuzz_specs_and_flags(tmp_path, monkeypatch):
    """300 seeded cases: every one ends in 0 (a valid plan) or one `error:` line with exit
    2, none takes 20 s, and none leaves a file behind (in the working directory or HOME)."""
    rng = random.Random(20240613)
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    old = signal.signal(signal.SIGALRM, _alarm)
    counts = {"valid": 0, "error": 0}
    try:
        for case in range(300):
            spec = work / "s.yaml"
            if case % 4 == 3:  # a valid spec with a bad flag
                spec.write_text(yaml.safe_dump({**PROP, "store": "f.zarr"}))
                flag = rng.choice(sorted(BAD_FLAGS))
                command = "zoom" if flag == "--frames" else rng.choice(["run", "zoom", "submit"])
                argv = [command, "s.yaml", flag, rng.choice(BAD_FLAGS[flag])]
                if command == "zoom" and flag != "--frames":
                    argv += ["--frames", "2"]
                runs = [argv]
            else:
                text = _mutate(rng)
                spec.write_text(text)
                runs = [["plan", "s.yaml"]]
            signal.alarm(20)
            try:
                for argv in runs:
                    rc, err = _cli(argv)
                    if rc == 2 and argv[0] == "plan":  # the computing commands say the same
                        runs.append(["run", "s.yaml", "--workers", "1", "--no-progress"])
                        runs.append(["zoom", "s.yaml", "--frames", "2", "--no-progress"])
                    assert rc in (0, 2), (case, argv, rc, err)
                    if argv[0] != "plan" or rc == 2:
                        assert rc == 2, (case, argv, spec.read_text()[:300])
                        assert err.startswith("error: ") and err.count("\n") == 1, (case, err)
                    counts["valid" if rc == 0 else "error"] += 1
            except _Hang:
                pytest.fail(f"case {case} ({runs[0]}) ran over 20 s: {spec.read_text()[:300]!r}")
            finally:
                signal.alarm(0)
            assert sorted(p.name for p in work.iterdir()) == ["s.yaml"], case
            assert list(home.iterdir()) == [], case
    finally:
        signal.signal(signal.SIGALRM, old)
    assert counts["valid"] > 15 and counts["error"] > 200, counts  # both sides are exercised
