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
#
# POCKET_BENCH_NICE=-15 (needs root) runs the measurements in their own
# scheduler autogroup at that nice value. With autogroups on (Linux default
# for sessions), `nice` alone does nothing against other sessions' builds and
# tests: each session's group gets an equal share of the CPUs, and a 2-thread
# benchmark next to two busy sessions got about a third of its wall time
# (decode measured 11 t/s instead of 31). Raising the benchmark's autogroup
# gives it the cores while the other work waits.
set -euo pipefail
if [ -n "${POCKET_BENCH_NICE:-}" ] && [ -z "${POCKET_BENCH_REEXEC:-}" ]; then
  export POCKET_BENCH_REEXEC=1
  exec setsid bash -c 'echo "$POCKET_BENCH_NICE" > /proc/self/autogroup && exec "$@"' \
    speed "$0" "$@"
fi
BUILD=${1:-build}
shift || true
POCKET="$BUILD/pocket"
DIR=${POCKET_BENCH_MODELS:-/tmp}
[ -x "$POCKET" ] || { echo "no $POCKET: build it first (ninja -C $BUILD pocket)"; exit 1; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)   cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)   autogroup: $(cat /proc/self/autogroup 2>/dev/null || echo none)"
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
