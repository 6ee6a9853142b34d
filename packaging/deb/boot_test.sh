#!/usr/bin/env bash
# packaging_boot_test: the gateway package on a booted Debian 12 (issue 13, "the real thing").
#  1. cpack builds the .debs from this build directory (test_lib.sh, shared with package_test.sh);
#  2. a Debian 12 root (mmdebstrap minbase + systemd, systemd-sysv, dbus, Debian's mosquitto and
#     the package's Depends, apt lists kept) is made once and cached under the build directory;
#  3. `apt-get install ./outpost-gateway_*.deb` in the root (systemd-nspawn, no boot): apt
#     resolves every dependency from Debian's packages and installs nothing else;
#  4. `systemd-nspawn -b` boots it (private network; entered with nsenter into its PID 1, so no
#     systemd-machined or host systemd is needed) until `systemctl is-system-running` says so;
#  5. checks: the unit is active and its STATUS= line says subscribed (Type=notify, READY=1);
#     a reading published to the container's broker lands in the gateway's database; a stalled
#     store write (OUTPOST_FAULT_STALL_WRITE, set by a drop-in of this test only) makes systemd's
#     watchdog kill and restart the gateway after WatchdogSec=30s as shipped, the earlier reading
#     is still there and the stalled one (QoS 1, unacknowledged) is redelivered; in the service's
#     own mount namespace /usr and /etc are read-only (EROFS) while /var/lib/outpost is writable;
#  6. powers the container off (SIGRTMIN+4 to its PID 1; SIGKILL after 30 s) and removes the root.
# Every wait is bounded; a failure prints the unit's journal. Needs root; the first run needs
# the Debian mirror. docs/deployment.md, "Boot test", says what this proves and what it takes.
set -euo pipefail

bin=${OUTPOST_BINARY_DIR:?OUTPOST_BINARY_DIR is not set (run through ctest)}
leader=""   # the container's PID 1, as this PID namespace sees it
nsp=""      # systemd-nspawn's PID
# -r: the target's root directory too. systemd-nspawn (and systemd, for a unit's namespace) moves
# the new root over the old one and chroots into it; unless that old root is the mount
# namespace's own, entering the namespace alone lands beside the container's root, not in it.
enter() { nsenter -t "$1" -a -r -w "${@:2}"; }
in_ct() { enter "$leader" env SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat "$@"; }
fail() {
  echo "packaging_boot_test: FAIL: $*" >&2
  if [ -n "$leader" ] && kill -0 "$leader" 2>/dev/null; then
    echo "--- systemctl status outpost-gateway; journalctl -u outpost-gateway (last 60 lines)" >&2
    in_ct systemctl status --no-pager outpost-gateway >&2 || true
    in_ct journalctl -u outpost-gateway -n 60 --no-pager -o short-monotonic >&2 || true
    in_ct systemctl --failed --no-legend --no-pager >&2 || true
  fi
  exit 1
}
# shellcheck source=packaging/deb/test_lib.sh
. "$(dirname "$0")/test_lib.sh"
log() { echo "packaging_boot_test: $* ($((SECONDS - t0)) s)"; }
t0=$SECONDS

[ "$(id -u)" -eq 0 ] || fail "needs root (mmdebstrap and systemd-nspawn)"
[ "${OUTPOST_CROSS:-0}" != 1 ] || fail "a cross build's package cannot boot here (label host-only)"
for t in cpack dpkg-deb dpkg-shlibdeps mmdebstrap systemd-nspawn nsenter; do
  command -v "$t" >/dev/null || fail "$t is missing (scripts/install-deps.sh installs it)"
done

# A chroot cannot boot it (.ci/run therefore uses pivot_root): systemd-nspawn fails at once to
# make "/" a slave mount (EINVAL: not a mount point), and the kernel refuses a chrooted process a
# user namespace, which the unit's PrivateUsers=yes needs (the start fails with 217/USER).
unshare --user true 2>/dev/null || fail "this process may not create a user namespace (a chroot? \
the kernel refuses CLONE_NEWUSER there), so PrivateUsers=yes cannot work: run as the root of a \
mount namespace (pivot_root, as .ci/run does) or on the host"

work=$bin/boot-test
out=$work/out
root=$work/root
rm -rf "$out" "$root" && mkdir -p "$out" "$root"

