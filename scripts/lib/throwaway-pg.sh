# shellcheck shell=bash
# A throwaway PostgreSQL cluster for tests and benchmarks, sourced by scripts/test and
# scripts/bench-startup: `start_throwaway_pg` exports DATABASE_URL and registers its stop on EXIT.

# The DATABASE_URL exported here is for the programs run, not for the build: sqlx's query macros
# keep reading the committed `.sqlx` data (with it set and this unset they would go online).
export SQLX_OFFLINE="${SQLX_OFFLINE:-true}"

throwaway_pg_dir=""
throwaway_pg_bin=""

# Server programs (initdb, pg_ctl) from PATH, else the highest /usr/lib/postgresql/*/bin.
find_pg_bin() {
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v initdb)"
    return
  fi
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  if [[ -n $dir && -x $dir/initdb ]]; then
    echo "$dir"
    return
  fi
  echo "no PostgreSQL server binaries found: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL" >&2
  return 1
}

# PostgreSQL refuses to run as root: run its programs as the postgres user then.
as_pg() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "no free TCP port found" >&2
  return 1
}

stop_throwaway_pg() {
  if [[ -n $throwaway_pg_dir ]]; then
    as_pg "$throwaway_pg_bin/pg_ctl" -D "$throwaway_pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$throwaway_pg_dir"
    throwaway_pg_dir=""
  fi
}

# Starts a cluster tuned for tests (no fsync, 300 connections) on a free 127.0.0.1 port.
start_throwaway_pg() {
  throwaway_pg_bin=$(find_pg_bin)
  throwaway_pg_dir=$(mktemp -d /tmp/wss-test-pg.XXXXXX)
  trap stop_throwaway_pg EXIT
  chmod 755 "$throwaway_pg_dir"
  if [[ $EUID -eq 0 ]]; then chown postgres: "$throwaway_pg_dir"; fi
  local port
  port=$(free_port)
  as_pg "$throwaway_pg_bin/initdb" -D "$throwaway_pg_dir/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
  as_pg "$throwaway_pg_bin/pg_ctl" -D "$throwaway_pg_dir/data" -l "$throwaway_pg_dir/server.log" -w \
    -o "-p $port -k $throwaway_pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
    start >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  echo "throwaway PostgreSQL at 127.0.0.1:$port ($throwaway_pg_dir)"
}
