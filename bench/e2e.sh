#!/usr/bin/env bash
# bench/e2e.sh: obcd against docker-compose on the same stack, on the same
# machine, in one run. The stack is stacks/e2e.hcl (the OBCMS shape on the
# images testdata/e2e/images/build.sh makes); the peer is Debian's
# docker-compose 1.29 on the compose file obcd renders from it, rewritten
# into 1.29's dialect by bench/compose-v1.py (spelling only).
#
# For each tool it measures, in this order:
#   first    wall time of the first deploy until every container is healthy
#            (obcd: until its probes pass)
#   no-op    wall time of deploying again with nothing changed
#   upgrade  wall time of 1.0.0 -> 1.1.0, and the requests that failed
#            meanwhile: hey sends 40 requests a second through nginx
# and for obcd alone:
#   broken   from the start of a deploy of a release whose /ready/ fails
#            until obcd has rolled back by itself and the stable release
#            serves alone again, and the requests that failed meanwhile
#
# It prints a Markdown table with obcd/compose ratios, and keeps it and the
# raw numbers in bench/results/. Targets: 0 failed requests during obcd's
# upgrade and rollback, and an obcd no-op under 1 s.
#
#   bash bench/e2e.sh            # needs: docker, docker-compose, hey, curl, go
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
results="$repo/bench/results"
url="https://localhost:18443/communities/"
compose_project="obcms-e2e-compose"
obcd_project="obcms-e2e-staging"
work="$(mktemp -d /tmp/obcd-bench.XXXXXX)"
hey_pid=""

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

for tool in docker docker-compose hey curl go; do
  command -v "$tool" >/dev/null || die "$tool is not installed (bash .ci/deps installs it)"
done
docker version >/dev/null 2>&1 || die "the Docker engine does not answer"

cleanup() {
  [ -n "$hey_pid" ] && kill "$hey_pid" 2>/dev/null || true
  if [ -f "$work/compose/v1.yml" ]; then
    (cd "$work/compose" && docker-compose -p "$compose_project" --env-file "$work/.obcd/staging.secrets" -f v1.yml down -v --remove-orphans >/dev/null 2>&1) || true
  fi
  [ -x "$work/obcd" ] && (cd "$work" && ./obcd down staging --volumes --yes >/dev/null 2>&1) || true
  rm -rf "$work"
}
trap cleanup EXIT

log "images"
bash "$repo/testdata/e2e/images/build.sh" 2>&1 | grep -v -e DEPRECATED -e BuildKit -e environment-variable -e '^\s*$' >&2 || true
log "building obcd"
(cd "$repo" && go build -o "$work/obcd" ./cmd/obcd)
cp "$repo/stacks/e2e.hcl" "$work/obcd.hcl"
cd "$work"
./obcd secrets init staging >/dev/null

# hey_start NAME / hey_stop NAME: steady load through nginx; hey_stop sets
# hey_result to "FAILED/SENT", failed being the requests that did not
# answer 2xx or 3xx. (Not called in $(...): a subshell cannot wait for hey.)
hey_start() {
  hey -z 15m -c 4 -q 10 -t 10 "$url" >"$work/hey.$1" 2>&1 &
  hey_pid=$!
  sleep 2
}
hey_stop() {
  sleep 2
  kill -INT "$hey_pid" 2>/dev/null || true
  wait "$hey_pid" 2>/dev/null || true
  hey_pid=""
  hey_result=$(awk '
    /^Status code distribution:/ { s = "status"; next }
    /^Error distribution:/ { s = "error"; next }
    /^[^ ]/ { s = "" }
    s == "status" && match($0, /\[[0-9]+\][ \t]+[0-9]+ responses/) {
      code = substr($0, RSTART + 1, 3); n = $2; total += n; if (code + 0 >= 400) failed += n }
    s == "error" && match($0, /\[[0-9]+\]/) {
      n = substr($0, RSTART + 1, RLENGTH - 2); total += n; failed += n }
    END { printf "%d/%d\n", failed + 0, total + 0 }' "$work/hey.$1")
  case "$hey_result" in */0) die "hey sent no requests: $(tail -n 5 "$work/hey.$1")" ;; esac
}

