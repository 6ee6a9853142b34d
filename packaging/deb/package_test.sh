#!/usr/bin/env bash
# packaging_deb_test: builds the Debian packages from the current build directory, runs lintian
# (any error fails), and exercises the gateway package's life cycle with dpkg --root in a
# throwaway Debian root: install v1 -> user and directories; an edited gateway.yaml survives
# the upgrade to v2 (new version, changed default config: gateway.yaml.dpkg-dist appears);
# remove keeps /var/lib/outpost; purge removes /etc/outpost and /var/lib/outpost.
# The base root (mmdebstrap minbase + the packages' dependencies) is made once and cached as a
# tarball under the build directory; it needs root and the Debian mirror the first time.
set -euo pipefail

bin=${OUTPOST_BINARY_DIR:?OUTPOST_BINARY_DIR is not set (run through ctest)}
fail() { echo "packaging_deb_test: FAIL: $*" >&2; exit 1; }
# shellcheck source=packaging/deb/test_lib.sh
. "$(dirname "$0")/test_lib.sh"
[ "$(id -u)" -eq 0 ] || fail "needs root (dpkg --root runs the maintainer scripts in a chroot)"
for t in cpack dpkg-deb dpkg-shlibdeps lintian mmdebstrap; do
  command -v "$t" >/dev/null || fail "$t is missing (scripts/install-deps.sh installs it)"
done

work=$bin/packaging-test
out=$work/out
rm -rf "$out" && mkdir -p "$out/v1" "$out/v2"

# 1. The packages, from this build directory.
deb_build "$out/v1"
arch=$(dpkg --print-architecture)
dpkg-deb --ctrl-tarfile "$gw" | tar -xO ./conffiles | grep -qx /etc/outpost/gateway.yaml \
  || fail "gateway.yaml is not a conffile"

# 2. lintian: no errors (warnings are printed; the ones that remain are explained in
#    docs/deployment.md, "Packages").
lintian --fail-on error --tag-display-limit 0 "${debs[@]}" | tee "$out/lintian.log" \
  || fail "lintian reported errors"

# 3. v2: the same gateway package with a bumped version and a changed default config.
v1=$(dpkg-deb -f "$gw" Version)
v2="$v1+test2"
tree=$out/v2/tree
dpkg-deb -R "$gw" "$tree"
sed -i "s/^Version: .*/Version: $v2/" "$tree/DEBIAN/control"
printf '\n# changed default in %s\n' "$v2" >>"$tree/etc/outpost/gateway.yaml"
(cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z \
  | xargs -0 md5sum >DEBIAN/md5sums)
gw2=$out/v2/outpost-gateway_${v2}_$arch.deb
dpkg-deb --root-owner-group -b "$tree" "$gw2" >/dev/null

# 4. The throwaway root: minbase plus what the packages depend on, cached by that list.
base=$(deb_base_root "$work" bookworm "$(deb_depends "${debs[@]}")")
root=$work/root
rm -rf "$root" && mkdir -p "$root"
tar -C "$root" -xf "$base"
cleanup() { rm -rf "$root"; }
trap cleanup EXIT
in_root() { chroot "$root" "$@"; }

# 5. install v1
dpkg --root="$root" -i "$gw" >"$out/dpkg-v1.log" 2>&1 || { cat "$out/dpkg-v1.log"; fail "install v1"; }
in_root getent passwd outpost | grep -q ':/var/lib/outpost:/usr/sbin/nologin$' \
  || fail "user outpost: $(in_root getent passwd outpost || echo missing)"
mode() { in_root stat -c '%a %U:%G' "$1"; }  # names from the root's passwd
[ "$(mode /var/lib/outpost)" = "750 outpost:outpost" ] || fail "/var/lib/outpost is $(mode /var/lib/outpost)"
[ "$(mode /etc/outpost)" = "750 root:outpost" ] || fail "/etc/outpost is $(mode /etc/outpost)"
[ "$(mode /etc/outpost/gateway.yaml)" = "640 root:outpost" ] \
  || fail "gateway.yaml is $(mode /etc/outpost/gateway.yaml)"
[ -x "$root/usr/bin/outpost-gateway" ] || fail "/usr/bin/outpost-gateway missing"
[ -L "$root/etc/systemd/system/multi-user.target.wants/outpost-gateway.service" ] \
  || fail "the unit is not enabled"
