#!/usr/bin/env bash
# The CUDA path's check on a GPU machine, in one run with a time budget (BUDGET_S, 470 s: under 8 minutes):
#
#   setup         a virtual environment holding this project with its `gpu` and `dev` extras, from the wheels in
#                 $WHEELS (and PyPI where reachable), in front of the image's packages (so it keeps their torch)
#   build_gsplat  gsplat's CUDA extension built (TORCH_CUDA_ARCH_LIST=9.0, MAX_JOBS=16) by the project's own probe,
#                 realtime.render.cuda_backend_problem (build, logged while it runs, then one tiny picture)
#   gpu_tests     tests/test_deform_gpu_parity.py and tests/test_render_gpu_parity.py, by name
#   bench_deform  python -m benchmarks.bench_deform
#   bench_render  python -m benchmarks.bench_render --backend cuda
#   live          the live loop at 512 px on --backend cuda: python -m benchmarks.bench_live --quick --no-browser
#
# Each step runs whatever the earlier ones gave (a failed build still lets the deformation tests run) within
# its own limit and what is left of the budget. Everything goes to benchmarks/results/gpu_check_<device>/ (and
# to $OUT when set): each step's log, the tests' JUnit XML, the benchmarks' JSON (also named with the device)
# and summary.json (each step's exit status and seconds). Exit status 0 when every step passed.
#
#     benchmarks/gpu_check.sh                      the check (needs a CUDA device)
#     benchmarks/gpu_check.sh --setup-only         only the environment (checks a wheel folder anywhere)
#     benchmarks/gpu_check.sh --download DIR       on a machine with PyPI: the wheels to carry, into DIR
#
# Wheels. The GPU image (Python 3.12, torch for CUDA 13, numpy 2, cupy-cuda13x 14, nvcc 13) has neither gsplat
# nor MediaPipe, and reaches no package index. Its numpy 2 and CuPy 14 cannot sit beside mediapipe 0.10.21
# (numpy < 2), so the environment gets numpy 1.26 and cupy-cuda13x 13.6 (the `gpu` extra's pin) in front of
# the image's. `--download DIR` fetches every wheel the project resolves to for CPython 3.12 on x86-64 Linux
# but torch and the CUDA libraries that come with it (the image has those): numpy, cupy-cuda13x, gsplat (its
# CUDA sources: the extension is compiled on the GPU machine), ninja, jaxtyping, rich, mediapipe and what it
# needs (jax, jaxlib, opencv-contrib-python, matplotlib, protobuf, ...), aiortc, av, websockets, scipy,
# numba, scikit-image, pytest, setuptools (to build this project). Put them where the GPU machine sees them
# (WHEELS, default shared/wheels).
#
# Environment: PYTHON (the image's interpreter, default python3), WHEELS, GPU_VENV (default
# $TMPDIR/realtime-gpu-venv), BUDGET_S, TORCH_CUDA_ARCH_LIST, MAX_JOBS, CUDA_HOME (default: nvcc's folder).

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-$ROOT/shared/wheels}
VENV=${GPU_VENV:-${TMPDIR:-/tmp}/realtime-gpu-venv}
VPY=$VENV/bin/python
BUDGET_S=${BUDGET_S:-470}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16}
PY312=(--python-version 3.12 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
       --platform manylinux2014_x86_64 --only-binary=:all:)

download() {  # download DIR: the wheels to carry (see the header)
    local dir=$1 tmp
    tmp=$(mktemp -d)
    "$PYTHON" -m pip install --quiet --dry-run --ignore-installed "${PY312[@]}" --target "$tmp/target" \
        --report "$tmp/report.json" ".[gpu,dev]" || return
    "$PYTHON" - "$tmp/report.json" >"$tmp/wheels.txt" <<'EOF' || return
import json, re, sys
# name==version of every distribution the resolver picked, but this project and torch with its CUDA libraries
skip = re.compile(r"realtime-avatar|torch|triton|nvidia-.*")
for item in json.load(open(sys.argv[1]))["install"]:
    name = re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
    if not skip.fullmatch(name):
        print(f"{name}=={item['metadata']['version']}")
EOF
    "$PYTHON" -m pip download --quiet --no-deps "${PY312[@]}" -d "$dir" -r "$tmp/wheels.txt" || return
    echo "gpu_check: $(wc -l <"$tmp/wheels.txt") wheels in $dir ($(du -sh "$dir" | cut -f1))"
    rm -rf "$tmp"
}

reachable() {  # is PyPI reachable from here?
    "$PYTHON" -c 'import urllib.request as u; u.urlopen("https://pypi.org/simple/pip/", timeout=5)' 2>/dev/null
}

