#!/usr/bin/env bash
# Runs a benchmark scenario of issue 8 against release builds on this machine: starts the
# server(s) on free loopback ports with fresh databases, runs canopy-bench against them with
# their PIDs, prints its JSON line on stdout, and always stops the servers and drops what it
# created (temp dir, PostgreSQL database, Redis keys).
#
#   bench/run.sh embedded      [clients] [rate] [duration] [canopy-bench options…]
#   bench/run.sh cluster       [clients] [rate] [duration] [canopy-bench options…]
#   bench/run.sh failover      [clients] [rate] [duration] [canopy-bench options…]
#   bench/run.sh idle-embedded [clients]    # server RSS per idle socket, and 30 s after close
#   bench/run.sh idle-cluster  [clients]
#
# embedded: one instance on SQLite in a temp dir. cluster: two instances on a fresh PostgreSQL
# database (canopy_bench_<random>) + Redis with a unique REDIS_KEY_PREFIX; sockets and
# requests are spread over both. failover: cluster, and halfway through the measured window
# the first instance gets SIGKILL; its sockets resume on the second with ?since=&epoch=
# (override with --kill-instance / --kill-after). Defaults: 1000 clients, 200 requests/s, 10 s.
#
# Every run appends one line to bench/results.jsonl (BENCH_RESULTS=<file> elsewhere,
# BENCH_RESULTS=off not at all): {"commit","dirty","date","scenario","profile","params",
# "status","result"}, where params are this script's arguments (clients, rate, duration, the
# extra options) and result is canopy-bench's JSON line. bench/table.sh turns that history into the README table.
#
# Examples:
#   bench/run.sh cluster 1000 200 10
#   bench/run.sh cluster 5000 40 10
#   bench/run.sh cluster 0 5000 10 --agents 1000 --mix heartbeat=100   # heartbeat ingestion
#   bench/run.sh cluster 1000 200 10 --draggers 10 --drag-hz 30       # drag previews (issue 15)
#
# Environment: CARGO_TARGET_DIR (where the release binaries are), BENCH_NO_BUILD=1 (skip the
# build), BENCH_PROFILE=debug (use the debug binaries: only to try a scenario out; such runs
# are recorded with "profile":"debug" and the table leaves them out), BENCH_KEEP=1 (keep the server logs), BENCH_PG_HOST/PORT/USER (default
# 127.0.0.1/5432/postgres), BENCH_REDIS_URL (default redis://127.0.0.1:6379), and anything the
# server reads (WORKERS, DATABASE_POOL_SIZE, RUST_LOG…) is passed on to it. The servers start
# with every rate limit off (RATE_LIMIT_*=0) unless those variables are set.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '7,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

scenario=${1:-}
[[ $# -gt 0 ]] && shift
case "$scenario" in
  embedded | cluster | failover | idle-embedded | idle-cluster) ;;
  *) usage ;;
esac
is_number() { [[ ${1:-} =~ ^[0-9]+([.][0-9]+)?$ ]]; }
clients=1000 rate=200 duration=10 extra_idle=()
if is_number "${1:-}"; then clients=$1; shift; fi
if [[ $scenario == idle-* ]]; then
  # 30 s after the sockets close the RSS is read again: is their memory given back?
  rate=0 duration=5 extra_idle=(--after-close "${BENCH_AFTER_CLOSE:-30}")
else
  if is_number "${1:-}"; then rate=$1; shift; fi
  if is_number "${1:-}"; then duration=$1; shift; fi
fi
extra=("${extra_idle[@]}" "$@")

target_dir=${CARGO_TARGET_DIR:-$PWD/target}
profile=${BENCH_PROFILE:-release}
case "$profile" in
  release) build_flags=(--release) ;;
  debug) build_flags=() ;;
  *) echo "run.sh: BENCH_PROFILE is release or debug" >&2; exit 2 ;;
esac
if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
  echo "run.sh: cargo build ${build_flags[*]} --bins" >&2
  cargo build "${build_flags[@]}" --bins >&2
fi
server_bin=$target_dir/$profile/canopy
bench_bin=$target_dir/$profile/canopy-bench
for bin in "$server_bin" "$bench_bin"; do
  [[ -x $bin ]] || { echo "run.sh: $bin is missing (build first)" >&2; exit 2; }
done

# 5,000 sockets need 5,000+ descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

run_id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/canopy-bench.XXXXXX")
admin_token=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
pg_host=${BENCH_PG_HOST:-127.0.0.1} pg_port=${BENCH_PG_PORT:-5432} pg_user=${BENCH_PG_USER:-postgres}
redis_url=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
database=""
redis_prefix=""
pids=()
ports=()

psql_admin() { psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -v ON_ERROR_STOP=1 -qAtc "$1"; }

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $database ]]; then
    psql_admin "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 ||
      echo "run.sh: could not drop database $database" >&2
  fi
  if [[ -n $redis_prefix ]]; then
    redis-cli -u "$redis_url" --scan --pattern "${redis_prefix}*" --count 1000 2>/dev/null |
      head -n 100000 | xargs -r -n 500 redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
  fi
  if [[ ${BENCH_KEEP:-0} == 1 || $status -ne 0 ]]; then
    echo "run.sh: server logs kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Below the kernel's ephemeral range (32768+ by default): a port there can be taken by an
