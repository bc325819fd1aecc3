#!/usr/bin/env bash
# The main job: install, build, and run Pocket on a model.
#   scripts/run.sh                 # generates a small random-weight model and chats with it
#   scripts/run.sh -m FILE.gguf    # your own model
# Extra arguments are passed to `pocket run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build pocket
args=("$@")
if [[ " ${args[*]-} " != *" -m "* ]]; then
  mkdir -p build/models
  [ -f build/models/tiny.gguf ] || build/pocket make-model --preset tiny -o build/models/tiny.gguf
  args=(-m build/models/tiny.gguf "${args[@]}")
fi
if [[ " ${args[*]} " != *" -p "* && " ${args[*]} " != *" --prompt-ids "* ]]; then
  args+=(--chat -p "Hello!" -n 32)
fi
exec build/pocket run "${args[@]}"
