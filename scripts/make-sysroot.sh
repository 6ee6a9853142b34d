#!/usr/bin/env bash
# Makes a Debian 12 sysroot for cross-building Outpost for an ARM architecture: the target's libc,
# libstdc++ and every -dev library the gateway, cloud, node and their tests link, unpacked with
# mmdebstrap --variant=extract (no maintainer scripts run, so no emulator and no
# `dpkg --add-architecture` on the build host). Its dpkg database (var/lib/dpkg: status, the
# packages' file lists, shlibs and symbols files) is written from the downloaded .debs, so
# dpkg-shlibdeps --admindir can name the packages that provide the target's libraries (the cross
# Debian packages' Depends; packaging/deb/cross-shlibdeps.sh.in). Cached: rebuilt only when the
# package list, the architecture, the mirror or this layout changes (a stamp file holds their hash).
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

# The layout version: bump it when the tree this script makes changes, so cached sysroots are
# rebuilt (2: the dpkg database).
layout=2
stamp_text="$layout $arch $mirror ${packages[*]}"
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
# The downloaded .debs stay in var/cache/apt/archives (skip=cleanup/apt/cache) for the database.
mmdebstrap --quiet --mode="$mode" --variant=extract --architectures="$arch" \
  --skip=cleanup/apt/cache --include="$include" bookworm "$new" \
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

# The dpkg database of what was extracted, as dpkg would have written it on install: a status
# stanza per package (its control fields, "install ok installed"), info/NAME.list (its paths),
# info/NAME.shlibs and .symbols. NAME is PACKAGE:ARCH for Multi-Arch: same packages, as dpkg
# names them (info/format 1: that multiarch layout). Nothing runs the target's maintainer
# scripts; only dpkg-query reads this.
admin=$new/var/lib/dpkg
mkdir -p "$admin/info"
echo 1 >"$admin/info/format"
: >"$admin/status"
ctl=$(mktemp -d)
trap 'rm -rf "$ctl"' EXIT
n=0
for deb in "$new"/var/cache/apt/archives/*.deb; do
  pkg=$(dpkg-deb -f "$deb" Package)
  name=$pkg
  [ "$(dpkg-deb -f "$deb" Multi-Arch)" = same ] && name=$pkg:$(dpkg-deb -f "$deb" Architecture)
  dpkg-deb -f "$deb" | awk '{ print } NR == 1 { print "Status: install ok installed" }' >>"$admin/status"
  echo >>"$admin/status"
  dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./|/|; s|/$||; s|^$|/.|' >"$admin/info/$name.list"
  rm -rf "$ctl" && dpkg-deb -e "$deb" "$ctl"
  for f in shlibs symbols; do
    if [ -f "$ctl/$f" ]; then cp "$ctl/$f" "$admin/info/$name.$f"; fi
  done
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "make-sysroot: no .debs in $new/var/cache/apt/archives" >&2; exit 1; }

# No apt state is needed to build against it.
rm -rf "$new/var/cache/apt" "$new/var/lib/apt/lists"
printf '%s' "$stamp_hash" > "$new/.outpost-sysroot"
rm -rf --one-file-system "$dir"
mv "$new" "$dir"
realpath "$dir"
