#!/usr/bin/env bash
# Speed of the 0.8B-shaped model in three weight types, as the "Fast on a plain
# CPU" issue measures it:
#
#   bench/speed.sh [BUILD_DIR] [extra pocket bench options...]
#
# Builds nothing; makes the random-weight models once (a minute or two each)
# under ${POCKET_BENCH_MODELS:-/tmp}, then runs `pocket bench` (pp512, tg128,
# 5 repetitions, memory bandwidth and decode ceiling) on each and prints the
# tables. Timings are only meaningful on an otherwise idle machine: check the
# load average printed first.
set -euo pipefail
BUILD=${1:-build}
shift || true
POCKET="$BUILD/pocket"
DIR=${POCKET_BENCH_MODELS:-/tmp}
[ -x "$POCKET" ] || { echo "no $POCKET: build it first (ninja -C $BUILD pocket)"; exit 1; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for type in q4_k_m q8_0 f16; do
  model="$DIR/m08_${type}.gguf"
  if [ ! -f "$model" ]; then
    echo "== making $model"
    "$POCKET" make-model --preset 0.8b --type "$type" -o "$model"
  fi
  echo "== $type"
  "$POCKET" bench -m "$model" "$@"
done
echo "== matmul kernels"
"$POCKET" bench --kernels q4_K,q6_K,q8_0,f16 -p 512 -r 5
