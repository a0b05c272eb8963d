#!/usr/bin/env bash
# PostgreSQL for the ledger tests (tests marked `postgres`): install Debian's package, start
# its cluster without systemd, create a user and database, and write CALIBROUTE_TEST_PG_URL
# to .ci/env. Safe to run twice. If anything fails, the postgres tests skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/../.."

PG_USER=calibroute
PG_PASS=calibroute-test
PG_DB=calibroute_test
export DEBIAN_FRONTEND=noninteractive

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null; then
  echo "postgres: installing the Debian package"
  as_root apt-get update -qq
  as_root apt-get install -y -qq postgresql >/dev/null
fi

ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1"/"$2}' | grep -qx "$ver/main"; then
  echo "postgres: creating cluster $ver/main"
  as_root pg_createcluster "$ver" main >/dev/null
fi
port=$(pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" {print $3}')

# No systemd in a container: pg_ctlcluster starts the server directly (as the postgres user).
if ! as_root pg_ctlcluster "$ver" main status >/dev/null 2>&1; then
  echo "postgres: starting cluster $ver/main on port $port"
  as_root pg_ctlcluster "$ver" main start
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p "$port"

psql_pg() { as_root runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"; }
psql_pg -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASS';
  ELSE
    ALTER ROLE $PG_USER LOGIN PASSWORD '$PG_PASS';
  END IF;
END \$\$;"
if [ "$(psql_pg -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
  psql_pg -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
fi

url="postgresql+psycopg://$PG_USER:$PG_PASS@127.0.0.1:$port/$PG_DB"
PGPASSWORD=$PG_PASS psql -h 127.0.0.1 -p "$port" -U "$PG_USER" -d "$PG_DB" -qtAc "SELECT 1" >/dev/null

touch .ci/env
sed -i '/^CALIBROUTE_TEST_PG_URL=/d' .ci/env
echo "CALIBROUTE_TEST_PG_URL=$url" >> .ci/env
echo "postgres: ready, CALIBROUTE_TEST_PG_URL=postgresql+psycopg://$PG_USER:***@127.0.0.1:$port/$PG_DB"
