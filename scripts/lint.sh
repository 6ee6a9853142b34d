#!/usr/bin/env bash
# Runs clang-tidy with the project's .clang-tidy (Google-style names, and a few other Google rules
# the code follows) over the project's sources in the compile database, in parallel. Prints every
# finding and a summary; exits 1 if there is any, 2 on a usage error or a missing tool.
#
# Usage: scripts/lint.sh [-j N] [--build-dir DIR] [PATH...]
#   PATH         folders or files to check, relative to the repository (default: all sources)
#   -j N         clang-tidy processes at once (default: JOBS, else nproc; at most 16)
#   --build-dir  where compile_commands.json is (default: build/release; configured with the
#                release preset if it is missing)
# Each file gets at most OUTPOST_LINT_TIMEOUT_S seconds (default 600).
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${JOBS:-$(nproc)}
build_dir=build/release
paths=()
while [ $# -gt 0 ]; do
  case "$1" in
    -j) jobs=$2; shift ;;
    -j[0-9]*) jobs=${1#-j} ;;
    --build-dir) build_dir=$2; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) echo "lint.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) paths+=("${1%/}") ;;
  esac
  shift
done
case "$jobs" in ''|*[!0-9]*|0) echo "lint.sh: -j needs a positive number, not '$jobs'" >&2; exit 2 ;; esac
[ "$jobs" -gt 16 ] && jobs=16
timeout_s=${OUTPOST_LINT_TIMEOUT_S:-600}

tidy=$(command -v clang-tidy || command -v clang-tidy-14 || true)
if [ -z "$tidy" ]; then
  echo "lint.sh: clang-tidy is not installed (scripts/install-deps.sh installs it)" >&2
  exit 2
fi
for tool in jq; do
  command -v $tool >/dev/null || { echo "lint.sh: $tool is not installed (scripts/install-deps.sh)" >&2; exit 2; }
done
if [ ! -f "$build_dir/compile_commands.json" ]; then
  if [ "$build_dir" = build/release ]; then
    cmake --preset release >/dev/null
  else
    echo "lint.sh: no $build_dir/compile_commands.json (configure that build first)" >&2
    exit 2
  fi
fi

root=$(pwd)
# Our own sources, each once (the proto fuzzers compile the library's sources again).
mapfile -t files < <(jq -r '.[].file' "$build_dir/compile_commands.json" \
  | sed "s|^$root/||" | grep -v '^/' | grep -v '^build' | sort -u)
if [ ${#paths[@]} -gt 0 ]; then
  selected=()
  for f in "${files[@]}"; do
    for p in "${paths[@]}"; do
      if [ "$f" = "$p" ] || [ "${f#"$p"/}" != "$f" ]; then selected+=("$f"); break; fi
    done
  done
  files=("${selected[@]+"${selected[@]}"}")
fi
if [ ${#files[@]} -eq 0 ]; then
  echo "lint.sh: no source in $build_dir/compile_commands.json matches: ${paths[*]}" >&2
  exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "lint.sh: clang-tidy on ${#files[@]} files, $jobs at a time"
start=$(date +%s)
# One log per file, so parallel output does not interleave; a file's run fails on a finding
# (WarningsAsErrors in .clang-tidy), a compile error or the timeout.
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -I{} sh -c '
  log="$1/$(printf %s "$2" | tr / _).log"
  timeout "$3" "$4" -p "$5" --quiet "$2" >"$log" 2>&1
  rc=$?
  if [ "$rc" -eq 124 ]; then echo "$2: clang-tidy timed out after $3 s" >>"$log"; fi
  if [ "$rc" -ne 0 ]; then echo "$2" >>"$1/failed.list"; fi' sh "$out" {} "$timeout_s" "$tidy" "$build_dir" || true
elapsed=$(( $(date +%s) - start ))

if [ ! -s "$out/failed.list" ]; then
  echo "lint.sh: ${#files[@]} files clean (${elapsed}s)"
  exit 0
fi
sort -o "$out/failed.list" "$out/failed.list"
while read -r f; do
  # clang-tidy repeats "N warnings generated." and the errors summary; keep the findings.
  grep -v -E '^[0-9]+ (warning|error)s? (generated|treated as errors)|^Suppressed|^Use -header-filter|^Error while processing' \
    "$out/$(printf %s "$f" | tr / _).log" || true
done <"$out/failed.list"
# A header finding is reported once per file that includes it; count distinct findings.
count=$(cat "$out"/*.log | grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error):' | sort -u | wc -l)
echo "lint.sh: $count distinct findings in $(wc -l <"$out/failed.list") of ${#files[@]} files (${elapsed}s)"
exit 1
