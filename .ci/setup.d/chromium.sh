#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser test (tests/test_dashboard_browser.py):
# installs Debian's `chromium` package only, best-effort. Writes CALIBROUTE_TEST_CHROMIUM to
# .ci/env. Safe to run twice; if it fails, the browser test skips with a reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
. .ci/lib/debian-tool.sh
debian_tool chromium CALIBROUTE_TEST_CHROMIUM --version chromium fonts-dejavu-core
