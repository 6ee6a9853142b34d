#!/usr/bin/env bash
# Sets up and runs a local Outpost stack on this machine:
#   outpost-node (N virtual devices: the real device core; docs/simulator.md)
#     -> Mosquitto (a free loopback port) -> outpost-gateway (run/gateway.db)
#     -> outpost-cloud (run/cloud.db; docs/cloud.md)
# TLS and per-device identities by default: outpost-provision makes the site's CA in run/pki
# (once; a re-run keeps it), one certificate per virtual device, the gateway's and the admin's,
# and the broker's conf.d file with the ACL (docs/security.md). Mosquitto runs with that file,
# every device presents its own certificate, the gateway its own.
# Prints the gateway's status every few seconds; Ctrl-C stops everything cleanly (the devices
# drain their buffers, the gateway drains, commits and stops its upload, then the cloud).
#
# Usage: scripts/run-local.sh [--devices N] [--rate R] [--qos 0|1] [--format native|seed]
#                             [--scenario F] [--duration S] [--dir DIR] [--no-cloud] [--no-build]
#                             [--insecure]
#   --devices N     virtual devices (default 50)
#   --rate R        readings per second, all devices together (default: one per device per second;
#                   each device samples every N/R seconds, at least every 0.05 s)
#   --qos Q         0 or 1 (default 1: acknowledged by the gateway only after commit)
#   --format F      native (per-device topics, boot/seq) or seed (the seed sketch's payloads)
#   --scenario F    a scenario file for outpost-node (faults; config/scenario.example.yaml)
#   --duration S    stop after S seconds (default 3600)
#   --dir DIR       where the databases, configs and logs go (default ./run)
#   --no-cloud      no outpost-cloud: the gateway keeps everything locally
#   --no-build      use the binaries already in build/release (no install, no build)
#   --insecure      the old plain mode: anonymous broker, plain MQTT, no certificates (loopback)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

devices=50 rate="" qos=1 format=native duration=3600 dir=run build=1 scenario="" cloud=1 tls=1
while [ $# -gt 0 ]; do
  case "$1" in
    --devices) devices=$2; shift ;;
    --rate) rate=$2; shift ;;
    --qos) qos=$2; shift ;;
    --format) format=$2; shift ;;
    --scenario) scenario=$2; shift ;;
    --duration) duration=$2; shift ;;
    --dir) dir=$2; shift ;;
    --no-build) build=0 ;;
    --no-cloud) cloud=0 ;;
    --insecure) tls=0 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "run-local.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
rate=${rate:-$devices}

if [ "$build" = 1 ]; then
  scripts/install-deps.sh
  echo "== build"
  cmake --preset release >/dev/null
  cmake --build --preset release --target outpost-gateway outpost-node outpost-cloud \
    outpost-provision
