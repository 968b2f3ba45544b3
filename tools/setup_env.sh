#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv.
#
# Safe to re-run: a stamp keyed by this script and setup.py skips the work when nothing changed.
# The mmcv 2.1.0 wheel (compiled ops) is built once from source and cached outside the repository
# under ${MMHYBRID_WHEEL_CACHE:-~/.cache/mmhybrid/wheels}/<python>-torch<version>/; a prebuilt wheel
# in ../shared/wheels (when that folder exists) is used as one more source and skips the build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3.11}"
VENV="${VENV:-$ROOT/.venv}"
TORCH_VERSION="2.13.0"
MMCV_VERSION="2.1.0"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    PYTHON=python3
fi

stamp_src="$(cat "$ROOT/tools/setup_env.sh" "$ROOT/setup.py" | sha256sum | cut -c1-16)"
STAMP="$VENV/.mmhybrid-setup-$stamp_src"
if [ -f "$STAMP" ] && "$VENV/bin/python" -c "import mmhybrid, mmcv.ops, mmdet, mmseg" >/dev/null 2>&1; then
    echo "[setup] .venv is up to date"
    exit 0
fi

log() { echo "[setup] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check -q)

log "installing torch $TORCH_VERSION and build tools"
"${PIP[@]}" --upgrade pip
"${PIP[@]}" "torch==$TORCH_VERSION" "setuptools>=77,<81" wheel ninja "numpy>=2,<3"

PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
CACHE="${MMHYBRID_WHEEL_CACHE:-$HOME/.cache/mmhybrid/wheels}/$PYTAG-torch$TORCH_VERSION"
mkdir -p "$CACHE"
SHARED_WHEELS="$ROOT/../shared/wheels"

find_mmcv_wheel() {
    local dir
    for dir in "$CACHE" "$SHARED_WHEELS"; do
        if [ -d "$dir" ]; then
            ls "$dir"/mmcv-"$MMCV_VERSION"-"$PYTAG"-*.whl 2>/dev/null | head -n 1
        fi
    done | head -n 1
}

if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" >/dev/null 2>&1; then
    WHEEL="$(find_mmcv_wheel)"
    if [ -z "$WHEEL" ]; then
        log "building mmcv $MMCV_VERSION from source (about 10 minutes on 2 cores; cached in $CACHE)"
        TMPW="$(mktemp -d)"
        MAX_JOBS="${MAX_JOBS:-$(nproc)}" MMCV_WITH_OPS=1 \
            "$PY" -m pip wheel --no-deps --no-build-isolation -w "$TMPW" "mmcv==$MMCV_VERSION"
        mv "$TMPW"/mmcv-*.whl "$CACHE"/
        rm -rf "$TMPW"
        WHEEL="$(find_mmcv_wheel)"
    fi
    log "installing $(basename "$WHEEL")"
    "${PIP[@]}" --no-deps "$WHEEL"
fi

log "installing mmengine, mmdet, mmsegmentation and test tools"
"${PIP[@]}" "torch==$TORCH_VERSION" "mmcv==$MMCV_VERSION" -e "$ROOT[tests]" \
    --find-links "$CACHE"

"$PY" -c "import mmcv.ops, mmdet, mmseg, mmhybrid; print('[setup] ok: torch', __import__('torch').__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__)"
rm -f "$VENV"/.mmhybrid-setup-*
touch "$STAMP"
