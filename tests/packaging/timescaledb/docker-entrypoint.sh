#!/bin/bash
# The official image's first-run behaviour, reduced to what deploy/compose.yaml relies on:
# a cluster in $PGDATA owned by postgres, $POSTGRES_USER a superuser with $POSTGRES_PASSWORD
# (scram over TCP), $POSTGRES_DB created, timescaledb preloaded and created in it.
set -euo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [[ $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [[ ! -s $PGDATA/PG_VERSION ]]; then
  initdb -D "$PGDATA" -U "$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
unix_socket_directories = '/var/run/postgresql'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
dynamic_shared_memory_type = mmap
CONF
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  psql=(psql -X -q -v ON_ERROR_STOP=1 -U "$user")
  if [[ $db != postgres ]]; then "${psql[@]}" -d postgres -c "CREATE DATABASE \"$db\""; fi
  for database in template1 "$db"; do
    "${psql[@]}" -d "$database" -c "CREATE EXTENSION IF NOT EXISTS timescaledb"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "docker-entrypoint: initialised $PGDATA (database $db, user $user)"
fi
if [[ ${1:-} == postgres ]]; then shift; exec postgres -D "$PGDATA" "$@"; fi
exec "$@"
