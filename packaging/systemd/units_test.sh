#!/usr/bin/env bash
# The systemd units (and outpost-crl's timer) pass `systemd-analyze verify` and score at most 2.0 in
# `systemd-analyze security --offline=yes` (issue 13). Works in a bare Debian 12 root without
# systemd as PID 1 (package systemd, from scripts/install-deps.sh). The ExecStart= binaries are
# the built ones (verify checks that they exist), in a copy of each unit. `--man=no`: verify
# would otherwise run man(1) for each Documentation= page, and a bare root has no man. The gate is checked
# too: the gateway's unit without its hardening must score above the limit.
set -euo pipefail

src=${OUTPOST_SOURCE_DIR:?set by ctest}/packaging/systemd
bin=${OUTPOST_BINARY_DIR:?set by ctest}
max_exposure=2.0
command -v systemd-analyze >/dev/null ||
  { echo "units_test: systemd-analyze not found (scripts/install-deps.sh installs systemd)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The overall exposure ("→ Overall exposure level for X.service: 1.2 OK").
exposure() {
  systemd-analyze security --offline=yes --no-pager "$1" 2>&1 |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}

fail=0
# unit:the program its ExecStart= runs, as built.
for entry in outpost-gateway:gateway/outpost-gateway outpost-cloud:cloud/outpost-cloud \
  outpost-crl:tools/provision/outpost-provision; do
  unit=${entry%%:*} built=$bin/${entry#*:}
  sed "s|/usr/bin/${built##*/}|$built|" "$src/$unit.service" >"$work/$unit.service"
  [ -x "$built" ] || { echo "units_test: $built is not built" >&2; exit 1; }
  [ -f "$src/$unit.timer" ] && cp "$src/$unit.timer" "$work/"
  if ! out=$(systemd-analyze verify --man=no "$work/$unit".* 2>&1) || [ -n "$out" ]; then
    echo "FAIL $unit.service: systemd-analyze verify:"; echo "$out"; fail=1
  fi
  score=$(exposure "$work/$unit.service")
  [ -n "$score" ] || { echo "FAIL $unit.service: no exposure level in the output"; fail=1; continue; }
  if awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
    echo "FAIL $unit.service: exposure $score > $max_exposure"
    systemd-analyze security --offline=yes --no-pager "$work/$unit.service" | grep '✗' || true
    fail=1
  else
    echo "ok   $unit.service: verify clean, exposure $score <= $max_exposure"
  fi
done

# The gate itself: the same unit with every line after "# Hardening" removed scores high.
mkdir "$work/weak"
sed '/^# Hardening/,/^\[Install\]/{/^\[Install\]/!d}' "$work/outpost-gateway.service" \
  >"$work/weak/outpost-gateway.service"
weak=$(exposure "$work/weak/outpost-gateway.service")
if awk -v s="$weak" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
  echo "ok   the gate: without its hardening the gateway's unit scores $weak"
else
  echo "FAIL the gate: the unhardened unit scored '$weak', not above $max_exposure"; fail=1
fi
exit $fail
