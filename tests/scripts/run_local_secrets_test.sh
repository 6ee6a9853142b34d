#!/usr/bin/env bash
# scripts/run-local.sh runs TLS with per-device certificates and the generated ACL by default, and
# every file it, outpost-provision and the gateway create that holds a key, a password or a token
# is 0600, whatever the umask (run under umask 000 here). The broker's own key and ACL are the
# documented exception: root:mosquitto 0640 (group-readable for Mosquitto, never world-readable).
# Readings must reach both the gateway's and the cloud's database through the TLS broker, and a
# second run keeps the site's CA. docs/security.md ("Secrets on disk").
set -euo pipefail
src=${OUTPOST_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 000
dir=$tmp/run
fail() { echo "FAIL: $*" >&2; exit 1; }

start=$(date +%s%N)
"$src/scripts/run-local.sh" --no-build --devices 20 --duration 4 --dir "$dir" > "$tmp/out1" 2>&1 ||
  { cat "$tmp/out1" >&2; fail "run-local.sh failed"; }
echo "first run (init, 20 devices provisioned, 4 s of readings): $(( ($(date +%s%N) - start) / 1000000 )) ms"
grep -q 'TLS, per-device certificates and ACL' "$tmp/out1" || fail "the run did not say it uses TLS"
grep -q '^listener .* 127.0.0.1$' "$dir/mosquitto.conf" || fail "the broker is not bound to loopback"
grep -q '^require_certificate true' "$dir/mosquitto.conf" || fail "the broker does not require certificates"
grep -q '^acl_file ' "$dir/mosquitto.conf" || fail "the broker has no ACL"
grep -q '^allow_anonymous true' "$dir/mosquitto.conf" && fail "the broker allows anonymous clients"
gw=$(sqlite3 "$dir/gateway.db" 'SELECT coalesce(sum(readings), 0) FROM device_status' 2> /dev/null || echo 0)
cl=$(sqlite3 "$dir/cloud.db" 'SELECT count(*) FROM readings' 2> /dev/null || echo 0)
echo "gateway stored $gw readings, cloud $cl"
[ "$gw" -gt 0 ] && [ "$cl" -gt 0 ] || { cat "$dir/publisher.log" "$dir/gateway.log" >&2; fail "no readings in both databases"; }
devs=$(sqlite3 "$dir/gateway.db" "SELECT count(*) FROM device_status WHERE readings > 0 AND device_id LIKE 'node-000%'")
[ "$devs" = 20 ] || fail "readings from $devs of 20 devices"
ca_before=$(sha256sum < "$dir/pki/ca/ca.crt")

# A second run keeps the CA and the devices' certificates (provisioning is idempotent).
"$src/scripts/run-local.sh" --no-build --devices 20 --duration 2 --dir "$dir" > "$tmp/out2" 2>&1 ||
  { cat "$tmp/out2" >&2; fail "the second run failed"; }
[ "$(sha256sum < "$dir/pki/ca/ca.crt")" = "$ca_before" ] || fail "a re-run replaced the CA"
grep -q 'kept node-00019' "$dir/provision.log" || fail "a re-run did not keep the devices"

# The seed's flat topics need devices provisioned in seed mode: the native devices of this
# folder are refused with a clear error.
rc=0
"$src/scripts/run-local.sh" --no-build --devices 20 --duration 1 --format seed --dir "$dir" \
  > "$tmp/out3" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q 'provisioned for the other --format' "$tmp/out3" ||
  { cat "$tmp/out3" >&2; fail "--format seed on native devices gave exit $rc"; }

# Every secret file in the run's tree: keys, secrets.h, the admin password, the auth database
# (password hashes, sessions, token hashes) and anything holding a PEM private key.
checked=0 bad=0
while IFS= read -r -d '' f; do
  case "$f" in
    *.key|*/secrets.h|*/admin-password|*/auth.sqlite*) ;;
    *) grep -q 'PRIVATE KEY' "$f" 2> /dev/null || continue ;;
  esac
  checked=$((checked + 1))
  mode=$(stat -c %a "$f")
  allowed=600
  case "$f" in "$dir/pki/broker/"*) allowed=640 ;; esac   # Mosquitto reads them through its group
  if [ $(( 8#$mode & ~8#$allowed & 8#777 )) -ne 0 ]; then
    echo "FAIL: $f has mode $mode (expected at most $allowed)" >&2
    bad=$((bad + 1))
  fi
done < <(find "$dir" -type f -print0)
echo "$checked secret files checked, $bad too open"
[ "$checked" -ge 25 ] || fail "only $checked secret files found: the walk missed the tree"
[ -f "$dir/admin-password" ] || fail "no admin-password in the gateway's state dir"
[ "$bad" = 0 ]
