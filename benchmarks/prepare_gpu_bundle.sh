#!/bin/bash
# Prepares benchmarks/gpu_bundle/ (the authors' files, wheels, shapes data) for
# benchmarks/gpu_check.sh on a GPU machine without network; needs git, network and the project's
# environment. Arguments go to benchmarks/prepare_gpu_bundle.py, e.g.
#   bash benchmarks/prepare_gpu_bundle.sh --mirror cheerss/CrossFormer=<git dir> ...
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" benchmarks/prepare_gpu_bundle.py "$@"
