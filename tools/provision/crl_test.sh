#!/usr/bin/env bash
# `outpost-provision crl --renew-within DAYS`, as the daily outpost-crl.timer runs it: a CRL with
# more days left is not touched, one closer to its next-update (or missing) is signed again with
# the site's full lifetime, and a bad value is a usage error (exit 2) that changes nothing.
set -euo pipefail
bin=${OUTPOST_BINARY_DIR:?}/tools/provision/outpost-provision
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dir=$tmp/pki
crl=$dir/broker/crl.pem
fail() { echo "FAIL: $*" >&2; exit 1; }
next_update() { date -d "$(openssl crl -in "$crl" -noout -nextupdate | cut -d= -f2)" +%s; }

"$bin" --dir "$dir" init --port 18883 --crl-days 100 > /dev/null
cp "$crl" "$tmp/first.pem"
out=$("$bin" --dir "$dir" crl --renew-within 30)
echo "$out" | grep -q 'valid for 99 more days\|valid for 100 more days' || fail "no days left in: $out"
cmp -s "$tmp/first.pem" "$crl" || fail "a CRL 100 days from its next-update was re-signed"

rc=0
"$bin" --dir "$dir" crl --renew-within 0 2> "$tmp/err" || rc=$?
[ "$rc" = 2 ] || fail "--renew-within 0 exited $rc, not 2"
grep -q 'renew-within' "$tmp/err" || fail "the usage error does not name the option"
cmp -s "$tmp/first.pem" "$crl" || fail "a usage error changed the CRL"

# Within the window: signed again, 100 days from now (to the minute), the serials kept.
"$bin" --dir "$dir" device add d1 --no-check > /dev/null
"$bin" --dir "$dir" device revoke d1 > /dev/null
serial=$(openssl crl -in "$crl" -noout -text | sed -n 's/.*Serial Number: *//p')
[ -n "$serial" ] || fail "the revoked serial is not in the CRL"
"$bin" --dir "$dir" crl --renew-within 120 | grep -q 're-signed' || fail "not re-signed within 120 days"
want=$(( $(date +%s) + 100 * 86400 ))
got=$(next_update)
[ $(( got > want ? got - want : want - got )) -le 120 ] || fail "next-update $got, expected about $want"
openssl crl -in "$crl" -noout -text | grep -q "$serial" || fail "re-signing lost the revoked serial"
openssl crl -in "$crl" -CAfile "$dir/ca/ca.crt" -noout 2>&1 | grep -q 'verify OK' ||
  fail "the re-signed CRL does not verify against the CA"

# A missing CRL is signed whatever the window.
rm "$crl"
"$bin" --dir "$dir" crl --renew-within 30 | grep -q 're-signed' || fail "a missing CRL was not made"
[ -s "$crl" ] || fail "no CRL after re-signing a missing one"
echo "ok: crl --renew-within keeps, renews, recreates and refuses as documented"
