#!/bin/bash
# The config arrives owned by root (copied in by obcd, or bind-mounted by
# compose) and the auth file is 0600. Copy /etc/pgbouncer where the
# postgres user may read it, point the arguments and the ini there, and
# run pgbouncer as that user.
#
# SIGHUP is obcd's reload contract (a rotated password replaces the
# userlist, then the container gets SIGHUP): copy the config again and
# pass the signal on, so pgbouncer re-reads its ini and auth file with no
# dropped connection. TERM and INT are passed on as they are.
set -euo pipefail
mkdir -p /var/run/postgresql
chown postgres:postgres /var/run/postgresql
conf=/run/pgbouncer-conf

copy_conf() {
  local next="$conf.next"
  rm -rf "$next"
  cp -a /etc/pgbouncer "$next"
  [ -f "$next/pgbouncer.ini" ] && sed -i "s#/etc/pgbouncer/#$conf/#g" "$next/pgbouncer.ini"
  chown -R postgres:postgres "$next"
  chmod 0700 "$next"
  if [ -d "$conf" ]; then
    # Replace the files in place: pgbouncer keeps the directory's path.
    cp -a "$next/." "$conf/"
    rm -rf "$next"
  else
    mv "$next" "$conf"
  fi
}

copy_conf
args=()
for a in "$@"; do
  case "$a" in /etc/pgbouncer/*) a="$conf/${a#/etc/pgbouncer/}" ;; esac
  args+=("$a")
done
if [ "${args[0]:-}" != pgbouncer ]; then
  exec "${args[@]}"
fi

setpriv --reuid=postgres --regid=postgres --init-groups "${args[@]}" &
child=$!
trap 'copy_conf && kill -HUP "$child"' HUP
trap 'kill -TERM "$child" 2>/dev/null' TERM
trap 'kill -INT "$child" 2>/dev/null' INT
# wait returns early whenever a trapped signal arrives; wait again until
# pgbouncer itself has exited, and exit with its status.
status=0
while :; do
  wait "$child" && status=0 || status=$?
  kill -0 "$child" 2>/dev/null || break
done
exit "$status"
