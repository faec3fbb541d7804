#!/usr/bin/env bash
# The multi-host playground: simulated hypervisor hosts on this one machine, each with
#   - its own network namespace vfh-NAME: loopback, and eth0 on the playground fabric 10.251.0.0/24.
#     The fabric is a bridge in a namespace of its own (vfh-fabric), so the machine's own network
#     gets no address, route or bridge, and hosts reach each other only inside the playground;
#   - its own dockerd (data root, exec root, socket, pid file), started in that network namespace,
#     with its own docker0 bridge there;
#   - its own libvirtd and virtlogd, in that network namespace and a private mount namespace (its
#     own /run/libvirt, /var/lib/libvirt, /etc/libvirt, /var/log/libvirt, /var/cache/libvirt and
#     host_uuid), listening on tcp://ADDRESS:16509 for the other simulated hosts (migration);
#   - its own agent, in the machine's namespace: it reaches NATS and is reached by the coordinator on
#     127.0.0.1, and drives its dockerd and libvirtd through their unix sockets.
#
#   bash scripts/simulated-host.sh up NAME [--nats URL] [--agent-port PORT] [--pki DIR] [--nats-seed FILE]
#   bash scripts/simulated-host.sh down NAME       # stops everything, deletes its state
#   bash scripts/simulated-host.sh status [NAME]   # one line per host: NAME ADDRESS AGENT DOCKER LIBVIRT
#   bash scripts/simulated-host.sh env NAME        # shell assignments: SIM_DOCKER_HOST, SIM_LIBVIRT_URI, ...
#
# NAME: a lowercase letter, then up to 9 lowercase letters or digits (it names network interfaces,
# which hold 15 characters). Defaults: --nats nats://127.0.0.1:4222 (the cluster of scripts/cluster.sh),
# --agent-port 7200 + the host's fabric number (its metrics, HTTPS, on 7600 + that number), --pki /etc/virtfleet/pki (the cluster CA of
# scripts/cluster.sh; the agent's certificate, naming NAME, is issued from it unless one from it is
# there already), the agent's NATS user NAME issued into /etc/virtfleet/nats (scripts/cluster.sh's
# nats-server is told to reload) unless --nats-seed names the seed of one made already.
# `up` is idempotent: what runs already is left alone.
# State: /var/lib/virtfleet/sim/NAME; logs: /var/log/virtfleet/sim-NAME-*.log.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIM_ROOT="${VIRTFLEET_SIM_ROOT:-/var/lib/virtfleet/sim}"
FABRIC_NS=vfh-fabric
FABRIC_BRIDGE=fab0
FABRIC_PREFIX=10.251.0
LIBVIRT_TCP_PORT=16509
LIBVIRT_DIRS=(run:/run/libvirt lib:/var/lib/libvirt log:/var/log/libvirt etc:/etc/libvirt cache:/var/cache/libvirt)

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

valid_name() { [[ $1 =~ ^[a-z][a-z0-9]{0,9}$ ]]; }
netns_of() { printf 'vfh-%s' "$1"; }
netns_exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
in_ns() {
  local ns=$1
  shift
  # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts dockerd needs.
  nsenter --net="/run/netns/$ns" "$@"
}

