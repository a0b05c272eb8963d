#!/usr/bin/env bash
# Redis for the shared rate-limit tests (tests marked `redis`): install Debian's redis-server,
# start a private instance on a loopback port (no systemd in a container, no persistence),
# and write CALIBROUTE_TEST_REDIS_URL to .ci/env. Safe to run twice. If anything fails, the
# redis tests skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/../.."

PORT=${CALIBROUTE_CI_REDIS_PORT:-6399}
DIR=${TMPDIR:-/tmp}/calibroute-ci-redis
export DEBIAN_FRONTEND=noninteractive
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! command -v redis-server >/dev/null; then
  echo "redis: installing the Debian package"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
  echo "redis: starting redis-server on 127.0.0.1:$PORT"
  mkdir -p "$DIR"
  redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --save '' --appendonly no \
    --dir "$DIR" --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log"
fi
for _ in $(seq 1 30); do
  redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1 && break
  sleep 0.2
done
redis-cli -h 127.0.0.1 -p "$PORT" ping

touch .ci/env
sed -i '/^CALIBROUTE_TEST_REDIS_URL=/d' .ci/env
echo "CALIBROUTE_TEST_REDIS_URL=redis://127.0.0.1:$PORT/0" >> .ci/env
echo "redis: ready, CALIBROUTE_TEST_REDIS_URL=redis://127.0.0.1:$PORT/0"
