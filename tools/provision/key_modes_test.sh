#!/usr/bin/env bash
# outpost-provision's generated tree holds no world-readable or group-writable secret: every key
# and secrets.h is checked, under umask 000 (the program sets modes itself), after init, a batch of
# devices, a revoke and a second run. Also: --count 100 within 30 s, list --expiring, and a CSR
# is signed with the id as CN (and not self-checked: its key is on the device) while a bad one is
# refused with exit status 2. No broker runs here: --no-check keeps the batches from depending on
# what listens on this machine's ports.
set -euo pipefail
bin=${OUTPOST_BINARY_DIR:?}/tools/provision/outpost-provision
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 000
dir=$tmp/pki
"$bin" --dir "$dir" init --port 18883 > /dev/null
start=$(date +%s%N)
"$bin" --dir "$dir" device add --count 100 --prefix n --no-check > /dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "device add --count 100: ${ms} ms (limit 30000)"
[ "$ms" -le 30000 ] || { echo "FAIL: --count 100 took ${ms} ms" >&2; exit 1; }
"$bin" --dir "$dir" device revoke n007 > /dev/null
"$bin" --dir "$dir" init > /dev/null
"$bin" --dir "$dir" device add --count 100 --prefix n --no-check > /dev/null
[ "$(grep -vc '^#' "$dir/devices.tsv")" = 100 ] || { echo "FAIL: the registry should have 100 rows" >&2; exit 1; }

# A device that makes its own key sends a CSR: no key or secrets.h is written for it.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=ignored \
  -keyout "$tmp/own.key" -out "$tmp/own.csr" 2> /dev/null
chmod 600 "$tmp/own.key"
"$bin" --dir "$dir" device add csr1 --csr "$tmp/own.csr" > "$tmp/out"
grep -q 'self-check: csr1 not checked: its key is on the device (--csr)' "$tmp/out" ||
  { echo "FAIL: a CSR device's self-check: $(cat "$tmp/out")" >&2; exit 1; }
[ ! -e "$dir/devices/csr1/device.key" ] && [ ! -e "$dir/devices/csr1/secrets.h" ] ||
  { echo "FAIL: a CSR device got a key" >&2; exit 1; }
openssl verify -CAfile "$dir/ca/ca.crt" "$dir/devices/csr1/device.crt" > /dev/null
openssl x509 -in "$dir/devices/csr1/device.crt" -noout -subject | grep -q 'CN = csr1' ||
  { echo "FAIL: the CSR device's CN is not its id" >&2; exit 1; }
echo garbage > "$tmp/bad.csr"
rc=0; "$bin" --dir "$dir" device add csr2 --csr "$tmp/bad.csr" 2> "$tmp/err" || rc=$?
[ "$rc" = 2 ] && grep -q 'not a PEM certificate signing request' "$tmp/err" ||
  { echo "FAIL: a bad CSR gave exit $rc: $(cat "$tmp/err")" >&2; exit 1; }

# list --expiring: only the certificate that ends within the span; a bad span is refused.
"$bin" --dir "$dir" device add soon --days 10 --no-check > /dev/null
expiring=$("$bin" list --dir "$dir" --expiring 30d | tail -n +2 | cut -f1)
[ "$expiring" = soon ] || { echo "FAIL: list --expiring 30d gave '$expiring'" >&2; exit 1; }
rc=0; "$bin" --dir "$dir" list --expiring soon 2> /dev/null || rc=$?
[ "$rc" = 2 ] || { echo "FAIL: a bad --expiring gave exit $rc" >&2; exit 1; }
rc=0; "$bin" --dir "$tmp/none" list 2> /dev/null || rc=$?
[ "$rc" = 3 ] || { echo "FAIL: list outside a site gave exit $rc" >&2; exit 1; }

secrets=0 bad=0
while IFS= read -r -d '' f; do
  secrets=$((secrets + 1))
  mode=$(stat -c %a "$f")
  if [ $(( 8#$mode & 8#024 )) -ne 0 ] || [ $(( 8#$mode & 8#004 )) -ne 0 ]; then
    echo "FAIL: $f has mode $mode (world-readable or group-writable)" >&2
    bad=$((bad + 1))
  fi
done < <(find "$tmp" \( -name '*.key' -o -name 'secrets.h' \) -print0)
[ "$(stat -c %a "$dir/ca/ca.key")" = 600 ] || { echo "FAIL: ca.key is not 0600" >&2; exit 1; }
[ "$(stat -c %a "$dir/devices/n001/device.key")" = 600 ] || { echo "FAIL: device.key is not 0600" >&2; exit 1; }
grep -q 'PRIVATE KEY' "$dir/devices/n001/config.h" && { echo "FAIL: config.h holds the key" >&2; exit 1; }
grep -qx 'secrets.h' "$dir/devices/n001/.gitignore" || { echo "FAIL: no .gitignore for secrets.h" >&2; exit 1; }
echo "$secrets secret files checked, $bad bad"
[ "$secrets" -ge 203 ] && [ "$bad" = 0 ]
