#!/bin/bash
# The config arrives owned by root (copied in by obcd, or bind-mounted by
# compose) and the auth file is 0600. Copy /etc/pgbouncer where the
# postgres user may read it, point the arguments and the ini there, and
# run pgbouncer as that user.
set -euo pipefail
mkdir -p /var/run/postgresql
chown postgres:postgres /var/run/postgresql
conf=/run/pgbouncer-conf
rm -rf "$conf"
cp -a /etc/pgbouncer "$conf"
chown -R postgres:postgres "$conf"
chmod 0700 "$conf"
[ -f "$conf/pgbouncer.ini" ] && sed -i "s#/etc/pgbouncer/#$conf/#g" "$conf/pgbouncer.ini"
args=()
for a in "$@"; do
  case "$a" in /etc/pgbouncer/*) a="$conf/${a#/etc/pgbouncer/}" ;; esac
  args+=("$a")
done
exec setpriv --reuid=postgres --regid=postgres --init-groups "${args[@]}"