in_root /usr/bin/outpost-gateway --version >/dev/null || fail "the installed gateway does not run"
# Idempotent: configuring again changes nothing and fails nothing.
dpkg --root="$root" -i "$gw" >>"$out/dpkg-v1.log" 2>&1 || { cat "$out/dpkg-v1.log"; fail "reinstall v1"; }

# 6. edit the config, upgrade to v2: the edit stays, the new default is gateway.yaml.dpkg-dist.
echo "# local edit" >>"$root/etc/outpost/gateway.yaml"
dpkg --root="$root" --force-confold -i "$gw2" >"$out/dpkg-v2.log" 2>&1 \
  || { cat "$out/dpkg-v2.log"; fail "upgrade to v2"; }
[ "$(in_root dpkg-query -W -f='${Version}' outpost-gateway)" = "$v2" ] || fail "v2 is not installed"
grep -qx '# local edit' "$root/etc/outpost/gateway.yaml" || fail "the upgrade lost the local edit"
[ -f "$root/etc/outpost/gateway.yaml.dpkg-dist" ] || fail "no gateway.yaml.dpkg-dist"
grep -q "changed default in $v2" "$root/etc/outpost/gateway.yaml.dpkg-dist" \
  || fail "gateway.yaml.dpkg-dist is not v2's default"

# 7. remove keeps the data; purge removes config and data.
echo data >"$root/var/lib/outpost/gateway.db"
dpkg --root="$root" -r outpost-gateway >"$out/dpkg-rm.log" 2>&1 || { cat "$out/dpkg-rm.log"; fail "remove"; }
[ ! -e "$root/usr/bin/outpost-gateway" ] || fail "remove left the binary"
[ -f "$root/var/lib/outpost/gateway.db" ] || fail "remove deleted /var/lib/outpost"
[ -f "$root/etc/outpost/gateway.yaml" ] || fail "remove deleted the config"
dpkg --root="$root" -P outpost-gateway >"$out/dpkg-purge.log" 2>&1 || { cat "$out/dpkg-purge.log"; fail "purge"; }
[ ! -e "$root/etc/outpost" ] || fail "purge left /etc/outpost: $(ls -A "$root/etc/outpost")"
[ ! -e "$root/var/lib/outpost" ] || fail "purge left /var/lib/outpost"
in_root getent passwd outpost >/dev/null || fail "purge removed the user (documented: it stays)"

# 8. outpost-provision: the program runs in the root, the CRL timer is enabled and its service
#    waits for a site; purge takes the timer's link with it and keeps the site folder (its CA
#    and keys are the admin's data, made by `init`, not by the package).
pv=$(printf '%s\n' "${debs[@]}" | grep '/outpost-provision_' || true)
[ -n "$pv" ] || fail "no outpost-provision package among: ${debs[*]}"
dpkg --root="$root" -i "$pv" >"$out/dpkg-provision.log" 2>&1 \
  || { cat "$out/dpkg-provision.log"; fail "install outpost-provision"; }
[ -L "$root/etc/systemd/system/timers.target.wants/outpost-crl.timer" ] \
  || fail "outpost-crl.timer is not enabled"
grep -qx 'ConditionPathExists=/etc/outpost/pki/site.conf' "$root/lib/systemd/system/outpost-crl.service" \
  || fail "outpost-crl.service does not wait for a site"
in_root /usr/bin/outpost-provision --dir /etc/outpost/pki init --broker-host localhost \
  >"$out/provision-init.log" 2>&1 || { cat "$out/provision-init.log"; fail "outpost-provision init in the root"; }
[ "$(mode /etc/outpost/pki/ca/ca.key)" = "600 root:root" ] || fail "ca.key is $(mode /etc/outpost/pki/ca/ca.key)"
dpkg --root="$root" -P outpost-provision >>"$out/dpkg-provision.log" 2>&1 \
  || { cat "$out/dpkg-provision.log"; fail "purge outpost-provision"; }
[ ! -e "$root/etc/systemd/system/timers.target.wants/outpost-crl.timer" ] || fail "purge left the timer enabled"
[ -f "$root/etc/outpost/pki/ca/ca.key" ] || fail "purge deleted the site's CA (it is the admin's, kept)"

echo "packaging_deb_test: OK (${#debs[@]} packages, $v1 -> $v2)"
