#!/usr/bin/env bash
# Sets up and runs the whole test suite: installs dependencies (Debian 12 packages, including
# nodejs, npm and chromium for the dashboard), builds the release preset (which runs `npm ci`
# for web/ into the build dir and builds the dashboard), checks names with clang-tidy
# (scripts/lint.sh), runs every unit and integration test (real Mosquitto, SQLite files,
# PostgreSQL, headless Chromium), then builds the libFuzzer targets with clang and runs each
# briefly from its seed corpus. Then it cross-builds for arm64 and armhf (scripts/make-sysroot.sh,
# presets cross-arm64 and cross-armhf; only the targets those tests need) and runs under
# qemu-user the unit tests and the gateway's integration tests of both, then builds and
# checks (on the host) the arm64 and armhf Debian packages (docs/deployment.md, "ARM builds").
#
# Usage: scripts/test.sh [--no-lint] [--no-fuzz] [--no-cross] [--fuzz-seconds N] [-- extra ctest args]
#   --no-cross  skip the arm64 and armhf cross builds, their emulated tests and their packages
#               (--cross: the default, kept)
# Environment: JOBS (build parallelism, default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz=1
lint=1
cross=1
fuzz_seconds=${OUTPOST_FUZZ_SECONDS:-20}
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-fuzz) fuzz=0 ;;
    --no-lint) lint=0 ;;
    --cross) cross=1 ;;
    --no-cross) cross=0 ;;
    --fuzz-seconds) fuzz_seconds=$2; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
jobs=${JOBS:-$(nproc)}

scripts/install-deps.sh
echo "== build (release)"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
if [ "$lint" = 1 ]; then
  echo "== lint (clang-tidy)"
  scripts/lint.sh -j "$jobs"
fi
echo "== unit and integration tests"
ctest --preset release -j "$jobs" "${ctest_args[@]}"

if [ "$fuzz" = 1 ]; then
  echo "== fuzz (${fuzz_seconds}s per target)"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$jobs" --target fuzzers
  OUTPOST_FUZZ_SECONDS=$fuzz_seconds ctest --preset fuzz
fi
# One cross build: ARCH, then the ctest selections it runs under qemu-user.
cross_test() {
  local arch=$1; shift
  local sets=("$@") t0=$SECONDS t1 t2 set
  echo "== cross build ($arch) and tests under qemu-user"
  scripts/make-sysroot.sh "$arch" >/dev/null
  t1=$SECONDS
  cmake --preset "cross-$arch" >/dev/null
  # Build only what the selections run: each test's executable (target names are executable
  # names) and the gateway the integration tests start. The preset itself leaves out
  # emulation-slow and host-only tests.
  local bin targets
  bin=$(pwd)/build/cross-$arch
  mapfile -t targets < <(for set in "${sets[@]}"; do
      # shellcheck disable=SC2086  # a set is several ctest arguments
      ctest --preset "cross-$arch" -N --show-only=json-v1 $set
    done | jq -r --arg b "$bin/" '.tests[].command[] | select(startswith($b)) | split("/") | last' |
    sort -u)
  cmake --build --preset "cross-$arch" -j "$jobs" --target outpost-gateway "${targets[@]}"
  t2=$SECONDS
  for set in "${sets[@]}"; do
    # shellcheck disable=SC2086
    ctest --preset "cross-$arch" -j "$jobs" $set
  done
  t3=$SECONDS
  # The Debian packages for ARCH, checked on the build host (packaging_cross_test: names,
  # Architecture, ELF machine, Depends from the sysroot, lintian): the other programs they hold,
  # then cpack.
  cmake --build --preset "cross-$arch" -j "$jobs" --target outpost-cloud outpost-node outpost-provision
  ctest --preset "cross-$arch" -L '^package$'
  echo "== cross ($arch): sysroot $((t1 - t0)) s, build $((t2 - t1)) s, tests $((t3 - t2)) s," \
    "packages $((SECONDS - t3)) s"
}

if [ "$cross" = 1 ]; then
  # mmdebstrap's root mode needs root; a user (README: "or a user with sudo") gets a user namespace.
  if [ "$(id -u)" -ne 0 ]; then export OUTPOST_SYSROOT_MODE=${OUTPOST_SYSROOT_MODE:-unshare}; fi
  # Both: the unit tests and the gateway's integration tests. arm64 for the Pi 3/4/5 on a 64-bit
  # OS; armhf (ARMv7, 32-bit OS) for what 32 bits change (sizes, time, alignment).
  cross_test arm64 "-L unit" "-L integration -R ^gateway_"
  cross_test armhf "-L unit" "-L integration -R ^gateway_"
fi
echo "== all tests passed"
