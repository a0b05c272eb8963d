#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser test (tests/test_dashboard_browser.py):
# installs Debian's `chromium` package only, best-effort. Writes CALIBROUTE_TEST_CHROMIUM to
# .ci/env. Safe to run twice; if it fails, the browser test skips with a reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v chromium >/dev/null; then
  echo "chromium: installing the Debian package"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
bin=$(command -v chromium)
"$bin" --version | head -n 1

touch .ci/env
sed -i '/^CALIBROUTE_TEST_CHROMIUM=/d' .ci/env
echo "CALIBROUTE_TEST_CHROMIUM=$bin" >> .ci/env
echo "chromium: ready, CALIBROUTE_TEST_CHROMIUM=$bin"
