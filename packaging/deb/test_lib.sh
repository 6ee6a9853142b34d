# shellcheck shell=bash
# Shared by the packaging tests (package_test.sh, boot_test.sh); sourced, not run.
# The caller sets `fail` (prints and exits) before sourcing.
#
#   deb_build OUT [ARCH] cpack -G DEB from $OUTPOST_BINARY_DIR into OUT; sets `debs` (all) and
#                        `gw` (outpost-gateway's .deb); checks each one's Architecture (ARCH,
#                        default: the build host's) and libc6.
#   deb_depends DEB...   the packages' Depends, one comma-separated list of names (no versions,
#                        the first of each alternative).
#   deb_base_root DIR RELEASE INCLUDE [mmdebstrap options...]
#                        prints the path of a cached Debian root tarball (mmdebstrap minbase +
#                        INCLUDE) under DIR, made on first use (needs root and the Debian mirror)
#                        and then reused: its name is keyed by RELEASE, INCLUDE and the options.

deb_build() {
  local out=$1 arch=${2:-$(dpkg --print-architecture)} d
  (cd "$OUTPOST_BINARY_DIR" && cpack -G DEB -B "$out" >"$out/cpack.log" 2>&1) \
    || { cat "$out/cpack.log"; fail "cpack"; }
  shopt -s nullglob
  debs=("$out"/*.deb)
  shopt -u nullglob
  [ ${#debs[@]} -ge 2 ] || fail "cpack wrote ${#debs[@]} packages, expected at least 2"
  gw=$(printf '%s\n' "${debs[@]}" | grep '/outpost-gateway_' || true)
  [ -n "$gw" ] || fail "no outpost-gateway package among: ${debs[*]}"
  for d in "${debs[@]}"; do
    [ "$(dpkg-deb -f "$d" Architecture)" = "$arch" ] || fail "$d: Architecture is not $arch"
    dpkg-deb -f "$d" Depends | grep -q 'libc6' || fail "$d: Depends lacks shlibdeps' libc6"
  done
}

deb_depends() {
  local d
  for d in "$@"; do dpkg-deb -f "$d" Depends; done | tr ',' '\n' \
    | sed 's/(.*)//; s/|.*//; s/ //g' | grep -v '^$' | sort -u | tr '\n' ',' | sed 's/,$//'
}

deb_base_root() {
  local dir=$1 release=$2 include=$3 key base partial mirror
  shift 3
  key=$(printf '%s\n' "$include" "$@" | md5sum | cut -c1-12)
  base=$dir/base-$release-$key.tar
  if [ ! -s "$base" ]; then
    mirror=http://deb.debian.org/debian
    [ -f /etc/apt/sources.list.d/debian.sources ] && mirror=/etc/apt/sources.list.d/debian.sources
    [ -s /etc/apt/sources.list ] && mirror=/etc/apt/sources.list
    echo "making the base root (once): $release minbase + $include $*" >&2
    mkdir -p "$dir"
    # (the name ends in .tar: mmdebstrap picks the output format from it)
    partial=$dir/base-$release-$key.partial.tar
    rm -rf "$partial"
    timeout 480 mmdebstrap --quiet --variant=minbase --include="$include" "$@" "$release" \
      "$partial" "$mirror" </dev/null >&2 || fail "mmdebstrap failed"
    mv "$partial" "$base"
  fi
  echo "$base"
}