# 1. The packages.
deb_build "$out"
deb=$(basename "$gw")

# 2. The root, cached by the release and its package list.
boot_packages=systemd,systemd-sysv,dbus,mosquitto,mosquitto-clients,sqlite3
base=$(deb_base_root "$work" bookworm "$boot_packages,$(deb_depends "$gw")" \
  --skip=cleanup/apt/lists)
tar -C "$root" -xf "$base"
log "root unpacked from $(basename "$base")"

poweroff() {
  local i
  [ -n "$nsp" ] || return 0
  if [ -n "$leader" ]; then kill -s RTMIN+4 "$leader" 2>/dev/null || true; fi
  for ((i = 0; i < 300; i++)); do kill -0 "$nsp" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$nsp" 2>/dev/null; then
    echo "packaging_boot_test: the container did not power off in 30 s; SIGKILL" >&2
    [ -z "$leader" ] || kill -KILL "$leader" 2>/dev/null || true
    kill -KILL "$nsp" 2>/dev/null || true
  fi
  wait "$nsp" 2>/dev/null || true
  nsp=""
  leader=""
}
cleanup() {
  local rc=$?
  poweroff
  rm -rf --one-file-system "$root"
  exit "$rc"
}
trap cleanup EXIT

# 3. Install with apt, as a user would. The cached root has the dependencies (from Debian's
#    mirror, by mmdebstrap), so apt must want nothing but the package: checked first with -s.
mkdir -p "$root/var/cache/outpost-test"
cp "$gw" "$root/var/cache/outpost-test/"
nspawn=(systemd-nspawn --quiet --register=no --keep-unit --link-journal=no --private-network
  -D "$root")
apt_install() {
  "${nspawn[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -q -y "$@" \
    "/var/cache/outpost-test/$deb"
}
apt_install -s >"$out/apt-simulate.log" 2>&1 || { cat "$out/apt-simulate.log"; fail "apt-get -s"; }
grep -q '^0 upgraded, 1 newly installed, 0 to remove' "$out/apt-simulate.log" \
  || { cat "$out/apt-simulate.log"; fail "apt-get would install more than the package"; }
apt_install >"$out/apt.log" 2>&1 || { cat "$out/apt.log"; fail "apt-get install ./$deb"; }
log "installed with apt-get"

# The test's fault hook (docs/deployment.md, "Watchdog"): store writes stall while a FIFO exists
# at this path. Under /run/outpost-gateway (RuntimeDirectory=), so systemd removes it when it
# restarts the gateway and the new process does not stall. The shipped unit is otherwise as is.
mkdir -p "$root/etc/systemd/system/outpost-gateway.service.d"
printf '[Service]\nEnvironment=OUTPOST_FAULT_STALL_WRITE=/run/outpost-gateway/stall\n' \
  >"$root/etc/systemd/system/outpost-gateway.service.d/boot-test-fault.conf"
: >"$root/etc/machine-id"
# What the Debian installer writes and mmdebstrap does not: without it `localhost` (the default
# config's mqtt.host) does not resolve in the container and the gateway never gets READY.
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

# 4. Boot.
machine=outpost-test-$$
"${nspawn[@]}" --boot --machine="$machine" --console=read-only >"$out/console.log" 2>&1 &
nsp=$!
for ((i = 0; i < 100; i++)); do
  leader=$(pgrep -P "$nsp" -x systemd || true)
  [ -z "$leader" ] || break
  kill -0 "$nsp" 2>/dev/null || { cat "$out/console.log"; nsp=""; fail "systemd-nspawn exited"; }
  sleep 0.1
done
[ -n "$leader" ] || { cat "$out/console.log"; fail "no systemd under systemd-nspawn after 10 s"; }
# Until its manager has made /run/systemd/system, systemctl says "offline"; until it listens,
# "Failed to connect to bus": retry those two.
deadline=$((SECONDS + 60))
while :; do
  state=$(timeout $((deadline - SECONDS)) nsenter -t "$leader" -a -r -w \
    systemctl is-system-running --wait 2>&1 || true)
  grep -qE '^offline$|Failed to connect' <<<"$state" || break
  [ $SECONDS -lt $deadline ] || break
  sleep 0.2
done
[ "$state" = running ] || { tail -n 30 "$out/console.log"; fail "system is '$state' after boot"; }
log "booted ($machine): $state"

