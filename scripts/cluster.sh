#!/usr/bin/env bash
# npm run cluster: a one-host virtfleet cluster on this machine, for trying it out.
#
#   bash scripts/cluster.sh        # (or: npm run cluster) install, build, start; safe to repeat
#   bash scripts/cluster.sh stop   # stop nats-server, coordinator and agent; workloads keep running
#                                  # (fence-first VMs are fenced and restarted at the next start if
#                                  # the cluster was down longer than fencing.timeoutMs, docs/failover.md)
#
# Starts, each only if it is not running yet: dockerd and libvirtd (left running by `stop`),
# nats-server on 127.0.0.1:4222, the coordinator (API 127.0.0.1:7100) and the agent
# (gRPC 127.0.0.1:7101; metrics on https://127.0.0.1:7180 and :7181), configured by deploy/config/*.yaml. nats-server admits only the users
# in /etc/virtfleet/nats (virtfleet nats issue), each held to its own subjects. Pid files are in /run/virtfleet,
# logs in /var/log/virtfleet. Installs /usr/local/bin/virtfleet, a wrapper for this checkout's CLI.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NATS_PORT=4222
API_ADDR=127.0.0.1:7100
AGENT_ADDR=127.0.0.1:7101
# Their HTTPS servers (/metrics), as deploy/config/*.yaml set http.listen.
COORDINATOR_HTTP=127.0.0.1:7180
AGENT_HTTP=127.0.0.1:7181
COORDINATOR_CONFIG="$VIRTFLEET_ROOT/deploy/config/coordinator.yaml"
AGENT_CONFIG="$VIRTFLEET_ROOT/deploy/config/agent.yaml"
WRAPPER=/usr/local/bin/virtfleet
PKI_DIR=/etc/virtfleet/pki
NATS_DIR=/etc/virtfleet/nats
NATS_CONFIG=$NATS_DIR/nats-server.conf
CLI_CONFIG="${XDG_CONFIG_HOME:-$HOME/.config}/virtfleet/cli.yaml"

# start_daemon NAME CONFIG: `virtfleet NAME --config CONFIG`, detached, unless its pid file names a live one.
start_daemon() {
  local name=$1 config=$2
  local pidfile="$VIRTFLEET_RUN_DIR/$name.pid" logfile="$VIRTFLEET_LOG_DIR/$name.log"
  pid_running "$pidfile" "$VIRTFLEET_CLI $name" && return 0
  step "starting the $name (log: $logfile)"
  start_detached "$pidfile" "$logfile" node "$VIRTFLEET_CLI" "$name" --config "$config"
}

# fail_with_log NAME MESSAGE: prints the tail of NAME's log, then fails.
fail_with_log() {
  local logfile="$VIRTFLEET_LOG_DIR/$1.log"
  if [[ -f $logfile ]]; then
    printf -- '--- last lines of %s ---\n' "$logfile" >&2
    tail -n 20 "$logfile" >&2
  fi
  die "$2"
}

# hosts_up: the coordinator lists at least one host whose status is up.
hosts_up() {
  local json
  json=$(node "$VIRTFLEET_CLI" --timeout 5 -o json host ls 2>/dev/null) || return 1
  node -e 'process.exit(JSON.parse(process.argv[1]).some((h) => h.status === "up") ? 0 : 1)' "$json"
}

install_wrapper() {
  local content
  content=$(printf '#!/bin/sh\n# Installed by %s: the virtfleet CLI of that checkout.\nexec node %q "$@"\n' \
    "$VIRTFLEET_ROOT/scripts/cluster.sh" "$VIRTFLEET_CLI")
  [[ -f $WRAPPER && $(<"$WRAPPER") == "$content" ]] && return 0
  step "installing $WRAPPER (runs $VIRTFLEET_CLI)"
  printf '%s\n' "$content" >"$WRAPPER"
  chmod 755 "$WRAPPER"
}

# ensure_certificate PREFIX ROLE [NAME]: PREFIX.crt from this cluster's CA with more than 30 days left, else a new one.
ensure_certificate() {
  local prefix=$1 role=$2 name=${3:-}
  if [[ -f $prefix.crt && -f $prefix.key ]] && openssl verify -CAfile "$PKI_DIR/ca.crt" "$prefix.crt" >/dev/null 2>&1 &&
    node "$VIRTFLEET_CLI" pki show "$prefix.crt" >/dev/null 2>&1; then
    return 0
  fi
  step "issuing the $role certificate $prefix.crt"
  node "$VIRTFLEET_CLI" pki issue --dir "$PKI_DIR" --role "$role" ${name:+--name "$name"} --out "$prefix" >/dev/null
}

