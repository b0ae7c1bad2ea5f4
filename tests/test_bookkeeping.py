"""Damage to a store's bookkeeping files, one at a time: the done index, a done marker, the
identity token, the lease, the Zarr metadata and a refined store's point files. Each is
detected and named, and either repaired (``sweep verify --repair`` then ``sweep run`` give a
store bit-identical to an undamaged one) or refused with one ``error:`` line saying what to
do. Also: a store replaced by its backup under a long-lived worker, a store deleted after
the last task's identity check, and the end-of-run fold of the markers into the index."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))  # before the module's client fixture spawns its workers

import sweep_stub  # noqa: E402

from pipeline import parse_spec, register, run_sweep  # noqa: E402
from pipeline.cli import main as sweep  # noqa: E402
from pipeline.errors import StoreChangedError, StoreError  # noqa: E402
from pipeline.store.grid import chunk_counts  # noqa: E402
from pipeline.store.identity import TOKEN_FILE  # noqa: E402
from pipeline.store.lease import LEASE_FILE  # noqa: E402
from pipeline.store.markers import DONE_DIR, INDEX_FILE, unmark  # noqa: E402

register(sweep_stub.EXPERIMENT, replace=True)


def stub(n_a: int, **extra) -> dict:
    return {"experiment": "stub", "axes": {"a": {"start": 0, "count": n_a},
            "b": {"start": 0, "count": 4}}, **extra}  # fmt: skip


def quiet(msg: str) -> None:
    pass


def snapshot(store: Path) -> dict[str, bytes]:
    """Every file of the store but the markers folder (whose index is a zip with times) and
    the lease: relative path -> bytes."""
    out = {}
    for p in sorted(store.rglob("*")):
        rel = p.relative_to(store).as_posix()
        if p.is_file() and not rel.startswith(DONE_DIR) and rel != LEASE_FILE:
            out[rel] = p.read_bytes()
    return out


def done_of(store: Path) -> tuple[list[int], dict]:
    """The done chunks and, per chunk, what its record says (fingerprint included)."""
    from pipeline.store.markers import load_index, read_done
    from pipeline.store.sweep import read_spec, read_token

    counts = chunk_counts(read_spec(store))
    token = read_token(store)
    state = read_done(store, counts, token)
    index, _ = load_index(store, counts, token)
    crc = {int(f): int(index.crc[f]) for f in np.flatnonzero(index.codes)} if index else {}
    return state.done_flats().tolist(), crc


@pytest.fixture
def made(tmp_path, client):
    """A complete stub store (its markers folded into the index) and its snapshot."""
    spec = parse_spec(stub(3))
    store = tmp_path / "s.zarr"
    assert run_sweep(spec, store, client=client, progress=False, log=quiet).complete
    return spec, store, snapshot(store), done_of(store)


def lines(capsys) -> tuple[list[str], list[str]]:
    got = capsys.readouterr()
    return got.out.strip().splitlines(), got.err.strip().splitlines()


def repaired(spec, store, client, capsys, before, done_before, n_recomputed: int) -> None:
    """``verify --repair`` then a run: the store is bit-identical to ``before``."""
    assert sweep(["verify", str(store), "--repair"]) == 0, lines(capsys)
    out, _ = lines(capsys)
    assert any(ln.startswith("repaired:") for ln in out), out
    report = run_sweep(spec, store, client=client, progress=False, log=quiet)
    assert report.complete and report.n_computed == n_recomputed
    assert snapshot(store) == before
    assert done_of(store) == done_before
    assert sweep(["verify", str(store)]) == 0, lines(capsys)
    capsys.readouterr()


def test_a_run_folds_its_markers_into_the_index_at_its_end(made):
    _, store, _, (done, crc) = made
    assert (store / DONE_DIR / INDEX_FILE).is_file()
    assert os.listdir(store / DONE_DIR) == [INDEX_FILE]  # no per-chunk files left
    assert done == list(range(12)) and sorted(crc) == done and min(crc.values()) >= 0


def test_a_truncated_index_is_named_and_repaired(made, client, capsys):
    spec, store, before, done_before = made
    index = store / DONE_DIR / INDEX_FILE
    os.truncate(index, 500)
    for command in ("status", "summary"):
        assert sweep([command, str(store)]) == 0
        out, err = lines(capsys)
        assert any(INDEX_FILE in ln and "unreadable" in ln for ln in out + err), (out, err)
    assert sweep(["verify", str(store)]) == 1
    out, err = lines(capsys)
    assert any(INDEX_FILE in ln and "unreadable" in ln for ln in out), out
    assert err and "--repair" in err[-1]
    repaired(spec, store, client, capsys, before, done_before, 12)


def test_a_run_on_a_truncated_index_recomputes_what_it_held(made, client):
    spec, store, before, done_before = made
    (store / DONE_DIR / INDEX_FILE).write_bytes(b"PK\x03\x04 not a zip")
    said: list[str] = []
    report = run_sweep(spec, store, client=client, progress=False, log=said.append)
    assert any(INDEX_FILE in ln and "unreadable" in ln for ln in said), said
    assert report.complete and report.n_computed == 12
    assert snapshot(store) == before and done_of(store) == done_before


@pytest.mark.parametrize("garbage", [b"\xff\x00garbage", b"{not json", b"[1, 2]", b'"text"'])
def test_a_garbage_done_marker_is_damage(made, client, capsys, garbage):
    spec, store, before, done_before = made
    (store / DONE_DIR / "1.2").write_bytes(garbage)
    assert sweep(["verify", str(store)]) == 1
    out, _ = lines(capsys)
    assert any(ln.startswith("  1.2 ") and "done marker" in ln for ln in out), out
    # a run neither trusts it nor folds it into the index as a chunk without fingerprint
    said: list[str] = []
    run_sweep(spec, store, client=client, progress=False, log=said.append)
    assert any("1.2" in ln and "done marker" in ln for ln in said), said
    assert (store / DONE_DIR / "1.2").read_bytes() == garbage
    repaired(spec, store, client, capsys, before, done_before, 1)


def test_an_empty_marker_still_reads_as_a_legacy_chunk(made, capsys):
    spec, store, _, _ = made
    from pipeline.store.identity import read_token

    unmark(store, chunk_counts(spec), read_token(store), [6])  # chunk 1.2 in plan order
    (store / DONE_DIR / "1.2").write_bytes(b"")  # as version 0.1 wrote them
    assert sweep(["verify", str(store)]) == 0
    out, _ = lines(capsys)
    assert "1 written by version 0.1" in out[0], out


@pytest.mark.parametrize("damage", ["deleted", "garbage", "bytes", "another token"])
def test_a_damaged_token_is_named_and_restored_from_the_index(made, client, capsys, damage):
    spec, store, before, done_before = made
    token = store / TOKEN_FILE
    if damage == "deleted":
        token.unlink()
    else:
        token.write_bytes({
            "garbage": b"not a token at all\n", "bytes": b"\xff\xfe\x00\n",
            "another token": b"0123456789abcdef0123456789abcdef\n",
        }[damage])  # fmt: skip
    assert sweep(["status", str(store)]) == 0
    out, _ = lines(capsys)
    assert any(TOKEN_FILE in ln for ln in out), out
    if damage == "another token":  # a valid token: the index is the odd one out, not used
        assert sweep(["verify", str(store)]) == 1
        out, _ = lines(capsys)
        assert any(INDEX_FILE in ln and TOKEN_FILE in ln for ln in out), out
        assert sweep(["verify", str(store), "--repair"]) == 0
        capsys.readouterr()
        assert run_sweep(spec, store, client=client, progress=False, log=quiet).n_computed == 12
        now = snapshot(store)
        assert now.pop(TOKEN_FILE) != before[TOKEN_FILE]
        assert now == {k: v for k, v in before.items() if k != TOKEN_FILE}
        return
    if damage != "deleted":  # a run refuses it (a new token would orphan the index)
        argv = ["run", str(spec_file(store, spec)), "--no-progress", "--no-summary"]
        assert sweep(argv) == 2
        _, err = lines(capsys)
        assert len(err) == 1 and TOKEN_FILE in err[0] and "verify" in err[0], err
    assert sweep(["verify", str(store)]) == 1
    out, _ = lines(capsys)
    assert any(TOKEN_FILE in ln for ln in out), out
    repaired(spec, store, client, capsys, before, done_before, 0)
    assert (store / TOKEN_FILE).read_bytes() == before[TOKEN_FILE]


@pytest.mark.parametrize("content", [b"\xff\x00garbage", b"{half", b"[]", b'{"pid": "x"}'])
@pytest.mark.slow
def test_a_damaged_lease_is_one_line_while_fresh_and_taken_over_when_old(
    made, client, capsys, content
):
    spec, store, before, done_before = made
    lease = store / LEASE_FILE
    lease.write_bytes(content)
    assert sweep(["status", str(store)]) == 0
    capsys.readouterr()
    assert sweep(["run", str(spec_file(store, spec)), "--no-progress", "--no-summary"]) == 2
    _, err = lines(capsys)
    assert len(err) == 1 and err[0].startswith("error: ") and LEASE_FILE in err[0], err
    assert "delete" in err[0], err
    assert sweep(["verify", str(store)]) == 0  # reading needs no lease
    capsys.readouterr()
    old = time.time() - 3600
    os.utime(lease, (old, old))
    said: list[str] = []
    assert run_sweep(spec, store, client=client, progress=False, log=said.append).complete
    assert not lease.exists() and any("lease" in ln for ln in said), said
    assert snapshot(store) == before and done_of(store) == done_before


def spec_file(store: Path, spec) -> Path:
    import yaml

    path = store.parent / "spec.yaml"
    path.write_text(yaml.safe_dump({**stub(3), "store": str(store)}))
    return path


@pytest.mark.parametrize("var", ["f", "a"])
def test_damaged_array_metadata_is_restored_from_the_consolidated_copy(made, client, capsys, var):
    spec, store, before, done_before = made
    meta = store / var / "zarr.json"
    meta.write_bytes(meta.read_bytes()[:100])
    assert sweep(["verify", str(store)]) == 1
    out, _ = lines(capsys)
    assert any(f"{var}/zarr.json" in ln for ln in out), out
    repaired(spec, store, client, capsys, before, done_before, 0)


@pytest.mark.parametrize("how", ["truncated", "garbage", "deleted", "not a group"])
def test_damaged_root_metadata_is_refused_in_one_line(made, capsys, how):
    spec, store, _, _ = made
    meta = store / "zarr.json"
    if how == "deleted":
        meta.unlink()
    else:
        meta.write_bytes({
            "truncated": meta.read_bytes()[:200], "garbage": b"\xff\x00\x01",
            "not a group": b'{"zarr_format": 3, "node_type": "array"}',
        }[how])  # fmt: skip
    for argv in (["status"], ["verify"], ["verify", "--repair"], ["summary"], ["analyze"]):
        assert sweep([argv[0], str(store), *argv[1:]]) == 2, argv
        out, err = lines(capsys)
        assert len(err) == 1 and err[0].startswith("error: ") and "zarr.json" in err[0], (argv, err)
        assert "Traceback" not in "".join(out + err)
    assert sweep(["run", str(spec_file(store, spec)), "--no-progress", "--no-summary"]) == 2
    _, err = lines(capsys)
    assert len(err) == 1 and "zarr.json" in err[0], err


def restore_damaged_backup(spec, store) -> None:
    """Copy ``store`` to a backup, un-mark chunks 0, 5, 11 there and delete their files, then
    replace ``store`` by the backup (same path, same token): a repair-then-run by hand."""
    from pipeline.store.identity import read_token

    backup = store.parent / "backup.zarr"
    shutil.copytree(store, backup)
    unmark(backup, chunk_counts(spec), read_token(backup), [0, 5, 11])
    for k in ("f/c/0/0", "f/c/1/1", "f/c/2/3"):
        (backup / k).unlink()
    shutil.rmtree(store)
    shutil.copytree(backup, store)


def test_a_store_restored_from_its_backup_under_long_lived_workers_runs(made, client):
    """The workers of ``client`` opened the store in the first run; the store is then deleted
    and its backup (same token) copied back: the next run must write into it."""
    spec, store, before, done_before = made
    restore_damaged_backup(spec, store)
    report = run_sweep(spec, store, client=client, progress=False, log=quiet)
    assert report.complete and report.n_computed == 3
    assert snapshot(store) == before and done_of(store) == done_before


def test_a_store_deleted_after_the_last_task_stops_the_run(tmp_path, client, monkeypatch):
    """The driver checks the store once more after the last task: a store deleted between a
    worker's last check and the end of the run is not reported as complete."""
    from pipeline.run import driving

    real = driving.run_window
    store = tmp_path / "gone.zarr"

    def then_delete(*args, **kwargs):
        stats = real(*args, **kwargs)
        shutil.rmtree(store)
        return stats

    monkeypatch.setattr(driving, "run_window", then_delete)
    with pytest.raises(StoreChangedError, match="it was deleted"):
        run_sweep(parse_spec(stub(2)), store, client=client, progress=False, log=quiet)