setup() {  # the environment: this project, its gpu and dev extras, in front of the image's site-packages
    if [[ ! -x $VPY ]]; then
        "$PYTHON" -m venv --without-pip "$VENV" || return
        # the image's packages (torch above all) behind the environment's own: a .pth file, which works whether
        # the image's Python is a system one or itself a virtual environment (--system-site-packages would see
        # only the base interpreter's then)
        local own
        own=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return
        "$PYTHON" -c 'import site; print("\n".join(site.getsitepackages()))' >"$own/image-site-packages.pth" || return
    fi
    local sources=(--find-links "$WHEELS")
    reachable || sources+=(--no-index)
    "$PYTHON" -m pip --python "$VPY" install "${sources[@]}" -e ".[gpu,dev]" || return
    "$VPY" -c 'import numpy, torch; print("numpy", numpy.__version__, "torch", torch.__version__)'
}

case ${1:-} in
    --download) download "${2:?--download needs a folder}"; exit ;;
    --setup-only) setup; exit ;;
    "") ;;
    *) echo "usage: $0 [--setup-only | --download DIR]" >&2; exit 2 ;;
esac

DEVICE=$("$PYTHON" -c 'import re, torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
print(re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))')
if [[ -z $DEVICE ]]; then
    echo "gpu_check: torch sees no CUDA device here; nothing to check (--setup-only prepares the environment)" >&2
    exit 2
fi
RESULTS=$ROOT/benchmarks/results/gpu_check_$DEVICE
mkdir -p "$RESULTS"
export REALTIME_BENCH_RESULTS=$RESULTS
NVCC=$(command -v nvcc || true)
export CUDA_HOME=${CUDA_HOME:-${NVCC:+$(dirname "$(dirname "$NVCC")")}}
export CUDA_PATH=${CUDA_PATH:-$CUDA_HOME}
DEADLINE=$((SECONDS + BUDGET_S))
SUMMARY=()
FAILED=0

step() {  # step NAME LIMIT_S COMMAND...: run with its log, within LIMIT_S and what is left of the budget
    local name=$1 limit=$2 left=$((DEADLINE - SECONDS)) start=$SECONDS rc
    shift 2
    if ((left < 20)); then
        echo "== $name: not run, the budget is spent"
        SUMMARY+=("{\"step\": \"$name\", \"exit_status\": null, \"seconds\": 0, \"note\": \"not run: budget spent\"}")
        FAILED=1
        return
    fi
    ((limit > left)) && limit=$left
    echo "== $name (at most ${limit} s)"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$RESULTS/$name.log"
    rc=${PIPESTATUS[0]}
    ((rc == 0)) || FAILED=1
    SUMMARY+=("{\"step\": \"$name\", \"exit_status\": $rc, \"seconds\": $((SECONDS - start)), \"limit_s\": $limit}")
}

export PYTHON WHEELS VENV VPY
export -f setup reachable
step setup 150 bash -c setup
step build_gsplat 330 "$VPY" -c '
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
from realtime.render import cuda_backend_problem
problem = cuda_backend_problem()
print(problem or "gsplat draws on this GPU")
sys.exit(1 if problem else 0)'
step gpu_tests 200 "$VPY" -m pytest -m gpu -p no:cacheprovider -q -rs --junitxml="$RESULTS/gpu_tests.xml" \
    tests/test_deform_gpu_parity.py tests/test_render_gpu_parity.py
step bench_deform 150 "$VPY" -m benchmarks.bench_deform --sizes 10000 100000 1000000 --frames 100 --seconds 2
step bench_render 90 "$VPY" -m benchmarks.bench_render --backend cuda --sizes 256 512 --frames 100
step live 240 "$VPY" -m benchmarks.bench_live --backend cuda --size 512 --quick --no-browser --seconds 10

{
    echo "{\"device\": \"$DEVICE\", \"budget_s\": $BUDGET_S, \"seconds\": $SECONDS,"
    echo " \"TORCH_CUDA_ARCH_LIST\": \"$TORCH_CUDA_ARCH_LIST\", \"MAX_JOBS\": \"$MAX_JOBS\", \"steps\": ["
    (IFS=,; echo "  ${SUMMARY[*]}")
    echo "]}"
} >"$RESULTS/summary.json"
if [[ -n ${OUT:-} ]]; then cp -r "$RESULTS" "$OUT/"; fi
if ((FAILED)); then verdict="some steps failed, see summary.json"; else verdict="every step passed"; fi
echo "gpu_check: wrote $RESULTS ($verdict)"
exit $FAILED
