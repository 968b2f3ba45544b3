#!/bin/bash
# Runs benchmarks/gpu_check.py against the prepared bundle (benchmarks/prepare_gpu_bundle.sh).
# Where the Python that runs it (PYTHON, default python3) lacks mmengine/mmcv/mmdet/mmseg, as on
# a GPU machine with its own torch, the bundle's wheels are installed once into GPU_CHECK_SITE
# (default /tmp/gpu_check_site, nothing fetched) and put on PYTHONPATH; its torch is used as it is.
#   bash benchmarks/gpu_check.sh [--dry-run] [--results FILE] [--parts ...] [--cap PART=S ...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${BUNDLE:-benchmarks/gpu_bundle}
PY=${PYTHON:-python3}
if ! "$PY" -c 'import mmengine, mmcv, mmdet, mmseg' >/dev/null 2>&1; then
  SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
  if [ ! -d "$SITE/mmdet" ]; then
    WHEELS=$(ls "$BUNDLE"/wheels/*.whl 2>/dev/null | grep -v '/timm-' || true)
    if [ -z "$WHEELS" ]; then
      echo "gpu_check.sh: $PY lacks mmengine/mmcv/mmdet/mmseg and $BUNDLE has no wheels" >&2
      exit 2
    fi
    # shellcheck disable=SC2086
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" $WHEELS
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PY" benchmarks/gpu_check.py run --bundle "$BUNDLE" "$@"