def test_a_folder_left_by_a_deleted_store_is_refused_saying_what_to_do(tmp_path, capsys):
    store = tmp_path / "left.zarr"
    (store / "f" / "c" / "0").mkdir(parents=True)
    (store / "f" / "c" / "0" / "0").write_bytes(b"x")
    with pytest.raises(StoreError, match="not a sweep store"):
        run_sweep(parse_spec(stub(2)), store, progress=False, log=quiet)
    assert sorted(p.name for p in store.iterdir()) == ["f"]


# ---------------------------------------------------------------- refined stores' point files

REFINED = {
    "experiment": "stub_plane", "dtype": "float64",
    "axes": {"a": {"start": 0, "count": 32}, "b": {"start": 0, "count": 32}},
    "chunks": {"a": 16, "b": 16},
    "refine": {"coarse": 8, "guard": 1, "audit": 0.05, "audit_seed": 3},
}  # fmt: skip


def _points(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("damage", ["truncated", "bit flipped", "garbage", "other points"])
@pytest.mark.slow
def test_damaged_refine_point_files_are_recomputed(tmp_path, client, damage):
    from pipeline.store.identity import read_token
    from pipeline.store.points import REFINE_DIR

    register(sweep_stub.PLANE_EXPERIMENT, replace=True)
    spec = parse_spec(REFINED)
    store = tmp_path / "r.zarr"
    assert run_sweep(spec, store, client=client, progress=False, log=quiet).complete
    before = {k: v for k, v in snapshot(store).items() if not k.startswith(REFINE_DIR)}
    files = sorted((store / REFINE_DIR).rglob("*.npz"))
    victim = files[len(files) // 2]
    kept = _points(victim)
    raw = victim.read_bytes()
    if damage == "truncated":
        victim.write_bytes(raw[: len(raw) // 2])
    elif damage == "bit flipped":  # inside the last member's data: the zip CRC catches it
        buf = bytearray(raw)
        buf[len(buf) - 400] ^= 0x04
        victim.write_bytes(bytes(buf))
    elif damage == "garbage":
        victim.write_bytes(b"\xff\x00garbage")
    else:
        victim.write_bytes(next(f for f in files if f != victim).read_bytes())
    unmark(store, chunk_counts(spec), read_token(store), [0, 3])
    said: list[str] = []
    report = run_sweep(spec, store, client=client, progress=False, log=said.append)
    assert report.complete and report.n_computed == 2, said
    assert {k: v for k, v in snapshot(store).items() if not k.startswith(REFINE_DIR)} == before
    again = _points(victim)
    assert sorted(again) == sorted(kept)
    for k in kept:
        np.testing.assert_array_equal(again[k], kept[k], err_msg=k)


@pytest.mark.slow
def test_fuzz_damage_to_the_bookkeeping_files(made, client, capsys):
    """Seeded: random bytes, truncation or deletion of a random bookkeeping file (index,
    a marker, token, lease, a variable's metadata). Every command ends in 0, 1 or one
    `error:` line; `verify --repair` (after a stale lease is aged) then `run` gives back the
    data bit for bit (the token aside, when the damage made it another valid one)."""
    spec, store, before, _ = made
    fuzz_bookkeeping(spec, store, before, client, capsys, seed=2913, cases=8)


def fuzz_bookkeeping(spec, store: Path, before: dict, client, capsys, seed: int,
                     cases: int) -> None:  # fmt: skip
    """The seeded fuzz of the bookkeeping files on a complete ``store`` whose snapshot is
    ``before``, its runs on ``client`` (a local cluster's, or an external scheduler's)."""
    import random

    rng = random.Random(seed)
    targets = [f"{DONE_DIR}/{INDEX_FILE}", f"{DONE_DIR}/0.3", TOKEN_FILE, LEASE_FILE,
               "f/zarr.json", "a/zarr.json"]  # fmt: skip
    good = store.parent / "good.zarr"
    shutil.copytree(store, good)
    for case in range(cases):
        shutil.rmtree(store)
        shutil.copytree(good, store)
        rel = rng.choice(targets)
        path = store / rel
        how = rng.choice(["bytes", "truncate", "delete", "json"])
        old = path.read_bytes() if path.exists() else b'{"host": "h", "pid": 1, "run": "r"}'
        if how == "bytes":
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))))
        elif how == "truncate":
            path.write_bytes(old[: rng.randrange(len(old))])
        elif how == "delete":
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(rng.choice([b"[]", b"{}", b"null", b'"x"', b"1e999"]))
        for argv in (["status"], ["verify"], ["summary"]):
            rc = sweep([argv[0], str(store)])
            out, err = lines(capsys)
            assert rc in (0, 1, 2), (case, rel, how, argv, rc)
            if rc == 2:
                assert len(err) == 1 and err[0].startswith("error: "), (case, rel, how, err)
        if (store / LEASE_FILE).exists():
            t = time.time() - 3600
            os.utime(store / LEASE_FILE, (t, t))
        rc = sweep(["verify", str(store), "--repair"])
        capsys.readouterr()
        assert rc == 0, (case, rel, how)
        report = run_sweep(spec, store, client=client, progress=False, log=quiet)
        assert report.complete, (case, rel, how)
        now = snapshot(store)
        if now[TOKEN_FILE] != before[TOKEN_FILE]:
            now.pop(TOKEN_FILE)
            assert now == {k: v for k, v in before.items() if k != TOKEN_FILE}, (case, rel)
        else:
            assert now == before, (case, rel, how)
        assert sweep(["verify", str(store)]) == 0, (case, rel, how, lines(capsys))
        capsys.readouterr()
