# Sourced by .ci/setup.d/*.sh: install a command from Debian's packages (if missing) and record its
# path in .ci/env for the tests. Usage: debian_tool COMMAND ENV_VAR VERSION_FLAG PACKAGE...
# Run from the repository root, under `set -euo pipefail`.
debian_tool() {
  local cmd=$1 var=$2 version_flag=$3
  shift 3
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
  if ! command -v "$cmd" >/dev/null; then
    echo "$cmd: installing the Debian package"
    as_root apt-get update -qq
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
  local bin
  bin=$(command -v "$cmd")
  "$bin" "$version_flag" | head -n 1
  touch .ci/env
  sed -i "/^$var=/d" .ci/env
  echo "$var=$bin" >> .ci/env
  echo "$cmd: ready, $var=$bin"
}
