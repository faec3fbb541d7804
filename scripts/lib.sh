#!/usr/bin/env bash
# Helpers shared by scripts/test.sh, scripts/cluster.sh and scripts/bench.sh.
# Source this file; don't run it. Every ensure_* function is idempotent: it is
# silent when there is nothing to do and prints one "==>" line when it acts.
# The recipes follow shared/ENVIRONMENT.md (Debian 12, run as root).
set -euo pipefail

VIRTFLEET_ROOT="${VIRTFLEET_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
VIRTFLEET_RUN_DIR="${VIRTFLEET_RUN_DIR:-/run/virtfleet}"
VIRTFLEET_LOG_DIR="${VIRTFLEET_LOG_DIR:-/var/log/virtfleet}"
VIRTFLEET_STATE_DIR="${VIRTFLEET_STATE_DIR:-/var/lib/virtfleet}"
VIRTFLEET_TEST_IMAGE="virtfleet-test/busybox:latest"
# shellcheck disable=SC2034 # used by the scripts that source this file
VIRTFLEET_CLI="$VIRTFLEET_ROOT/packages/cli/bin/virtfleet.cjs"
# prometheus: test/e2e/metrics.test.ts runs its own (loopback port, config and storage of its own);
# the prometheus.service the package starts where systemd runs is neither used nor needed.
VIRTFLEET_APT_PACKAGES=(
  nats-server docker.io libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  libvirt-dev qemu-system-x86 qemu-utils busybox-static iproute2 openssl e2fsprogs xz-utils genisoimage dnsmasq-base iptables
  prometheus chromium
)

step() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

require_root() {
  [[ $(id -u) -eq 0 ]] || die "this script installs packages and starts system daemons: run it as root (e.g. sudo bash $0)"
}

