#!/usr/bin/env bash
# The README's scripts behave as a user on a bare machine expects: they say what they do, and
# --help prints usage, not shell code. Runs the real scripts; only dpkg-query is replaced, by one
# that answers as dpkg-query does on a machine that has none of the packages.
set -uo pipefail
src=${OUTPOST_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# install_deps_names_missing_packages_on_a_bare_machine: dpkg-query exits 1 for names it does not
# know. The script used to end there, silently, with exit 1 (set -e in a command substitution).
mkdir -p "$tmp/bin"
cat > "$tmp/bin/dpkg-query" <<'FAKE'
#!/bin/sh
for a in "$@"; do case "$a" in -*|*'$'*) ;; *) echo "dpkg-query: no packages found matching $a" >&2 ;; esac; done
exit 1
FAKE
chmod +x "$tmp/bin/dpkg-query"
out=$(PATH="$tmp/bin:$PATH" bash "$src/scripts/install-deps.sh" --check 2>&1)
rc=$?
if [ "$rc" -eq 1 ] && grep -q "missing [0-9][0-9]* of [0-9][0-9]* packages:.*mosquitto.*chromium" <<<"$out"; then
  pass install_deps_names_missing_packages_on_a_bare_machine
else
  fail install_deps_names_missing_packages_on_a_bare_machine "rc=$rc, output: $out"
fi

# install_deps_rejects_unknown_options
out=$(bash "$src/scripts/install-deps.sh" --bogus 2>&1)
rc=$?
if [ "$rc" -eq 2 ] && grep -q "unknown option --bogus" <<<"$out"; then
  pass install_deps_rejects_unknown_options
else
  fail install_deps_rejects_unknown_options "rc=$rc, output: $out"
fi

# help_prints_usage_not_code: test.sh --help printed a stray "set -euo pipefail".
for s in test.sh run-local.sh install-deps.sh lint.sh; do
  out=$(bash "$src/scripts/$s" --help 2>&1)
  rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "help_prints_usage_not_code ($s)" "exit $rc"
  elif ! grep -q "^Usage: scripts/$s" <<<"$out"; then
    fail "help_prints_usage_not_code ($s)" "no Usage line: $out"
  elif grep -qE '^(set |cd |[a-z_]+=)' <<<"$out"; then
    fail "help_prints_usage_not_code ($s)" "shell code in the help: $out"
  else
    pass "help_prints_usage_not_code ($s)"
  fi
done

# no_tracked_artifacts: logs and databases are not part of the tree.
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  tracked=$(git -C "$src" ls-files | grep -E '\.(log|db|db-wal|db-shm)$' || true)
  if [ -z "$tracked" ]; then pass no_tracked_artifacts; else fail no_tracked_artifacts "$tracked"; fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
