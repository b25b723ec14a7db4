#!/usr/bin/env bash
# Builds the images of the end-to-end stack on the local Docker engine, with
# no registry: debootstrap makes a Debian bookworm minbase, the packages in
# base.packages are installed into it, the tree is imported as
# obcd-e2e/base, and every service image (the directories beside this
# script, and the sample Django app) is built on top of it.
#
# Everything is cached by content: the base image is tagged with a hash of
# base.packages, the suite and this script, and its rootfs tarball is kept
# in $OBCD_E2E_CACHE (default /var/cache/obcd-e2e) so that a machine whose
# images were pruned imports it again instead of bootstrapping. A service
# image carries the hash of its build context and of the base in a label,
# and is rebuilt only when that hash changes. A second run is a no-op.
#
#   bash testdata/e2e/images/build.sh          # build what is missing
#   OBCD_E2E_REBUILD=1 bash .../build.sh       # rebuild the service images
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
suite="${OBCD_E2E_SUITE:-bookworm}"
mirror="${OBCD_E2E_MIRROR:-http://deb.debian.org/debian}"
cache="${OBCD_E2E_CACHE:-/var/cache/obcd-e2e}"
export DOCKER_BUILDKIT=0

log() { printf 'e2e-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "the Docker engine does not answer (docker version failed)"

packages="$(grep -v '^\s*#' "$here/base.packages" | grep -v '^\s*$' | sort -u | tr '\n' ' ')"
base_key="$( { echo "$suite $mirror"; echo "$packages"; sed -n '/^# BASE-BEGIN/,/^# BASE-END/p' "$0"; } | sha256sum | cut -c1-16)"
base_tag="obcd-e2e/base:$base_key"

# BASE-BEGIN: this block is part of the base image's content key.
bootstrap_base() {
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  local work rootfs
  work="$(mktemp -d /var/tmp/obcd-e2e-base.XXXXXX)"
  rootfs="$work/rootfs"
  # shellcheck disable=SC2064
  trap "umount -l '$rootfs/proc' 2>/dev/null || true; rm -rf '$work'" RETURN
  log "debootstrap $suite minbase into $rootfs (a few minutes, once)"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  # No service starts inside the chroot, and PostgreSQL makes no default
  # cluster: every container initialises its own data directory.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
  mkdir -p "$rootfs/etc/postgresql-common"
  echo 'create_main_cluster = false' >"$rootfs/etc/postgresql-common/createcluster.conf"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90obcd"
  mount -t proc proc "$rootfs/proc"
  log "installing $(wc -w <<<"$packages") packages"
  # shellcheck disable=SC2086
  chroot "$rootfs" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    sh -c "apt-get update -qq && apt-get install -y -qq $packages && apt-get clean" >"$work/apt.log" 2>&1 ||
    { tail -n 30 "$work/apt.log" >&2; die "installing the packages into the base failed"; }
  umount -l "$rootfs/proc"
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/tmp/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  mkdir -p "$cache"
  tar --numeric-owner -C "$rootfs" -cf "$cache/base-$base_key.tar.partial" .
  mv "$cache/base-$base_key.tar.partial" "$cache/base-$base_key.tar"
}
# BASE-END

if docker image inspect "$base_tag" >/dev/null 2>&1; then
  log "base $base_tag is present"
else
  [ -f "$cache/base-$base_key.tar" ] || bootstrap_base
  log "importing $base_tag"
  docker import \
    -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["/bin/sh"]' \
    "$cache/base-$base_key.tar" "$base_tag" >/dev/null
fi
docker tag "$base_tag" obcd-e2e/base:latest
base_id="$(docker image inspect -f '{{.Id}}' "$base_tag")"

build_log="$(mktemp /var/tmp/obcd-e2e-build.XXXXXX)"
trap 'rm -f "$build_log"' EXIT
# build TAG CONTEXT [BUILD-ARG ...]: builds CONTEXT as TAG unless an image
# with the same content hash is already tagged so.
build() {
  local tag="$1" context="$2"; shift 2
  local hash
  hash="$( { echo "$base_id"; printf '%s\n' "$@"; (cd "$context" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum); } | sha256sum | cut -c1-16)"
  if [ -z "${OBCD_E2E_REBUILD:-}" ] && [ "$(docker image inspect -f '{{index .Config.Labels "org.obcd.e2e.hash"}}' "$tag" 2>/dev/null)" = "$hash" ]; then
    log "$tag is up to date"
    return
  fi
  local args=()
  for a in "$@"; do args+=(--build-arg "$a"); done
  log "building $tag"
  # The classic builder warns that it is deprecated on every build; its
  # output is shown only when the build fails.
  if ! docker build --force-rm --label "org.obcd.e2e.hash=$hash" "${args[@]}" -t "$tag" "$context" >"$build_log" 2>&1; then
    tail -n 40 "$build_log" >&2
    die "building $tag failed"
  fi
}

for dir in "$here"/*/; do
  name="$(basename "$dir")"
  [ -f "$dir/Dockerfile" ] || continue
  [ "$name" = app ] && continue
  build "obcd-e2e/$name:latest" "$dir"
done

# The sample app, in three releases: a good one, its upgrade, and one whose
# /ready/ fails (a database it cannot reach), for the automatic rollback.
app_ctx="$(mktemp -d /var/tmp/obcd-e2e-app.XXXXXX)"
trap 'rm -rf "$app_ctx" "$build_log"' EXIT
cp -r "$here/app/." "$app_ctx/"
cp -r "$repo/testdata/sampleapp" "$app_ctx/sampleapp"
build obcms/app:1.0.0 "$app_ctx" APP_VERSION=1.0.0
build obcms/app:1.1.0 "$app_ctx" APP_VERSION=1.1.0
build obcms/app:9.9.9-broken "$app_ctx" APP_VERSION=9.9.9-broken BROKEN_READY=1
log "done"
