#!/usr/bin/env bash
# A multi-node Docker Swarm on one machine, for obcd's tests.
#
#   testdata/swarm/swarm.sh up [WORKERS]   # default 2 workers
#   testdata/swarm/swarm.sh down
#   testdata/swarm/swarm.sh status
#   testdata/swarm/swarm.sh stop-worker N    # stop worker N's engine, as a node that dies
#   testdata/swarm/swarm.sh start-worker N   # start it again; it rejoins with its state
#
# The machine's own engine is the manager. Each worker is another dockerd
# in its own network namespace (entered with `nsenter --net`, not
# `ip netns exec`, which remounts /sys so that dockerd finds no devices
# cgroup), on a bridge shared with the manager: 10.231.0.1 is the
# manager, 10.231.0.11, .12, ... the workers. Every node reaches the
# loopback registry at the same 127.0.0.1:PORT (REGISTRY_PORT, default
# 5000): a socat in each worker's namespace forwards its loopback port to
# the registry on the bridge, so one image reference works on every node
# and the engines treat it as a loopback (insecure-allowed) registry.
#
# `up` is idempotent: a node already up is left as it is. `down` leaves
# the machine as it found it: the workers and the manager leave the
# swarm, the daemons stop, and the namespaces, the veths, the bridge,
# docker_gwbridge and the workers' data are removed.
set -euo pipefail

STATE=${OBCD_SWARM_STATE:-/var/lib/obcd-swarm}
BRIDGE=obcdsw0
SUBNET=10.231.0
MANAGER_IP=$SUBNET.1
REGISTRY_PORT=${REGISTRY_PORT:-5000}
MTU=1400 # the machine's engine's MTU; the overlay's VXLAN takes 50 more

log() { echo "swarm: $*" >&2; }

worker_dir() { echo "$STATE/worker$1"; }
worker_ip() { echo "$SUBNET.$((10 + $1))"; }
worker_docker() { local i=$1; shift; docker -H "unix://$(worker_dir "$i")/docker.sock" "$@"; }

bridge_up() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    ip addr add "$MANAGER_IP/24" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" mtu "$MTU" up
  # The bridge's traffic is the nodes' own: the host's FORWARD policy
  # (DROP, with Docker's chains) must not apply to it.
  # With bridge-nf-call-iptables on (it is here), frames between two
  # workers on the bridge traverse FORWARD, whose policy Docker sets to
  # DROP: the overlay's VXLAN (UDP 4789) and gossip (7946) between workers
  # were dropped, and cross-node traffic failed, until this rule.
  iptables -C DOCKER-USER -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null ||
    iptables -I DOCKER-USER -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
  # The registry listens on the manager's loopback; the workers' socats
  # reach it through this forward on the bridge.
  mkdir -p "$STATE"
  if [ -f "$STATE/socat.pid" ] && kill -0 "$(cat "$STATE/socat.pid")" 2>/dev/null; then :; else
    socat "TCP-LISTEN:$REGISTRY_PORT,bind=$MANAGER_IP,fork,reuseaddr" "TCP:127.0.0.1:$REGISTRY_PORT" >"$STATE/socat.log" 2>&1 &
    echo $! >"$STATE/socat.pid"
  fi
}

