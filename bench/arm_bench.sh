#!/usr/bin/env bash
# arm_bench: what a Raspberry Pi user cares about, measured on the arm64 build of
# outpost-gateway under qemu-user against the amd64 build in the same run, runs alternating:
#   - CPU per reading: user+sys seconds of the gateway process / readings stored;
#   - memory: the gateway's VmHWM with 1,000 devices, and idle (no broker) as the baseline;
#   - disk: bytes the gateway sent to storage (/proc/PID/io write_bytes) and the size of its
#     database + WAL at the end, per reading, against the mean payload size.
# Each run is ingest_bench's fixed-load part (--only latency: QoS 1, storage.synchronous full,
# a fresh Mosquitto, outpost-bench-pub) with its --json lines; the amd64 ingest_bench drives
# both gateways, the arm64 one through `qemu-aarch64 -L SYSROOT`. Prints medians, every run and
# the arm64/amd64 ratio. Under qemu the CPU figures measure the emulator, not a Pi; the disk
# bytes and the memory growth with devices are what carry over. docs/benchmarks.md has results.
#
# Usage: bench/arm_bench.sh [--runs N] [--rate R] [--seconds S] [--devices D]
#                           [--native DIR] [--cross DIR] [--sysroot DIR]
#   --runs     runs per architecture, 1..9 (default 3)
#   --rate     offered load, readings/s (default 1000)
#   --seconds  length of each run (default 20; each run is capped at 3 x that + 60 s)
#   --devices  virtual devices (default 1000)
#   --native   amd64 build dir with bench/ingest_bench (default build/release)
#   --cross    arm64 build dir with gateway/outpost-gateway (default build/cross-arm64)
#   --sysroot  arm64 sysroot (default build/sysroot-arm64)
# Build first: cmake --build --preset release --target ingest_bench and
# cmake --build --preset cross-arm64 --target outpost-gateway (docs/deployment.md, ARM builds).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3 rate=1000 seconds=20 devices=1000
native=build/release cross=build/cross-arm64 sysroot=build/sysroot-arm64
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift ;;
    --rate) rate=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --devices) devices=$2; shift ;;
    --native) native=$2; shift ;;
    --cross) cross=$2; shift ;;
    --sysroot) sysroot=$2; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "arm_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$runs" in [1-9]) ;; *) echo "arm_bench: --runs must be 1..9, not '$runs'" >&2; exit 2 ;; esac
for v in rate seconds devices; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "arm_bench: --$v must be a positive integer" >&2; exit 2; }
done
bench=$native/bench/ingest_bench
gw_amd64=$native/gateway/outpost-gateway
gw_arm64=$cross/gateway/outpost-gateway
for f in "$bench" "$gw_amd64" "$gw_arm64"; do
  [ -x "$f" ] || { echo "arm_bench: $f is not built (see --help)" >&2; exit 1; }
done
[ -f "$sysroot/.outpost-sysroot" ] || {
  echo "arm_bench: $sysroot is not a sysroot (scripts/make-sysroot.sh arm64)" >&2; exit 1; }
sysroot=$(realpath "$sysroot")
gw_arm64=$(realpath "$gw_arm64")