# ensure_pki: the cluster CA, the daemons' and the operator's certificates, and the CLI's config.
ensure_pki() {
  if [[ ! -f $PKI_DIR/ca.crt ]]; then step "creating the cluster CA in $PKI_DIR"; fi
  node "$VIRTFLEET_CLI" pki init --dir "$PKI_DIR" >/dev/null
  ensure_certificate "$PKI_DIR/coordinator" coordinator
  ensure_certificate "$PKI_DIR/agent" agent
  ensure_certificate "$PKI_DIR/operator-admin" operator admin
  # For Prometheus: any agent takes it, and deploy/config/coordinator.yaml lets it read as a viewer.
  ensure_certificate "$PKI_DIR/operator-prometheus" operator prometheus
  write_cli_config "$(cli_config_token)"
}

# ensure_nats_users: NATS users for the coordinator and the agent (seeds at the paths the deploy
# configs name), and the nats-server config that admits them and nobody else.
ensure_nats_users() {
  local agent_id content
  agent_id=$(hostname | cut -d. -f1 | tr '[:upper:]' '[:lower:]')
  [[ -f $NATS_DIR/users.json ]] || step "creating NATS users in $NATS_DIR (coordinator, agent $agent_id)"
  node "$VIRTFLEET_CLI" nats issue --dir "$NATS_DIR" --role coordinator --out "$NATS_DIR/coordinator.nk" >/dev/null
  node "$VIRTFLEET_CLI" nats issue --dir "$NATS_DIR" --role agent --name "$agent_id" --out "$NATS_DIR/agent.nk" >/dev/null
  content=$(printf '# Written by %s: nats-server for this cluster. Users: %s (virtfleet nats issue).\nlisten: "127.0.0.1:%s"\njetstream { store_dir: "%s" }\ninclude "authorization.conf"\n' \
    "$VIRTFLEET_ROOT/scripts/cluster.sh" "$NATS_DIR/authorization.conf" "$NATS_PORT" "$VIRTFLEET_STATE_DIR/nats")
  [[ -f $NATS_CONFIG && $(<"$NATS_CONFIG") == "$content" ]] && return 0
  step "writing $NATS_CONFIG"
  printf '%s\n' "$content" >"$NATS_CONFIG"
}

cli_config_token() { sed -n 's/^token: //p' "$CLI_CONFIG" 2>/dev/null || true; }

# write_cli_config TOKEN: the CLI's config (readable by root only: it holds the token), unless it already says that.
write_cli_config() {
  local content
  content=$(printf '# Written by %s: how the virtfleet CLI reaches this cluster.\ncoordinator: %s\ntls:\n  ca: %s\n  cert: %s\n  key: %s\n' \
    "$VIRTFLEET_ROOT/scripts/cluster.sh" "$API_ADDR" "$PKI_DIR/ca.crt" "$PKI_DIR/operator-admin.crt" "$PKI_DIR/operator-admin.key")
  [[ -n $1 ]] && content+=$(printf '\ntoken: %s' "$1")
  [[ -f $CLI_CONFIG && $(<"$CLI_CONFIG") == "$content" ]] && return 0
  step "writing the CLI config $CLI_CONFIG"
  mkdir -p "$(dirname "$CLI_CONFIG")"
  (umask 077 && printf '%s\n' "$content" >"$CLI_CONFIG")
  chmod 600 "$CLI_CONFIG"
}

# ensure_admin_token: an admin bearer token in the CLI config that the coordinator accepts; a new one
# otherwise, made with the operator certificate admin (which the coordinator's auth.certificateRoles lets act as admin).
ensure_admin_token() {
  local current bearer
  current=$(cli_config_token)
  if [[ -n $current ]] && node "$VIRTFLEET_CLI" --timeout 5 token ls >/dev/null 2>&1; then return 0; fi
  step "creating an admin token (kept in $CLI_CONFIG)"
  bearer=$(node "$VIRTFLEET_CLI" --token '' --timeout 10 -o json token create --role admin --description 'npm run cluster: the local admin' |
    node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => process.stdout.write(JSON.parse(s).bearer ?? ""))')
  [[ $bearer == vft_* ]] || fail_with_log coordinator "could not create an admin token"
  write_cli_config "$bearer"
}

pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# stop_daemon PIDFILE LABEL PATTERN: TERM, then wait; KILL only if it ignores TERM for 30 s.
stop_daemon() {
  local pidfile=$1 name=$2 pattern=$3 pid
  if ! pid_running "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile")
  step "stopping the $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_until 30 pid_gone "$pid"; then
    warn "the $name (pid $pid) did not exit within 30 s of SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_until 10 pid_gone "$pid" || die "could not stop the $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

