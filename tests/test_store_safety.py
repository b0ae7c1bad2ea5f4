"""Stores that stay right when things go wrong: a run whose store is deleted and made again
is refused; damaged chunk files are found by ``sweep verify`` and recomputed after
``--repair``; one driver per store (a lease, taken over from a dead holder); a markers folder
with strays or deleted; store paths that cannot hold a store are one line and leave nothing;
relative and ``~`` paths reach the workers absolute; the fast chunk encoder writes the bytes
Zarr writes; a ``--scheduler`` that is not a Dask scheduler is one line, in time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))  # before the module's client fixture spawns its workers

import sweep_stub  # noqa: E402

from pipeline import open_sweep, parse_spec, read_spec, register, run_sweep  # noqa: E402
from pipeline.cli import main as sweep  # noqa: E402
from pipeline.errors import StoreError, StoreInUseError  # noqa: E402
from pipeline.store.lease import LEASE_FILE, STALE_AFTER_S, store_lease  # noqa: E402
from pipeline.store.markers import DONE_DIR  # noqa: E402
from pipeline.store.sweep import done_keys  # noqa: E402
from pipeline.store.verify import verify_store  # noqa: E402

register(sweep_stub.EXPERIMENT, replace=True)
ROOT = Path(__file__).resolve().parent.parent


def stub(n_a: int, offset: float = 0.0, **extra) -> dict:
    return {"experiment": "stub", "axes": {"a": {"start": 0, "count": n_a},
            "b": {"start": 0, "count": 10}}, "offset": offset, **extra}  # fmt: skip


PROPAGATION = {
    "experiment": "propagation",
    "axes": {
        "width": [16],
        "seed": {"start": 0, "count": 2},
        "activation": ["tanh", "relu"],
        "sigma_w": {"linspace": [0.5, 2.5], "count": 4},
        "sigma_b": [0.0, 0.3],
    },
    "depth": 5,
    "chunks": {"activation": 1, "sigma_w": 2, "sigma_b": 1},
}


def quiet(msg: str) -> None:
    pass


def test_the_fast_chunk_encoder_writes_the_bytes_zarr_writes(tmp_path):
    from zarr.codecs import Crc32cCodec, ZstdCodec

    from pipeline.store.writer import _Encoder

    rng = np.random.default_rng(0)
    for dtype, fill in (("float32", np.nan), ("float64", np.nan), ("int16", -1)):
        for codecs in ((ZstdCodec(level=0), Crc32cCodec()), (ZstdCodec(level=3),)):
            made = []
            for name in ("zarr", "ours"):
                g = zarr.open_group(tmp_path / f"{dtype}-{len(codecs)}-{name}", mode="w")
                made.append(g.create_array("x", shape=(5, 3, 4), chunks=(2, 2, 4), dtype=dtype,
                                           fill_value=fill, compressors=codecs))  # fmt: skip
            ref, ours = made
            enc = _Encoder.for_array(ours)
            assert enc is not None
            for i, j in np.ndindex(3, 2):  # edge chunks (2 of 5 rows, 1 of 3 columns) included
                region = (slice(2 * i, min(2 * i + 2, 5)), slice(2 * j, min(2 * j + 2, 3)))
                shape = (region[0].stop - region[0].start, region[1].stop - region[1].start, 4)
                data = (rng.normal(size=shape) * 100).astype(dtype)
                ref[region] = data
                enc.write(str(tmp_path / f"{dtype}-{len(codecs)}-ours"), "x", (i, j, 0), data)
                key = ref.metadata.encode_chunk_key((i, j, 0))
                a = (Path(ref.store.root) / "x" / key).read_bytes()
                b = (Path(ours.store.root) / "x" / key).read_bytes()
                assert a == b, (dtype, codecs, i, j)
            np.testing.assert_array_equal(ours[...], ref[...])
    blosc = zarr.open_group(tmp_path / "other", mode="w").create_array(
        "x", shape=(4,), chunks=(2,), dtype="f4", compressors=zarr.codecs.BloscCodec()
    )
    assert _Encoder.for_array(blosc) is None  # anything else: written through Zarr


@pytest.mark.slow
def test_a_run_whose_store_is_replaced_is_refused_and_the_new_store_is_right(tmp_path, client):
    store = tmp_path / "s.zarr"
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(stub(100, offset=0.5, store=str(store))))
    env = {**os.environ, "PYTHONPATH": str(PLUGINS), "SWEEP_STUB_DELAY": "0.02"}
    a = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", str(tmp_path / "a.yaml"), "--workers", "2",
         "--no-progress", "--no-summary"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while len(done_keys(store)) < 20:
            assert a.poll() is None, a.communicate()
            assert time.monotonic() < deadline, "run A did not get going"
            time.sleep(0.02)
        while store.exists():  # A keeps writing: rm -rf may need a second go
            shutil.rmtree(store, ignore_errors=True)
        spec_b = parse_spec(stub(100))  # same grid, other values: A's would show
        report = run_sweep(spec_b, store, client=client, progress=False, log=quiet)
        _, err = a.communicate(timeout=60)
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
    assert report.complete and report.n_computed == 1000
    assert a.returncode == 2 and "Traceback" not in err, err
    assert "changed under this run" in err.strip().splitlines()[-1], err
    np.testing.assert_array_equal(open_sweep(store).f.values, sweep_stub.expected(spec_b))
    check = verify_store(store)
    assert check.checked == 1000 and not check.damaged and check.legacy == 0


def _chunk_file(store: Path, var: str, key: tuple[int, ...]) -> Path:
    arr = zarr.open_group(store, mode="r")[var]
    return store / var / arr.metadata.encode_chunk_key(key + (0,) * (arr.ndim - len(key)))


@pytest.mark.slow
def test_verify_repair_then_run_restores_a_damaged_store(tmp_path, client, capsys):
    spec = parse_spec(PROPAGATION)
    store, ref = tmp_path / "d.zarr", tmp_path / "ref.zarr"
    assert run_sweep(spec, store, client=client, progress=False, log=quiet).complete
    assert run_sweep(spec, ref, client=client, progress=False, log=quiet).complete
    # keys: (width, alpha, seed, activation, sigma_w, sigma_b) chunks; 1 x 1 x 2 x 2 x 2 x 2
    k1, k2, k3 = (0, 0, 0, 0, 0, 0), (0, 0, 0, 1, 0, 1), (0, 0, 1, 0, 1, 1)
    k4, k5 = (0, 0, 1, 1, 1, 0), (0, 0, 0, 0, 1, 0)
    _chunk_file(store, "q", k1).unlink()  # deleted
    f = _chunk_file(store, "c", k2)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])  # truncated
    f = _chunk_file(store, "lyapunov", k3)
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    f.write_bytes(bytes(raw))  # one bit flipped
    f4, f5 = _chunk_file(store, "dist", k4), _chunk_file(store, "dist", k5)
    b4, b5 = f4.read_bytes(), f5.read_bytes()
    f4.write_bytes(b5)
    f5.write_bytes(b4)  # swapped: both decode, neither holds its own chunk
    damaged = {k1, k2, k3, k4, k5}

    assert sweep(["status", str(store)]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "1 done chunk(s) have missing files" in out, out
    assert sweep(["summary", str(store)]) == 2  # reads lyapunov: the flipped chunk
    err = capsys.readouterr().err.strip().splitlines()
    assert any("1 done chunk(s) have missing files" in ln for ln in err[:-1]), err  # warned
    assert err[-1].startswith(f"error: store {store}: 5 damaged chunk(s)"), err
    assert sweep(["verify", str(store)]) == 1
    out = capsys.readouterr().out
    assert "5 damaged" in out
    listed = {ln.split()[0] for ln in out.splitlines() if ln.startswith("  ")}
    assert listed == {".".join(map(str, k)) for k in damaged}
    assert "q: file missing" in out and "c: does not decode" in out
    assert "lyapunov: does not decode" in out and out.count("fingerprint mismatch") == 2
    assert "seed=0, activation=tanh, sigma_w=0.5..1.16667, sigma_b=0" in out  # coordinates

    assert sweep(["verify", str(store), "--repair"]) == 0
    assert "un-marked 5 damaged chunk(s)" in capsys.readouterr().out
    assert not done_keys(store) & damaged and len(done_keys(store)) == 16 - 5
    report = run_sweep(spec, store, client=client, progress=False, log=quiet)
    assert set(report.computed) == damaged and report.complete
    assert sweep(["verify", str(store)]) == 0
    a, b = open_sweep(store).load(), open_sweep(ref).load()
    for v in b.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def test_a_deleted_markers_folder_recomputes_everything(tmp_path, client, capsys):
    spec = parse_spec(stub(3))
    store = tmp_path / "m.zarr"
    run_sweep(spec, store, client=client, progress=False, log=quiet)
    shutil.rmtree(store / DONE_DIR)
    assert sweep(["status", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"{store}: 0/30 chunks done" in out and "markers folder" in out
    report = run_sweep(spec, store, client=client, progress=False, log=quiet)
    assert report.n_computed == 30 and report.complete and (store / DONE_DIR).is_dir()
    np.testing.assert_array_equal(open_sweep(store).f.values, sweep_stub.expected(spec))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_one_driver_per_store_and_a_dead_holders_lease_is_taken_over(tmp_path, client, capsys):
    spec = parse_spec(stub(2))
    store = tmp_path / "l.zarr"
    run_sweep(spec, store, client=client, progress=False, log=quiet)
    _chunk_file(store, "f", (1, 3)).unlink()
    host = socket.gethostname()
    with store_lease(store, "sweep run"):
        with pytest.raises(StoreInUseError, match=f"on host {host}, PID {os.getpid()}, since"):
            run_sweep(spec, store, client=client, progress=False, log=quiet)
        assert sweep(["status", str(store)]) == 0
        assert f"running: `sweep run` on host {host}, PID {os.getpid()}" in capsys.readouterr().out
        assert sweep(["verify", str(store), "--repair"]) == 2  # repairs wait for the run
        assert "is in use by `sweep run`" in capsys.readouterr().err
    assert not (store / LEASE_FILE).exists()
    assert sweep(["verify", str(store), "--repair"]) == 0

    lease = store / LEASE_FILE
    stale = {"host": host, "pid": _dead_pid(), "pid_start": 1.0, "run": "x", "command": "sweep run"}
    lease.write_text(json.dumps(stale))
    lines: list[str] = []
    report = run_sweep(spec, store, client=client, progress=False, log=lines.append)
    assert report.complete and report.computed == [(1, 3)] and not lease.exists()
    assert any("took over the lease" in ln and f"PID {stale['pid']}" in ln for ln in lines)

    elsewhere = {"host": "node-elsewhere", "pid": 1, "pid_start": 1.0, "run": "y"}
    lease.write_text(json.dumps(elsewhere))  # a live heartbeat from another host
    with pytest.raises(StoreInUseError, match="host node-elsewhere, PID 1"):
        run_sweep(spec, store, client=client, progress=False, log=quiet)
    old = time.time() - 2 * STALE_AFTER_S
    os.utime(lease, (old, old))  # its heartbeat stopped: the holder is gone
    assert run_sweep(spec, store, client=client, progress=False, log=quiet).complete


@pytest.mark.parametrize(
    "case", ["file", "inside a file", "unwritable", "too long", "disk full while made"]
)
def test_store_paths_that_cannot_hold_a_store_are_one_line_and_leave_nothing(
    case, tmp_path, capsys, monkeypatch
):
    import errno

    from pipeline.store import sweep as store_module

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(stub(1)))
    (tmp_path / "afile").write_text("not a folder")
    before = sorted(p.name for p in tmp_path.iterdir())
    store = {
        "file": tmp_path / "afile",
        "inside a file": tmp_path / "afile" / "s.zarr",
        "unwritable": Path("/sys/sweep-test.zarr"),
        "too long": tmp_path / "new" / ("x" * 300 + ".zarr"),
        "disk full while made": tmp_path / "new" / "deeper" / "s.zarr",
    }[case]
    if case == "disk full while made":  # after the parent folders and half a template

        def full(spec, tmp, provenance):
            (tmp / "f").mkdir(parents=True)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp / "f"))

        monkeypatch.setattr(store_module, "_write_template", full)
    assert sweep(["run", str(tmp_path / "spec.yaml"), "--store", str(store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: store: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no .tmp-PID, no folders
    assert (tmp_path / "afile").read_text() == "not a folder"
    assert not Path("/sys/sweep-test.zarr").exists()


def test_zoom_store_refuses_what_run_refuses(tmp_path, client):
    from pipeline.run.zoom import run_zoom

    zoomable = parse_spec({"experiment": "propagation", "depth": 3, "axes": {"width": [8],
        "sigma_w": {"linspace": [0.5, 2], "count": 4}, "sigma_b": [0.0, 0.5]}})  # fmt: skip
    sweep_store = tmp_path / "sweep.zarr"
    run_sweep(zoomable, sweep_store, client=client, progress=False, log=quiet)
    before = sorted(p.name for p in sweep_store.iterdir())
    with pytest.raises(StoreError, match="is a sweep store .made by sweep run., not a zoom"):
        run_zoom(zoomable, 2, sweep_store, client=client, progress=False)
    assert sorted(p.name for p in sweep_store.iterdir()) == before
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "data.txt").write_text("mine")
    with pytest.raises(StoreError, match="exists and is not a zoom store"):
        run_zoom(zoomable, 2, tmp_path / "folder", client=client, progress=False)
    with pytest.raises(StoreError, match="is a file, not a folder"):
        run_zoom(zoomable, 2, tmp_path / "folder" / "data.txt", client=client, progress=False)
    assert os.listdir(tmp_path / "folder") == ["data.txt"]


def test_relative_and_home_store_paths_reach_the_workers_absolute(tmp_path, client, monkeypatch):
    # the client's worker processes were started in another working directory
    (tmp_path / "home").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "elsewhere")
    spec = parse_spec(stub(2))
    home = run_sweep(spec, "~/h.zarr", client=client, progress=False, log=quiet)
    rel = run_sweep(spec, "rel.zarr", client=client, progress=False, log=quiet)
    assert home.store == str(tmp_path / "home" / "h.zarr") and home.complete
    assert rel.store == str(tmp_path / "elsewhere" / "rel.zarr") and rel.complete
    assert sorted(os.listdir(tmp_path / "elsewhere")) == ["rel.zarr"]  # no literal ~ folder
    for store in (home.store, rel.store):
        np.testing.assert_array_equal(open_sweep(store).f.values, sweep_stub.expected(spec))


def test_a_legacy_store_verifies_as_legacy_and_gets_an_identity_when_resumed(tmp_path, client):
    old = tmp_path / "legacy.zarr"
    shutil.copytree(ROOT / "tests" / "data" / "legacy-0.1" / "propagation_partial.zarr", old)
    assert not (old / "_token").exists()
    first = verify_store(old)
    assert not first.damaged and first.legacy == first.checked == first.total // 2
    spec = read_spec(old)
    run_sweep(spec, old, client=client, progress=False, log=quiet)
    assert (old / "_token").read_text().strip()
    after = verify_store(old)
    assert not after.damaged and after.checked == after.total and after.legacy == first.legacy