# The host's number on the fabric (2-254), allocated at its first `up` and kept in its state.
fabric_index() {
  local name=$1 dir="$SIM_ROOT/$1" i
  if [[ -s $dir/index ]]; then
    cat "$dir/index"
    return
  fi
  mkdir -p "$SIM_ROOT"
  exec 9>"$SIM_ROOT/.lock"
  flock 9
  for ((i = 2; i < 255; i++)); do
    if ! grep -qsx "$i" "$SIM_ROOT"/*/index; then
      mkdir -p "$dir"
      echo "$i" >"$dir/index"
      flock -u 9
      echo "$i"
      return
    fi
  done
  flock -u 9
  die "the playground fabric is full (252 hosts)"
}

ensure_fabric() {
  netns_exists "$FABRIC_NS" || {
    step "creating the playground fabric (namespace $FABRIC_NS, bridge $FABRIC_BRIDGE)"
    ip netns add "$FABRIC_NS"
  }
  in_ns "$FABRIC_NS" ip link set lo up
  in_ns "$FABRIC_NS" ip link show "$FABRIC_BRIDGE" >/dev/null 2>&1 || in_ns "$FABRIC_NS" ip link add "$FABRIC_BRIDGE" type bridge
  in_ns "$FABRIC_NS" ip link set "$FABRIC_BRIDGE" up
}

# ensure_netns NAME INDEX: the host's namespace, wired to the fabric with FABRIC_PREFIX.INDEX/24.
ensure_netns() {
  local name=$1 index=$2 ns
  ns=$(netns_of "$name")
  netns_exists "$ns" || {
    step "creating network namespace $ns ($FABRIC_PREFIX.$index)"
    ip netns add "$ns"
  }
  in_ns "$ns" ip link set lo up
  if ! in_ns "$ns" ip link show eth0 >/dev/null 2>&1; then
    # Both ends are created inside the fabric namespace and one is moved on: nothing touches the machine's.
    in_ns "$FABRIC_NS" ip link del "vfp-$name" 2>/dev/null || true
    in_ns "$FABRIC_NS" ip link add "vfp-$name" type veth peer name "vfe-$name"
    in_ns "$FABRIC_NS" ip link set "vfe-$name" netns "$ns"
    in_ns "$ns" ip link set "vfe-$name" name eth0
    in_ns "$FABRIC_NS" ip link set "vfp-$name" master "$FABRIC_BRIDGE" up
  fi
  in_ns "$ns" ip addr replace "$FABRIC_PREFIX.$index/24" dev eth0
  in_ns "$ns" ip link set eth0 up
}

ensure_host_dockerd() {
  local name=$1 dir="$SIM_ROOT/$1" ns
  ns=$(netns_of "$name")
  local sock="$dir/docker.sock" pidfile="$dir/dockerd.pid" log="$VIRTFLEET_LOG_DIR/sim-$name-dockerd.log"
  if ! pid_running "$pidfile" dockerd; then
    step "starting dockerd of $name (socket $sock, log $log)"
    mkdir -p "$dir/docker" "$dir/docker-exec" "$VIRTFLEET_LOG_DIR"
    rm -f "$sock"
    setsid nohup nsenter --net="/run/netns/$ns" dockerd \
      --data-root "$dir/docker" --exec-root "$dir/docker-exec" -H "unix://$sock" --pidfile "$pidfile" \
      >>"$log" 2>&1 </dev/null &
  fi
  wait_until 60 docker -H "unix://$sock" info || die "the dockerd of $name did not answer within 60 s; see $log"
  if ! docker -H "unix://$sock" image inspect "$VIRTFLEET_TEST_IMAGE" >/dev/null 2>&1; then
    step "copying $VIRTFLEET_TEST_IMAGE into the dockerd of $name"
    docker save "$VIRTFLEET_TEST_IMAGE" | docker -H "unix://$sock" load >/dev/null
  fi
}

ensure_host_libvirtd() {
  local name=$1 index=$2 dir="$SIM_ROOT/$1" ns entry
  ns=$(netns_of "$name")
  local base="$dir/libvirt" log="$VIRTFLEET_LOG_DIR/sim-$name-libvirtd.log"
  local uri="qemu+unix:///system?socket=$base/run/libvirt-sock"
  for entry in "${LIBVIRT_DIRS[@]}"; do mkdir -p "$base/${entry%%:*}"; done
  [[ -s $base/host_uuid ]] || cat /proc/sys/kernel/random/uuid >"$base/host_uuid"
  cat >"$base/etc/libvirtd.conf" <<EOF
listen_tls = 0
listen_tcp = 1
listen_addr = "$FABRIC_PREFIX.$index"
tcp_port = "$LIBVIRT_TCP_PORT"
auth_tcp = "none"
host_uuid = "$(<"$base/host_uuid")"
EOF
  if ! pid_running "$base/run/libvirtd.pid" libvirtd; then
    step "starting libvirtd of $name (tcp $FABRIC_PREFIX.$index:$LIBVIRT_TCP_PORT, log $log)"
    # The machine's QEMU capability cache saves the new daemon a long probe of every emulator.
    [[ -d /var/cache/libvirt/qemu && ! -d $base/cache/qemu ]] && cp -a /var/cache/libvirt/qemu "$base/cache/qemu"
    local mounts='' target
    for entry in "${LIBVIRT_DIRS[@]}"; do
      target=${entry#*:}
      mkdir -p "$target"
      mounts+="mount --bind $(printf '%q' "$base/${entry%%:*}") $target && "
    done
    setsid nohup nsenter --net="/run/netns/$ns" unshare -m --propagation private bash -c \
      "${mounts}virtlogd -d -p /run/libvirt/virtlogd.pid && exec libvirtd --listen -p /run/libvirt/libvirtd.pid" \
      >>"$log" 2>&1 </dev/null &
  fi
  wait_until 60 virsh -c "$uri" version || die "the libvirtd of $name did not answer within 60 s; see $log"
}

# ensure_host_certificate NAME PKI: the agent's certificate naming NAME, issued by the CA in PKI.
ensure_host_certificate() {
  local name=$1 pki=$2 dir="$SIM_ROOT/$1"
  [[ -f $pki/ca.crt ]] || die "no cluster CA in $pki: create one with \`virtfleet pki init --dir $pki\` (npm run cluster does)"
  if [[ -f $dir/agent.crt ]] && openssl verify -CAfile "$pki/ca.crt" "$dir/agent.crt" >/dev/null 2>&1 &&
    node "$VIRTFLEET_CLI" pki show "$dir/agent.crt" >/dev/null 2>&1; then
    return 0
  fi
  node "$VIRTFLEET_CLI" pki issue --dir "$pki" --role agent --name "$name" --out "$dir/agent" >/dev/null
}

# ensure_host_nats_user NAME: the agent's NATS user NAME in the cluster's NATS directory; the
# cluster's nats-server (scripts/cluster.sh) reloads its users. Prints the seed file.
ensure_host_nats_user() {
  local name=$1 nats_dir=${VIRTFLEET_NATS_DIR:-/etc/virtfleet/nats}
  node "$VIRTFLEET_CLI" nats issue --dir "$nats_dir" --role agent --name "$name" --out "$SIM_ROOT/$name/nats.nk" >/dev/null
  pid_running "$VIRTFLEET_RUN_DIR/nats.pid" nats-server && kill -HUP "$(<"$VIRTFLEET_RUN_DIR/nats.pid")"
  printf '%s\n' "$SIM_ROOT/$name/nats.nk"
}

ensure_host_agent() {
  local name=$1 index=$2 nats=$3 port=$4 pki=$5 seed=$6 dir="$SIM_ROOT/$1"
  local config="$dir/agent.yaml" pidfile="$dir/agent.pid" log="$VIRTFLEET_LOG_DIR/sim-$name-agent.log"
  ensure_host_certificate "$name" "$pki"
  [[ -n $seed ]] || seed=$(ensure_host_nats_user "$name")
  cat >"$config" <<EOF
# Written by scripts/simulated-host.sh for the simulated host $name.
hostId: $name
stateDir: $dir/agent
labels:
  zone: playground
  simulated-host: "true"
grpc:
  listen: 127.0.0.1:$port
  tls: { cert: $dir/agent.crt, key: $dir/agent.key, ca: $pki/ca.crt }
# Metrics over HTTPS: 7600 + the fabric number, clear of the agents' gRPC ports (7200 + it).
http:
  listen: 127.0.0.1:$((7600 + index))
nats:
  servers: [$nats]
  nkeySeedFile: $seed
telemetry:
  storagePaths: [$SIM_ROOT]
# Its bridge, NAT and DHCP live inside its own network namespace, like everything else of it.
network:
  enabled: true
  netns: /run/netns/$(netns_of "$name")
drivers:
  docker:
    socketPath: $dir/docker.sock
    network: bridge
  libvirt:
    uri: qemu+unix:///system?socket=$dir/libvirt/run/libvirt-sock
    domainType: qemu
    # Other hosts' libvirtds reach this one, and QEMU receives migrations, on its fabric address.
    migration:
      uri: qemu+tcp://$FABRIC_PREFIX.$index:$LIBVIRT_TCP_PORT/system
      address: $FABRIC_PREFIX.$index
EOF
  # Validated before it is started, so a bad --nats or --agent-port is reported here, not in a log.
  node "$VIRTFLEET_CLI" agent --config "$config" --check-config >/dev/null
  pid_running "$pidfile" "$VIRTFLEET_CLI agent" && return 0
  step "starting the agent of $name (gRPC 127.0.0.1:$port, log $log)"
  start_detached "$pidfile" "$log" node "$VIRTFLEET_CLI" agent --config "$config"
  wait_for_tcp 127.0.0.1 "$port" 60 || {
    tail -n 20 "$log" >&2 || true
    die "the agent of $name did not listen on 127.0.0.1:$port within 60 s; see $log"
  }
}

host_up() {
  local name=$1 nats=$2 port=$3 pki=$4 seed=$5 index
  index=$(fabric_index "$name")
  [[ -n $port ]] || port=$((7200 + index))
  ensure_fabric
  ensure_netns "$name" "$index"
  ensure_host_dockerd "$name"
  ensure_host_libvirtd "$name" "$index"
  ensure_host_agent "$name" "$index" "$nats" "$port" "$pki" "$seed"
  printf 'simulated host %s is up: fabric address %s.%s, agent 127.0.0.1:%s\n' "$name" "$FABRIC_PREFIX" "$index" "$port"
  printf 'its engines: docker -H unix://%s/docker.sock ...; virsh -c %q ...\n' "$SIM_ROOT/$name" "qemu+unix:///system?socket=$SIM_ROOT/$name/libvirt/run/libvirt-sock"
}

# stop_pidfile PIDFILE PATTERN LABEL: TERM, wait up to 30 s, then KILL.
stop_pidfile() {
  local pidfile=$1 pattern=$2 label=$3 pid
  pid_running "$pidfile" "$pattern" || return 0
  pid=$(<"$pidfile")
  step "stopping $label (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  wait_until 30 bash -c "! kill -0 $pid" || kill -KILL "$pid" 2>/dev/null || true
}

host_down() {
  local name=$1 dir="$SIM_ROOT/$1" ns
  ns=$(netns_of "$name")
  stop_pidfile "$dir/agent.pid" "$VIRTFLEET_CLI agent" "the agent of $name"
  local uri="qemu+unix:///system?socket=$dir/libvirt/run/libvirt-sock" domain
  if [[ -S $dir/libvirt/run/libvirt-sock ]]; then
    while read -r domain; do
      [[ -n $domain ]] || continue
      virsh -c "$uri" destroy "$domain" >/dev/null 2>&1 || true
      virsh -c "$uri" undefine "$domain" --nvram >/dev/null 2>&1 || virsh -c "$uri" undefine "$domain" >/dev/null 2>&1 || true
    done < <(virsh -c "$uri" list --all --name 2>/dev/null || true)
  fi
  stop_pidfile "$dir/libvirt/run/libvirtd.pid" libvirtd "the libvirtd of $name"
  stop_pidfile "$dir/libvirt/run/virtlogd.pid" virtlogd "the virtlogd of $name"
  if [[ -S $dir/docker.sock ]] && pid_running "$dir/dockerd.pid" dockerd; then
    docker -H "unix://$dir/docker.sock" ps -aq 2>/dev/null | xargs -r docker -H "unix://$dir/docker.sock" rm -f >/dev/null 2>&1 || true
  fi
  stop_pidfile "$dir/dockerd.pid" dockerd "the dockerd of $name"
  stop_pidfile "$dir/docker-exec/containerd/containerd.pid" containerd "the containerd of $name"
  if netns_exists "$ns"; then
    step "removing network namespace $ns"
    ip netns del "$ns"
  fi
  netns_exists "$FABRIC_NS" && in_ns "$FABRIC_NS" ip link del "vfp-$name" 2>/dev/null || true
  # Mounts a killed dockerd left behind (its overlay and shm mounts live in the machine's mount namespace).
  findmnt -rn -o TARGET | grep -F "$dir/" | sort -r | xargs -r umount -l || true
  rm -rf "$dir"
  # The fabric goes with its last host.
  if netns_exists "$FABRIC_NS" && ! compgen -G "$SIM_ROOT/*/index" >/dev/null; then
    step "removing the playground fabric"
    ip netns del "$FABRIC_NS"
  fi
}

