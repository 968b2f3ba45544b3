#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv.
#
# Every package is installed at the exact version requirements/constraints.txt names. Safe to
# re-run: a stamp keyed by this script, setup.py and the constraints skips the work when nothing
# changed.
# The mmcv 2.1.0 wheel (compiled ops) is built once from source and cached outside the repository
# under ${MMHYBRID_WHEEL_CACHE:-~/.cache/mmhybrid/wheels}/<python>-torch<version>/; a prebuilt wheel
# in the folder MMHYBRID_SHARED_WHEELS names (by default one beside the repository; used when it
# exists) is one more source and skips the build.
#
#   bash tools/setup_env.sh                     set up (or refresh) .venv
#   bash tools/setup_env.sh --find-mmcv-wheel   print the mmcv wheel the set-up would install
#                                               (exit 1 when there is none); changes nothing
#
# A failing step never ends the script silently: the ERR trap names the command and its line.
set -Eeuo pipefail

on_error() {
    echo "[setup] FAILED (exit $1) at tools/setup_env.sh line $2: $3" >&2
}
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-$ROOT/.venv}"
# The exact versions of every package the set-up installs (pip constraints); setup.py states the
# ranges mmhybrid supports. torch and mmcv are read from it so that each version is stated once.
CONSTRAINTS="$ROOT/requirements/constraints.txt"
TORCH_VERSION="$(sed -n 's/^torch==//p' "$CONSTRAINTS")"
MMCV_VERSION="$(sed -n 's/^mmcv==//p' "$CONSTRAINTS")"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    PYTHON=python3
fi
SHARED_WHEELS="${MMHYBRID_SHARED_WHEELS:-$ROOT/../shared/wheels}"

python_tag() {  # cp311 for Python 3.11
    "$1" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")'
}

wheel_cache() {  # the cache folder of a Python tag
    echo "${MMHYBRID_WHEEL_CACHE:-$HOME/.cache/mmhybrid/wheels}/$1-torch$TORCH_VERSION"
}

# Prints the first mmcv wheel for $PYTAG found in the folders given, in their order; returns 1
# when there is none. Globbing, no pipes: `ls | head` ended the script with SIGPIPE (exit 141,
# no message) under pipefail when the wheel was in two folders.
find_mmcv_wheel() {
    local dir wheel
    for dir in "$@"; do
        for wheel in "$dir"/mmcv-"$MMCV_VERSION"-"$PYTAG"-*.whl; do
            if [ -f "$wheel" ]; then
                echo "$wheel"
                return 0
            fi
        done
    done
    return 1
}

if [ "${1:-}" = "--find-mmcv-wheel" ]; then
    if [ -x "$VENV/bin/python" ]; then
        PYTAG="$(python_tag "$VENV/bin/python")"
    else
        PYTAG="$(python_tag "$PYTHON")"
    fi
    CACHE="$(wheel_cache "$PYTAG")"
    if ! find_mmcv_wheel "$CACHE" "$SHARED_WHEELS"; then
        echo "[setup] no mmcv $MMCV_VERSION wheel for $PYTAG in $CACHE or $SHARED_WHEELS" >&2
        exit 1
    fi
    exit 0
elif [ $# -gt 0 ]; then
    echo "usage: bash tools/setup_env.sh [--find-mmcv-wheel]" >&2
    exit 2
fi

stamp_src="$(cat "$ROOT/tools/setup_env.sh" "$ROOT/setup.py" "$CONSTRAINTS" | sha256sum | cut -c1-16)"
STAMP="$VENV/.mmhybrid-setup-$stamp_src"
if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import mmhybrid, mmcv.ops, mmdet, mmseg, onnxruntime, onnxscript" >/dev/null 2>&1; then
    echo "[setup] .venv is up to date"
    exit 0
fi

log() { echo "[setup] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q -c "$CONSTRAINTS")

log "installing torch $TORCH_VERSION and build tools"
"${PIP[@]}" --upgrade pip
"${PIP[@]}" "torch==$TORCH_VERSION" "setuptools>=77,<81" wheel ninja "numpy>=2,<3"

PYTAG="$(python_tag "$PY")"
CACHE="$(wheel_cache "$PYTAG")"
mkdir -p "$CACHE"

if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" >/dev/null 2>&1; then
    if ! WHEEL="$(find_mmcv_wheel "$CACHE" "$SHARED_WHEELS")"; then
        log "building mmcv $MMCV_VERSION from source (about 10 minutes on 2 cores; cached in $CACHE)"
        TMPW="$(mktemp -d)"
        MAX_JOBS="${MAX_JOBS:-$(nproc)}" MMCV_WITH_OPS=1 \
            "$PY" -m pip wheel --no-deps --no-build-isolation -w "$TMPW" "mmcv==$MMCV_VERSION"
        mv "$TMPW"/mmcv-*.whl "$CACHE"/
        rm -rf "$TMPW"
        WHEEL="$(find_mmcv_wheel "$CACHE")"
    fi
    log "installing $(basename "$WHEEL")"
    "${PIP[@]}" --no-deps "$WHEEL"
fi

log "installing mmengine, mmdet, mmsegmentation, test tools and the deploy extra (onnx)"
"${PIP[@]}" "torch==$TORCH_VERSION" "mmcv==$MMCV_VERSION" -e "$ROOT[tests,deploy]" \
    --find-links "$CACHE"

"$PY" -c "import mmcv.ops, mmdet, mmseg, mmhybrid; print('[setup] ok: torch', __import__('torch').__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__)"
rm -f "$VENV"/.mmhybrid-setup-*
touch "$STAMP"