cluster_stop() {
  # The agent first: it leaves its workloads running (containers and domains are owned by
  # dockerd and libvirtd) and picks them up again at its next start.
  stop_daemon "$VIRTFLEET_RUN_DIR/agent.pid" agent "$VIRTFLEET_CLI agent"
  # The agent's fencer holds the host lease apart from it (fencing.fencer.enabled); SIGTERM
  # retires it without fencing, before nats-server goes and the lease could not be renewed.
  stop_daemon "$VIRTFLEET_STATE_DIR/agent/fencer.pid" fencer "$VIRTFLEET_CLI fencer"
  stop_daemon "$VIRTFLEET_RUN_DIR/coordinator.pid" coordinator "$VIRTFLEET_CLI coordinator"
  stop_daemon "$VIRTFLEET_RUN_DIR/nats.pid" nats-server nats-server
  echo "stopped. dockerd and libvirtd are still running, and so are the workloads."
}

cluster_start() {
  ensure_environment
  mkdir -p "$VIRTFLEET_RUN_DIR" "$VIRTFLEET_LOG_DIR" "$VIRTFLEET_STATE_DIR"

  mkdir -p "$VIRTFLEET_STATE_DIR/nats"
  ensure_nats_users
  # A nats-server of an earlier version of this script ran without users: it makes way.
  if pid_running "$VIRTFLEET_RUN_DIR/nats.pid" nats-server && ! pid_running "$VIRTFLEET_RUN_DIR/nats.pid" "nats-server -c $NATS_CONFIG"; then
    stop_daemon "$VIRTFLEET_RUN_DIR/nats.pid" nats-server nats-server
  fi
  ensure_nats_server "$NATS_PORT" "$NATS_CONFIG" "$VIRTFLEET_LOG_DIR/nats.log"
  ensure_pki
  start_daemon coordinator "$COORDINATOR_CONFIG"
  start_daemon agent "$AGENT_CONFIG"

  wait_for_tcp "${API_ADDR%:*}" "${API_ADDR##*:}" 30 ||
    fail_with_log coordinator "the coordinator did not listen on $API_ADDR within 30 s"
  if ! wait_until 30 hosts_up; then
    pid_running "$VIRTFLEET_RUN_DIR/agent.pid" "$VIRTFLEET_CLI agent" ||
      fail_with_log agent "the agent is not running"
    fail_with_log agent "no host is up after 30 s: the coordinator hears no telemetry from the agent"
  fi
  ensure_admin_token
  install_wrapper

  node "$VIRTFLEET_CLI" host ls
  cat <<EOF

virtfleet is running on this machine.
  web dashboard               https://$COORDINATOR_HTTP/   (sign in with the token in $CLI_CONFIG; the browser will not know the cluster CA: $PKI_DIR/ca.crt)
  operator API (coordinator)  $API_ADDR
  NATS with JetStream         nats://127.0.0.1:$NATS_PORT   (store: $VIRTFLEET_STATE_DIR/nats)
  agent gRPC                  $AGENT_ADDR   (state: $VIRTFLEET_STATE_DIR/agent)
  configs                     $COORDINATOR_CONFIG
                              $AGENT_CONFIG
  certificates (mutual TLS)   $PKI_DIR   (CA, coordinator, agent, operator-admin, operator-prometheus)
  metrics (Prometheus)        https://$COORDINATOR_HTTP/metrics   https://$AGENT_HTTP/metrics
                              (client certificate operator-prometheus; README: Metrics)
  NATS users (nkeys)          $NATS_DIR   (coordinator, agent; \`virtfleet nats issue --role monitor --name N\` for a reader of events)
  CLI config                  $CLI_CONFIG   (the CLI calls as operator admin, with an admin token)
  logs                        $VIRTFLEET_LOG_DIR/{nats,coordinator,agent,dockerd}.log
  pid files                   $VIRTFLEET_RUN_DIR/{nats,coordinator,agent}.pid

Try:
  virtfleet host ls
  virtfleet workload create -f deploy/examples/container.yaml --wait
  virtfleet workload create -f deploy/examples/vm.yaml --wait
  virtfleet workload ls
  virtfleet workload delete demo-web
  virtfleet events --follow
  curl -s --cacert $PKI_DIR/ca.crt --cert $PKI_DIR/operator-prometheus.crt --key $PKI_DIR/operator-prometheus.key https://$COORDINATOR_HTTP/metrics | grep ^virtfleet_workloads
  virtfleet --help

Stop it with: bash scripts/cluster.sh stop   (workloads keep running; dockerd and libvirtd stay up)
EOF
}

require_root
case "${1:-start}" in
  start) cluster_start ;;
  stop) cluster_stop ;;
  *) die "usage: bash scripts/cluster.sh [start|stop]" ;;
esac