fi
# OUTPOST_BINARY_DIR: another build tree's binaries (with --no-build; the tests use it).
bin_dir=${OUTPOST_BINARY_DIR:-$root/build/release}
gateway_bin=$bin_dir/gateway/outpost-gateway
pub_bin=$bin_dir/devices/host/outpost-node
cloud_bin=$bin_dir/cloud/outpost-cloud
provision_bin=$bin_dir/tools/provision/outpost-provision
for b in "$gateway_bin" "$pub_bin" "$cloud_bin" "$provision_bin"; do
  [ -x "$b" ] || { echo "run-local.sh: $b is missing; run without --no-build" >&2; exit 1; }
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Free loopback ports: the first of 18830.. (broker), 18080.. (cloud) and 18880.. (the gateway's
# HTTP API) that nothing listens on.
free_port() {
  local p=$1
  while ss -Htln "sport = :$p" | grep -q .; do p=$((p + 1)); done
  echo "$p"
}
cloud_port=$(free_port 18080)
api_port=$(free_port 18880)

pki=$dir/pki
if [ "$tls" = 1 ]; then
  # The site's PKI, once: a re-run keeps the CA, the certificates and the ports it chose.
  if [ ! -f "$pki/site.conf" ]; then
    port=$(free_port 18830)
    control_port=$(free_port $((port + 1)))
    "$provision_bin" --dir "$pki" init --port "$port" --control-port "$control_port" \
      --gateway-id gateway_local --broker-host localhost --broker-ip 127.0.0.1 > "$dir/provision.log"
  fi
  site_port=$(sed -n 's/^port=//p' "$pki/site.conf")
  site_control_port=$(sed -n 's/^control_port=//p' "$pki/site.conf")
  # One certificate per virtual device, under the ids outpost-node gives them (node-00000, ...).
  # Idempotent: devices already provisioned are kept. No self-check: this script starts the
  # broker only below, maybe on other ports than the site's.
  seed_flag=()
  [ "$format" = seed ] && seed_flag=(--seed)
  echo "== provisioning $devices devices in $pki"
  "$provision_bin" --dir "$pki" device add --count "$devices" --prefix node- --first 0 --digits 5 \
    --no-check "${seed_flag[@]}" >> "$dir/provision.log"
  # The seed's flat topics are allowed only to devices provisioned in seed mode (and native ones
  # only to native devices' own topics): a device kept from an earlier run keeps its mode.
  want_mode=native
  [ "$format" = seed ] && want_mode=seed
  wrong=$(awk -F'\t' -v n="$devices" -v m="$want_mode" '
    $1 ~ /^node-[0-9][0-9][0-9][0-9][0-9]$/ && substr($1, 6) + 0 < n && $6 != m { c++ } END { print c + 0 }' \
    "$pki/devices.tsv")
  if [ "$wrong" != 0 ]; then
    echo "run-local.sh: $wrong of the devices in $pki were provisioned for the other --format;" \
      "use another --dir for --format $format" >&2
    exit 2
  fi
  # The generated conf.d file as Mosquitto would load it from /etc/mosquitto/conf.d, bound to
  # loopback here, on the site's ports unless something else took them since.
  port=$site_port control_port=$site_control_port
  ss -Htln "sport = :$port" | grep -q . && port=$(free_port 18830)
  ss -Htln "sport = :$control_port" | grep -q . && control_port=$(free_port $((port + 1)))
  [ "$control_port" = "$port" ] && control_port=$(free_port $((port + 1)))
  mq_listener=$(sed -e "s/^listener $site_port\$/listener $port 127.0.0.1/" \
    -e "s/^listener $site_control_port 127.0.0.1\$/listener $control_port 127.0.0.1/" \
    "$pki/broker/outpost.conf")
  admin_tls=(--cafile "$pki/broker/ca.crt" --cert "$pki/admin/admin.crt" --key "$pki/admin/admin.key")
else
  port=$(free_port 18830)
  mq_listener="listener $port 127.0.0.1
allow_anonymous true"
  admin_tls=()
fi

cat > "$dir/mosquitto.conf" <<CONF
# Local broker for the Outpost stack (loopback only). Settings the gateway relies on: docs/broker.md
$mq_listener
max_inflight_messages 10000
max_queued_messages 1000000
# Payload bytes; larger messages are refused by the broker (docs/broker.md "Message size").
message_size_limit 65536
persistence true
persistence_location $dir/
$( [ "$(id -u)" = 0 ] && echo "user root" )
CONF

cat > "$dir/gateway.yaml" <<CONF
# Generated by scripts/run-local.sh; every setting: config/gateway.example.yaml
gateway:
  id: gateway_local
  status_interval_s: 5
mqtt:
  host: 127.0.0.1
  port: $port
CONF
if [ "$tls" = 1 ]; then
  cat >> "$dir/gateway.yaml" <<CONF
  tls:
    enabled: true
    ca_file: $pki/broker/ca.crt
    cert_file: $pki/gateway/gateway.crt
    key_file: $pki/gateway/gateway.key
CONF
fi
cat >> "$dir/gateway.yaml" <<CONF
storage:
  path: $dir/gateway.db
http:
  listen: 127.0.0.1:$api_port
CONF
if [ "$cloud" = 1 ]; then
  # The token is not written here: the gateway gets it from OUTPOST_CLOUD_API_KEY.
  cat >> "$dir/gateway.yaml" <<CONF
cloud:
  api_endpoint: http://127.0.0.1:$cloud_port
  protocol: native
  batch_delay_ms: 500
CONF
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "== stopping"
  # outpost-node drains its buffers on SIGTERM (at most 15 s) while the gateway still runs.
  if [ -n "${pub_pid:-}" ]; then kill "$pub_pid" 2>/dev/null || true; wait "$pub_pid" 2>/dev/null || true; fi
  [ -n "${sub_pid:-}" ] && kill "$sub_pid" 2>/dev/null || true
  if [ -n "${gw_pid:-}" ] && kill -0 "$gw_pid" 2>/dev/null; then
    kill -TERM "$gw_pid"; wait "$gw_pid" 2>/dev/null || true
  fi
  [ -n "${cloud_pid:-}" ] && { kill -TERM "$cloud_pid" 2>/dev/null; wait "$cloud_pid" 2>/dev/null || true; }
  [ -n "${mq_pid:-}" ] && { kill -TERM "$mq_pid" 2>/dev/null; wait "$mq_pid" 2>/dev/null || true; }
  echo "data kept in $dir (gateway.db, cloud.db, *.log)"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# Each child in its own session: Ctrl-C reaches only this script, whose trap stops them in order
# (publisher, gateway — which drains and acknowledges — then the broker).
setsid mosquitto -c "$dir/mosquitto.conf" > "$dir/mosquitto.log" 2>&1 &
mq_pid=$!
for _ in $(seq 100); do ss -Htln "sport = :$port" | grep -q . && break; sleep 0.05; done

if [ "$cloud" = 1 ]; then
  # A fresh token for this run (tokens are stored hashed; older ones stay valid until revoked).
  OUTPOST_CLOUD_API_KEY=$("$cloud_bin" token create --gateway gateway_local --database "sqlite:$dir/cloud.db")
  export OUTPOST_CLOUD_API_KEY
  setsid "$cloud_bin" serve --listen "127.0.0.1:$cloud_port" --database "sqlite:$dir/cloud.db" \
    > "$dir/cloud.log" 2>&1 &
  cloud_pid=$!
  for _ in $(seq 100); do ss -Htln "sport = :$cloud_port" | grep -q . && break; sleep 0.05; done
fi

setsid "$gateway_bin" --config "$dir/gateway.yaml" > "$dir/gateway.log" 2>&1 &
gw_pid=$!

echo "== Outpost local stack"
if [ "$tls" = 1 ]; then
  echo "broker    127.0.0.1:$port TLS, per-device certificates and ACL   (PKI and conf.d: $pki)"
  echo "          mosquitto_sub -h 127.0.0.1 -p $port ${admin_tls[*]} -t 'gateway/#' -v"
else
  echo "broker    127.0.0.1:$port plain, anonymous (--insecure)   (mosquitto_sub -p $port -t 'gateway/#' -v)"
fi
echo "gateway   $gateway_bin --config $dir/gateway.yaml   (log: $dir/gateway.log)"
echo "devices   $devices virtual devices, $rate readings/s, QoS $qos, $format payloads"
echo "database  $dir/gateway.db"
echo "dashboard http://127.0.0.1:$api_port/   (log in as admin; the password is in $dir/admin-password once the gateway started)"
echo "api       http://127.0.0.1:$api_port/api/v1/health   (devices: /api/v1/devices, metrics: /metrics; docs/api.md#authentication)"
echo "          TOKEN=\$($gateway_bin --config $dir/gateway.yaml token create --role viewer)"
echo "          curl -H \"Authorization: Bearer \$TOKEN\" http://127.0.0.1:$api_port/api/v1/devices"
if [ "$cloud" = 1 ]; then
  echo "cloud     http://127.0.0.1:$cloud_port   (database $dir/cloud.db, log $dir/cloud.log)"
  echo "          curl -H 'Authorization: Bearer $OUTPOST_CLOUD_API_KEY' http://127.0.0.1:$cloud_port/v1/devices"
fi
echo "commands  mosquitto_pub -h 127.0.0.1 -p $port ${admin_tls[*]} -t gateway/commands -m '{\"command\":\"get_status\"}'"
echo

# Sampling interval per device so that all devices together send --rate readings a second.
interval=$(awk -v d="$devices" -v r="$rate" 'BEGIN { i = d / r; if (i < 0.05) i = 0.05; printf "%.3f", i }')
scenario_args=()
[ -n "$scenario" ] && scenario_args=(--scenario "$scenario")
tls_args=()
[ "$tls" = 1 ] && tls_args=(--tls --ca "$pki/broker/ca.crt" --cert-dir "$pki/devices")
setsid "$pub_bin" --broker "127.0.0.1:$port" --devices "$devices" --interval "$interval" --qos "$qos" \
  --mode "$format" --duration "$duration" --id-prefix node- --progress 10 "${scenario_args[@]}" \
  "${tls_args[@]}" > "$dir/publisher.log" 2>&1 &
pub_pid=$!

# One line per status: stored readings, rate, devices, alerts, rejects. jq reads through a
# process substitution, so stopping mosquitto_sub (the job itself) ends it too.
setsid mosquitto_sub -h 127.0.0.1 -p "$port" "${admin_tls[@]}" -t gateway/gateway_local/status -F '%p' 2>/dev/null > >(
  jq --unbuffered -r '"\(.timestamp | floor | todate)  stored \(.ingest.stored)  db \(.local_db_records)  devices \(.devices.online)/\(.devices_count) online  alerts \(.alerts.active) active  rejected \(.ingest.rejected)  commit p99 \(.store.commit_latency_ms_p99) ms  cloud sent \(.cloud.sent.readings // "-") backlog \(.cloud.backlog.readings // "-")  rss \(.rss_bytes / 1048576 | floor) MiB"') &
sub_pid=$!

wait "$pub_pid" || true
pub_pid=""
echo "publisher finished: $(tail -n 1 "$dir/publisher.log")"