host_status() {
  local name=$1 dir="$SIM_ROOT/$1" index agent docker libvirt
  index=$(cat "$dir/index" 2>/dev/null || echo '?')
  agent=down docker=down libvirt=down
  pid_running "$dir/agent.pid" "$VIRTFLEET_CLI agent" && agent=up
  pid_running "$dir/dockerd.pid" dockerd && docker=up
  pid_running "$dir/libvirt/run/libvirtd.pid" libvirtd && libvirt=up
  printf '%s %s.%s agent=%s docker=%s libvirt=%s\n' "$name" "$FABRIC_PREFIX" "$index" "$agent" "$docker" "$libvirt"
}

host_env() {
  local name=$1 dir="$SIM_ROOT/$1"
  [[ -s $dir/index ]] || die "no simulated host $name"
  printf 'SIM_NETNS=%q\n' "$(netns_of "$name")"
  printf 'SIM_ADDRESS=%q\n' "$FABRIC_PREFIX.$(<"$dir/index")"
  printf 'SIM_DOCKER_HOST=%q\n' "unix://$dir/docker.sock"
  printf 'SIM_LIBVIRT_URI=%q\n' "qemu+unix:///system?socket=$dir/libvirt/run/libvirt-sock"
  printf 'SIM_LIBVIRT_TCP_URI=%q\n' "qemu+tcp://$FABRIC_PREFIX.$(<"$dir/index"):$LIBVIRT_TCP_PORT/system"
  printf 'SIM_AGENT_CONFIG=%q\n' "$dir/agent.yaml"
  printf 'SIM_AGENT_STATE_DIR=%q\n' "$dir/agent"
  printf 'SIM_AGENT_LOG=%q\n' "$VIRTFLEET_LOG_DIR/sim-$name-agent.log"
}

