#!/usr/bin/env bash
# The test command (README.md, .ci/run): installs what is needed, builds, and runs
#   1. the whole GoogleTest suite (Release build, ctest),
#   2. the parsers' tests again under AddressSanitizer + UndefinedBehaviorSanitizer
#      (clang build; POCKET_ASAN_TESTS is the ctest regex),
#   3. each libFuzzer target for a bounded time (POCKET_FUZZ_SECONDS, default 20),
#      seeded with fuzz/<name>_seeds and the golden files.
# POCKET_SKIP_SANITIZE=1 skips 2 and 3 for quick local runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}

scripts/setup.sh

echo "== build (Release)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"$JOBS"
echo "== tests (Release)"
ctest --test-dir build --output-on-failure -j"$JOBS"
echo "== golden tests at each lower CPU kernel level (the run above used the machine's best)"
POCKET_CPU_LEVEL=scalar ctest --test-dir build --output-on-failure -j"$JOBS" -R '^Golden/'

if [ "${POCKET_SKIP_SANITIZE:-0}" != 1 ]; then
  # One clang build with ASan + UBSan and libFuzzer coverage serves both steps below.
  echo "== build (clang, ASan + UBSan, fuzz targets)"
  CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOCKET_SANITIZE=ON -DPOCKET_FUZZ=ON >/dev/null
  ninja -C build-asan -j"$JOBS" pocket gguf_tests cli_tests text_tests $(cd build-asan && ninja -t targets all | grep -o '^[a-z_]*_fuzz:' | tr -d ':' | sort -u)
  echo "== tests (ASan + UBSan): file formats, text, and the CLI on corrupted files"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS" -R "${POCKET_ASAN_TESTS:-^(Gguf|GgufCorrupt|PocketInfo|Tokenizer|Jinja|ChatTemplate)}"

  echo "== fuzz (libFuzzer, ${POCKET_FUZZ_SECONDS:-20}s per target)"
  for target in build-asan/*_fuzz; do
    name=$(basename "$target")
    corpus=$(mktemp -d)
    seeds="$ROOT/fuzz/${name%_fuzz}_seeds"
    [ -d "$seeds" ] && cp -r "$seeds"/. "$corpus"/
    if [ "$name" = gguf_fuzz ]; then
      cp "$ROOT"/../shared/golden/quant/quant_q4_0.gguf "$ROOT"/../shared/golden/tiny-qwen35-dense-untied-q8_0.gguf "$corpus"/
    fi
    echo "-- $name"
    log=$(mktemp)
    if ! "$target" -max_total_time="${POCKET_FUZZ_SECONDS:-20}" -rss_limit_mb=2048 -timeout=10 \
        -max_len=65536 -print_final_stats=1 "$corpus" >"$log" 2>&1; then
      tail -n 60 "$log"
      echo "fuzz target $name found a problem"
      exit 1
    fi
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|Done)" "$log" || true
    rm -rf "$corpus" "$log"
  done
fi
echo "== all tests passed"
