#!/usr/bin/env bash
# HAProxy for the multi-replica tests (tests marked `haproxy`): install Debian's package only.
# The tests start their own haproxy process with a generated config on loopback ports and stop
# it; the Debian service is not started. Writes CALIBROUTE_TEST_HAPROXY to .ci/env. Safe to run
# twice; if it fails, the replica tests skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v haproxy >/dev/null; then
  echo "haproxy: installing the Debian package"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends haproxy >/dev/null
fi
bin=$(command -v haproxy)
"$bin" -v | head -n 1

touch .ci/env
sed -i '/^CALIBROUTE_TEST_HAPROXY=/d' .ci/env
echo "CALIBROUTE_TEST_HAPROXY=$bin" >> .ci/env
echo "haproxy: ready, CALIBROUTE_TEST_HAPROXY=$bin"
