#!/usr/bin/env bash
# One call that verifies the GPU path on a machine with an NVIDIA GPU, and writes one table.
#
#   benchmarks/gpu_check.sh --fetch-wheels   # here (network): the project's Python dependencies
#                                            # as wheels in .whl/ (git-ignored), for a GPU machine
#                                            # without a package index
#   benchmarks/gpu_check.sh                  # on the GPU machine, from the repository root
#   benchmarks/gpu_check.sh --dry-run        # the CPU-only parts, anywhere (no GPU needed)
#
# Steps: (1) install what is missing from .whl/ (if present) into a private folder on
# PYTHONPATH; (2) the backend probe (NVRTC kernel + cuBLAS GEMM) and the device's name;
# (3) pytest -m gpu (every device test); (4) benchmarks/propagation_gpu.py (fraction of cuBLAS,
# N = 1024 and 4096, float32 and float64; the target is >= 0.7 at N = 4096 float32) and
# benchmarks/trainability.py --gpu (against the NumPy backend and the FMA peak); (5) a 4-chunk
# end-to-end `sweep run --backend cupy`, checked against the NumPy backend (classes of λ_L);
# (6) a local run with 4 worker processes on the one device (--backend auto): all workers share
# the node's kernel cache, so the kernels are compiled once. Results: $OUT/gpu_check.md (one
# table, the device's name on top) and the logs beside it ($OUT defaults to ./gpu_check_out).
#
# --dry-run runs what needs no GPU: the dependency check, the collection of the GPU tests,
# the CPU tests that pin the kernels' arithmetic (host build of the kernels, emulations), and
# steps (5) and (6) on the NumPy backend; the GPU rows of the table say "skipped (dry run)".
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=run
case "${1:-}" in
    --dry-run) MODE=dry ;;
    --fetch-wheels) MODE=fetch ;;
    "") ;;
    *) echo "usage: $0 [--dry-run | --fetch-wheels]" >&2; exit 2 ;;
esac

if [ "$MODE" = fetch ]; then
    # CPython 3.12, manylinux x86-64: what the GPU machine's image runs; CuPy, NumPy and xarray
    # are there already, the rest of the project's dependencies and the test tools are not
    exclude=$(git rev-parse --git-path info/exclude)  # a worktree's .git is a file
    mkdir -p "$(dirname "$exclude")"
    grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >> "$exclude"
    mkdir -p .whl
    plats=()
    for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 any; do
        plats+=(--platform "$p")
    done
    python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
        "${plats[@]}" -d .whl \
        dask distributed dask-jobqueue zarr pyyaml tqdm threadpoolctl pytest hypothesis || exit 1
    # the image's own NumPy and CuPy stay: drop what it already has
    rm -f .whl/numpy-*.whl .whl/cupy*.whl .whl/xarray-*.whl .whl/pandas-*.whl
    du -sh .whl
    exit 0
fi

OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=python3
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/gpu-check-site \
        .whl/*.whl > "$OUT/install.log" 2>&1 || { echo "wheel install failed: $OUT/install.log"; exit 1; }
    export PYTHONPATH="/tmp/gpu-check-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
SWEEP=("$PY" -m pipeline)
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 |"); echo "[$2] $1: $3"; }
status() { [ "$1" -eq 0 ] && echo pass || echo "FAIL (exit $1)"; }

# (1) dependencies
missing=$($PY -c "
import importlib.util as u
mods = ['numpy', 'dask', 'distributed', 'dask_jobqueue', 'zarr', 'xarray', 'yaml', 'tqdm',
        'threadpoolctl', 'pytest']
print(' '.join(m for m in mods if u.find_spec(m) is None))")
if [ -n "$missing" ]; then
    row "dependencies" "FAIL" "missing: $missing (run --fetch-wheels where pip works, carry .whl/)"
    printf '%s\n' "${ROWS[@]}"
    exit 1
fi
row "dependencies" pass "all importable"

# (2) the backend probe
DEVICE=$($PY - 2>"$OUT/probe.log" <<'EOF'
from pipeline.gpu.backend import backend_info, cupy_unavailable_reason
why = cupy_unavailable_reason()
if why is None:
    i = backend_info("cupy")
    print(f"{i['device']} (cc {i['compute_capability']}, CUDA runtime {i['cuda_runtime_version']}, "
          f"driver {i['cuda_driver_version']}, CuPy {i['cupy_version']})")
else:
    print(f"none: {why}")
EOF
)
echo "device: $DEVICE"
if [ "$MODE" = run ] && [[ "$DEVICE" == none* ]]; then
    row "backend probe" FAIL "$DEVICE"
else
    row "backend probe" "$([ "$MODE" = dry ] && echo 'skipped (dry run)' || echo pass)" \
        "NVRTC kernel + cuBLAS GEMM: ${DEVICE}"
fi

# (3) the tests
if [ "$MODE" = run ]; then
    $PY -m pytest -q -p no:cacheprovider -m gpu tests > "$OUT/pytest_gpu.log" 2>&1
    rc=$?
    row "pytest -m gpu" "$(status $rc)" "$(tail -1 "$OUT/pytest_gpu.log")"
else
    $PY -m pytest -q -p no:cacheprovider -m gpu --collect-only tests > "$OUT/pytest_gpu.log" 2>&1
    row "pytest -m gpu" "skipped (dry run)" "$(grep -c '::' "$OUT/pytest_gpu.log") GPU tests collected"
    $PY -m pytest -q -p no:cacheprovider tests/test_kernels_compile.py \
        -k "host_built or overflow or driver or philox" > "$OUT/pytest_host.log" 2>&1
    rc=$?
    row "kernels' arithmetic on the host" "$(status $rc)" "$(tail -1 "$OUT/pytest_host.log")"
fi

# (4) benchmarks
if [ "$MODE" = run ]; then
    $PY benchmarks/propagation_gpu.py --no-tests > "$OUT/bench_propagation.log" 2>&1
    rc=$?
    frac=$(grep -E "^N=4096 float32" "$OUT/bench_propagation.log" | sed -E 's/.*fraction ([0-9.]+).*/\1/')
    ok=$($PY -c "print('pass' if '$frac' and float('${frac:-0}') >= 0.7 else 'FAIL')")
    [ $rc -ne 0 ] && ok="FAIL (exit $rc)"
    row "propagation vs cuBLAS, N = 4096 float32" "$ok" "fraction ${frac:-?} (target >= 0.7)"
    row "batch-probe SVDs per recorded layer" measured \
        "$(grep -E '^batch probe' "$OUT/bench_propagation.log" | sed 's/^batch probe //' | tr '\n' ';')"
    $PY benchmarks/trainability.py --gpu > "$OUT/bench_trainability.log" 2>&1
    rc=$?
    row "trainability vs NumPy and FMA peak" "$(status $rc)" \
        "$(grep -iE 'speed-?up|peak' "$OUT/bench_trainability.log" | tail -2 | tr '\n' ' ')"
