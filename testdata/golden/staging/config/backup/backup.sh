#!/bin/sh
# Rendered by obcd. Scheduled PostgreSQL backup: every BACKUP_INTERVAL_SECONDS
# take a custom-format dump, keep it only if it is a complete, readable
# archive, publish its time for Prometheus, and prune dumps older than
# BACKUP_KEEP_DAYS. Connection settings come from PGHOST, PGPORT,
# PGDATABASE, PGUSER and PGPASSWORD. BACKUP_ONCE=1 takes one backup and exits;
# `backup.sh verify FILE` checks an existing dump.
set -eu

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
# magic and pg_restore can turn the whole archive, every data block, into
# SQL. (pg_restore --list alone passes a truncated dump: it reads only the
# table of contents.)
verify_dump() {
	[ "$(head -c 5 "$1")" = "PGDMP" ] || { log "$1: not a custom-format dump"; return 1; }
	pg_restore --file=/dev/null "$1" || { log "$1: archive is incomplete or unreadable"; return 1; }
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
if [ "${1:-}" = verify ]; then
	verify_dump "${2:?usage: backup.sh verify FILE}"
	exit $?
fi
: "${BACKUP_DIR:?}" "${BACKUP_INTERVAL_SECONDS:?}" "${BACKUP_KEEP_DAYS:?}" "${PGDATABASE:?}"
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