# outgoing connection (to PostgreSQL, to Redis) between this check and the server's bind.
free_port() {
  local port
  for port in $(shuf -i 20000-32000 -n 100); do
    if ! port_open "$port" && [[ " ${ports[*]} " != *" $port "* ]]; then
      echo "$port"
      return 0
    fi
  done
  echo "run.sh: no free port found" >&2
  return 1
}

# start_server NAME [-u VAR] VAR=VALUE…: starts an instance on a free port, waits for /health;
# tries another port if the chosen one was taken in between.
start_server() {
  local attempt
  for attempt in 1 2 3; do
    start_server_once "$@" && return 0
    grep -q "Address already in use" "$tmp/$1.log" 2>/dev/null || return 1
    echo "run.sh: $1: port taken, trying another (attempt $attempt)" >&2
  done
  return 1
}

start_server_once() {
  local name=$1 port
  shift
  port=$(free_port)
  ports+=("$port")
  # The load comes from one address with one admin token (5,000 sockets at once, thousands of
  # requests a second): rate limits are off unless the caller sets them.
  env "$@" HOST=127.0.0.1 PORT="$port" ADMIN_TOKEN="$admin_token" \
    RATE_LIMIT_PER_ADDRESS="${RATE_LIMIT_PER_ADDRESS:-0}" \
    RATE_LIMIT_PER_TOKEN="${RATE_LIMIT_PER_TOKEN:-0}" \
    RATE_LIMIT_PER_ADMIN_TOKEN="${RATE_LIMIT_PER_ADMIN_TOKEN:-0}" \
    RATE_LIMIT_WS_UPGRADES_PER_ADDRESS="${RATE_LIMIT_WS_UPGRADES_PER_ADDRESS:-0}" \
    INSTANCE_ID="bench-$name" RUST_LOG="${RUST_LOG:-warn}" \
    "$server_bin" >"$tmp/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
      echo "run.sh: $name (pid $pid) on 127.0.0.1:$port" >&2
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run.sh: $name exited during start-up:" >&2
      tail -n 20 "$tmp/$name.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "run.sh: $name did not become healthy in 30 s" >&2
  return 1
}

case "$scenario" in
  embedded | idle-embedded)
    start_server embedded -u REDIS_URL DATABASE_URL="sqlite://$tmp/canopy.db"
    ;;
  cluster | failover | idle-cluster)
    database=canopy_bench_$run_id
    redis_prefix="bench:$run_id:"
    psql_admin "CREATE DATABASE $database"
    db_url="postgres://$pg_user@$pg_host:$pg_port/$database"
    # The first instance migrates; the second starts on the migrated database.
    start_server instance-a DATABASE_URL="$db_url" REDIS_URL="$redis_url" REDIS_KEY_PREFIX="$redis_prefix"
    start_server instance-b DATABASE_URL="$db_url" REDIS_URL="$redis_url" REDIS_KEY_PREFIX="$redis_prefix"
    ;;
esac

args=(--clients "$clients" --rate "$rate" --duration "$duration")
for i in "${!ports[@]}"; do
  args+=(--url "http://127.0.0.1:${ports[$i]}" --pid "${pids[$i]}")
done
if [[ $scenario == failover && " ${extra[*]:-} " != *" --kill-instance "* ]]; then
  # Halfway through the window: the survivor then carries the load for as long again.
  args+=(--kill-instance 0 --kill-after "$(awk -v d="$duration" 'BEGIN { print d / 2 }')")
fi
echo "run.sh: $scenario: canopy-bench ${args[*]} ${extra[*]:-}" >&2
set +e
line=$("$bench_bin" "${args[@]}" --admin-token "$admin_token" "${extra[@]}")
status=$?
set -e
[[ -n $line ]] && echo "$line"

# The history: one line per run that produced a report (a setup failure, status 2, has none).
results=${BENCH_RESULTS:-bench/results.jsonl}
if [[ $results != off && -n $line ]] && jq -e . >/dev/null 2>&1 <<<"$line"; then
  commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  dirty=false
  # The tracked history is not the tree under test: the first run of a sitting appends to it.
  [[ -n $(git status --porcelain --untracked-files=no -- . ":(exclude)bench/results.jsonl" 2>/dev/null) ]] && dirty=true
  jq -cn --arg commit "$commit" --argjson dirty "$dirty" \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg scenario "$scenario" \
    --arg profile "$profile" --arg extra "${extra[*]:-}" \
    --argjson clients "$clients" --argjson rate "$rate" --argjson duration "$duration" \
    --argjson status "$status" --argjson result "$line" \
    '{commit: $commit, dirty: $dirty, date: $date, scenario: $scenario, profile: $profile,
      params: {clients: $clients, rate: $rate, duration: $duration, options: $extra},
      status: $status, result: $result}' >>"$results"
  echo "run.sh: appended to $results" >&2
fi
exit "$status"