# 5a. Started by systemd at boot (enabled by postinst), READY=1 sent.
unit() { in_ct systemctl show -p "$1" --value outpost-gateway; }
[ "$(unit ActiveState)/$(unit SubState)" = active/running ] \
  || fail "outpost-gateway is $(unit ActiveState)/$(unit SubState)"
status=$(unit StatusText)
grep -q '^running as gateway_001, subscribed at localhost:1883' <<<"$status" \
  || fail "STATUS= is '$status'"
[ "$(unit NRestarts)" = 0 ] || fail "restarted $(unit NRestarts) times before the test"
[ "$(unit WatchdogUSec)" = 30s ] || fail "WatchdogUSec is $(unit WatchdogUSec), not the unit's 30s"

# 5b. A reading through the container's Mosquitto into the gateway's database.
readings() {
  in_ct runuser -u outpost -- sqlite3 /var/lib/outpost/gateway.db \
    "SELECT coalesce(sum(readings), 0) FROM device_status WHERE device_id = '$1'" 2>/dev/null \
    || echo 0
}
wait_readings() {  # device, count, seconds
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    [ "$(readings "$1")" -ge "$2" ] && return 0
    sleep 0.2
  done
  return 1
}
in_ct mosquitto_pub -h localhost -t sensors/data \
  -m '{"deviceId":"boot_test_1","timestamp":1,"temperature":21.5,"humidity":40,"battery":90}' \
  || fail "mosquitto_pub"
wait_readings boot_test_1 1 20 || fail "the reading did not reach gateway.db in 20 s"
log "reading stored"

# 5c. The watchdog: a store write that hangs withholds WATCHDOG=1; systemd restarts the gateway.
main_pid=$(unit MainPID)
in_ct mkfifo -m 0600 /run/outpost-gateway/stall
in_ct chown outpost:outpost /run/outpost-gateway/stall
in_ct mosquitto_pub -h localhost -q 1 -t sensors/boot_test_2/data \
  -m '{"boot":1,"seq":1,"timestamp":2,"temperature":22.5}' || fail "mosquitto_pub (stall)"
for ((i = 0; i < 80 * 2; i++)); do
  [ "$(unit NRestarts)" -ge 1 ] && [ "$(unit ActiveState)" = active ] && break
  sleep 0.5
done
[ "$(unit NRestarts)" -ge 1 ] || fail "no restart within 80 s of the stalled write"
[ "$(unit ActiveState)" = active ] || fail "not active again after the restart"
journal=$(in_ct journalctl -u outpost-gateway --no-pager -o cat)
grep -q 'withholding WATCHDOG=1' <<<"$journal" || fail "the gateway did not log that it withheld the ping"
grep -q 'Watchdog timeout' <<<"$journal" || fail "systemd did not report a watchdog timeout"
[ "$(unit MainPID)" != "$main_pid" ] || fail "same MainPID after the restart"
log "watchdog restart: $(grep -m1 'Watchdog timeout' <<<"$journal")"
[ "$(readings boot_test_1)" -ge 1 ] || fail "the reading stored before the restart is gone"
wait_readings boot_test_2 1 20 || fail "the stalled QoS 1 reading was not redelivered and stored"
log "the earlier reading is kept, the stalled one redelivered"

# 5d. Writes outside its directories: in the service's own mount namespace (ProtectSystem=strict)
#     /usr and /etc are read-only, even for root; its state directory is not.
main_pid=$(unit MainPID)
for path in /usr/boot-test /etc/boot-test /var/boot-test; do
  if err=$(in_ct nsenter -t "$main_pid" -m -r -w touch "$path" 2>&1); then
    fail "$path is writable in the service's mount namespace"
  fi
  grep -q 'Read-only file system' <<<"$err" || fail "$path: '$err', expected EROFS"
done
in_ct nsenter -t "$main_pid" -m -r -w touch /var/lib/outpost/boot-test \
  || fail "the state directory is not writable in the service's mount namespace"
in_ct rm /var/lib/outpost/boot-test
log "/usr, /etc, /var read-only for the service; /var/lib/outpost writable"

# 6. Power off (cleanup), bounded.
poweroff
log "powered off"
echo "packaging_boot_test: OK ($(dpkg-deb -f "$gw" Version), $((SECONDS - t0)) s)"
