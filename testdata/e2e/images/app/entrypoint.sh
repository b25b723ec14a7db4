#!/bin/sh
# django-prometheus with several gunicorn workers keeps its samples in
# PROMETHEUS_MULTIPROC_DIR, which must exist, empty, before they start.
set -e
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
exec "$@"