main() {
  local command=${1:-}
  [[ -n $command ]] || usage
  shift
  case $command in
    up)
      local name=${1:-} nats=nats://127.0.0.1:4222 port='' pki=${VIRTFLEET_PKI_DIR:-/etc/virtfleet/pki} seed=''
      [[ -n $name ]] || usage
      shift
      while (($#)); do
        case $1 in
          --nats) nats=${2:?--nats needs a URL}; shift 2 ;;
          --agent-port) port=${2:?--agent-port needs a port}; shift 2 ;;
          --pki) pki=${2:?--pki needs a directory}; shift 2 ;;
          --nats-seed) seed=${2:?--nats-seed needs a file}; shift 2 ;;
          *) die "unknown option $1 (see: $0 without arguments)" ;;
        esac
      done
      valid_name "$name" || die "NAME must be a lowercase letter and up to 9 lowercase letters or digits, not '$name'"
      [[ -z $port || ($port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535) ]] || die "--agent-port must be a port number (1-65535), not '$port'"
      [[ $nats =~ ^nats://127\.[0-9]+\.[0-9]+\.[0-9]+:[0-9]+$ ]] || die "--nats must be nats://127.x.y.z:PORT (the playground stays on this machine), not '$nats'"
      require_root
      ensure_apt_packages
      ensure_node_modules
      [[ -f $VIRTFLEET_ROOT/packages/agent/dist/index.js ]] || ensure_build
      ensure_dockerd
      ensure_test_image
      [[ $pki == /* && $pki =~ ^[A-Za-z0-9._/+-]+$ ]] || die "--pki must be an absolute path of letters, digits and ._+-/, not '$pki'"
      [[ -z $seed || ($seed == /* && $seed =~ ^[A-Za-z0-9._/+-]+$ && -f $seed) ]] || die "--nats-seed must be an existing file's absolute path of letters, digits and ._+-/, not '$seed'"
      host_up "$name" "$nats" "$port" "$pki" "$seed"
      ;;
    down)
      local name=${1:-}
      [[ -n $name ]] || usage
      valid_name "$name" || die "NAME must be a lowercase letter and up to 9 lowercase letters or digits, not '$name'"
      require_root
      host_down "$name"
      ;;
    status)
      if [[ -n ${1:-} ]]; then
        valid_name "$1" || die "no simulated host '$1'"
        host_status "$1"
      else
        local d
        for d in "$SIM_ROOT"/*/; do [[ -s $d/index ]] && host_status "$(basename "$d")"; done
        true
      fi
      ;;
    env)
      valid_name "${1:-}" || die "NAME must name a simulated host"
      host_env "$1"
      ;;
    *) usage ;;
  esac
}

main "$@"
