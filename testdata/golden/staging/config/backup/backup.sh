#!/bin/sh
# Rendered by obcd. Scheduled PostgreSQL backup: every BACKUP_INTERVAL_SECONDS
# take a custom-format dump, keep it only if it is a complete, readable
# archive, publish its time for Prometheus, and prune dumps older than
# BACKUP_KEEP_DAYS. Connection settings come from PGHOST, PGPORT,
# PGDATABASE, PGUSER and PGPASSWORD. BACKUP_ONCE=1 takes one backup and exits.
set -eu

: "${BACKUP_DIR:?}" "${BACKUP_INTERVAL_SECONDS:?}" "${BACKUP_KEEP_DAYS:?}" "${PGDATABASE:?}"
TEXTFILE_DIR="${TEXTFILE_DIR:-}"

log() { echo "backup: $*" >&2; }

publish_success() {
	[ -n "$TEXTFILE_DIR" ] || return 0
	mkdir -p "$TEXTFILE_DIR"
	tmp="$TEXTFILE_DIR/.obcd_backup.prom.$$"
	{
		echo "# HELP obcd_backup_last_success_timestamp_seconds Unix time of the last verified backup."
		echo "# TYPE obcd_backup_last_success_timestamp_seconds gauge"
		echo "obcd_backup_last_success_timestamp_seconds $(date +%s)"
	} >"$tmp"
	mv "$tmp" "$TEXTFILE_DIR/obcd_backup.prom"
}

# verify_dump accepts a dump only when it starts with the custom-format
# magic and pg_restore can read its whole table of contents. (A restore
# into a scratch database is the real proof; obcd verify does that.)
verify_dump() {
	[ "$(head -c 5 "$1")" = "PGDMP" ] || { log "$1: not a custom-format dump"; return 1; }
	pg_restore --list "$1" >/dev/null || { log "$1: table of contents unreadable"; return 1; }
}

backup_once() {
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	final="$BACKUP_DIR/$PGDATABASE-$stamp.dump"
	tmp="$BACKUP_DIR/.$PGDATABASE-$stamp.dump.partial"
	mkdir -p "$BACKUP_DIR"
	if ! pg_dump --format=custom --file="$tmp" "$PGDATABASE"; then
		rm -f "$tmp"
		log "pg_dump failed; keeping previous dumps"
		return 1
	fi
	if ! verify_dump "$tmp"; then
		rm -f "$tmp"
		return 1
	fi
	mv "$tmp" "$final"
	log "wrote $final ($(wc -c <"$final") bytes)"
	publish_success
	find "$BACKUP_DIR" -maxdepth 1 -name "$PGDATABASE-*.dump" -mtime +"$BACKUP_KEEP_DAYS" -print -delete | sed 's/^/backup: pruned /' >&2
}

trap 'exit 0' TERM INT
if [ "${BACKUP_ONCE:-}" = 1 ]; then
	backup_once
	exit $?
fi
while :; do
	if backup_once; then
		delay="$BACKUP_INTERVAL_SECONDS"
	else
		delay=60
		log "backup failed; retrying in ${delay}s"
	fi
	sleep "$delay" &
	wait $!
done