work=$(mktemp -d "${TMPDIR:-/tmp}/outpost-arm-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
# ingest_bench starts the gateway by path; exec keeps the PID, so its /proc figures are qemu's,
# which runs the guest and translates it (both counted).
printf '#!/bin/sh\nexec qemu-aarch64 -L %s %s "$@"\n' "$sysroot" "$gw_arm64" > "$work/gw-arm64"
chmod 755 "$work/gw-arm64"

# Idle VmHWM: the gateway started with no broker to reach (it retries), read once its database
# exists plus one second. For arm64 this is mostly qemu's own memory.
idle_hwm() {
  local gw=$1 dir=$work/idle.$RANDOM pid deadline
  mkdir -p "$dir"
  printf 'gateway:\n  id: idle_gw\n  log_level: warn\nmqtt:\n  host: 127.0.0.1\n  port: 1\n'\
'storage:\n  path: %s/gateway.db\nhttp:\n  listen: 127.0.0.1:0\n' "$dir" > "$dir/gateway.yaml"
  "$gw" --config "$dir/gateway.yaml" > "$dir/log" 2>&1 &
  pid=$!
  deadline=$((SECONDS + 30))
  while [ ! -s "$dir/gateway.db" ] && [ $SECONDS -lt $deadline ] && kill -0 "$pid" 2>/dev/null; do
    sleep 0.1
  done
  sleep 1
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || echo 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

timeout_s=$((seconds * 3 + 60))
start=$SECONDS
echo "arm_bench: $runs runs per architecture, $devices devices at $rate readings/s for $seconds s"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq 1 "$runs"); do
  for arch in amd64 arm64; do
    gw=$gw_amd64
    [ "$arch" = arm64 ] && gw=$work/gw-arm64
    printf '[run %d/%d, %4d s] %s ... ' "$i" "$runs" $((SECONDS - start)) "$arch"
    "$bench" --only latency --repeat 1 --json --gateway "$gw" --devices "$devices" \
      --latency-rate "$rate" --latency-seconds "$seconds" --timeout "$timeout_s" \
      > "$work/$arch.$i.log" 2>&1 || { echo "failed:"; tail -20 "$work/$arch.$i.log"; exit 1; }
    line=$(sed -n 's/^RESULT //p' "$work/$arch.$i.log" | tail -1)
    [ -n "$line" ] || { echo "no result:"; tail -20 "$work/$arch.$i.log"; exit 1; }
    echo "$line" >> "$work/$arch.jsonl"
    jq -r '"\(.stored) of \(.sent) stored, CPU \(.cpu_s) s, HWM \(.hwm_mb | . * 10 | round / 10) MB, "
      + "\(.write_bytes) B written"' <<<"$line"
  done
done
idle_amd64=$(idle_hwm "$gw_amd64")
idle_arm64=$(idle_hwm "$work/gw-arm64")

# metric ARCH JQ-EXPR: every run's value, space-separated.
metric() { jq -r "$2" "$work/$1.jsonl" | tr '\n' ' '; }
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ v[NR] = $1 }
  END { printf "%.6g", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
# each FORMAT "V1 V2 ...": every value in FORMAT, space-separated.
# shellcheck disable=SC2059  # the format is one of this file's own
each() { local v out=""; for v in $2; do out+="${out:+ }$(printf "$1" "$v")"; done; echo "$out"; }
row() {  # name, jq expression, printf format
  local a b ma mb
  a=$(metric amd64 "$2"); b=$(metric arm64 "$2")
  ma=$(median "$a"); mb=$(median "$b")
  # shellcheck disable=SC2059  # $3 is a format of this file's own rows
  printf '| %-40s | %10s | %10s | %6s | %s | %s |\n' "$1" "$(printf "$3" "$ma")" \
    "$(printf "$3" "$mb")" "$(ratio "$mb" "$ma")" "$(each "$3" "$a")" "$(each "$3" "$b")"
}
payload=$(median "$(metric amd64 .payload_bytes)")
echo
echo "Results: medians of $runs runs, $devices devices at $rate readings/s (QoS 1, synchronous full)"
echo
printf '| %-40s | %10s | %10s | %6s | %s | %s |\n' measurement amd64 "arm64 qemu" ratio \
  "runs amd64" "runs arm64"
echo "|---|---|---|---|---|---|"
row "readings stored per run" '.stored' '%.0f'
row "CPU per reading, us (user+sys)" '.cpu_s / .stored * 1e6' '%.1f'
row "VmHWM at $devices devices, MB" '.hwm_mb' '%.1f'
printf '| %-40s | %10s | %10s | %6s | | |\n' "VmHWM idle (no broker), MB" "$idle_amd64" \
  "$idle_arm64" "$(ratio "$idle_arm64" "$idle_amd64")"
row "disk writes per reading, B (write_bytes)" '.write_bytes / .stored' '%.0f'
row "database + WAL per reading, B" '.db_bytes / .stored' '%.0f'
wb_amd64=$(median "$(metric amd64 '.write_bytes / .stored')")
wb_arm64=$(median "$(metric arm64 '.write_bytes / .stored')")
echo
echo "Disk writes per reading against the mean payload ($payload B): amd64 $(ratio "$wb_amd64" \
  "$payload"), arm64 $(ratio "$wb_arm64" "$payload")."
echo "Total $((SECONDS - start)) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
echo "Under qemu-user the CPU figures are the emulator's cost, not a Pi's; VmHWM includes qemu."
