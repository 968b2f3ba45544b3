#!/bin/bash
# Alternates the authors' side and mmhybrid's side of benchmarks/side_by_side.py, each a fresh
# process, ROUNDS times per model (eager; then once compiled with freezing when COMPILE=1);
# ALLOCATOR=fresh skips side_by_side.py's allocator settling (default: settled). DEPLOY=1 also
# times mmhybrid's backbone after switch_to_deploy(); BOTH=1 runs each round as one process that
# holds both models and alternates their forwards (side "both", eager only).
#   AUTHORS_PY=/tmp/venv-cfpp/bin/python OURS_PY=.venv/bin/python WORK=/tmp/side_by_side \
#   CMT_MIRROR=<git dir of huawei-noah/Efficient-AI-Backbones> \
#   CROSSFORMER_MIRROR=<git dir of cheerss/CrossFormer> \
#   VAN_MIRROR=<git dir of Visual-Attention-Network/VAN-Classification> bash benchmarks/side_by_side.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${AUTHORS_PY:?python of the throwaway environment (benchmarks/README.md)}"
OURS_PY=${OURS_PY:-python}
WORK=${WORK:-/tmp/side_by_side}
ROUNDS=${ROUNDS:-2}
ALLOCATOR=${ALLOCATOR:-settled}
DEPLOY_ARGS=()
[ "${DEPLOY:-0}" = 1 ] && DEPLOY_ARGS=(--deploy)
run_model() {  # model mirror repeat
  local model=$1 mirror=$2 repeat=$3
  for round in $(seq "$ROUNDS"); do
    echo "# $model round $round, load: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [ "${BOTH:-0}" = 1 ]; then
      "$AUTHORS_PY" benchmarks/side_by_side.py both "$model" --mirror "$mirror" --work "$WORK" \
        --allocator "$ALLOCATOR" --warmup 2 --repeat "$repeat" "${DEPLOY_ARGS[@]}" 2>/dev/null \
        | tail -1
      continue
    fi
    "$AUTHORS_PY" benchmarks/side_by_side.py authors "$model" --mirror "$mirror" --work "$WORK" \
      --allocator "$ALLOCATOR" --warmup 2 --repeat "$repeat" 2>/dev/null | tail -1
    "$OURS_PY" benchmarks/side_by_side.py ours "$model" --work "$WORK" \
      --allocator "$ALLOCATOR" --warmup 2 --repeat "$repeat" | tail -1
    if [ "${DEPLOY:-0}" = 1 ]; then
      "$OURS_PY" benchmarks/side_by_side.py ours "$model" --work "$WORK" \
        --allocator "$ALLOCATOR" --warmup 2 --repeat "$repeat" --deploy | tail -1
    fi
  done
  if [ "${COMPILE:-0}" = 1 ]; then
    "$AUTHORS_PY" benchmarks/side_by_side.py authors "$model" --mirror "$mirror" --work "$WORK" \
      --allocator "$ALLOCATOR" --warmup 2 --repeat "$repeat" --compile 2>/dev/null | tail -1
    "$OURS_PY" benchmarks/side_by_side.py ours "$model" --work "$WORK" --allocator "$ALLOCATOR" \
      --warmup 2 --repeat "$repeat" --compile | tail -1
  fi
}
[ -n "${CMT_MIRROR:-}" ] && run_model cmt-s "$CMT_MIRROR" 30
[ -n "${CROSSFORMER_MIRROR:-}" ] && run_model crossformer-s-regional "$CROSSFORMER_MIRROR" 3
[ -n "${VAN_MIRROR:-}" ] && run_model van-b2 "$VAN_MIRROR" 3
exit 0