worker_up() {
  local i=$1 ns=obcdsw$i dir ip
  dir=$(worker_dir "$i")
  ip=$(worker_ip "$i")
  mkdir -p "$dir"
  if ! ip netns list | grep -qw "$ns"; then
    ip netns add "$ns"
  fi
  if ! ip link show "$ns-h" >/dev/null 2>&1; then
    ip link add "$ns-h" mtu "$MTU" type veth peer name eth0 netns "$ns"
    ip link set "$ns-h" master "$BRIDGE" up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set eth0 mtu "$MTU" up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via "$MANAGER_IP"
  fi
  if [ -f "$dir/socat.pid" ] && kill -0 "$(cat "$dir/socat.pid")" 2>/dev/null; then :; else
    nsenter --net="/var/run/netns/$ns" socat "TCP-LISTEN:$REGISTRY_PORT,bind=127.0.0.1,fork,reuseaddr" "TCP:$MANAGER_IP:$REGISTRY_PORT" \
      >"$dir/socat.log" 2>&1 &
    echo $! >"$dir/socat.pid"
  fi
  if [ -S "$dir/docker.sock" ] && worker_docker "$i" info >/dev/null 2>&1; then
    return
  fi
  cat >"$dir/daemon.json" <<JSON
{"storage-driver": "$(docker info -f '{{.Driver}}')", "mtu": $MTU, "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "2"}}
JSON
  nsenter --net="/var/run/netns/$ns" dockerd \
    --config-file "$dir/daemon.json" --data-root "$dir/data" --exec-root "$dir/exec" \
    -H "unix://$dir/docker.sock" --pidfile "$dir/docker.pid" \
    --iptables=false --ip-masq=false --bridge=none \
    >"$dir/dockerd.log" 2>&1 &
  for _ in $(seq 1 100); do
    worker_docker "$i" info >/dev/null 2>&1 && return
    sleep 0.2
  done
  log "worker $i's dockerd did not answer within 20 s:"
  tail -20 "$dir/dockerd.log" >&2
  exit 1
}

swarm_state() { "$@" info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown; }

up() {
  local workers=${1:-2}
  if [ "$(swarm_state docker)" != inactive ] && [ ! -f "$STATE/manager" ]; then
    log "the machine's engine is already in a swarm this script did not make; leave it first (docker swarm leave), or use another machine"
    exit 1
  fi
  bridge_up
  for i in $(seq 1 "$workers"); do worker_up "$i"; done
  if [ "$(swarm_state docker)" != active ]; then
    docker swarm init --advertise-addr "$MANAGER_IP" --listen-addr "$MANAGER_IP:2377" >/dev/null
    touch "$STATE/manager" # this script made the swarm, so down may leave it
  fi
  local token
  token=$(docker swarm join-token -q worker)
  for i in $(seq 1 "$workers"); do
    if [ "$(swarm_state worker_docker "$i")" != active ]; then
      worker_docker "$i" swarm join --token "$token" --advertise-addr "$(worker_ip "$i")" \
        --listen-addr "$(worker_ip "$i"):2377" "$MANAGER_IP:2377" >/dev/null
    fi
  done
  # Node labels obcd's placement can use: obcd.node=manager|worker1|...
  docker node update --label-add obcd.node=manager "$(docker info -f '{{.Swarm.NodeID}}')" >/dev/null
  for i in $(seq 1 "$workers"); do
    docker node update --label-add "obcd.node=worker$i" "$(worker_docker "$i" info -f '{{.Swarm.NodeID}}')" >/dev/null
  done
  echo "$workers" >"$STATE/workers"
  # A node that joined is not Ready at once; the scheduler places nothing
  # on it until it is, so a service created right after up would run on
  # the manager alone.
  wait_ready "$workers"
  status
}

# wait_ready waits until the manager and WORKERS workers are Ready, at
# most 60 s.
wait_ready() {
  local want=$(($1 + 1)) ready=0
  for _ in $(seq 1 300); do
    ready=$(docker node ls --format '{{.Status}}' | grep -c '^Ready$' || true)
    [ "$ready" -ge "$want" ] && return
    sleep 0.2
  done
  log "only $ready of $want nodes are Ready after 60 s:"
  docker node ls >&2
  exit 1
}

down() {
  local i dir ns
  for dir in "$STATE"/worker*; do
    [ -d "$dir" ] || continue
    i=${dir##*worker}
    ns=obcdsw$i
    if [ -S "$dir/docker.sock" ]; then
      worker_docker "$i" swarm leave --force >/dev/null 2>&1 || true
    fi
    if [ -f "$dir/docker.pid" ]; then
      local pid
      pid=$(cat "$dir/docker.pid")
      if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
    if [ -f "$dir/socat.pid" ]; then kill "$(cat "$dir/socat.pid")" 2>/dev/null || true; fi
    # Whatever the daemon left mounted under its dirs (the mount
    # namespace is the machine's), then its data.
    { grep -o " $dir/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$dir"
    ip link del "$ns-h" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  # Only a swarm this script made is left: never one of the machine's own.
  if [ -f "$STATE/manager" ]; then
    if [ "$(swarm_state docker)" != inactive ]; then
      docker swarm leave --force >/dev/null 2>&1 || true
    fi
    docker network rm docker_gwbridge >/dev/null 2>&1 || true
  fi
  if [ -f "$STATE/socat.pid" ]; then kill "$(cat "$STATE/socat.pid")" 2>/dev/null || true; fi
  iptables -D DOCKER-USER -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$STATE"
  log "down: the machine's engine is $(swarm_state docker) in swarm mode"
}

status() {
  if [ "$(swarm_state docker)" != active ]; then
    log "no swarm"
    return
  fi
  docker node ls --format '{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}}' >&2
}

# stop_worker kills worker N's engine, as a machine that dies would: no
# swarm leave, so the manager sees the node go down and reschedules its
# tasks.
stop_worker() {
  local i=${1:?worker number} dir pid
  dir=$(worker_dir "$i")
  [ -f "$dir/docker.pid" ] || { log "worker $i is not running"; exit 1; }
  pid=$(cat "$dir/docker.pid")
  # A dead machine's containers die with it: their init processes first
  # (the PID namespace goes with them), then the engine, its containerd
  # and the shims, whose command lines name the worker's directories.
  local ids
  ids=$(worker_docker "$i" ps -q --no-trunc 2>/dev/null || true)
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    worker_docker "$i" inspect -f '{{.State.Pid}}' $ids 2>/dev/null | while read -r p; do
      [ "$p" -gt 0 ] 2>/dev/null && kill -9 "$p" 2>/dev/null || true
    done
  fi
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  { grep -l -a -F "$dir/" /proc/[0-9]*/cmdline 2>/dev/null || true; } | cut -d/ -f3 | while read -r p; do
    [ "$p" != $$ ] && kill -9 "$p" 2>/dev/null || true
  done
  rm -f "$dir/docker.pid" "$dir/docker.sock"
  log "worker $i's engine stopped"
}

# start_worker starts worker N's engine again; it rejoins the swarm with
# the state in its data root.
start_worker() {
  local i=${1:?worker number}
  worker_up "$i"
  for _ in $(seq 1 150); do
    [ "$(swarm_state worker_docker "$i")" = active ] && break
    sleep 0.2
  done
  if [ "$(swarm_state worker_docker "$i")" != active ]; then
    log "worker $i did not rejoin the swarm within 30 s"
    exit 1
  fi
  wait_ready "$(cat "$STATE/workers")"
  log "worker $i is back in the swarm"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  stop-worker) shift; stop_worker "$@" ;;
  start-worker) shift; start_worker "$@" ;;
  *) echo "usage: $0 up [WORKERS] | down | status | stop-worker N | start-worker N" >&2; exit 64 ;;
esac