# wait_until SECONDS CMD [ARGS...]: runs CMD (output discarded) every 0.5 s until it succeeds.
wait_until() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# tcp_open HOST PORT: succeeds when HOST:PORT accepts a TCP connection.
tcp_open() {
  # shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# wait_for_tcp HOST PORT SECONDS
wait_for_tcp() {
  wait_until "$3" tcp_open "$1" "$2"
}

# pid_running PIDFILE PATTERN: the pid in PIDFILE is alive and its command line contains PATTERN
# (so a recycled pid is not mistaken for our process).
pid_running() {
  local pidfile=$1 pattern=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  local cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$pattern"* ]]
}

# start_detached PIDFILE LOGFILE CMD [ARGS...]: starts CMD in its own session, immune to the
# caller's exit and hangups, output appended to LOGFILE, and records its pid.
start_detached() {
  local pidfile=$1 logfile=$2
  shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  # A background job of a non-interactive shell is no process-group leader, so setsid
  # and nohup exec in place and $! is the pid of CMD itself.
  setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
  echo "$!" >"$pidfile"
}

ensure_apt_packages() {
  local missing=() p
  for p in "${VIRTFLEET_APT_PACKAGES[@]}"; do
    # shellcheck disable=SC2016 # ${Status} is dpkg-query's field, not a shell variable
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) == "install ok installed" ]] || missing+=("$p")
  done
  ((${#missing[@]} > 0)) || return 0
  step "installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

ensure_node_modules() {
  local stamp="$VIRTFLEET_ROOT/node_modules/.virtfleet-lock.sha256" want have=''
  # The lock file's hash, plus Node's module ABI: a native addon built for another Node needs a rebuild.
  want="$(sha256sum "$VIRTFLEET_ROOT/package-lock.json" | cut -d' ' -f1) node-abi-$(node -p process.versions.modules)"
  [[ -f $stamp ]] && have=$(<"$stamp")
  [[ -d $VIRTFLEET_ROOT/node_modules && $have == "$want" ]] && return 0
  step "installing npm dependencies (npm ci)"
  (cd "$VIRTFLEET_ROOT" && npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false npm ci) ||
    die "npm ci failed (see above)"
  printf '%s\n' "$want" >"$stamp"
}

ensure_build() {
  step "building (npm run build: incremental tsc -b)"
  # (&& chains: errexit does not apply inside a subshell on the left of ||.)
  (cd "$VIRTFLEET_ROOT" && npm run --silent build:native -w @virtfleet/agent --if-present && npm run --silent build) ||
    die "the build failed (see above)"
}

ensure_dockerd() {
  docker info >/dev/null 2>&1 && return 0
  local logfile="$VIRTFLEET_LOG_DIR/dockerd.log"
  if pgrep -x dockerd >/dev/null; then
    step "waiting for the running dockerd to answer"
  else
    step "starting dockerd --bridge=none --iptables=false (log: $logfile)"
    mkdir -p "$VIRTFLEET_LOG_DIR"
    setsid nohup dockerd --bridge=none --iptables=false >>"$logfile" 2>&1 </dev/null &
  fi
  wait_until 60 docker info || die "dockerd did not answer 'docker info' within 60 s; see $logfile"
}

ensure_libvirtd() {
  getent group kvm >/dev/null || { step "creating group kvm" && groupadd -r kvm; }
  getent group libvirt-qemu >/dev/null || { step "creating group libvirt-qemu" && groupadd -r libvirt-qemu; }
  id libvirt-qemu >/dev/null 2>&1 || {
    step "creating user libvirt-qemu (libvirtd's QEMU driver needs it)"
    useradd -r -g libvirt-qemu -G kvm -s /usr/sbin/nologin libvirt-qemu
  }
  # Debian's udev rule gives group kvm read-write access to /dev/kvm. Where no udev ran (as on these
  # machines) it stays root-only: QEMU, which libvirtd runs as libvirt-qemu, then fails with "Could
  # not access KVM kernel module", and libvirtd probes QEMU again on every call (~10 s each).
  if [[ -c /dev/kvm ]]; then
    local kvm_group kvm_mode
    kvm_group=$(stat -c %G /dev/kvm)
    kvm_mode=$(stat -c %a /dev/kvm)
    if [[ $kvm_group != kvm ]] || (((8#$kvm_mode & 8#060) != 8#060)); then
      step "giving group kvm read-write access to /dev/kvm (as Debian's udev rule does)"
      if ! { chgrp kvm /dev/kvm && chmod g+rw /dev/kvm; }; then
        warn "could not change /dev/kvm: KVM guests will fail; set the agent's domainType to qemu"
      fi
    fi
  fi
  mkdir -p /var/log/libvirt /var/run/libvirt "$VIRTFLEET_LOG_DIR"
  if ! pgrep -x virtlogd >/dev/null; then
    step "starting virtlogd"
    virtlogd -d </dev/null >>"$VIRTFLEET_LOG_DIR/virtlogd.log" 2>&1
  fi
  virsh -c qemu:///system version >/dev/null 2>&1 && return 0
  if pgrep -x libvirtd >/dev/null; then
    step "waiting for the running libvirtd to answer"
  else
    step "starting libvirtd"
    libvirtd -d </dev/null >>"$VIRTFLEET_LOG_DIR/libvirtd.log" 2>&1
  fi
  wait_until 60 virsh -c qemu:///system version ||
    die "libvirtd did not answer 'virsh -c qemu:///system version' within 60 s (a libvirtd started before the libvirt-qemu user existed must be restarted)"
}

# busybox_rootfs DIR: DIR/bin with the static busybox and the applets the tests use.
busybox_rootfs() {
  mkdir -p "$1/bin" && cp /bin/busybox "$1/bin/" || return 1
  local c
  for c in sh sleep echo cat ls true; do ln -sf busybox "$1/bin/$c" || return 1; done
}

ensure_test_image() {
  docker image inspect "$VIRTFLEET_TEST_IMAGE" >/dev/null 2>&1 && return 0
  step "building the local image $VIRTFLEET_TEST_IMAGE from /bin/busybox (no registry is reachable)"
  [[ -x /bin/busybox ]] || die "/bin/busybox is missing: install busybox-static"
  local dir
  dir=$(mktemp -d)
  local ok=0
  if busybox_rootfs "$dir/rootfs" && tar -C "$dir/rootfs" -c . | docker import - "$VIRTFLEET_TEST_IMAGE" >/dev/null; then ok=1; fi
  rm -rf "$dir"
  ((ok)) || die "could not build $VIRTFLEET_TEST_IMAGE"
}

# ensure_nats_server PORT CONFIG LOGFILE: `nats-server -c CONFIG`, listening on 127.0.0.1:PORT. One
# already running from CONFIG is told to read it again (its users may have changed).
ensure_nats_server() {
  local port=$1 config=$2 logfile=$3 pidfile="$VIRTFLEET_RUN_DIR/nats.pid"
  if pid_running "$pidfile" "nats-server -c $config"; then
    kill -HUP "$(<"$pidfile")"
    return 0
  fi
  tcp_open 127.0.0.1 "$port" && die "another process listens on 127.0.0.1:$port, not a nats-server started from $config; stop it first"
  step "starting nats-server on 127.0.0.1:$port (config $config, log $logfile)"
  start_detached "$pidfile" "$logfile" nats-server -c "$config"
  wait_for_tcp 127.0.0.1 "$port" 30 || die "nats-server did not listen on 127.0.0.1:$port within 30 s; see $logfile"
}

# Everything the cluster, the tests and the benchmarks need on this machine.
ensure_environment() {
  ensure_apt_packages
  ensure_node_modules
  ensure_build
  ensure_dockerd
  ensure_libvirtd
  ensure_test_image
}