# wait_compose_healthy: every container of the compose project is healthy
# (the migrate one-off has exited 0) and nginx serves /ready/.
wait_compose_healthy() {
  local deadline=$((SECONDS + 600)) statuses
  while [ $SECONDS -lt $deadline ]; do
    statuses="$(docker ps -a --filter "label=com.docker.compose.project=$compose_project" --format '{{.Names}} {{.Status}}')"
    if [ -n "$statuses" ] && ! grep -v -e '(healthy)' -e 'migrate.* Exited (0)' <<<"$statuses" >/dev/null &&
      curl -skf --max-time 3 -o /dev/null https://localhost:18443/ready/; then
      return 0
    fi
    sleep 0.5
  done
  log "compose project did not become healthy:"; echo "$statuses" >&2
  return 1
}

compose_up() {
  local version="$1"
  ./obcd render staging --var "app_version=$version" --out "$work/compose" >/dev/null
  "$repo/bench/compose-v1.py" "$work/compose/docker-compose.staging.yml" "$work/compose/v1.yml"
  (cd "$work/compose" && docker-compose -p "$compose_project" --env-file "$work/.obcd/staging.secrets" -f v1.yml up -d >"$work/compose.log" 2>&1) ||
    { tail -n 30 "$work/compose.log" >&2; die "docker-compose up failed"; }
}

serving() { curl -sk --max-time 5 https://localhost:18443/version/ | grep -o '"version": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'; }

log "docker-compose: first deploy"
t0=$(now); compose_up 1.0.0; wait_compose_healthy; t1=$(now)
c_first=$(elapsed "$t0" "$t1")
log "docker-compose: no-op"
t0=$(now); compose_up 1.0.0; t1=$(now)
c_noop=$(elapsed "$t0" "$t1")
log "docker-compose: upgrade under load"
hey_start compose-upgrade
t0=$(now); compose_up 1.1.0; wait_compose_healthy; t1=$(now)
c_upgrade=$(elapsed "$t0" "$t1")
hey_stop compose-upgrade; c_failed=$hey_result
[ "$(serving)" = 1.1.0 ] || die "docker-compose upgrade: the site does not serve 1.1.0"
(cd "$work/compose" && docker-compose -p "$compose_project" --env-file "$work/.obcd/staging.secrets" -f v1.yml down -v >/dev/null 2>&1)

log "obcd: first deploy"
t0=$(now); ./obcd deploy staging --yes >"$work/obcd-first.log" 2>&1 || { tail -n 40 "$work/obcd-first.log" >&2; die "obcd first deploy failed"; }; t1=$(now)
o_first=$(elapsed "$t0" "$t1")
log "obcd: no-op"
t0=$(now); ./obcd deploy staging --yes >/dev/null 2>&1; t1=$(now)
o_noop=$(elapsed "$t0" "$t1")
log "obcd: upgrade under load"
hey_start obcd-upgrade
t0=$(now); ./obcd deploy staging --yes --var app_version=1.1.0 >"$work/obcd-upgrade.log" 2>&1 || { tail -n 40 "$work/obcd-upgrade.log" >&2; die "obcd upgrade failed"; }; t1=$(now)
o_upgrade=$(elapsed "$t0" "$t1")
hey_stop obcd-upgrade; o_failed=$hey_result
log "obcd: broken release under load, rolled back by itself"
hey_start obcd-broken
t0=$(now)
if ./obcd deploy staging --yes --var app_version=9.9.9-broken >"$work/obcd-broken.log" 2>&1; then
  die "the broken release deployed"
fi
t1=$(now)
o_broken=$(elapsed "$t0" "$t1")
hey_stop obcd-broken; o_broken_failed=$hey_result
[ "$(serving)" = 1.1.0 ] || die "after the rollback the site does not serve 1.1.0"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
mkdir -p "$results"
stamp="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
table="$results/e2e-$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "Run $stamp on $(nproc) cores, Docker $(docker version --format '{{.Server.Version}}'), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')."
  echo
  echo "| measure | obcd | docker-compose | obcd / compose |"
  echo "|---|---|---|---|"
  echo "| first deploy (s) | $o_first | $c_first | $(ratio "$o_first" "$c_first") |"
  echo "| no-op deploy (s) | $o_noop | $c_noop | $(ratio "$o_noop" "$c_noop") |"
  echo "| upgrade 1.0.0 -> 1.1.0 (s) | $o_upgrade | $c_upgrade | $(ratio "$o_upgrade" "$c_upgrade") |"
  echo "| failed requests during the upgrade (failed/sent) | $o_failed | $c_failed | |"
  echo "| broken release: deploy start until rolled back, stable serving throughout (s) | $o_broken | n/a (no rollback) | |"
  echo "| failed requests during the broken release and rollback | $o_broken_failed | n/a | |"
} | tee "$table"
log "kept in $table"
