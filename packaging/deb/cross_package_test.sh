#!/usr/bin/env bash
# packaging_cross_test: the Debian packages of a cross build (presets cross-arm64, cross-armhf),
# built and checked on the build host (nothing runs under qemu):
# - cpack writes outpost-*_VERSION_ARCH.deb, each with Architecture: ARCH (the target's);
# - every program in them is an ELF for the target machine (readelf -h: AArch64 / ARM; armhf:
#   readelf -A Tag_CPU_arch: v7), stripped by the cross strip;
# - Depends names, for every library a program links (readelf -d NEEDED), the sysroot package
#   that ships it or a name that package Provides (libc6 with a version), and nothing else
#   besides the declared dependencies;
# - lintian reports no errors.
# The test's environment (tests/scripts/CMakeLists.txt): OUTPOST_BINARY_DIR, OUTPOST_DEB_ARCH,
# OUTPOST_SYSROOT, OUTPOST_TRIPLET.
set -euo pipefail

bin=${OUTPOST_BINARY_DIR:?OUTPOST_BINARY_DIR is not set (run through ctest)}
arch=${OUTPOST_DEB_ARCH:?OUTPOST_DEB_ARCH is not set (a cross build registers this test)}
sysroot=${OUTPOST_SYSROOT:?OUTPOST_SYSROOT is not set}
triplet=${OUTPOST_TRIPLET:?OUTPOST_TRIPLET is not set}
fail() { echo "packaging_cross_test: FAIL: $*" >&2; exit 1; }
# shellcheck source=packaging/deb/test_lib.sh
. "$(dirname "$0")/test_lib.sh"
for t in cpack dpkg-deb dpkg-shlibdeps dpkg-query lintian readelf file "$triplet-objdump"; do
  command -v "$t" >/dev/null || fail "$t is missing (scripts/install-deps.sh installs it)"
done
case "$arch" in
  arm64) machine=AArch64 ;;
  armhf) machine=ARM ;;
  *) fail "no expected ELF machine for $arch" ;;
esac
# What the packages declare besides shlibs (packaging/CMakeLists.txt: useradd in postinst).
declared=passwd

out=$bin/packaging-cross-test
rm -rf "$out" && mkdir -p "$out"

# 1. The packages, named and labelled for the target.
deb_build "$out" "$arch"
version=$(dpkg-deb -f "$gw" Version)
for p in outpost-gateway outpost-cloud outpost-provision outpost-node; do
  [ -f "$out/${p}_${version}_$arch.deb" ] || fail "no ${p}_${version}_$arch.deb among: ${debs[*]}"
done

# 2. Per package: the programs are the target's, stripped; Depends is what they link.
admin=$sysroot/var/lib/dpkg
provider() {  # the sysroot package that ships the library SONAME for the target
  { dpkg-query --admindir="$admin" -S "/lib/$triplet/$1" "/usr/lib/$triplet/$1" 2>/dev/null \
    || true; } | sed 's/:.*//' | head -1
}
names_for() {  # PACKAGE and what it Provides (libspdlog1.10: libspdlog1.10-fmt9), one a line
  echo "$1"
  dpkg-query --admindir="$admin" -W -f='${Provides}' "$1" | tr ',' '\n' | sed 's/(.*)//; s/ //g' \
    | grep -v '^$' || true
}
for d in "${debs[@]}"; do
  name=$(dpkg-deb -f "$d" Package)
  root=$out/x/$name
  mkdir -p "$root" && dpkg-deb -x "$d" "$root"
  mapfile -t progs < <(find "$root/usr/bin" -type f)
  [ ${#progs[@]} -gt 0 ] || fail "$name has no program in /usr/bin"
  needed=()
  for p in "${progs[@]}"; do
    readelf -h "$p" | grep -q "Machine: *$machine\$" \
      || fail "$name: ${p#"$root"} is not $machine: $(readelf -h "$p" | grep Machine)"
    if [ "$arch" = armhf ]; then
      readelf -A "$p" | grep -q 'Tag_CPU_arch: v7$' \
        || fail "$name: ${p#"$root"} is not ARMv7: $(readelf -A "$p" | grep Tag_CPU_arch)"
    fi
    file "$p" | grep -q ', stripped' || fail "$name: ${p#"$root"} is not stripped: $(file -b "$p")"
    mapfile -t -O ${#needed[@]} needed < <(readelf -d "$p" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  done
  depends=$(dpkg-deb -f "$d" Depends)
  echo "$name ($arch) Depends: $depends"
  names=$(deb_depends "$d" | tr ',' '\n')
  want=""
  for so in $(printf '%s\n' "${needed[@]}" | sort -u); do
    pkg=$(provider "$so")
    [ -n "$pkg" ] || fail "$name links $so, which no package in $sysroot provides"
    ok=$(names_for "$pkg")
    grep -qxF -f <(echo "$ok") <<<"$names" \
      || fail "$name links $so ($pkg) but Depends names none of ${ok//$'\n'/ }: $depends"
    want+="$ok"$'\n'
  done
  for n in $names; do
    grep -qx "$n" <<<"$want$declared" || fail "$name: Depends names $n, which none of its programs links"
  done
  grep -Eq '(^|, )libc6 \(>= [0-9]' <<<"$depends" || fail "$name: libc6 without a version: $depends"
done

# 3. lintian: no errors (the warnings that remain are the native packages' ones, explained in
#    docs/deployment.md, "Packages").
lintian --fail-on error --tag-display-limit 0 "${debs[@]}" | tee "$out/lintian.log" \
  || fail "lintian reported errors"

echo "packaging_cross_test: OK (${#debs[@]} $arch packages)"
