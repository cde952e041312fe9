#!/usr/bin/env bash
# Two pfa-sync instances (http://localhost:3000 and :3001) on one throwaway PostgreSQL, with one
# PEMS simulator, in dev mode (demo users and records). Ctrl-C stops everything, the database
# included. Run by `make run-cluster` after the debug build; arguments: the binary and the site.
set -euo pipefail
bin=$1
site=$2
pids=()
files=()
cleanup() {
  trap - INT TERM EXIT
  # The instances first (they release their jobs), then PEMS and the database.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -f "${files[@]}"
}
trap cleanup INT TERM EXIT

# started VAR COMMAND...: starts COMMAND in the background and sets VAR to the first line it
# prints (the URL it serves).
started() {
  local var=$1 out
  shift
  out=$(mktemp)
  files+=("$out")
  "$@" >"$out" &
  pids+=($!)
  until [ "$(wc -l <"$out")" -ge 1 ]; do
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "$* exited" >&2; exit 1; }
    sleep 0.1
  done
  printf -v "$var" '%s' "$(head -n 1 "$out")"
}

started db "$bin" throwaway-postgres
echo "PostgreSQL: $db"
started pems_line "$bin" pems-sim --addr 127.0.0.1:0
pems=${pems_line##* }
echo "PEMS simulator: $pems"
for port in 3000 3001; do
  PFA_SYNC_MODE=dev LEPTOS_SITE_ROOT="$site" PFA_SYNC_DATABASE_URL="$db" PFA_SYNC_PEMS_URL="$pems" \
    "$bin" serve --addr "127.0.0.1:$port" &
  pids+=($!)
done
echo "Two instances: http://localhost:3000 and http://localhost:3001 (Ctrl-C stops all)"
wait -n
