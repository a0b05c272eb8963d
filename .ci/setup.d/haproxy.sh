#!/usr/bin/env bash
# HAProxy for the multi-replica tests (tests marked `haproxy`): install Debian's package only.
# The tests start their own haproxy process with a generated config on loopback ports and stop
# it; the Debian service is not started. Writes CALIBROUTE_TEST_HAPROXY to .ci/env. Safe to run
# twice; if it fails, the replica tests skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/lib/debian-tool.sh
debian_tool haproxy CALIBROUTE_TEST_HAPROXY -v haproxy
