#!/usr/bin/env bash
# Makes a Debian 12 sysroot for cross-building Outpost for an ARM architecture: the target's libc,
# libstdc++ and every -dev library the gateway, cloud, node and their tests link, unpacked with
# mmdebstrap --variant=extract (no maintainer scripts run, so no emulator and no
# `dpkg --add-architecture` on the build host). Cached: rebuilt only when the package list, the
# architecture or the mirror changes (a stamp file holds their hash).
#
# Usage: scripts/make-sysroot.sh ARCH [DIR]
#   ARCH  arm64 (ARMv8, 64-bit) or armhf (ARMv7 with VFP, 32-bit)
#   DIR   where the sysroot goes (default: build/sysroot-ARCH); prints it on success
# Environment: OUTPOST_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs root (mmdebstrap --mode=root), or set OUTPOST_SYSROOT_MODE=unshare for a user namespace.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  arm64|armhf) arch=$1 ;;
  -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
  "") echo "make-sysroot: missing ARCH (arm64 or armhf; see --help)" >&2; exit 2 ;;
  *) echo "make-sysroot: unknown ARCH '$1' (expected arm64 or armhf)" >&2; exit 2 ;;
esac
dir=${2:-build/sysroot-$arch}
mirror=${OUTPOST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mode=${OUTPOST_SYSROOT_MODE:-root}

# The target-architecture half of scripts/install-deps.sh: what the C++ build finds with
# find_package / pkg-config, and what the binaries load at run time under qemu (-L DIR).
# Header-only libraries come from here too, so their headers match the target's libraries.
packages=(
  libc6-dev libstdc++-12-dev libgcc-12-dev
  libssl-dev libsqlite3-dev zlib1g-dev
  libasio-dev libboost-dev libsimdjson-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
  libspdlog-dev libfmt-dev libsodium-dev libpqxx-dev libpq-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)

stamp_text="$arch $mirror ${packages[*]}"
stamp_hash=$(printf '%s' "$stamp_text" | sha256sum | cut -d' ' -f1)
if [ -f "$dir/.outpost-sysroot" ] && [ "$(cat "$dir/.outpost-sysroot")" = "$stamp_hash" ]; then
  echo "make-sysroot: $dir is up to date" >&2
  realpath "$dir"
  exit 0
fi

command -v mmdebstrap >/dev/null || {
  echo "make-sysroot: mmdebstrap is not installed (scripts/install-deps.sh installs it)" >&2
  exit 1
}
if [ "$mode" = root ] && [ "$(id -u)" -ne 0 ]; then
  echo "make-sysroot: --mode=root needs root; run as root or set OUTPOST_SYSROOT_MODE=unshare" >&2
  exit 1
fi

new="$dir.new"
rm -rf --one-file-system "$new"
mkdir -p "$(dirname "$dir")"
echo "make-sysroot: making $arch sysroot in $dir (${#packages[@]} packages and their dependencies)" >&2
include=$(IFS=,; echo "${packages[*]}")
mmdebstrap --quiet --mode="$mode" --variant=extract --architectures="$arch" \
  --include="$include" bookworm "$new" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"

# Absolute symlinks point into the build host's root once the tree is a sysroot; make them
# relative so the linker and qemu -L resolve them inside it.
while IFS= read -r -d '' link; do
  target=$(readlink "$link")
  case "$target" in
    /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$new$target")" "$link" ;;
  esac
done < <(find "$new" -type l -print0)

# No apt or dpkg state is needed to build against it.
rm -rf "$new/var/cache/apt" "$new/var/lib/apt/lists"
printf '%s' "$stamp_hash" > "$new/.outpost-sysroot"
rm -rf --one-file-system "$dir"
mv "$new" "$dir"
realpath "$dir"