else
    row "benchmarks" "skipped (dry run)" "propagation_gpu.py, trainability.py --gpu"
fi

# (5) a 4-chunk sweep end to end, against the NumPy backend
WORK=$(mktemp -d)
cat > "$WORK/check.yaml" <<'EOF'
name: gpu-check
experiment: propagation
axes:
  width: [256]
  activation: [tanh]
  sigma_w: {linspace: [0.5, 3.0], count: 32}
  sigma_b: {linspace: [0.0, 1.0], count: 8}
depth: 20
record_layers: last
chunks: {sigma_w: 16, sigma_b: 4}
dtype: float32
EOF
BACKEND=$([ "$MODE" = run ] && echo cupy || echo numpy)
"${SWEEP[@]}" run "$WORK/check.yaml" --store "$WORK/a.zarr" --backend "$BACKEND" --workers 1 \
    --no-progress > "$OUT/sweep_e2e.log" 2>&1
rc=$?
"${SWEEP[@]}" run "$WORK/check.yaml" --store "$WORK/ref.zarr" --backend numpy --workers 1 \
    --no-progress --no-summary >> "$OUT/sweep_e2e.log" 2>&1
cmp=$($PY - "$WORK/a.zarr" "$WORK/ref.zarr" "$BACKEND" <<'EOF'
import sys
import numpy as np
import xarray as xr
from pipeline.engine.plan import iter_chunk_keys
from pipeline.engine.store import chunk_info, read_spec
a, ref = (xr.open_zarr(p).lyapunov.isel(layer=-1).values for p in sys.argv[1:3])
keys = list(iter_chunk_keys(read_spec(sys.argv[1])))
used = {chunk_info(sys.argv[1], k).get("backend") for k in keys}
agree = np.mean(np.sign(a) == np.sign(ref))
ok = len(keys) == 4 and used == {sys.argv[3]} and agree >= 0.99
print(("pass" if ok else "FAIL") + f"|{len(keys)} chunks by {sorted(used)}, λ_L class agrees at {agree:.4f}")
EOF
)
[ $rc -ne 0 ] && cmp="FAIL (exit $rc)|see sweep_e2e.log"
row "sweep run --backend $BACKEND, 4 chunks" "${cmp%%|*}" "${cmp#*|}"

# (6) several workers on one node share the kernel cache
export CUPY_CACHE_DIR="$WORK/kernel-cache"
start=$(date +%s)
"${SWEEP[@]}" run "$WORK/check.yaml" --store "$WORK/multi.zarr" --backend auto --workers 4 \
    --no-progress --no-summary > "$OUT/sweep_workers.log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
n_bin=$(ls "$CUPY_CACHE_DIR"/phase-sweep-* 2>/dev/null | wc -l)
same=$($PY -c "
import sys, numpy as np, xarray as xr
a, b = (xr.open_zarr(p).lyapunov.values for p in sys.argv[1:])
print(np.array_equal(a, b, equal_nan=True))" "$WORK/multi.zarr" "$WORK/a.zarr" 2>/dev/null)
ok=$([ $rc -eq 0 ] && [ "$same" = True ] && echo pass || echo FAIL)
row "4 local workers, --backend auto" "$ok" \
    "${secs} s, equal to the 1-worker run: $same, kernel binaries in the shared cache: $n_bin"
rm -rf "$WORK"

{
    echo "### GPU check, $(date -u +%Y-%m-%d)"
    echo
    echo "Device: **$DEVICE**. Mode: $MODE. Command: \`benchmarks/gpu_check.sh$([ "$MODE" = dry ] && echo ' --dry-run')\`."
    echo
    echo "| check | result | numbers |"
    echo "|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} > "$OUT/gpu_check.md"
cat "$OUT/gpu_check.md"
! grep -q "| FAIL" "$OUT/gpu_check.md"
