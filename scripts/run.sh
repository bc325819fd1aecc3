#!/usr/bin/env bash
# The main job: install, build, and serve a model over the OpenAI-compatible API.
#   scripts/run.sh                      # the built-in demo model (models/pocket-demo.gguf)
#   scripts/run.sh -m FILE.gguf         # your own model
# Extra arguments go to `pocket serve` (see `pocket serve --help`): --port, --host,
# --parallel, --ctx, --api-key ... It listens on http://127.0.0.1:8080 by default:
#   curl http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \
#     -d '{"model":"pocket-demo","messages":[{"role":"user","content":"What is 17+25?"}]}'
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build pocket
exec build/pocket serve "$@"
